package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/realtime"
)

// item is one ingest item as a client writes it.
func item(id, typ string, runID *uuid.UUID, body any) map[string]any {
	m := map[string]any{"id": id, "type": typ, "body": body}
	if runID != nil {
		m["runId"] = runID.String()
	}
	return m
}

// ingest posts items and decodes the 207.
func ingest(t *testing.T, c *client, items ...map[string]any) []IngestResult {
	t.Helper()
	r := c.do("POST", "/v1/ingest", map[string]any{"batch": items})
	require.Equal(t, http.StatusMultiStatus, r.status, "%s", r.body)
	var out IngestResponse
	r.json(t, &out)
	require.Len(t, out.Results, len(items))
	for i, res := range out.Results {
		require.Equal(t, i, res.Index)
	}
	return out.Results
}

// count returns how many rows of the tenant's audit log, runs, steps,
// tool calls and usage a client sees, as one string to compare.
func counts(t *testing.T, c *client) string {
	t.Helper()
	var audit List[AuditLog]
	c.do("GET", "/v1/audit-logs?limit=200", nil).json(t, &audit)
	var runs List[Run]
	c.do("GET", "/v1/runs?limit=200", nil).json(t, &runs)
	steps, calls := 0, 0
	for _, r := range runs.Data {
		var full Run
		c.do("GET", "/v1/runs/"+r.ID.String()+"?include=steps,toolCalls", nil).json(t, &full)
		steps += len(full.Steps)
		calls += len(full.ToolCalls)
	}
	return fmt.Sprintf("audit=%d runs=%d steps=%d toolCalls=%d", len(audit.Data), len(runs.Data), steps, calls)
}

