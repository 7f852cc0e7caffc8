package httpapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/otlp"
	"github.com/agentstore/agentstore/internal/store"
)

// TestRollupsAfterEveryMutation enumerates the mutating operations of the
// OpenAPI document and, for each, sends requests that change summarised
// figures, then checks that `rollups verify` finds the rollups equal to a
// raw scan. A new mutating route fails this test until it is listed here
// with the requests that exercise it (and, when it changes a run or usage,
// its rollup hook).
func TestRollupsAfterEveryMutation(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(OpenAPI, &doc))
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			if m := strings.ToUpper(method); m == "POST" || m == "PATCH" || m == "PUT" || m == "DELETE" {
				ops = append(ops, m+" "+path)
			}
		}
	}
	sort.Strings(ops)

	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		svc := a.as(auth.MintOptions{Tenant: uuid.New(), Role: "service_role"})
		svc.header.Set("X-Tenant-ID", c.tenant.String())
		var run Run
		newRun := func() Run {
			var r Run
			res := c.do("POST", "/v1/runs", map[string]any{"agentName": "a", "status": "running",
				"toolCalls": []map[string]any{{"toolName": "t", "status": "failed"}}})
			require.Equal(t, http.StatusCreated, res.status, string(res.body))
			res.json(t, &r)
			return r
		}
		past := time.Now().UTC().Add(-30 * time.Hour).Format(time.RFC3339)
		exercise := map[string]func(){
			"POST /v1/runs": func() { run = newRun() },
			"PATCH /v1/runs/{id}": func() {
				r := newRun()
				res := c.do("PATCH", "/v1/runs/"+r.ID.String(), map[string]any{"status": "succeeded"})
				require.Equal(t, http.StatusOK, res.status, string(res.body))
				r = newRun()
				res = c.do("PATCH", "/v1/runs/"+r.ID.String(), map[string]any{"endedAt": past})
				require.Equal(t, http.StatusOK, res.status, string(res.body))
			},
			"POST /v1/runs/{id}/steps": func() {
				res := c.do("POST", "/v1/runs/"+run.ID.String()+"/steps", map[string]any{"type": "llm"})
				require.Equal(t, http.StatusCreated, res.status, string(res.body))
			},
			"POST /v1/runs/{id}/tool-calls": func() {
				res := c.do("POST", "/v1/runs/"+run.ID.String()+"/tool-calls", map[string]any{"toolCalls": []map[string]any{{"toolName": "x", "status": "failed"}, {"toolName": "y", "status": "succeeded"}}})
				require.Equal(t, http.StatusCreated, res.status, string(res.body))
			},
			"POST /v1/usage": func() {
				for _, body := range []map[string]any{
					{"runId": run.ID, "model": "m1", "inputTokens": 3, "costUsd": 0.5, "recordedAt": past},
					{"runId": run.ID, "model": "m2", "outputTokens": 4},
					{"model": "m1", "inputTokens": 1},
				} {
					res := svc.do("POST", "/v1/usage", body)
					require.Equal(t, http.StatusCreated, res.status, string(res.body))
				}
			},
			"POST /v1/ingest": func() {
				id := uuid.New()
				items := []map[string]any{
					item("i1", "run.create", nil, map[string]any{"id": id, "agentName": "ingested", "status": "running",
						"toolCalls": []map[string]any{{"toolName": "t", "status": "failed"}}}),
					item("i2", "step.append", &id, map[string]any{"type": "llm"}),
					item("i3", "toolcall.record", &id, map[string]any{"toolCalls": []map[string]any{{"toolName": "x", "status": "failed"}, {"toolName": "y", "status": "succeeded"}}}),
					item("i4", "usage.record", &id, map[string]any{"runId": id, "model": "m1", "inputTokens": 5, "costUsd": 0.25, "recordedAt": past}),
					item("i5", "usage.record", nil, map[string]any{"model": "m3", "outputTokens": 2}),
					item("i6", "run.update", &id, map[string]any{"status": "failed", "endedAt": past}),
				}
				types := map[string]bool{}
				for _, it := range items {
					types[it["type"].(string)] = true
				}
				for _, typ := range ingestTypes {
					require.True(t, types[typ], "ingest item type %s: add an item of it here", typ)
				}
				for i, res := range ingest(t, svc, items...) {
					require.Less(t, res.Status, 300, "item %d: %+v", i, res)
				}
			},
			"POST /v1/traces": func() {
				// A trace whose root arrives second: its run is a placeholder
				// first, with a child run (agent span), failed and succeeded
				// tool calls, and LLM spans with usage; then the root (not an
				// agent span, failed, starting earlier) fills it in and the
				// agent span stored before it renames it, with spans sent again
				// and new ones (a tool call that fails, an LLM span an hour
				// earlier with another model).
				trace, other := uuid.New(), uuid.New()
				failed := func(s *tracepb.Span) *tracepb.Span {
					s.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"}
					return s
				}
				llm := func(id, parent byte, model string, ms int, in int64) *tracepb.Span {
					return otlpSpan(trace[:], id, parent, "chat "+model, ms, strAttr("gen_ai.operation.name", "chat"),
						strAttr("gen_ai.request.model", model), intAttr("gen_ai.usage.input_tokens", in), intAttr("gen_ai.usage.output_tokens", 7))
				}
				tool := func(id, parent byte, ms int) *tracepb.Span {
					return otlpSpan(trace[:], id, parent, "execute_tool search", ms, strAttr("gen_ai.operation.name", "execute_tool"),
						strAttr("gen_ai.tool.name", "search"))
				}
				root := failed(otlpSpan(trace[:], 1, 0, "workflow", -500))
				root.EndTimeUnixNano += uint64(time.Second)
				sub := otlpSpan(trace[:], 2, 1, "invoke_agent sub", 10, strAttr("gen_ai.operation.name", "invoke_agent"), strAttr("gen_ai.agent.name", "sub"))
				first := []*tracepb.Span{sub, failed(tool(3, 2, 20)), llm(4, 1, "gpt-4o", 30, 100), tool(5, 1, 40), llm(6, 2, "gpt-4o", 50, 10)}
				exportTraces(t, svc, otlp.Protobuf, exportRequest(append(first, agentSpans(other[:])...)...))
				rep, err := a.st.Rollups.Verify(context.Background(), store.RebuildOptions{Tenant: &c.tenant})
				require.NoError(t, err)
				require.True(t, rep.OK(), "after the placeholder: %v", rep.Differences)

				second := append([]*tracepb.Span{root, failed(tool(8, 1, 60)), llm(9, 1, "claude", -3600_000, 40), failed(tool(10, 2, 70))}, first[1:3]...)
				exportTraces(t, svc, otlp.Protobuf, exportRequest(second...))
				var runs List[Run]
				c.do("GET", "/v1/runs?limit=100", nil).json(t, &runs)
				var filled *Run
				for i := range runs.Data {
					if runs.Data[i].ParentRunID == nil && strings.Contains(string(runs.Data[i].Metadata), hex.EncodeToString(trace[:])) {
						filled = &runs.Data[i]
					}
				}
				require.NotNil(t, filled, "the trace's run")
				assert.Equal(t, "sub", filled.AgentName, "renamed by the agent span under the root")
				assert.Equal(t, "failed", filled.Status)
			},
			"DELETE /v1/runs/{id}": func() {
				// A correction: the run, its tool calls and its usage's run
				// counts leave the rollups; the usage rows stay, unlinked.
				r := newRun()
				res := svc.do("POST", "/v1/usage", map[string]any{"runId": r.ID, "model": "gpt-4o", "inputTokens": 7, "costUsd": 0.25})
				require.Equal(t, http.StatusCreated, res.status, string(res.body))
				res = c.do("PATCH", "/v1/runs/"+r.ID.String(), map[string]any{"status": "succeeded"})
				require.Equal(t, http.StatusOK, res.status, string(res.body))
				res = svc.do("DELETE", "/v1/runs/"+r.ID.String(), nil)
				require.Equal(t, http.StatusNoContent, res.status, string(res.body))
			},
			"POST /v1/erasures": func() {
				// Records the job only: the worker in serve erases, keeping
				// the rollups (the store's retention and erasure tests check
				// verify after the deletion itself).
				res := svc.do("POST", "/v1/erasures", map[string]any{"userId": uuid.NewString()})
				require.Equal(t, http.StatusAccepted, res.status, string(res.body))
			},
			"POST /v1/system-health": func() {
				res := svc.do("POST", "/v1/system-health", map[string]any{"component": "worker", "status": "up"})
				require.Equal(t, http.StatusCreated, res.status, string(res.body))
			},
		}
		for _, op := range ops {
			do, ok := exercise[op]
			require.True(t, ok, "%s is a mutating route of the OpenAPI document: list it in TestRollupsAfterEveryMutation", op)
			do()
			rep, err := a.st.Rollups.Verify(context.Background(), store.RebuildOptions{Tenant: &c.tenant})
			require.NoError(t, err)
			require.True(t, rep.OK(), "after %s: %v", op, rep.Differences)
			_, err = a.st.Rollups.Fold(context.Background())
			require.NoError(t, err)
		}
		rep, err := a.st.Rollups.Verify(context.Background(), store.RebuildOptions{})
		require.NoError(t, err)
		require.True(t, rep.OK(), "after folding: %v", rep.Differences)
	})
}

