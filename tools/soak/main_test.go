package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/tools/loopback"
)

func TestChecksRefuseOtherHosts(t *testing.T) {
	for _, bad := range []string{"http://example.com", "http://10.0.0.1:1", "ws://127.0.0.1:1", "http://u:p@127.0.0.1:1"} {
		if _, err := baseURL(bad); err == nil {
			t.Errorf("baseURL(%q) accepted", bad)
		}
	}
	if u, err := baseURL("http://127.0.0.1:8080/"); err != nil || u.String() != "http://127.0.0.1:8080" {
		t.Errorf("baseURL: %v, %v", u, err)
	}
	for _, bad := range []string{"postgres://u@db.example.com:5432/x", "postgres://u@10.1.1.1/x", "host=/tmp dbname=x"} {
		if err := checkDBURL(bad); err == nil {
			t.Errorf("checkDBURL(%q) accepted", bad)
		}
	}
	if err := checkDBURL("postgres://postgres@127.0.0.1:5432/x?sslmode=disable"); err != nil {
		t.Error(err)
	}
	if err := loopback.Control("tcp", "192.0.2.1:80", nil); err == nil {
		t.Error("loopbackOnly accepted 192.0.2.1")
	}
}

func TestFlags(t *testing.T) {
	ok := []string{"-url", "http://127.0.0.1:1", "-token", "x", "-server-pid", "1"}
	cfg, err := parseFlags(append(ok, "-d", "90s"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Warmup != 15*time.Second || cfg.MaxRequests != 1981 || cfg.SlackGoroutines != 60 || cfg.SlackFDs != 30 {
		t.Errorf("defaults %+v", cfg)
	}
	if cfg, _ := parseFlags(append(ok, "-d", "20s", "-sample", "10s"), io.Discard); cfg.Warmup != 10*time.Second {
		t.Errorf("warm-up %s, want at least one sample interval", cfg.Warmup)
	}
	for _, extra := range [][]string{
		{"-d", "3h"}, {"-d", "20s", "-sample", "10s", "-warmup", "5s"}, {"-rate", "0"}, {"-ws-hold-min", "5s", "-ws-hold-max", "1s"},
		{"-db-url", "postgres://x@db.example.com/y"}, {"-url", "http://example.com"},
	} {
		if _, err := parseFlags(append(append([]string{}, ok...), extra...), io.Discard); err == nil {
			t.Errorf("%q accepted", extra)
		}
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-url", "http://127.0.0.1:1"}, io.Discard, &stderr); code != 2 {
		t.Errorf("exit %d", code)
	}
}

func TestJudge(t *testing.T) {
	cfg := Config{Warmup: 20 * time.Second, MaxGrowth: 0.2, SlackRSSKiB: 1000, SlackGoroutines: 10, SlackFDs: 5, SlackDB: 2, DBURL: "x"}
	var flat, leak []Sample
	for i := 0; i <= 12; i++ {
		s := Sample{T: float64(i * 10), RSSKiB: 50000 + float64(i%2)*500, Goroutines: 40 + float64(i%3), OpenFDs: 30, DBConns: 5}
		flat = append(flat, s)
		s.Goroutines = 40 + float64(i*10) // a goroutine leak
		s.RSSKiB = 50000 + float64(i*2000)
		leak = append(leak, s)
	}
	for _, c := range judge(flat, cfg) {
		if !c.Pass || c.Samples != 11 {
			t.Errorf("flat: %+v", c)
		}
	}
	got := map[string]bool{}
	for _, c := range judge(leak, cfg) {
		got[c.Metric] = c.Pass
	}
	if got["goroutines"] || !got["open fds"] || !got["db connections"] {
		t.Errorf("leak verdicts %v", got)
	}
	// The warm-up is left out: a jump inside it is no trend.
	warm := append([]Sample(nil), flat...)
	warm[0].Goroutines, warm[1].Goroutines = 5, 5
	for _, c := range judge(warm, cfg) {
		if !c.Pass {
			t.Errorf("warm-up counted: %+v", c)
		}
	}
	if c := judge(flat[:3], cfg); c[0].Pass {
		t.Error("passed with too few samples")
	}
}

func TestParsers(t *testing.T) {
	if v, err := loopback.ParseVmRSS(strings.NewReader("VmRSS:\t  777 kB\n")); err != nil || v != 777 {
		t.Fatal(v, err)
	}
	m, err := loopback.ParseMetrics(strings.NewReader("# x\ngo_goroutines 12\nprocess_open_fds 9\nother{l=\"v\"} 1\n"), metricGoroutines, metricOpenFDs)
	if err != nil || m[metricGoroutines] != 12 || m[metricOpenFDs] != 9 {
		t.Fatal(m, err)
	}
}

// fakeServer answers the REST mix and /v1/ws like agentstore would, just
// enough for soak, and counts what it saw.
type fakeServer struct {
	mu       sync.Mutex
	runs     map[string]string // id → status
	n        int
	requests map[string]int
	wsOpen   atomic.Int64
	publish  atomic.Int64
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		fmt.Fprintf(w, "go_goroutines %d\nprocess_open_fds %d\ngo_memstats_heap_inuse_bytes 1e+06\nagentstore_ws_connections %d\n",
			10+2*f.wsOpen.Load(), 8+f.wsOpen.Load(), f.wsOpen.Load())
		return
	}
	if r.URL.Path == "/v1/ws" {
		if r.URL.Query().Get("access_token") != "tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f.wsOpen.Add(1)
		defer f.wsOpen.Add(-1)
		defer ws.Close()
		for {
			var in map[string]any
			if err := ws.ReadJSON(&in); err != nil {
				return
			}
			switch in["type"] {
			case "subscribe":
				_ = ws.WriteJSON(map[string]any{"type": "subscribed", "ref": in["ref"], "channel": in["channel"], "offset": 1})
			case "publish":
				f.publish.Add(1)
			}
		}
	}
	if r.Header.Get("Authorization") != "Bearer tok" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// v1 runs [id [steps|tool-calls]]; kind "" is the collection.
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	kind := ""
	switch {
	case len(parts) >= 4:
		kind = parts[3]
	case len(parts) == 3 && parts[2] == "stats":
		kind = "stats"
	case len(parts) == 3:
		kind = "one"
	}
	f.requests[r.Method+" "+kind]++
	switch {
	case r.Method == http.MethodPost && len(parts) == 2:
		f.n++
		id := fmt.Sprintf("00000000-0000-0000-0000-%012d", f.n)
		f.runs[id] = "running"
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id})
	case r.Method == http.MethodGet && len(parts) == 2:
		cursor := "c"
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{}, "nextCursor": &cursor})
	case len(parts) >= 3 && parts[2] == "stats":
		_ = json.NewEncoder(w).Encode(map[string]any{"data": []any{}})
	case len(parts) >= 3:
		st, ok := f.runs[parts[2]]
		switch {
		case !ok:
			http.Error(w, "not found", http.StatusNotFound)
		case r.Method == http.MethodPatch && st != "running", r.Method == http.MethodPost && st != "running":
			http.Error(w, "conflict", http.StatusConflict)
		case r.Method == http.MethodPatch:
			f.runs[parts[2]] = "succeeded"
			_ = json.NewEncoder(w).Encode(map[string]string{"id": parts[2]})
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{}`))
		default:
			_ = json.NewEncoder(w).Encode(map[string]string{"id": parts[2]})
		}
	default:
		http.NotFound(w, r)
	}
}

func TestRunAgainstFakeServer(t *testing.T) {
	f := &fakeServer{runs: map[string]string{}, requests: map[string]int{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	out := t.TempDir() + "/soak.json"
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-url", srv.URL, "-token", "tok", "-server-pid", fmt.Sprint(os.Getpid()),
		"-d", "4s", "-sample", "1s", "-warmup", "1s", "-rate", "100", "-workers", "4", "-ws-clients", "4",
		"-ws-hold-min", "300ms", "-ws-hold-max", "800ms", "-publish-rate", "20", "-slack-rss-kib", "1000000", "-json-out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	var rep Report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || len(rep.Samples) != 5 || len(rep.Checks) != 3 || rep.Load.Requests < 200 || rep.Load.Failures != 0 {
		t.Fatalf("%+v\n%s", rep, stdout.String())
	}
	if rep.Load.WSSessions < 8 || rep.Load.WSFailures != 0 || f.publish.Load() == 0 || rep.Load.WSPublishes != f.publish.Load() {
		t.Fatalf("websocket %+v, server saw %d publishes", rep.Load, f.publish.Load())
	}
	f.mu.Lock()
	for _, k := range []string{"POST ", "POST steps", "POST tool-calls", "PATCH one", "GET ", "GET one", "GET stats"} {
		if f.requests[k] == 0 {
			t.Errorf("no %q request: %v", k, f.requests)
		}
	}
	f.mu.Unlock()
	// The server sees a closed connection when its read fails, a moment
	// after the soak closed it.
	for deadline := time.Now().Add(3 * time.Second); f.wsOpen.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if f.wsOpen.Load() != 0 {
		t.Errorf("%d WebSocket connections left open", f.wsOpen.Load())
	}
	for _, want := range []string{"verdict: PASS", "goroutines", "trend (mean of the last third"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestRunFailsWhenServerIsGone(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-url", srv.URL, "-token", "tok", "-server-pid", fmt.Sprint(os.Getpid()),
		"-d", "4s", "-sample", "1s", "-warmup", "1s"}, io.Discard, &stderr)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
