package httpapi

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/otlp"
	"github.com/agentstore/agentstore/internal/store"
)

// loadOpenAPI parses and validates the served document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	require.Equal(t, "3.0.3", doc.OpenAPI)

	// Every object schema is closed, so that a field the server adds or
	// drops without the document fails the response validation below.
	for name, s := range doc.Components.Schemas {
		for _, obj := range objectSchemas(s.Value) {
			ap := obj.AdditionalProperties
			closed := ap.Has != nil && !*ap.Has
			isMap := ap.Schema != nil && len(obj.Properties) == 0 // a map with typed values
			require.True(t, closed || isMap, "schema %s: an object must have additionalProperties: false", name)
		}
	}
}

// objectSchemas returns s and the inline object schemas under it.
func objectSchemas(s *openapi3.Schema) []*openapi3.Schema {
	if s == nil || !s.Type.Is(openapi3.TypeObject) {
		return nil
	}
	out := []*openapi3.Schema{s}
	for _, p := range s.Properties {
		if p.Ref == "" {
			out = append(out, objectSchemas(p.Value)...)
		}
	}
	return out
}

// TestOpenAPISchemasMatchTypes compares the JSON fields of the request and
// response types with the document's schemas: the same names, required
// where the decoder or the store insists, and nullable exactly where the
// response type can emit null.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	responses := map[string]any{
		"Run": Run{}, "Step": Step{}, "ToolCall": ToolCall{}, "AuditLog": AuditLog{}, "Usage": Usage{},
		"Health": Health{}, "RunStats": RunStats{}, "UsageSummary": UsageSummary{}, "Error": ErrorBody{},
		"RunPage": List[Run]{}, "AuditLogPage": List[AuditLog]{}, "StepList": List[Step]{}, "ToolCallList": List[ToolCall]{},
		"StepBatch": Data[Step]{}, "ToolCallBatch": Data[ToolCall]{}, "RunStatsResult": Rollup[RunStats]{},
		"UsageSummaryResult": Rollup[UsageSummary]{}, "RollupWindow": RollupWindow{}, "HealthResult": Data[Health]{},
		"IngestResponse": IngestResponse{}, "IngestResult": IngestResult{},
		"Erasure": Erasure{}, "ErasureCounts": ErasureCounts{}, "ExportCheckpoint": ExportCheckpoint{},
	}
	requests := map[string]any{
		"CreateRunRequest": CreateRunRequest{}, "StepInput": StepRequest{}, "StepBatchInput": StepsRequest{},
		"ToolCallInput": ToolCallRequest{}, "ToolCallBatchInput": ToolCallsRequest{}, "PatchRunRequest": PatchRunRequest{},
		"UsageRequest": UsageRequest{}, "HealthRequest": HealthRequest{}, "IngestRequest": IngestRequest{},
		"IngestRunCreate": IngestItem{}, "IngestRunUpdate": IngestItem{}, "IngestStepAppend": IngestItem{},
		"IngestToolCallRecord": IngestItem{}, "IngestUsageRecord": IngestItem{},
		"ErasureRequest": ErasureRequest{},
	}
	rawJSON := reflect.TypeOf(json.RawMessage{})
	check := func(name string, v any, response bool) {
		ref := doc.Components.Schemas[name]
		require.NotNil(t, ref, "no schema %s", name)
		s := ref.Value
		typ := reflect.TypeOf(v)
		var fields []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			fields = append(fields, tag)
			p := s.Properties[tag]
			require.NotNil(t, p, "schema %s lacks field %s", name, tag)
			if !response {
				continue
			}
			omitempty := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
			require.Equal(t, !omitempty, slices.Contains(s.Required, tag), "schema %s: field %s required", name, tag)
			nullable := f.Type.Kind() == reflect.Pointer || f.Type == rawJSON
			if f.Type.Kind() == reflect.Slice && f.Type != rawJSON {
				nullable = false // mapSlice never leaves a nil slice
			}
			if omitempty {
				nullable = false
			}
			require.Equal(t, nullable, permitsNull(p.Value), "schema %s: field %s nullable", name, tag)
		}
		var props []string
		for k := range s.Properties {
			props = append(props, k)
		}
		require.ElementsMatch(t, fields, props, "schema %s and %T have different fields", name, v)
	}
	for name, v := range responses {
		check(name, v, true)
	}
	for name, v := range requests {
		check(name, v, false)
	}
	for name, want := range map[string][]string{
		"CreateRunRequest": {"agentName"}, "StepInput": {"type"}, "ToolCallInput": {"toolName", "status"},
		"UsageRequest": {"model"}, "HealthRequest": {"component", "status"}, "StepBatchInput": {"steps"},
		"ToolCallBatchInput": {"toolCalls"}, "PatchRunRequest": nil, "IngestRequest": {"batch"},
		"IngestRunCreate": {"id", "type", "body"}, "IngestRunUpdate": {"id", "type", "runId", "body"},
		"IngestStepAppend": {"id", "type", "runId", "body"}, "IngestToolCallRecord": {"id", "type", "runId", "body"},
		"IngestUsageRecord": {"id", "type", "body"},
		"ErasureRequest":    {"userId"},
	} {
		require.ElementsMatch(t, want, doc.Components.Schemas[name].Value.Required, "schema %s required fields", name)
	}
}