// TestRollupWindow checks that both rollup reads widen the window to whole
// UTC hours and say so, and leave open ends open.
func TestRollupWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		for _, path := range []string{"/v1/runs/stats", "/v1/usage/summary"} {
			var got struct {
				Window RollupWindow      `json:"window"`
				Data   []json.RawMessage `json:"data"`
			}
			res := c.do("GET", path+"?from="+url.QueryEscape("2026-03-01T10:15:00+01:00")+"&to="+url.QueryEscape("2026-03-01T12:00:00.5Z"), nil)
			require.Equal(t, http.StatusOK, res.status, string(res.body))
			res.json(t, &got)
			require.NotNil(t, got.Window.From)
			require.NotNil(t, got.Window.To)
			assert.Equal(t, "2026-03-01T09:00:00Z", got.Window.From.Format(time.RFC3339), path)
			assert.Equal(t, "2026-03-01T13:00:00Z", got.Window.To.Format(time.RFC3339), path)
			assert.NotNil(t, got.Data, "data is an array, empty or not")

			res = c.do("GET", path, nil)
			require.Equal(t, http.StatusOK, res.status)
			assert.JSONEq(t, `{"from": null, "to": null}`, string(mustField(t, res.body, "window")), path)
		}
	})
}

func mustField(t *testing.T, body []byte, name string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m))
	return m[name]
}