func TestIngestAppliesItemsInOrderWithAResultEach(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			events := &recorder{}
			a := newAPIWith(t, b.open(t), func(d *Deps) { d.Events = events })
			svc := a.as(auth.MintOptions{Subject: "worker", Role: "service_role"})
			tenantID := uuid.New()
			svc.header.Set(HeaderTenantID, tenantID.String())
			u := a.as(auth.MintOptions{Tenant: tenantID, Subject: uuid.NewString(), Role: "authenticated"})

			runID, stepID := uuid.New(), uuid.New()
			missing := uuid.New()
			items := []map[string]any{
				item("e1", "run.create", nil, map[string]any{"id": runID, "agentName": "batch", "status": "running"}),
				item("e2", "step.append", &runID, map[string]any{"id": stepID, "type": "llm"}),
				item("e3", "step.append", &runID, map[string]any{"steps": []map[string]any{{"type": "a"}, {"type": "b"}}}),
				item("e4", "toolcall.record", &runID, map[string]any{"toolName": "search", "status": "succeeded", "stepId": stepID}),
				item("e5", "step.append", &missing, map[string]any{"type": "llm"}),                      // no such run
				item("e6", "step.append", &runID, map[string]any{"name": "no type"}),                    // invalid
				item("e7", "frobnicate", &runID, map[string]any{}),                                      // unknown type
				item("e8", "toolcall.record", nil, map[string]any{"toolName": "t", "status": "failed"}), // no runId
				item("e9", "usage.record", &runID, map[string]any{"model": "gpt-x", "inputTokens": 3}),
				item("e10", "run.update", &runID, map[string]any{"status": "succeeded", "output": "done"}),
				item("e11", "step.append", &runID, map[string]any{"type": "late"}), // terminal run
				{"id": 7, "type": "run.create", "body": map[string]any{}},          // not an item
			}
			res := ingest(t, svc, items...)
			want := []struct {
				status int
				code   string
			}{{201, ""}, {201, ""}, {201, ""}, {201, ""}, {404, "NOT_FOUND"}, {400, "INVALID_ARGUMENT"},
				{400, "INVALID_ARGUMENT"}, {400, "INVALID_ARGUMENT"}, {201, ""}, {200, ""}, {409, "CONFLICT"}, {400, "INVALID_ARGUMENT"}}
			for i, w := range want {
				assert.Equal(t, w.status, res[i].Status, "item %d: %+v", i, res[i])
				assert.Equal(t, w.code, res[i].Code, "item %d: %+v", i, res[i])
				if w.code != "" {
					assert.NotEmpty(t, res[i].Message, "item %d explains its failure", i)
					assert.Nil(t, res[i].ResourceID)
				} else {
					require.NotNil(t, res[i].ResourceID, "item %d names what it wrote", i)
				}
			}
			assert.Equal(t, "e1", res[0].ID)
			assert.Equal(t, runID, *res[0].ResourceID)
			assert.Equal(t, stepID, *res[1].ResourceID)
			assert.Equal(t, runID, *res[9].ResourceID)
			assert.Contains(t, res[5].Message, "type")
			assert.Contains(t, res[7].Message, "runId")
			assert.Equal(t, "", res[11].ID)

			var run Run
			u.do("GET", "/v1/runs/"+runID.String()+"?include=steps,toolCalls", nil).json(t, &run)
			assert.Equal(t, "succeeded", run.Status)
			require.Len(t, run.Steps, 3)
			assert.Equal(t, []string{"llm", "a", "b"}, []string{run.Steps[0].Type, run.Steps[1].Type, run.Steps[2].Type})
			require.Len(t, run.ToolCalls, 1)
			assert.Equal(t, stepID, *run.ToolCalls[0].StepID)

			// Realtime events, as the REST routes publish them.
			var names []string
			for _, e := range events.taken() {
				assert.Equal(t, tenantID, e.tenantID)
				assert.Equal(t, runID, e.runID)
				names = append(names, e.event)
			}
			assert.Equal(t, []string{realtime.EventRunCreated, realtime.EventStepAppended, realtime.EventStepAppended,
				realtime.EventStepAppended, realtime.EventToolCallRecorded, realtime.EventRunUpdated}, names)

			// Audit rows, as the REST routes write them, with the request's id.
			var audit List[AuditLog]
			u.do("GET", "/v1/audit-logs?resourceId="+runID.String(), nil).json(t, &audit)
			var actions []string
			for _, row := range audit.Data {
				actions = append(actions, row.Action)
				assert.Equal(t, "service_role", row.ActorRole)
				require.NotNil(t, row.RequestID)
			}
			assert.ElementsMatch(t, []string{"run.create", "step.append", "step.append", "toolcall.record", "run.update"}, actions)

			// The same batch again is a replay: the same results, nothing written, nothing published.
			before := counts(t, u)
			again := ingest(t, svc, items...)
			for i := range res {
				if res[i].Code == "" {
					assert.Equal(t, res[i], again[i], "item %d replays its result", i)
				} else {
					assert.Equal(t, res[i].Status, again[i].Status, "item %d fails again", i)
				}
			}
			assert.Equal(t, before, counts(t, u))
			assert.Empty(t, events.taken(), "a replay publishes nothing")

			// An event id bound to another item is a conflict for that item alone.
			other := ingest(t, svc,
				item("e2", "step.append", &runID, map[string]any{"type": "other"}),
				item("e1", "run.create", nil, map[string]any{"agentName": "batch", "status": "running", "id": runID}),
			)
			assert.Equal(t, http.StatusConflict, other[0].Status)
			assert.Contains(t, other[0].Message, `"e2"`)
			assert.Equal(t, http.StatusCreated, other[1].Status, "the same item, whitespace and key order aside, replays")
			assert.Equal(t, runID, *other[1].ResourceID)

			// usage.record is service_role's alone, as POST /v1/usage is.
			denied := ingest(t, u, item("u1", "usage.record", nil, map[string]any{"model": "m"}))
			assert.Equal(t, http.StatusForbidden, denied[0].Status)
			assert.Equal(t, "FORBIDDEN", denied[0].Code)
		})
	}
}