// permitsNull reports whether s admits null: it is nullable, or it is an
// anyOf whose every branch is (AnyValue, which OpenAPI 3.0 cannot mark
// nullable without a type, as linters insist).
func permitsNull(s *openapi3.Schema) bool {
	if s.Nullable {
		return true
	}
	if len(s.AnyOf) == 0 {
		return false
	}
	for _, b := range s.AnyOf {
		if !b.Value.Nullable {
			return false
		}
	}
	return true
}

// documentedOps returns "METHOD /path/{param}" of every operation.
func documentedOps(doc *openapi3.T) []string {
	var ops []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	sort.Strings(ops)
	return ops
}

func TestOpenAPIRoutesMatchServer(t *testing.T) {
	doc := loadOpenAPI(t)
	v, err := auth.New(context.Background(), auth.Config{HS256Secret: testSecret}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	e := New(Deps{Log: slog.New(slog.DiscardHandler), Auth: v, Registry: prometheus.NewRegistry()})
	var served []string
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // the catch-all a group with middleware registers
		}
		segs := strings.Split(r.Path, "/")
		for i, s := range segs {
			if name, ok := strings.CutPrefix(s, ":"); ok {
				segs[i] = "{" + name + "}"
			}
		}
		served = append(served, r.Method+" "+strings.Join(segs, "/"))
	}
	sort.Strings(served)
	require.Equal(t, served, documentedOps(doc), "the routes Echo serves and the operations the document lists differ")
}

// validator checks every exchange of the wrapped clients against the
// document and counts what was covered.
type validator struct {
	t      *testing.T
	router routers.Router
	opts   *openapi3filter.Options
	ops    []string

	mu        sync.Mutex
	exchanges int
	covered   map[string]int // "METHOD /path/{param}"
	statuses  map[string]int // "METHOD /path/{param} STATUS"
}

// anyUUID accepts any canonical UUID, as the server does (uuid.Parse and
// 36 characters), whatever its version.
var anyUUID = openapi3.NewRegexpFormatValidator(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func newValidator(t *testing.T) *validator {
	// OTLP protobuf bodies are opaque to the document.
	openapi3filter.RegisterBodyDecoder(otlp.MediaTypeProtobuf, openapi3filter.FileBodyDecoder)
	doc := loadOpenAPI(t)
	// Route on the path alone: the test server's URL is not a server of
	// the document.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return &validator{
		t:      t,
		router: router,
		opts: &openapi3filter.Options{
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc, // auth is tested elsewhere
			IncludeResponseStatus: true,
			SkipSettingDefaults:   true,
			MultiError:            true,
			SchemaValidationOptions: []openapi3.SchemaValidationOption{
				openapi3.WithStringFormatValidator("uuid", anyUUID),
			},
		},
		ops:      documentedOps(doc),
		covered:  map[string]int{},
		statuses: map[string]int{},
	}
}

// vclient is a harness client whose every call is validated.
type vclient struct {
	v *validator
	c *client
}

func (v *validator) wrap(c *client) *vclient { return &vclient{v: v, c: c} }

// with returns a copy of the client that also sends header name: value.
func (vc *vclient) with(name, value string) *vclient {
	c := *vc.c
	c.header = vc.c.header.Clone()
	c.header.Set(name, value)
	return &vclient{v: vc.v, c: &c}
}

// withToken returns a copy of the client that sends token instead.
func (vc *vclient) withToken(token string) *vclient {
	c := *vc.c
	c.header = vc.c.header.Clone()
	c.token = token
	return &vclient{v: vc.v, c: &c}
}

// do sends a request the document accepts and requires status want and a
// response the document describes.
func (vc *vclient) do(want int, method, path string, body any) response {
	vc.c.a.t.Helper()
	return vc.exchange(true, want, method, path, body)
}

// bad sends a request the document refuses, and requires the server to
// refuse it too, with status want and a documented error response.
func (vc *vclient) bad(want int, method, path string, body any) response {
	vc.c.a.t.Helper()
	return vc.exchange(false, want, method, path, body)
}

