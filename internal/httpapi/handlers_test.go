package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/realtime"
	"github.com/agentstore/agentstore/internal/store"
)

func TestRunLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		stepID := uuid.New()
		r := c.do("POST", "/v1/runs", map[string]any{
			"agentName": "planner", "input": map[string]any{"q": "hi"}, "model": "m1",
			"steps":     []map[string]any{{"id": stepID, "type": "llm"}, {"type": "tool", "name": "search"}},
			"toolCalls": []map[string]any{{"stepId": stepID, "toolName": "search", "status": "succeeded", "durationMs": 12}},
		})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var run Run
		r.json(t, &run)
		assert.Equal(t, "queued", run.Status)
		assert.Equal(t, c.tenant, run.TenantID)
		require.Len(t, run.Steps, 2)
		assert.Equal(t, 2, run.Steps[1].Seq)
		assert.True(t, strings.HasSuffix(run.CreatedAt.Format(time.RFC3339Nano), "Z"), "UTC timestamps")

		r = c.do("GET", "/v1/runs/"+run.ID.String()+"?include=steps,toolCalls", nil)
		require.Equal(t, http.StatusOK, r.status)
		var got Run
		r.json(t, &got)
		assert.Len(t, got.Steps, 2)
		require.Len(t, got.ToolCalls, 1)
		assert.Equal(t, stepID, *got.ToolCalls[0].StepID)
		r = c.do("GET", "/v1/runs/"+run.ID.String(), nil)
		assert.NotContains(t, string(r.body), `"steps"`, "edges only when included")
		var bare Run
		c.do("POST", "/v1/runs", map[string]any{"agentName": "bare"}).json(t, &bare)
		r = c.do("GET", "/v1/runs/"+bare.ID.String()+"?include=steps,toolCalls", nil)
		assert.Contains(t, string(r.body), `"steps":[]`, "an included empty edge is []")
		assert.Contains(t, string(r.body), `"toolCalls":[]`)

		for _, tc := range []struct {
			status string
			want   int
		}{{"succeeded", 409}, {"running", 200}, {"queued", 409}, {"succeeded", 200}, {"failed", 409}} {
			r = c.do("PATCH", "/v1/runs/"+run.ID.String(), map[string]any{"status": tc.status})
			require.Equal(t, tc.want, r.status, "to %s: %s", tc.status, r.body)
		}
		r.json(t, &got) // the last 409
		r = c.do("GET", "/v1/runs/"+run.ID.String(), nil)
		r.json(t, &got)
		assert.Equal(t, "succeeded", got.Status)
		assert.NotNil(t, got.EndedAt)

		r = c.do("POST", "/v1/runs/"+run.ID.String()+"/steps", map[string]any{"type": "llm"})
		assert.Equal(t, http.StatusConflict, r.status, "a finished run takes no steps")
		assert.Equal(t, derrors.CodeConflict, r.errCode(t))
	})
}

func TestAppendStepsAndToolCalls(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		var run, other Run
		c.do("POST", "/v1/runs", map[string]any{"agentName": "a", "status": "running"}).json(t, &run)
		c.do("POST", "/v1/runs", map[string]any{"agentName": "b", "steps": []map[string]any{{"type": "llm"}}}).json(t, &other)
		base := "/v1/runs/" + run.ID.String()

		r := c.do("POST", base+"/steps", map[string]any{"type": "llm", "output": map[string]any{"a": 1}})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var one Step
		r.json(t, &one)
		assert.Equal(t, 1, one.Seq)

		r = c.do("POST", base+"/steps", map[string]any{"steps": []map[string]any{{"type": "plan"}, {"type": "tool", "seq": 3}}})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var batch Data[Step]
		r.json(t, &batch)
		require.Len(t, batch.Data, 2)
		assert.Equal(t, []int{2, 3}, []int{batch.Data[0].Seq, batch.Data[1].Seq})

		r = c.do("POST", base+"/steps", map[string]any{"type": "llm", "seq": 1, "output": map[string]any{"a": 1}})
		require.Equal(t, http.StatusCreated, r.status, "an identical replay returns the stored step")
		var replay Step
		r.json(t, &replay)
		assert.Equal(t, one.ID, replay.ID)
		r = c.do("POST", base+"/steps", map[string]any{"type": "other", "seq": 1})
		assert.Equal(t, http.StatusConflict, r.status)

		r = c.do("GET", base+"/steps", nil)
		var steps List[Step]
		r.json(t, &steps)
		require.Len(t, steps.Data, 3)
		for i, s := range steps.Data {
			assert.Equal(t, i+1, s.Seq)
		}

		r = c.do("POST", base+"/tool-calls", map[string]any{"toolName": "x", "status": "failed", "error": "boom", "stepId": one.ID})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		r = c.do("POST", base+"/tool-calls", map[string]any{"toolCalls": []map[string]any{{"toolName": "y", "status": "succeeded"}}})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		r = c.do("POST", base+"/tool-calls", map[string]any{"toolName": "x", "status": "failed", "stepId": other.Steps[0].ID})
		assert.Equal(t, http.StatusBadRequest, r.status, "the step must belong to the run")
		r = c.do("GET", base+"/tool-calls", nil)
		var calls List[ToolCall]
		r.json(t, &calls)
		require.Len(t, calls.Data, 2)
		assert.Equal(t, "x", calls.Data[0].ToolName, "ordered by creation")
	})
}

func TestIdempotencyKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		c.header.Set(HeaderIdempotencyKey, "retry-1")
		body := `{"agentName":"idem","steps":[{"type":"llm"}]}`
		var wg sync.WaitGroup
		responses := make([]response, 6)
		for i := range responses {
			wg.Add(1)
			go func() { defer wg.Done(); responses[i] = c.do("POST", "/v1/runs", body) }()
		}
		wg.Wait()
		replays := 0
		for _, r := range responses {
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			assert.JSONEq(t, string(responses[0].body), string(r.body), "every retry gets the first response")
			if r.header.Get("Idempotent-Replayed") == "true" {
				replays++
			}
		}
		assert.Equal(t, len(responses)-1, replays)
		r := c.do("POST", "/v1/runs", `{"agentName":"other"}`)
		assert.Equal(t, http.StatusConflict, r.status)
		assert.Equal(t, derrors.CodeConflict, r.errCode(t))

		c.header.Del(HeaderIdempotencyKey)
		var list List[Run]
		c.do("GET", "/v1/runs", nil).json(t, &list)
		assert.Len(t, list.Data, 1, "one run for all the retries")
	})
}

func TestListPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		const n = 27
		for i := 0; i < n; i++ {
			st := "queued"
			if i%3 == 0 {
				st = "running"
			}
			r := c.do("POST", "/v1/runs", map[string]any{"agentName": fmt.Sprintf("agent-%d", i%2), "status": st})
			require.Equal(t, http.StatusCreated, r.status)
		}
		seen := map[uuid.UUID]bool{}
		var last time.Time
		path := "/v1/runs?limit=4"
		for pages := 0; ; pages++ {
			require.Less(t, pages, 10)
			var p List[Run]
			c.do("GET", path, nil).json(t, &p)
			for _, r := range p.Data {
				require.False(t, seen[r.ID], "duplicate across pages")
				seen[r.ID] = true
				if !last.IsZero() {
					require.False(t, r.CreatedAt.After(last), "newest first")
				}
				last = r.CreatedAt
			}
			if p.NextCursor == nil {
				break
			}
			path = "/v1/runs?limit=4&cursor=" + *p.NextCursor
		}
		assert.Len(t, seen, n, "no gap across pages")

		var running List[Run]
		c.do("GET", "/v1/runs?status=running&agentName=agent-0", nil).json(t, &running)
		for _, r := range running.Data {
			assert.Equal(t, "running", r.Status)
			assert.Equal(t, "agent-0", r.AgentName)
		}
		assert.Len(t, running.Data, 5)
		var none List[Run]
		c.do("GET", "/v1/runs?createdAfter="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), nil).json(t, &none)
		assert.Empty(t, none.Data)
		assert.NotNil(t, none.Data, "an empty page is [] not null")

		var parent, child Run
		c.do("POST", "/v1/runs", map[string]any{"agentName": "parent"}).json(t, &parent)
		c.do("POST", "/v1/runs", map[string]any{"agentName": "child", "parentRunId": parent.ID}).json(t, &child)
		var children List[Run]
		c.do("GET", "/v1/runs?parentRunId="+parent.ID.String(), nil).json(t, &children)
		require.Len(t, children.Data, 1, "only the parent's children")
		assert.Equal(t, child.ID, children.Data[0].ID)
		var orphans List[Run]
		c.do("GET", "/v1/runs?parentRunId="+child.ID.String(), nil).json(t, &orphans)
		assert.Empty(t, orphans.Data)
	})
}

