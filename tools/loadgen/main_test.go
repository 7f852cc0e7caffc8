package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentstore/agentstore/tools/benchresult"
	"github.com/agentstore/agentstore/tools/loopback"
)

func TestCheckURLRefusesOtherHosts(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080/v1/runs", "http://localhost/x", "http://[::1]:9/", "https://127.0.0.1/"} {
		if _, err := checkURL(ok); err != nil {
			t.Errorf("checkURL(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"http://example.com/", "http://10.0.0.1/", "http://127.0.0.2/", "http://0.0.0.0/",
		"ftp://127.0.0.1/", "http://localhost.example.com/", "//127.0.0.1/"} {
		if _, err := checkURL(bad); err == nil {
			t.Errorf("checkURL(%q) accepted a non-loopback target", bad)
		}
	}
	if err := loopback.Control("tcp", "192.0.2.1:80", nil); err == nil {
		t.Error("loopbackOnly accepted 192.0.2.1")
	}
	if err := loopback.Control("tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("loopbackOnly refused 127.0.0.1: %v", err)
	}
}

func TestRunRefusesRemoteURL(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-url", "http://example.com/", "-d", "1s"}, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "only targets") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestTemplate(t *testing.T) {
	tmpl, err := parseTemplate([]byte(`{"id":"{{uuid}}","steps":[{"id":"{{uuid:s1}}"}],"calls":[{"stepId":"{{uuid:s1}}","other":"{{uuid}}"}],"at":"{{now}}"}`))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var got struct {
		ID    string `json:"id"`
		Steps []struct {
			ID string `json:"id"`
		} `json:"steps"`
		Calls []struct {
			StepID string `json:"stepId"`
			Other  string `json:"other"`
		} `json:"calls"`
		At time.Time `json:"at"`
	}
	a, b := tmpl.expand(at), tmpl.expand(at)
	if err := json.Unmarshal(a, &got); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, id := range []string{got.ID, got.Steps[0].ID, got.Calls[0].Other} {
		if !uuidRE.MatchString(id) {
			t.Errorf("%q is not a version 7 UUID", id)
		}
	}
	if got.Steps[0].ID != got.Calls[0].StepID {
		t.Errorf("{{uuid:s1}} expanded to %q and %q", got.Steps[0].ID, got.Calls[0].StepID)
	}
	if got.ID == got.Calls[0].Other || got.ID == got.Steps[0].ID {
		t.Error("{{uuid}} repeated a value")
	}
	if !got.At.Equal(at) {
		t.Errorf("{{now}} = %v, want %v", got.At, at)
	}
	if bytes.Equal(a, b) {
		t.Error("two expansions are equal")
	}
	for _, bad := range []string{`{{uuid`, `{{nope}}`, `{{uuid:}}`} {
		if _, err := parseTemplate([]byte(bad)); err == nil {
			t.Errorf("parseTemplate(%q) accepted it", bad)
		}
	}
}

func TestTemplateOTLPIDs(t *testing.T) {
	tmpl, err := parseTemplate([]byte(`{{traceid:a}} {{spanid:x}} {{traceid:a}} {{spanid:x}} {{spanid:y}} {{traceid:b}} {{nowns}}`))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(0, 1735689600123456789)
	first := strings.Fields(string(tmpl.expand(at)))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(first[0]) || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(first[1]) {
		t.Fatalf("ids %q, %q: want 32 and 16 hex digits", first[0], first[1])
	}
	if first[0] != first[2] || first[1] != first[3] {
		t.Errorf("one name, two ids: %q", first)
	}
	if first[1] == first[4] || first[0] == first[5] {
		t.Errorf("two names, one id: %q", first)
	}
	if first[6] != "1735689600123456789" {
		t.Errorf("{{nowns}} = %s", first[6])
	}
	if second := strings.Fields(string(tmpl.expand(at))); second[0] == first[0] || second[1] == first[1] {
		t.Error("two requests share an id")
	}
}

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(100-i) * time.Millisecond
	}
	l := summarizeLatency(lat)
	if l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 || l.Mean != 50.5 {
		t.Fatalf("got %+v", l)
	}
	if (summarizeLatency(nil) != benchresult.Latency{}) {
		t.Fatal("empty latencies are not zero")
	}
}

func TestRunAgainstLocalServer(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("X-Test") != "yes" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "{{") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	bodyFile := dir + "/body.json"
	if err := writeFile(bodyFile, `{"id":"{{uuid}}"}`); err != nil {
		t.Fatal(err)
	}
	code := run(context.Background(), []string{
		"-url", srv.URL + "/v1/runs", "-method", "POST", "-body-file", bodyFile, "-body-template",
		"-token", "tok", "-header", "X-Test: yes", "-c", "4", "-d", "300ms", "-warmup", "100ms",
		"-expect", "201", "-json", "-label", "t",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res benchresult.Load
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Status["201"] != res.Requests || res.Errors != 0 || res.Unexpected != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.TotalRequests != hits.Load() || res.TotalRequests < res.Requests+res.WarmupRequests {
		t.Errorf("total %d, server saw %d, measured %d + warm-up %d", res.TotalRequests, hits.Load(), res.Requests, res.WarmupRequests)
	}
	if res.Connections != 4 {
		t.Errorf("opened %d connections, want 4 (keep-alive)", res.Connections)
	}
	if res.RPS <= 0 || res.Latency.P99 <= 0 || res.Label != "t" {
		t.Errorf("result %+v", res)
	}

	// A bounded count, and a status outside -expect failing the run.
	stdout.Reset()
	code = run(context.Background(), []string{"-url", srv.URL, "-c", "2", "-d", "5s", "-warmup", "0s", "-n", "10", "-expect", "201"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "401=10") {
		t.Fatalf("exit %d, stdout %q", code, stdout.String())
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