func (vc *vclient) exchange(validRequest bool, want int, method, path string, body any) response {
	t := vc.c.a.t
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		raw, err = json.Marshal(b)
		require.NoError(t, err)
	}

	// The request as the harness sends it.
	req, err := http.NewRequest(method, vc.c.a.srv.URL+path, bytes.NewReader(raw))
	require.NoError(t, err)
	for k, v := range vc.c.header {
		req.Header[k] = v
	}
	if vc.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+vc.c.token)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := vc.v.router.FindRoute(req)
	require.NoError(t, err, "%s %s is not in the document", method, path)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: vc.v.opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if validRequest {
		if reqErr != nil {
			require.Fail(t, "the document refuses the request", "%s %s %s: %s", method, path,
				truncate(string(raw), 300), truncate(reqErr.Error(), 2000))
		}
	} else {
		require.Error(t, reqErr, "the document accepts %s %s %s, which the server refuses", method, path, truncate(string(raw), 300))
	}

	var res response
	if body == nil {
		res = vc.c.do(method, path, nil)
	} else {
		res = vc.c.do(method, path, raw)
	}
	require.Equal(t, want, res.status, "%s %s %s: %s", method, path, truncate(string(raw), 300), truncate(string(res.body), 1000))

	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.status,
		Header:                 res.header,
		Body:                   io.NopCloser(bytes.NewReader(res.body)),
		Options:                vc.v.opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		require.Fail(t, "the document does not describe the response", "%s %s → %d %s: %s", method, path, res.status,
			truncate(string(res.body), 1000), truncate(err.Error(), 2000))
	}

	op := method + " " + route.Path
	vc.v.mu.Lock()
	vc.v.exchanges++
	vc.v.covered[op]++
	vc.v.statuses[fmt.Sprintf("%s %d", op, res.status)]++
	vc.v.mu.Unlock()
	return res
}

// report requires that every documented operation was exercised, and logs
// which documented statuses were.
func (v *validator) report(doc *openapi3.T) {
	t := v.t
	v.mu.Lock()
	defer v.mu.Unlock()
	require.Greater(t, v.exchanges, 30, "too few validated exchanges")
	for _, op := range v.ops {
		require.Positive(t, v.covered[op], "%s was never exercised", op)
	}
	// Every documented response is exercised but those of the shared
	// failure modes, of which one instance each is enough.
	shared := map[string]bool{"429": true, "500": true, "503": true}
	var documented, seen int
	unexercised := map[string]int{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				documented++
				key := method + " " + path + " " + status
				switch {
				case v.statuses[key] > 0:
					seen++
				case shared[status]:
					unexercised[status]++
				default:
					require.Fail(t, "a documented response was never exercised", key)
				}
			}
		}
	}
	t.Logf("%d validated exchanges; %d/%d operations; %d/%d documented responses (unexercised shared ones: %v)",
		v.exchanges, len(v.covered), len(v.ops), seen, documented, unexercised)
}

type failingPinger struct{}

func (failingPinger) Ping(context.Context) error { return errors.New("connection refused") }

// overMaxBody makes a JSON body over MaxBodyBytes.
func overMaxBody() string { return strings.Repeat("x", MaxBodyBytes+1) }

func TestResponsesMatchOpenAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		v := newValidator(t)
		u := v.wrap(a.user())
		other := v.wrap(a.user())
		anon := v.wrap(a.as(auth.MintOptions{Tenant: u.c.tenant, Subject: uuid.NewString(), Role: auth.RoleAnon}))
		svc := v.wrap(a.as(auth.MintOptions{Subject: "worker", Role: "service_role"}))
		svcT := svc.with(HeaderTenantID, u.c.tenant.String())
		public := v.wrap(&client{a: a, header: http.Header{}})
		big := overMaxBody()
		past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)

		// Operations endpoints.
		public.do(200, "GET", "/healthz", nil)
		public.do(200, "GET", "/readyz", nil)
		public.with(HeaderRequestID, "trace-1").do(200, "GET", "/metrics", nil)
		public.do(200, "GET", "/openapi.json", nil)
		{
			lg := slog.New(slog.DiscardHandler)
			verifier, err := auth.New(context.Background(), auth.Config{HS256Secret: testSecret}, lg)
			require.NoError(t, err)
			srv := httptest.NewServer(New(Deps{Log: lg, Store: a.st, Auth: verifier,
				Ready: map[string]Pinger{"db": a.st, "redis": failingPinger{}}, Registry: prometheus.NewRegistry()}))
			t.Cleanup(srv.Close)
			down := v.wrap(&client{a: &api{t: t, srv: srv, st: a.st}, header: http.Header{}})
			res := down.do(503, "GET", "/readyz", nil)
			require.JSONEq(t, `{"status":"not ready","checks":{"db":"up","redis":"down"}}`, string(res.body))
		}

		// A database that refuses connections is 503; an unexpected store
		// error (here a database without the schema) is a bare 500.
		{
			lg := slog.New(slog.DiscardHandler)
			verifier, err := auth.New(context.Background(), auth.Config{HS256Secret: testSecret}, lg)
			require.NoError(t, err)
			serve := func(st *store.Store) *vclient {
				srv := httptest.NewServer(New(Deps{Log: lg, Store: st, Auth: verifier,
					Ready: map[string]Pinger{"db": st}, Registry: prometheus.NewRegistry()}))
				t.Cleanup(srv.Close)
				c := a.user()
				c.a = &api{t: t, srv: srv, st: st}
				return v.wrap(c)
			}
			refused, err := sql.Open("pgx", "postgres://agentstore@127.0.0.1:1/agentstore?connect_timeout=2")
			require.NoError(t, err)
			t.Cleanup(func() { refused.Close() })
			unreachable := serve(store.New(refused, dialect.Postgres, "", nil))
			unreachable.do(503, "GET", "/v1/runs", nil)
			unreachable.do(503, "POST", "/v1/runs", map[string]any{"agentName": "a"})
			v.wrap(&client{a: unreachable.c.a, header: http.Header{}}).do(503, "GET", "/readyz", nil)

			empty, err := store.OpenPostgres(context.Background(), dbtest.NewDatabase(t), 2)
			require.NoError(t, err)
			t.Cleanup(func() { empty.Close() })
			res := serve(store.New(empty, dialect.Postgres, dbtest.Schema, nil)).do(500, "GET", "/v1/runs/stats", nil)
			require.JSONEq(t, `"internal error"`, mustJSON(t, res.body)["message"], "no internal detail leaks")
		}

		// Authentication and authorization, on every /v1 operation.
		runID := uuid.NewString()
		for _, op := range []struct {
			method, path string
			body         any // one the document accepts
		}{
			{"POST", "/v1/runs", map[string]any{"agentName": "a"}},
			{"GET", "/v1/runs", nil},
			{"GET", "/v1/runs/stats", nil},
			{"GET", "/v1/runs/" + runID, nil},
			{"PATCH", "/v1/runs/" + runID, map[string]any{"status": "running"}},
			{"POST", "/v1/runs/" + runID + "/steps", map[string]any{"type": "llm"}},
			{"GET", "/v1/runs/" + runID + "/steps", nil},
			{"POST", "/v1/runs/" + runID + "/tool-calls", map[string]any{"toolName": "t", "status": "failed"}},
			{"GET", "/v1/runs/" + runID + "/tool-calls", nil},
			{"POST", "/v1/usage", map[string]any{"model": "m"}},
			{"GET", "/v1/usage/summary", nil},
			{"GET", "/v1/audit-logs", nil},
			{"GET", "/v1/system-health", nil},
			{"POST", "/v1/system-health", map[string]any{"component": "c", "status": "up"}},
			{"POST", "/v1/ingest", map[string]any{"batch": []any{item("e", "run.create", nil, map[string]any{"agentName": "a"})}}},
			{"POST", "/v1/traces", map[string]any{"resourceSpans": []any{}}},
		} {
			res := public.do(401, op.method, op.path, op.body)
			require.Equal(t, `Bearer realm="agentstore"`, res.header.Get("WWW-Authenticate"))
			u.withToken("not.a.jwt").do(401, op.method, op.path, op.body)
			anon.do(403, op.method, op.path, op.body)
			if op.path == "/v1/system-health" {
				// Global: service_role needs no X-Tenant-ID.
				svc.do(map[string]int{"GET": 200, "POST": 201}[op.method], op.method, op.path, op.body)
			} else {
				svc.do(403, op.method, op.path, op.body) // service_role without X-Tenant-ID
			}
			svc.with(HeaderTenantID, "tenant-1").bad(403, op.method, op.path, op.body)
		}

		// POST /v1/runs.
		queued := u.do(201, "POST", "/v1/runs", map[string]any{
			"agentName": "planner", "input": map[string]any{"q": "hi"}, "metadata": []int{1, 2}, "model": "gpt-x",
		})
		var run Run
		queued.json(t, &run)
		require.Equal(t, "queued", run.Status)
		require.Nil(t, run.Steps, "a run created without steps has no steps field")

		stepID := uuid.NewString()
		created := u.do(201, "POST", "/v1/runs", map[string]any{
			"id": uuid.NewString(), "agentName": "coder", "status": "running", "parentRunId": run.ID,
			"userId": uuid.NewString(), "startedAt": past,
			"steps": []map[string]any{
				{"id": stepID, "type": "llm", "name": "think", "input": "x", "output": nil, "startedAt": past, "endedAt": future},
				{"seq": 2, "type": "tool", "status": "running"},
			},
			"toolCalls": []map[string]any{
				{"stepId": stepID, "toolName": "search", "status": "succeeded", "arguments": map[string]any{"q": 1},
					"result": []string{"a"}, "durationMs": 12},
				{"toolName": "fetch", "status": "failed", "error": "timeout"},
			},
		})
		var running Run
		created.json(t, &running)
		require.Len(t, running.Steps, 2)
		require.Len(t, running.ToolCalls, 2)
		u.do(409, "POST", "/v1/runs", map[string]any{"id": running.ID, "agentName": "dup"})

		idem := u.with(HeaderIdempotencyKey, "key-"+uuid.NewString())
		first := idem.do(201, "POST", "/v1/runs", map[string]any{"agentName": "idem"})
		replay := idem.do(201, "POST", "/v1/runs", map[string]any{"agentName": "idem"})
		require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
		require.JSONEq(t, string(first.body), string(replay.body))
		idem.do(409, "POST", "/v1/runs", map[string]any{"agentName": "other"})
		u.with(HeaderIdempotencyKey, strings.Repeat("k", 256)).bad(400, "POST", "/v1/runs", map[string]any{"agentName": "x"})

		u.bad(400, "POST", "/v1/runs", nil)
		u.bad(400, "POST", "/v1/runs", "{")
		u.bad(400, "POST", "/v1/runs", map[string]any{"agentName": "a", "colour": "red"})
		u.bad(400, "POST", "/v1/runs", map[string]any{"input": 1})
		u.bad(400, "POST", "/v1/runs", map[string]any{"agentName": 7})
		u.bad(400, "POST", "/v1/runs", map[string]any{"agentName": "a", "id": "not-a-uuid"})
		u.bad(400, "POST", "/v1/runs", map[string]any{"agentName": "a", "status": "succeeded"})
		u.bad(400, "POST", "/v1/runs", map[string]any{"agentName": "a", "startedAt": "yesterday"})
		u.bad(400, "POST", "/v1/runs", map[string]any{"agentName": "a", "steps": []map[string]any{{"name": "no type"}}})
		u.bad(400, "POST", "/v1/runs", map[string]any{"agentName": "a", "toolCalls": []map[string]any{{"toolName": "t"}}})
		u.bad(400, "POST", "/v1/runs", map[string]any{"agentName": strings.Repeat("a", 201)})
		u.do(400, "POST", "/v1/runs", map[string]any{"agentName": "a", "parentRunId": uuid.NewString()})
		u.do(400, "POST", "/v1/runs", map[string]any{"agentName": "a",
			"toolCalls": []map[string]any{{"toolName": "t", "status": "failed", "stepId": uuid.NewString()}}})
		u.do(413, "POST", "/v1/runs", map[string]any{"agentName": "a", "input": big})

		// GET /v1/runs.
		u.do(200, "GET", "/v1/runs", nil)
		p1 := u.do(200, "GET", "/v1/runs?limit=1&agentName=idem&createdAfter="+url.QueryEscape(past)+"&createdBefore="+url.QueryEscape(future), nil)
		var page1 List[Run]
		p1.json(t, &page1)
		require.Len(t, page1.Data, 1)
		u.do(200, "GET", "/v1/runs?status=queued&limit=200", nil)
		u.do(200, "GET", "/v1/runs?limit=1&cursor="+url.QueryEscape(runsCursor(t, u)), nil)
		u.do(400, "GET", "/v1/runs?cursor=garbage", nil)
		u.bad(400, "GET", "/v1/runs?limit=201", nil)
		u.bad(400, "GET", "/v1/runs?limit=ten", nil)
		u.bad(400, "GET", "/v1/runs?status=done", nil)
		u.bad(400, "GET", "/v1/runs?createdAfter=yesterday", nil)
		u.do(200, "GET", "/v1/runs?parentRunId="+run.ID.String(), nil)
		u.bad(400, "GET", "/v1/runs?parentRunId=not-a-uuid", nil)

		// GET /v1/runs/{id}.
		u.do(200, "GET", "/v1/runs/"+run.ID.String(), nil)
		full := u.do(200, "GET", "/v1/runs/"+running.ID.String()+"?include=steps,toolCalls", nil)
		var withEdges Run
		full.json(t, &withEdges)
		require.Len(t, withEdges.Steps, 2)
		require.Len(t, withEdges.ToolCalls, 2)
		u.do(200, "GET", "/v1/runs/"+run.ID.String()+"?include=steps", nil)
		u.do(200, "GET", "/v1/runs/"+run.ID.String()+"?include=toolCalls", nil)
		u.bad(400, "GET", "/v1/runs/"+run.ID.String()+"?include=everything", nil)
		u.bad(400, "GET", "/v1/runs/not-a-uuid", nil)
		u.do(404, "GET", "/v1/runs/"+uuid.NewString(), nil)
		other.do(404, "GET", "/v1/runs/"+run.ID.String(), nil)

		// POST /v1/runs/{id}/steps.
		steps := "/v1/runs/" + running.ID.String() + "/steps"
		one := u.do(201, "POST", steps, map[string]any{"type": "llm", "input": map[string]any{"p": 1}})
		var step Step
		one.json(t, &step)
		require.Equal(t, 3, step.Seq)
		batch := u.do(201, "POST", steps, map[string]any{"steps": []map[string]any{
			{"type": "a", "seq": 4, "status": "failed", "error": "boom"}, {"type": "b", "name": "n"},
		}})
		var batchOut Data[Step]
		batch.json(t, &batchOut)
		require.Len(t, batchOut.Data, 2)
		same := u.do(201, "POST", steps, map[string]any{"type": "b", "name": "n", "seq": 5})
		same.json(t, &step)
		require.Equal(t, batchOut.Data[1].ID, step.ID, "an identical duplicate returns the existing step")
		u.do(409, "POST", steps, map[string]any{"type": "c", "seq": 5})
		u.do(409, "POST", steps, map[string]any{"type": "c", "seq": 9})
		u.bad(400, "POST", steps, map[string]any{"name": "no type"})
		u.bad(400, "POST", steps, map[string]any{"type": "a", "extra": true})
		u.bad(400, "POST", steps, map[string]any{"type": "a", "status": "done"})
		u.bad(400, "POST", steps, map[string]any{"type": "a", "seq": "one"})
		u.bad(400, "POST", steps, map[string]any{"steps": []any{}})
		u.bad(400, "POST", steps, map[string]any{"steps": []map[string]any{{"type": "a"}}, "type": "b"})
		u.bad(400, "POST", steps, nil)
		u.bad(400, "POST", "/v1/runs/not-a-uuid/steps", map[string]any{"type": "a"})
		other.do(404, "POST", steps, map[string]any{"type": "a"})
		u.do(413, "POST", steps, map[string]any{"type": "a", "input": big})

		// GET /v1/runs/{id}/steps.
		listed := u.do(200, "GET", steps, nil)
		var stepList List[Step]
		listed.json(t, &stepList)
		require.Len(t, stepList.Data, 5)
		u.do(200, "GET", "/v1/runs/"+run.ID.String()+"/steps", nil)
		other.do(404, "GET", steps, nil)
		u.bad(400, "GET", "/v1/runs/123/steps", nil)

		// POST /v1/runs/{id}/tool-calls.
		calls := "/v1/runs/" + running.ID.String() + "/tool-calls"
		u.do(201, "POST", calls, map[string]any{"toolName": "grep", "status": "succeeded", "stepId": stepID,
			"startedAt": past, "endedAt": future, "durationMs": 0, "arguments": nil})
		u.do(201, "POST", calls, map[string]any{"toolCalls": []map[string]any{
			{"toolName": "a", "status": "failed"}, {"toolName": "b", "status": "succeeded", "result": 3.5},
		}})
		u.do(400, "POST", calls, map[string]any{"toolName": "a", "status": "failed", "stepId": uuid.NewString()})
		u.bad(400, "POST", calls, map[string]any{"toolName": "a"})
		u.bad(400, "POST", calls, map[string]any{"toolName": "a", "status": "running"})
		u.bad(400, "POST", calls, map[string]any{"toolName": "a", "status": "failed", "durationMs": -1})
		u.bad(400, "POST", calls, map[string]any{"toolCalls": []map[string]any{{"status": "failed"}}})
		u.bad(400, "POST", calls, map[string]any{"toolCalls": []any{}})
		u.bad(400, "POST", "/v1/runs/zzz/tool-calls", map[string]any{"toolName": "a", "status": "failed"})
		other.do(404, "POST", calls, map[string]any{"toolName": "a", "status": "failed"})
		u.do(413, "POST", calls, map[string]any{"toolName": "a", "status": "failed", "result": big})

		// GET /v1/runs/{id}/tool-calls.
		u.do(200, "GET", calls, nil)
		u.do(200, "GET", "/v1/runs/"+run.ID.String()+"/tool-calls", nil)
		other.do(404, "GET", calls, nil)
		u.bad(400, "GET", "/v1/runs/"+strings.ToUpper(run.ID.String())+"x/tool-calls", nil)

		// PATCH /v1/runs/{id}.
		patch := "/v1/runs/" + run.ID.String()
		u.do(200, "PATCH", patch, map[string]any{"metadata": map[string]any{"k": "v"}})
		u.do(200, "PATCH", patch, map[string]any{"status": "running"})
		u.do(409, "PATCH", patch, map[string]any{"status": "queued"})
		u.bad(400, "PATCH", patch, map[string]any{"status": "paused"})
		u.bad(400, "PATCH", patch, map[string]any{"colour": "red"})
		u.bad(400, "PATCH", patch, map[string]any{"endedAt": 5})
		u.bad(400, "PATCH", patch, "[]")
		u.bad(400, "PATCH", "/v1/runs/nope", map[string]any{"status": "running"})
		other.do(404, "PATCH", patch, map[string]any{"status": "failed"})
		u.do(413, "PATCH", patch, map[string]any{"output": big})
		done := u.do(200, "PATCH", patch, map[string]any{"status": "succeeded", "output": map[string]any{"answer": 42}, "error": "none"})
		var finished Run
		done.json(t, &finished)
		require.NotNil(t, finished.EndedAt, "a terminal run has endedAt")
		u.do(409, "PATCH", patch, map[string]any{"output": 1})
		u.do(409, "POST", patch+"/steps", map[string]any{"type": "late"})
		u.do(409, "POST", patch+"/tool-calls", map[string]any{"toolName": "late", "status": "failed"})
		u.do(200, "PATCH", "/v1/runs/"+idOf(t, first), map[string]any{"status": "cancelled"})

		// GET /v1/runs/stats.
		u.do(200, "GET", "/v1/runs/stats", nil)
		u.do(200, "GET", "/v1/runs/stats?groupBy=agentName&from="+url.QueryEscape(past)+"&to="+url.QueryEscape(future), nil)
		u.do(200, "GET", "/v1/runs/stats?groupBy=status", nil)
		u.bad(400, "GET", "/v1/runs/stats?groupBy=model", nil)
		u.bad(400, "GET", "/v1/runs/stats?from=now", nil)

		// POST /v1/usage.
		usageID := uuid.NewString()
		svcOther := svc.with(HeaderTenantID, other.c.tenant.String())
		u.do(403, "POST", "/v1/usage", map[string]any{"model": "m"}) // end users only read usage
		svcT.do(201, "POST", "/v1/usage", map[string]any{"id": usageID, "runId": running.ID, "model": "gpt-x",
			"inputTokens": 10, "outputTokens": 5, "cachedInputTokens": 2, "costUsd": 0.25, "recordedAt": past})
		svcT.do(201, "POST", "/v1/usage", map[string]any{"model": "claude", "totalTokens": 7})
		svcT.do(409, "POST", "/v1/usage", map[string]any{"id": usageID, "model": "gpt-x"})
		svcT.do(400, "POST", "/v1/usage", map[string]any{"model": "m", "runId": uuid.NewString()})
		svcOther.do(400, "POST", "/v1/usage", map[string]any{"model": "m", "runId": running.ID})
		svcT.bad(400, "POST", "/v1/usage", map[string]any{"inputTokens": 1})
		svcT.bad(400, "POST", "/v1/usage", map[string]any{"model": "m", "inputTokens": -1})
		svcT.bad(400, "POST", "/v1/usage", map[string]any{"model": "m", "costUsd": -0.5})
		svcT.bad(400, "POST", "/v1/usage", map[string]any{"model": "m", "inputTokens": 1.5})
		svcT.bad(400, "POST", "/v1/usage", map[string]any{"model": "m", "tokens": 1})
		svcT.bad(413, "POST", "/v1/usage", map[string]any{"model": big}) // no free-form field: too long for the document too

		// POST /v1/ingest.
		batchRun := uuid.New()
		ingested := svcT.do(207, "POST", "/v1/ingest", map[string]any{"batch": []any{
			item("i1", "run.create", &batchRun, map[string]any{"agentName": "batch", "status": "running"}),
			item("i2", "step.append", &batchRun, map[string]any{"type": "llm"}),
			item("i3", "step.append", &batchRun, map[string]any{"steps": []map[string]any{{"type": "a"}}}),
			item("i4", "toolcall.record", &batchRun, map[string]any{"toolName": "t", "status": "failed"}),
			item("i5", "toolcall.record", &batchRun, map[string]any{"toolCalls": []map[string]any{{"toolName": "t", "status": "succeeded"}}}),
			item("i6", "usage.record", &batchRun, map[string]any{"model": "m", "inputTokens": 1}),
			item("i7", "run.update", &batchRun, map[string]any{"status": "succeeded"}),
			item("i8", "run.update", &batchRun, map[string]any{"status": "running"}),
		}})
		var ingestOut IngestResponse
		ingested.json(t, &ingestOut)
		for i, want := range []int{201, 201, 201, 201, 201, 201, 200, 409} {
			require.Equal(t, want, ingestOut.Results[i].Status, "%+v", ingestOut.Results[i])
		}
		// Items the document refuses are answered one by one.
		u.bad(207, "POST", "/v1/ingest", map[string]any{"batch": []any{
			map[string]any{"type": "run.create", "body": map[string]any{"agentName": "no id"}},
			item("x", "run.launch", nil, map[string]any{}),
			item("y", "step.append", nil, map[string]any{"type": "llm"}),
		}})
		tooMany := make([]any, MaxIngestItems+1)
		for i := range tooMany {
			tooMany[i] = item(fmt.Sprint(i), "run.create", nil, map[string]any{"agentName": "a"})
		}
		u.bad(400, "POST", "/v1/ingest", map[string]any{"batch": tooMany})
		u.bad(400, "POST", "/v1/ingest", map[string]any{"batch": []any{}})
		u.bad(400, "POST", "/v1/ingest", map[string]any{"items": []any{}})
		u.do(413, "POST", "/v1/ingest", map[string]any{"batch": []any{
			item("big", "run.create", nil, map[string]any{"agentName": "a", "input": strings.Repeat("x", MaxIngestBytes)})}})

		// POST /v1/traces.
		traceJSON, tracePB := otlpBodies(t)
		svcT.do(200, "POST", "/v1/traces", traceJSON)
		res := u.with("Content-Type", otlp.MediaTypeProtobuf).do(200, "POST", "/v1/traces", tracePB)
		require.Equal(t, otlp.MediaTypeProtobuf, res.header.Get("Content-Type"))
		partial := u.do(200, "POST", "/v1/traces", map[string]any{"resourceSpans": []any{map[string]any{"scopeSpans": []any{
			map[string]any{"spans": []any{map[string]any{"traceId": "00", "spanId": "01", "name": "bad"}}}}}}})
		require.Contains(t, string(partial.body), `"rejectedSpans":"1"`)
		u.with("Content-Type", otlp.MediaTypeProtobuf).with("Content-Encoding", "gzip").do(200, "POST", "/v1/traces", gzipped(t, tracePB))
		u.with("Content-Type", otlp.MediaTypeProtobuf).with("Content-Encoding", "gzip").do(413, "POST", "/v1/traces",
			gzipped(t, make([]byte, MaxTraceDecodedBytes+1)))
		u.with("Content-Type", otlp.MediaTypeProtobuf).do(400, "POST", "/v1/traces", []byte{0xff, 0xff, 0xff})
		u.bad(400, "POST", "/v1/traces", map[string]any{"resourceSpans": 5})
		u.bad(400, "POST", "/v1/traces", "{")
		u.with("Content-Type", "text/plain").bad(415, "POST", "/v1/traces", "spans")
		u.with("Content-Type", otlp.MediaTypeProtobuf).with("Content-Encoding", "br").bad(415, "POST", "/v1/traces", tracePB)

		// GET /v1/usage/summary.
		for _, g := range []string{"", "?groupBy=day", "?groupBy=model", "?groupBy=agentName&from=" + url.QueryEscape(past) + "&to=" + url.QueryEscape(future)} {
			u.do(200, "GET", "/v1/usage/summary"+g, nil)
		}
		u.bad(400, "GET", "/v1/usage/summary?groupBy=week", nil)
		u.bad(400, "GET", "/v1/usage/summary?to=tomorrow", nil)

		// GET /v1/audit-logs.
		u.do(200, "GET", "/v1/audit-logs", nil)
		u.do(200, "GET", "/v1/audit-logs?action=run.create&resourceType=run&limit=1", nil)
		u.do(200, "GET", "/v1/audit-logs?resourceId="+run.ID.String()+"&actorId="+subjectOf(t, u.c)+"&from="+url.QueryEscape(past)+"&to="+url.QueryEscape(future), nil)
		u.do(200, "GET", "/v1/audit-logs?limit=1&cursor="+url.QueryEscape(auditCursor(t, u)), nil)
		u.do(400, "GET", "/v1/audit-logs?cursor=xyz", nil)
		u.bad(400, "GET", "/v1/audit-logs?limit=-1", nil)
		u.bad(400, "GET", "/v1/audit-logs?from=1", nil)

		// /v1/system-health.
		component := "queue-" + uuid.NewString()[:8]
		svcT.do(201, "POST", "/v1/system-health", map[string]any{"component": component, "status": "degraded",
			"latencyMs": 12, "details": map[string]any{"lag": 3}, "checkedAt": past})
		svcT.do(201, "POST", "/v1/system-health", map[string]any{"component": component, "status": "up"})
		u.do(403, "POST", "/v1/system-health", map[string]any{"component": component, "status": "up"})
		svcT.bad(400, "POST", "/v1/system-health", map[string]any{"component": component})
		svcT.bad(400, "POST", "/v1/system-health", map[string]any{"component": component, "status": "sideways"})
		svcT.bad(400, "POST", "/v1/system-health", map[string]any{"component": component, "status": "up", "latencyMs": -5})
		svcT.bad(400, "POST", "/v1/system-health", map[string]any{"component": component, "status": "up", "note": "x"})
		svcT.do(413, "POST", "/v1/system-health", map[string]any{"component": component, "status": "up", "details": big})
		u.do(200, "GET", "/v1/system-health", nil)
		hist := u.do(200, "GET", "/v1/system-health?component="+component+"&limit=1", nil)
		var h Data[Health]
		hist.json(t, &h)
		require.Len(t, h.Data, 1)
		u.do(200, "GET", "/v1/system-health?component="+component+"&from="+url.QueryEscape(past)+"&to="+url.QueryEscape(future), nil)
		u.do(400, "GET", "/v1/system-health?from="+url.QueryEscape(past), nil)
		u.bad(400, "GET", "/v1/system-health?component=x&limit=201", nil)
		u.bad(400, "GET", "/v1/system-health?component=x&to=soon", nil)

		exerciseLifecycle(t, a, v, u, public, anon, svc)
		v.report(loadOpenAPI(t))
	})
}