func TestAuthentication(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		tenantID := uuid.New()
		for _, tc := range []struct {
			name   string
			client *client
			header map[string]string
			status int
		}{
			{"no token", &client{a: a, header: http.Header{}}, nil, 401},
			{"garbage token", &client{a: a, token: "not.a.jwt", header: http.Header{}}, nil, 401},
			{"expired", a.as(auth.MintOptions{Tenant: tenantID, Role: "authenticated", TTL: -time.Minute}), nil, 401},
			{"wrong audience", a.as(auth.MintOptions{Tenant: tenantID, Role: "authenticated", Audience: "other"}), nil, 401},
			{"anon", a.as(auth.MintOptions{Tenant: tenantID, Role: "anon"}), nil, 403},
			{"no tenant", a.as(auth.MintOptions{Role: "authenticated"}), nil, 403},
			{"service_role without tenant header", a.as(auth.MintOptions{Role: "service_role"}), nil, 403},
			{"service_role with tenant header", a.as(auth.MintOptions{Role: "service_role"}), map[string]string{HeaderTenantID: tenantID.String()}, 200},
			{"user", a.as(auth.MintOptions{Tenant: tenantID, Role: "authenticated"}), nil, 200},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for k, v := range tc.header {
					tc.client.header.Set(k, v)
				}
				r := tc.client.do("GET", "/v1/runs", nil)
				require.Equal(t, tc.status, r.status, string(r.body))
				if tc.status == 401 {
					assert.Equal(t, derrors.CodeUnauthenticated, r.errCode(t))
					assert.NotEmpty(t, r.header.Get("WWW-Authenticate"))
				}
				if tc.status == 403 {
					assert.Equal(t, derrors.CodeForbidden, r.errCode(t))
				}
			})
		}
		svc := a.as(auth.MintOptions{Role: "service_role"})
		svc.header.Set(HeaderTenantID, tenantID.String())
		var run Run
		svc.do("POST", "/v1/runs", map[string]any{"agentName": "svc"}).json(t, &run)
		assert.Equal(t, tenantID, run.TenantID, "service_role acts for the tenant it names")
	})
}

func TestTenantsNeverSeeEachOther(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		alice, bob := a.user(), a.user()
		var run Run
		alice.do("POST", "/v1/runs", map[string]any{"agentName": "secret", "status": "running", "steps": []map[string]any{{"type": "llm"}}}).json(t, &run)
		r := alice.service().do("POST", "/v1/usage", map[string]any{"runId": run.ID, "model": "m", "inputTokens": 3})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		id := run.ID.String()
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/v1/runs/" + id, ""},
			{"GET", "/v1/runs/" + id + "?include=steps,toolCalls", ""},
			{"PATCH", "/v1/runs/" + id, `{"status":"cancelled"}`},
			{"GET", "/v1/runs/" + id + "/steps", ""},
			{"POST", "/v1/runs/" + id + "/steps", `{"type":"llm"}`},
			{"GET", "/v1/runs/" + id + "/tool-calls", ""},
			{"POST", "/v1/runs/" + id + "/tool-calls", `{"toolName":"x","status":"failed"}`},
		} {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r = bob.do(tc.method, tc.path, body)
			assert.Equal(t, http.StatusNotFound, r.status, "%s %s: %s", tc.method, tc.path, r.body)
		}
		for _, path := range []string{"/v1/runs", "/v1/runs/stats", "/v1/usage/summary", "/v1/audit-logs"} {
			r = bob.do("GET", path, nil)
			require.Equal(t, http.StatusOK, r.status)
			assert.JSONEq(t, `[]`, string(extractData(t, r)), "%s shows B nothing of A", path)
		}
		r = bob.service().do("POST", "/v1/usage", map[string]any{"runId": run.ID, "model": "m"})
		assert.Equal(t, http.StatusBadRequest, r.status, "B cannot bill A's run")
	})
}

// extractData returns the "data" member of a list or summary body.
func extractData(t *testing.T, r response) []byte {
	t.Helper()
	var m map[string]any
	r.json(t, &m)
	b, err := jsonMarshal(m["data"])
	require.NoError(t, err)
	return b
}

func TestUsageAuditAndHealthRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		c.header.Set(HeaderRequestID, "req-abc")
		var run Run
		c.do("POST", "/v1/runs", map[string]any{"agentName": "billing"}).json(t, &run)
		r := c.do("POST", "/v1/usage", map[string]any{"runId": run.ID, "model": "m1"})
		assert.Equal(t, http.StatusForbidden, r.status, "end users only read usage: %s", r.body)
		billing := c.service()
		billing.header.Set(HeaderRequestID, "req-abc")
		r = billing.do("POST", "/v1/usage", map[string]any{"runId": run.ID, "model": "m1", "inputTokens": 10, "outputTokens": 5, "costUsd": 0.25})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var u Usage
		r.json(t, &u)
		assert.EqualValues(t, 15, u.TotalTokens)
		assert.Equal(t, "req-abc", r.header.Get(HeaderRequestID), "the request id is echoed")

		var sum Data[UsageSummary]
		c.do("GET", "/v1/usage/summary?groupBy=agentName", nil).json(t, &sum)
		require.Len(t, sum.Data, 1)
		assert.Equal(t, "billing", *sum.Data[0].Key)
		assert.InDelta(t, 0.25, sum.Data[0].CostUSD, 1e-9)

		var logs List[AuditLog]
		c.do("GET", "/v1/audit-logs?action=usage.record", nil).json(t, &logs)
		require.Len(t, logs.Data, 1)
		assert.Equal(t, "req-abc", *logs.Data[0].RequestID)
		assert.Equal(t, "127.0.0.1", *logs.Data[0].IP)

		r = c.do("POST", "/v1/system-health", map[string]any{"component": "worker", "status": "up"})
		assert.Equal(t, http.StatusForbidden, r.status, "only service_role records health")
		svc := a.as(auth.MintOptions{Role: "service_role"})
		svc.header.Set(HeaderTenantID, c.tenant.String())
		r = svc.do("POST", "/v1/system-health", map[string]any{"component": "worker", "status": "degraded", "latencyMs": 40})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var latest Data[Health]
		c.do("GET", "/v1/system-health", nil).json(t, &latest)
		require.Len(t, latest.Data, 1)
		assert.Equal(t, "degraded", latest.Data[0].Status)
		var hist Data[Health]
		c.do("GET", "/v1/system-health?component=worker&from="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), nil).json(t, &hist)
		assert.Len(t, hist.Data, 1)
	})
}

func TestOperationsEndpoints(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		anon := &client{a: a, header: http.Header{}}
		r := anon.do("GET", "/healthz", nil)
		assert.Equal(t, http.StatusOK, r.status)
		r = anon.do("GET", "/readyz", nil)
		assert.Equal(t, http.StatusOK, r.status)
		assert.JSONEq(t, `{"status":"ready","checks":{"db":"up"}}`, string(r.body))
		a.user().do("GET", "/v1/runs/"+uuid.NewString(), nil)
		r = anon.do("GET", "/metrics", nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, string(r.body), `agentstore_http_requests_total{method="GET",route="/v1/runs/:id",status="404"} 1`)
		assert.NotContains(t, string(r.body), "/v1/runs/0", "raw paths never become labels")
		r = anon.do("GET", "/openapi.json", nil)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, OpenAPI, r.body)
	})
}

func TestLogsCarryNoSecrets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		c.do("POST", "/v1/runs", map[string]any{"agentName": "logged"})
		c.do("GET", "/v1/runs/"+uuid.NewString(), nil)
		forged := &client{a: a, token: c.token[:len(c.token)-4] + "AAAA", header: http.Header{}}
		forged.do("GET", "/v1/runs", nil)
		logs := a.log.String()
		require.Contains(t, logs, `"route":"/v1/runs/:id"`, "requests are logged with their route template")
		require.Contains(t, logs, `"tenant_id":"`+c.tenant.String()+`"`)
		assert.NotContains(t, logs, c.token[20:60], "no token in the logs")
		assert.NotContains(t, logs, forged.token[20:60], "no rejected token in the logs")
		assert.NotContains(t, logs, string(testSecret))
	})
}

// recordedEvent is one event a recorder received.
type recordedEvent struct {
	tenantID, runID uuid.UUID
	event           string
	data            any
}

// recorder is a Publisher that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	events []recordedEvent
}

func (r *recorder) Publish(_ context.Context, tenantID, runID uuid.UUID, event string, data any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, recordedEvent{tenantID, runID, event, data})
}

