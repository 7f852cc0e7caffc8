package httpapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// FuzzDecodeCreateRun feeds arbitrary bodies to the strict decoder and the
// conversion to the store's input: it must never panic, and every failure
// must be a client error, never an internal one.
func FuzzDecodeCreateRun(f *testing.F) {
	for _, seed := range []string{
		`{"agentName":"a"}`,
		`{"agentName":"a","status":"running","steps":[{"type":"llm","seq":1}],"toolCalls":[{"toolName":"t","status":"failed"}]}`,
		`{"agentName":"a","parentRunId":"00000000-0000-0000-0000-000000000000"}`,
		`{"agentName":5}`, `{"x":1}`, `[]`, `null`, `{"steps":[null]}`, `{"input":{"deep":[1,2,{"a":null}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req CreateRunRequest
		err := decodeStrict(body, &req)
		if err == nil {
			_, err = req.toStore()
		}
		if err != nil && !errors.Is(err, derrors.InvalidArgument) {
			t.Fatalf("decode(%q) = %v, not an InvalidArgument", body, err)
		}
	})
}

// fuzzRun is the run the seeds of FuzzAPI name in their paths.
const fuzzRun = "0190a7b2-0000-7000-8000-00000000f022"

// FuzzAPI sends arbitrary requests to the real Echo instance over SQLite,
// as each kind of caller: an end user, service_role with and without
// X-Tenant-ID, and nobody. Its seeds are the bad-input matrix and a valid
// request per route. No request is ever a 5xx, every error body speaks the
// client's language, and an end user never records usage or health.
func FuzzAPI(f *testing.F) {
	runPath := "/v1/runs/" + fuzzRun
	for _, in := range badInputs(runPath) {
		body, _ := in.body.(string)
		if len(body) > 64<<10 {
			continue
		}
		for caller := range uint8(4) {
			f.Add(caller, in.method, in.path, []byte(body))
		}
	}
	for _, ok := range []struct{ method, path, body string }{
		{"POST", "/v1/runs", `{"agentName":"a","steps":[{"type":"llm"}],"toolCalls":[{"toolName":"t","status":"failed"}]}`},
		{"PATCH", runPath, `{"metadata":{"k":1}}`},
		{"POST", runPath + "/steps", `{"steps":[{"type":"a"},{"type":"b","input":{"x":[1,"\u00e9"]}}]}`},
		{"POST", runPath + "/tool-calls", `{"toolName":"t","status":"succeeded","durationMs":3}`},
		{"POST", "/v1/usage", `{"model":"m","inputTokens":3,"runId":"` + fuzzRun + `"}`},
		{"POST", "/v1/system-health", `{"component":"c","status":"up"}`},
		{"GET", "/v1/runs?limit=2&status=running", ""},
		{"GET", runPath + "?include=steps,toolCalls", ""},
		{"GET", "/v1/usage/summary?groupBy=model", ""},
		{"GET", "/v1/audit-logs?action=run.create", ""},
		{"GET", "/v1/system-health?component=c", ""},
	} {
		for caller := range uint8(4) {
			f.Add(caller, ok.method, ok.path, []byte(ok.body))
		}
	}

	db, err := store.OpenSQLite(context.Background(), filepath.Join(f.TempDir(), "fuzz.db"))
	require.NoError(f, err)
	f.Cleanup(func() { db.Close() })
	st := store.New(db, dialect.SQLite, "", nil)
	verifier, err := auth.New(context.Background(), auth.Config{HS256Secret: testSecret}, slog.New(slog.DiscardHandler))
	require.NoError(f, err)
	e := New(Deps{Log: slog.New(slog.DiscardHandler), Store: st, Auth: verifier, Ready: map[string]Pinger{"db": st}, Registry: prometheus.NewRegistry()})
	tenantID := uuid.New()
	mint := func(o auth.MintOptions) string {
		tok, err := auth.Mint(testSecret, o)
		require.NoError(f, err)
		return tok
	}
	user := mint(auth.MintOptions{Tenant: tenantID, Subject: uuid.NewString(), Role: tenant.RoleAuthenticated})
	svc := mint(auth.MintOptions{Subject: "worker", Role: tenant.RoleServiceRole})
	// serve sends a request for target, a valid request URI.
	serve := func(caller uint8, method, target string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "http://agentstore.test/", bytes.NewReader(body))
		req.URL, _ = url.ParseRequestURI(target)
		req.RequestURI = target
		switch caller % 4 {
		case 0:
			req.Header.Set("Authorization", "Bearer "+user)
		case 1:
			req.Header.Set("Authorization", "Bearer "+svc)
			req.Header.Set(HeaderTenantID, tenantID.String())
		case 2:
			req.Header.Set("Authorization", "Bearer "+svc)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	rec := serve(0, "POST", "/v1/runs", []byte(`{"id":"`+fuzzRun+`","agentName":"fuzz","status":"running","steps":[{"type":"llm"}]}`))
	require.Equal(f, http.StatusCreated, rec.Code, rec.Body.String())

	f.Fuzz(func(t *testing.T, caller uint8, method, target string, body []byte) {
		if !strings.HasPrefix(target, "/") || !validMethod(method) {
			return // not a request a client can send
		}
		if _, err := url.ParseRequestURI(target); err != nil {
			return
		}
		rec := serve(caller, method, target, body)
		require.Less(t, rec.Code, 500, "%s %s as %d: %s", method, target, caller%4, rec.Body.String())
		if rec.Code >= 400 && method != http.MethodHead {
			checkClientWording(t, rec.Body.Bytes())
		}
		path, _, _ := strings.Cut(target, "?")
		if caller%4 == 0 && method == http.MethodPost && (path == "/v1/usage" || path == "/v1/system-health") {
			require.Equal(t, http.StatusForbidden, rec.Code, "an end user may not %s %s", method, path)
		}
	})
}

// validMethod reports whether m is a method token net/http would send.
func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