// runsCursor returns the nextCursor of the first one-run page.
func runsCursor(t *testing.T, u *vclient) string {
	var l List[Run]
	u.do(200, "GET", "/v1/runs?limit=1", nil).json(t, &l)
	require.NotNil(t, l.NextCursor)
	return *l.NextCursor
}

// auditCursor returns the nextCursor of the first one-row audit page.
func auditCursor(t *testing.T, u *vclient) string {
	var l List[AuditLog]
	u.do(200, "GET", "/v1/audit-logs?limit=1", nil).json(t, &l)
	require.NotNil(t, l.NextCursor)
	return *l.NextCursor
}

// idOf returns the id of the resource in the body.
func idOf(t *testing.T, r response) string {
	var v struct {
		ID string `json:"id"`
	}
	r.json(t, &v)
	return v.ID
}

// subjectOf returns the sub claim of the client's token.
func subjectOf(t *testing.T, c *client) string {
	parts := strings.Split(c.token, ".")
	require.Len(t, parts, 3)
	var claims struct {
		Sub string `json:"sub"`
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &claims))
	return claims.Sub
}

func mustJSON(t *testing.T, b []byte) map[string]string {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	out := map[string]string{}
	for k, v := range m {
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		out[k] = string(raw)
	}
	return out
}

// The batch forms of the appends, as decodeOneOrBatch reads them.
type (
	StepsRequest struct {
		Steps []StepRequest `json:"steps"`
	}
	ToolCallsRequest struct {
		ToolCalls []ToolCallRequest `json:"toolCalls"`
	}
)

// truncate shortens s to n bytes for a failure message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