func (r *recorder) taken() []recordedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func TestCreateRunPublishesTheResponseOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			events := &recorder{}
			a := newAPIWith(t, b.open(t), func(d *Deps) { d.Events = events })
			c := a.user()
			for _, key := range []string{"", "retry-2"} {
				c.header.Set(HeaderIdempotencyKey, key)
				first := c.do("POST", "/v1/runs", `{"agentName":"pub","steps":[{"type":"llm"}]}`)
				require.Equal(t, http.StatusCreated, first.status, string(first.body))
				var run Run
				first.json(t, &run)
				got := events.taken()
				require.Len(t, got, 1, "key %q: one event per created run", key)
				assert.Equal(t, realtime.EventRunCreated, got[0].event)
				assert.Equal(t, c.tenant, got[0].tenantID)
				assert.Equal(t, run.ID, got[0].runID)
				data, ok := got[0].data.(json.RawMessage)
				require.True(t, ok, "the event carries the encoded run, %T", got[0].data)
				assert.Equal(t, string(first.body), string(data), "the event and the response are the same bytes")
			}
			replay := c.do("POST", "/v1/runs", `{"agentName":"pub","steps":[{"type":"llm"}]}`)
			require.Equal(t, http.StatusCreated, replay.status, string(replay.body))
			assert.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
			assert.Empty(t, events.taken(), "a replay publishes nothing")
		})
	}
}

func TestStoreErrorsNameTheOperationInTheLogOnly(t *testing.T) {
	// A database without the schema: every store call is an internal error.
	db, err := store.OpenPostgres(context.Background(), dbtest.NewDatabase(t), 2)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	a := newAPI(t, store.New(db, dialect.Postgres, dbtest.Schema, nil))
	r := a.user().do("POST", "/v1/runs", `{"agentName":"x"}`)
	require.Equal(t, http.StatusInternalServerError, r.status, string(r.body))
	var body ErrorBody
	r.json(t, &body)
	assert.Equal(t, "internal error", body.Message, "no internal detail leaks")
	assert.Contains(t, a.log.String(), `"err":"Runs.Create: `, "the log line says which operation failed")

	// A categorized error keeps its client message.
	b := newAPI(t, backends[1].open(t))
	r = b.user().do("GET", "/v1/runs/"+uuid.NewString(), nil)
	require.Equal(t, http.StatusNotFound, r.status)
	r.json(t, &body)
	assert.Equal(t, "not found", body.Message)
}

func TestListStepsPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		var run Run
		c.do("POST", "/v1/runs", map[string]any{"agentName": "pages", "status": "running"}).json(t, &run)
		path := "/v1/runs/" + run.ID.String() + "/steps"
		var steps []map[string]any
		for i := 0; i < 25; i++ {
			steps = append(steps, map[string]any{"type": "llm"})
		}
		c.do("POST", path, map[string]any{"steps": steps})

		var all List[Step]
		c.do("GET", path, nil).json(t, &all)
		require.Len(t, all.Data, 25, "without limit or cursor, every step")
		assert.Nil(t, all.NextCursor)

		var seqs []int
		next := path + "?limit=10"
		for pages := 0; next != ""; pages++ {
			require.Less(t, pages, 4)
			var p List[Step]
			c.do("GET", next, nil).json(t, &p)
			for _, s := range p.Data {
				seqs = append(seqs, s.Seq)
			}
			next = ""
			if p.NextCursor != nil {
				next = path + "?limit=10&cursor=" + *p.NextCursor
			}
		}
		require.Len(t, seqs, 25)
		for i, s := range seqs {
			assert.Equal(t, i+1, s, "by seq, no gap, no repeat")
		}

		// The last page's cursor picks up steps appended later.
		var first List[Step]
		c.do("GET", path+"?limit=25", nil).json(t, &first)
		require.Nil(t, first.NextCursor, "no more steps yet")
		var p List[Step]
		c.do("GET", path+"?limit=10", nil).json(t, &p)
		var rest List[Step]
		c.do("GET", path+"?cursor="+*p.NextCursor, nil).json(t, &rest)
		assert.Len(t, rest.Data, 15, "a cursor without limit reads up to 1000")

		for _, bad := range []string{"?limit=0", "?limit=5001", "?limit=x", "?cursor=garbage", "?limit=5&cursor=c2VxOi0x"} {
			r := c.do("GET", path+bad, nil)
			assert.Equal(t, 400, r.status, bad)
			assert.Equal(t, "INVALID_ARGUMENT", r.errCode(t), bad)
		}
		assert.Equal(t, 404, a.user().do("GET", path+"?limit=5", nil).status, "another tenant's run")
	})
}