func TestIngestItemsFailAloneAndRetryAfterFailing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		u := a.user()
		runID := uuid.New()
		// The step arrives before its run: 404, not stored, so the retry
		// after the run exists succeeds under the same event id.
		first := ingest(t, u, item("s1", "step.append", &runID, map[string]any{"type": "llm"}))
		assert.Equal(t, http.StatusNotFound, first[0].Status)
		res := ingest(t, u,
			item("r1", "run.create", &runID, map[string]any{"agentName": "late", "status": "running"}),
			item("s1", "step.append", &runID, map[string]any{"type": "llm"}),
			item("r2", "run.create", &runID, map[string]any{"agentName": "dup", "id": uuid.NewString()}),
			item("r3", "run.create", nil, map[string]any{"agentName": "x", "colour": "red"}),
		)
		assert.Equal(t, http.StatusCreated, res[0].Status, "the item's runId is the new run's id")
		assert.Equal(t, runID, *res[0].ResourceID)
		assert.Equal(t, http.StatusCreated, res[1].Status)
		assert.Equal(t, http.StatusBadRequest, res[2].Status, "runId and the body's id differ")
		assert.Equal(t, http.StatusBadRequest, res[3].Status)
		assert.Contains(t, res[3].Message, "colour")
	})
}

func TestIngestRefusesOversizedBatchesWhole(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		u := a.user()
		items := make([]map[string]any, MaxIngestItems+1)
		for i := range items {
			items[i] = item(fmt.Sprint("e", i), "run.create", nil, map[string]any{"agentName": "x"})
		}
		r := u.do("POST", "/v1/ingest", map[string]any{"batch": items})
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		assert.Equal(t, "INVALID_ARGUMENT", r.errCode(t))
		assert.Contains(t, string(r.body), `"field":"batch"`)

		big := strings.Repeat("x", MaxIngestBytes)
		r = u.do("POST", "/v1/ingest", map[string]any{"batch": []any{item("b", "run.create", nil, map[string]any{"agentName": "x", "input": big})}})
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		assert.Equal(t, "PAYLOAD_TOO_LARGE", r.errCode(t))

		// 1,000 items of almost 1 MiB in all are fine: over REST's 1 MiB body limit, under 5 MiB.
		items = items[:MaxIngestItems]
		pad := strings.Repeat("p", 1000)
		for i := range items {
			items[i] = item(fmt.Sprint("e", i), "run.create", nil, map[string]any{"agentName": "x", "input": pad})
		}
		res := ingest(t, u, items...)
		for _, r := range res {
			require.Equal(t, http.StatusCreated, r.Status, "%+v", r)
		}

		for _, body := range []string{`{}`, `{"batch":[]}`, `{"batch":{}}`, `{"batch":[],"extra":1}`, `[`, ``} {
			r := u.do("POST", "/v1/ingest", body)
			assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", body, r.body)
		}
		var runs List[Run]
		u.do("GET", "/v1/runs?limit=200", nil).json(t, &runs)
		assert.Len(t, runs.Data, 200, "only the accepted batch wrote")
	})
}

func TestIngestIsOneRequestForTheRateLimiter(t *testing.T) {
	t.Parallel()
	a := limitedAPI(t, 2, time.Minute, false)
	u := a.user()
	items := make([]map[string]any, 50)
	for i := range items {
		items[i] = item(fmt.Sprint("e", i), "run.create", nil, map[string]any{"agentName": "x"})
	}
	r := u.do("POST", "/v1/ingest", map[string]any{"batch": items})
	require.Equal(t, http.StatusMultiStatus, r.status)
	assert.Equal(t, "1", r.header.Get("X-RateLimit-Remaining"), "fifty items cost one request")
	var out IngestResponse
	require.NoError(t, json.Unmarshal(r.body, &out))
	assert.Len(t, out.Results, 50)
}
