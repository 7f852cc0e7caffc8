package httpapi

import (
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/migrate"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// badInput is one request the API must refuse with a 4xx, and what the
// refusal must say.
type badInput struct {
	name, method, path string
	body               any
	status             int
	code               string
	field              string // the first details[].field, when not empty
	svc                bool   // sent by service_role for the user's tenant
	header             map[string]string
}

// badInputs is the bad-input matrix, on a run at runPath (running, with
// one step) of the calling user's tenant.
func badInputs(runPath string) []badInput {
	huge := `{"agentName":"x","input":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	long := strings.Repeat("n", 201)
	return []badInput{
		{name: "unknown field", method: "POST", path: "/v1/runs", body: `{"agentName":"x","colour":"red"}`, status: 400, code: derrors.CodeInvalidArgument, field: "colour"},
		{name: "unknown nested field", method: "POST", path: "/v1/runs", body: `{"agentName":"x","steps":[{"type":"a"},{"type":"b"},{"type":"c","colour":1}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps[2].colour"},
		{name: "wrong type", method: "POST", path: "/v1/runs", body: `{"agentName":5}`, status: 400, code: derrors.CodeInvalidArgument, field: "agentName"},
		{name: "wrong nested type", method: "POST", path: "/v1/runs", body: `{"agentName":"x","steps":[{"type":"a"},{"type":5}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps[1].type"},
		{name: "object for array", method: "POST", path: "/v1/runs", body: `{"agentName":"x","steps":{"type":"a"}}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps"},
		{name: "bad uuid in body", method: "POST", path: "/v1/runs", body: `{"agentName":"x","parentRunId":"nope"}`, status: 400, code: derrors.CodeInvalidArgument, field: "parentRunId"},
		{name: "malformed json", method: "POST", path: "/v1/runs", body: `{"agentName":`, status: 400, code: derrors.CodeInvalidArgument},
		{name: "two values", method: "POST", path: "/v1/runs", body: `{"agentName":"x"}{}`, status: 400, code: derrors.CodeInvalidArgument},
		{name: "empty body", method: "POST", path: "/v1/runs", body: ``, status: 400, code: derrors.CodeInvalidArgument},
		{name: "array body", method: "POST", path: "/v1/runs", body: `[]`, status: 400, code: derrors.CodeInvalidArgument},
		{name: "missing agentName", method: "POST", path: "/v1/runs", body: `{}`, status: 400, code: derrors.CodeInvalidArgument, field: "agentName"},
		{name: "agentName too long", method: "POST", path: "/v1/runs", body: `{"agentName":"` + long + `"}`, status: 400, code: derrors.CodeInvalidArgument, field: "agentName"},
		{name: "step without type", method: "POST", path: "/v1/runs", body: `{"agentName":"x","steps":[{}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps[0].type"},
		{name: "bad step status", method: "POST", path: "/v1/runs", body: `{"agentName":"x","steps":[{"type":"llm","status":"done"}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps[0].status"},
		{name: "bad tool call status", method: "POST", path: "/v1/runs", body: `{"agentName":"x","toolCalls":[{"toolName":"t","status":"maybe"}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "toolCalls[0].status"},
		{name: "negative duration", method: "POST", path: "/v1/runs", body: `{"agentName":"x","toolCalls":[{"toolName":"t","status":"failed","durationMs":-1}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "toolCalls[0].durationMs"},
		{name: "too large", method: "POST", path: "/v1/runs", body: huge, status: 413, code: CodePayloadTooLarge},
		{name: "bad timestamp", method: "POST", path: "/v1/runs", body: `{"agentName":"x","startedAt":"yesterday"}`, status: 400, code: derrors.CodeInvalidArgument, field: "startedAt"},
		{name: "NUL in agentName", method: "POST", path: "/v1/runs", body: `{"agentName":"a\u0000b"}`, status: 400, code: derrors.CodeInvalidArgument, field: "agentName"},
		{name: "NUL in input", method: "POST", path: "/v1/runs", body: `{"agentName":"x","input":{"q":["ok","a\u0000"]}}`, status: 400, code: derrors.CodeInvalidArgument, field: "input.q[1]"},
		{name: "NUL in a key of input", method: "POST", path: "/v1/runs", body: `{"agentName":"x","input":{"a\u0000":1}}`, status: 400, code: derrors.CodeInvalidArgument, field: "input"},
		{name: "lone surrogate in agentName", method: "POST", path: "/v1/runs", body: `{"agentName":"\ud800"}`, status: 400, code: derrors.CodeInvalidArgument, field: "agentName"},
		{name: "lone low surrogate in step output", method: "POST", path: "/v1/runs", body: `{"agentName":"x","steps":[{"type":"a","output":{"t":"x\udc00y"}}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps[0].output.t"},
		{name: "high surrogate then no low", method: "POST", path: "/v1/runs", body: `{"agentName":"x","metadata":"\ud83d\u0041"}`, status: 400, code: derrors.CodeInvalidArgument, field: "metadata"},
		{name: "bytes that are not UTF-8", method: "POST", path: "/v1/runs", body: "{\"agentName\":\"x\",\"metadata\":{\"k\":\"\xff\xfe\"}}", status: 400, code: derrors.CodeInvalidArgument, field: "metadata.k"},
		{name: "idempotency key not UTF-8", method: "POST", path: "/v1/runs", body: `{"agentName":"x"}`, status: 400, code: derrors.CodeInvalidArgument, field: HeaderIdempotencyKey, header: map[string]string{HeaderIdempotencyKey: "key-\xff"}},
		{name: "bad path uuid", method: "GET", path: "/v1/runs/not-a-uuid", status: 400, code: derrors.CodeInvalidArgument, field: "id"},
		{name: "unknown run", method: "GET", path: "/v1/runs/" + uuid.NewString(), status: 404, code: derrors.CodeNotFound},
		{name: "bad limit", method: "GET", path: "/v1/runs?limit=500", status: 400, code: derrors.CodeInvalidArgument, field: "limit"},
		{name: "zero limit", method: "GET", path: "/v1/runs?limit=0", status: 400, code: derrors.CodeInvalidArgument, field: "limit"},
		{name: "non-numeric limit", method: "GET", path: "/v1/audit-logs?limit=ten", status: 400, code: derrors.CodeInvalidArgument, field: "limit"},
		{name: "bad cursor", method: "GET", path: "/v1/runs?cursor=abc", status: 400, code: derrors.CodeInvalidArgument},
		{name: "bad status filter", method: "GET", path: "/v1/runs?status=done", status: 400, code: derrors.CodeInvalidArgument, field: "status"},
		{name: "NUL in a filter", method: "GET", path: "/v1/runs?agentName=a%00b", status: 400, code: derrors.CodeInvalidArgument, field: "agentName"},
		{name: "filter not UTF-8", method: "GET", path: "/v1/audit-logs?action=%ff", status: 400, code: derrors.CodeInvalidArgument, field: "action"},
		{name: "bad include", method: "GET", path: runPath + "?include=everything", status: 400, code: derrors.CodeInvalidArgument, field: "include"},
		{name: "bad groupBy", method: "GET", path: "/v1/runs/stats?groupBy=model", status: 400, code: derrors.CodeInvalidArgument, field: "groupBy"},
		{name: "bad from", method: "GET", path: "/v1/usage/summary?from=monday", status: 400, code: derrors.CodeInvalidArgument, field: "from"},
		{name: "patch unknown field", method: "PATCH", path: runPath, body: `{"agentName":"renamed"}`, status: 400, code: derrors.CodeInvalidArgument, field: "agentName"},
		{name: "patch bad status", method: "PATCH", path: runPath, body: `{"status":"paused"}`, status: 400, code: derrors.CodeInvalidArgument, field: "status"},
		{name: "patch NUL in error", method: "PATCH", path: runPath, body: `{"error":"\u0000"}`, status: 400, code: derrors.CodeInvalidArgument, field: "error"},
		{name: "patch bad endedAt", method: "PATCH", path: runPath, body: `{"endedAt":5}`, status: 400, code: derrors.CodeInvalidArgument, field: "endedAt"},
		{name: "append step without type", method: "POST", path: runPath + "/steps", body: `{"name":"x"}`, status: 400, code: derrors.CodeInvalidArgument, field: "type"},
		{name: "append step bad status", method: "POST", path: runPath + "/steps", body: `{"type":"a","status":"done"}`, status: 400, code: derrors.CodeInvalidArgument, field: "status"},
		{name: "append step bad seq", method: "POST", path: runPath + "/steps", body: `{"type":"a","seq":7}`, status: 409, code: derrors.CodeConflict, field: "seq"},
		{name: "append batch step without type", method: "POST", path: runPath + "/steps", body: `{"steps":[{"type":"a"},{}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps[1].type"},
		{name: "append batch wrong type", method: "POST", path: runPath + "/steps", body: `{"steps":[{"type":"a"},{"type":"b","seq":"two"}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps[1].seq"},
		{name: "append empty batch", method: "POST", path: runPath + "/steps", body: `{"steps":[]}`, status: 400, code: derrors.CodeInvalidArgument, field: "steps"},
		{name: "append NUL in step input", method: "POST", path: runPath + "/steps", body: `{"type":"a","input":"\u0000"}`, status: 400, code: derrors.CodeInvalidArgument, field: "input"},
		{name: "tool call of another run's step", method: "POST", path: runPath + "/tool-calls", body: `{"toolName":"t","status":"failed","stepId":"` + uuid.NewString() + `"}`, status: 400, code: derrors.CodeInvalidArgument, field: "stepId"},
		{name: "tool call without name", method: "POST", path: runPath + "/tool-calls", body: `{"toolCalls":[{"toolName":"t","status":"failed"},{"status":"failed"}]}`, status: 400, code: derrors.CodeInvalidArgument, field: "toolCalls[1].toolName"},
		{name: "tool call NUL in result", method: "POST", path: runPath + "/tool-calls", body: `{"toolName":"t","status":"failed","result":{"r":"\u0000"}}`, status: 400, code: derrors.CodeInvalidArgument, field: "result.r"},
		{name: "negative tokens", method: "POST", path: "/v1/usage", body: `{"model":"m","inputTokens":-5}`, status: 400, code: derrors.CodeInvalidArgument, field: "inputTokens", svc: true},
		{name: "negative cost", method: "POST", path: "/v1/usage", body: `{"model":"m","costUsd":-0.5}`, status: 400, code: derrors.CodeInvalidArgument, field: "costUsd", svc: true},
		{name: "fractional tokens", method: "POST", path: "/v1/usage", body: `{"model":"m","outputTokens":1.5}`, status: 400, code: derrors.CodeInvalidArgument, field: "outputTokens", svc: true},
		{name: "tokens past int64", method: "POST", path: "/v1/usage", body: `{"model":"m","totalTokens":1e30}`, status: 400, code: derrors.CodeInvalidArgument, field: "totalTokens", svc: true},
		{name: "model too long", method: "POST", path: "/v1/usage", body: `{"model":"` + long + `"}`, status: 400, code: derrors.CodeInvalidArgument, field: "model", svc: true},
		{name: "usage of no run", method: "POST", path: "/v1/usage", body: `{"model":"m","runId":"` + uuid.NewString() + `"}`, status: 400, code: derrors.CodeInvalidArgument, field: "runId", svc: true},
		{name: "NUL in model", method: "POST", path: "/v1/usage", body: `{"model":"m\u0000"}`, status: 400, code: derrors.CodeInvalidArgument, field: "model", svc: true},
		{name: "health bad status", method: "POST", path: "/v1/system-health", body: `{"component":"c","status":"sideways"}`, status: 400, code: derrors.CodeInvalidArgument, field: "status", svc: true},
		{name: "health negative latency", method: "POST", path: "/v1/system-health", body: `{"component":"c","status":"up","latencyMs":-5}`, status: 400, code: derrors.CodeInvalidArgument, field: "latencyMs", svc: true},
		{name: "health component too long", method: "POST", path: "/v1/system-health", body: `{"component":"` + long + `","status":"up"}`, status: 400, code: derrors.CodeInvalidArgument, field: "component", svc: true},
		{name: "health lone surrogate in details", method: "POST", path: "/v1/system-health", body: `{"component":"c","status":"up","details":{"d":"\udfff"}}`, status: 400, code: derrors.CodeInvalidArgument, field: "details.d", svc: true},
		{name: "end user records usage", method: "POST", path: "/v1/usage", body: `{"model":"m"}`, status: 403, code: derrors.CodeForbidden},
		{name: "no such route", method: "GET", path: "/v1/nothing", status: 404, code: derrors.CodeNotFound},
		{name: "wrong method", method: "POST", path: "/healthz", status: 405, code: CodeMethodNotAllowed},
		{name: "no delete path", method: "DELETE", path: runPath, status: 405, code: CodeMethodNotAllowed},
		{name: "wrong method under v1", method: "PUT", path: "/v1/runs", body: `{"agentName":"x"}`, status: 405, code: CodeMethodNotAllowed},
	}
}

// internalWords are what no error body may say: ent's wording, the names
// of the tables and of the ent types, Go's types and encoding/json's.
func internalWords() []string {
	words := []string{"ent:", "validator failed", "json:", "int64", "int32", "float64", "time.Time", "uuid.UUID",
		"RawMessage", "struct", "httpapi", "store.", "SQLSTATE", "sqlite", "pgx", "constraint"}
	for _, typ := range []any{ent.AgentRun{}, ent.AgentStep{}, ent.ToolCall{}, ent.UsageMetric{}, ent.SystemHealth{}, ent.AuditLog{}, ent.IdempotencyKey{}} {
		name := reflect.TypeOf(typ).Name()
		words = append(words, name, strings.ToLower(name)+":")
	}
	for _, t := range migrate.Tables {
		words = append(words, t.Name)
	}
	return words
}

// snakeCase matches a snake_case word, such as a column name.
var snakeCase = regexp.MustCompile(`[a-z0-9]+_[a-z0-9_]+`)

// checkClientWording fails when an error body speaks the server's
// internal language instead of the client's.
func checkClientWording(t *testing.T, body []byte) {
	t.Helper()
	var e ErrorBody
	if !assert.NoError(t, jsonUnmarshal(body, &e), "%s", body) {
		return
	}
	text := e.Message
	for _, d := range e.Details {
		text += " " + d.Field + " " + d.Message
	}
	for _, w := range internalWords() {
		found := regexp.MustCompile(`\b` + regexp.QuoteMeta(w)).MatchString(text)
		assert.False(t, found, "the error speaks of %q: %s", w, body)
	}
	for _, w := range snakeCase.FindAllString(text, -1) {
		// Token roles are public names, spelled as clients send them.
		assert.Contains(t, []string{tenant.RoleServiceRole}, w, "the error names a snake_case thing: %s", body)
	}
}

// TestBadInputIsA4xxAndWritesNothing runs the bad-input matrix on both
// backends: every request gets its 4xx with a stable code, the field as
// the client wrote it, words for API users, and writes nothing.
func TestBadInputIsA4xxAndWritesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		svc := c.service()
		var run Run
		r := c.do("POST", "/v1/runs", map[string]any{"agentName": "keep", "status": "running", "steps": []map[string]any{{"type": "llm"}}})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		r.json(t, &run)
		runPath := "/v1/runs/" + run.ID.String()
		for _, tc := range badInputs(runPath) {
			t.Run(tc.name, func(t *testing.T) {
				caller := c
				if tc.svc {
					caller = svc
				}
				for k, v := range tc.header {
					caller.header.Set(k, v)
					defer caller.header.Del(k)
				}
				r := caller.do(tc.method, tc.path, tc.body)
				require.Equal(t, tc.status, r.status, string(r.body))
				assert.Equal(t, tc.code, r.errCode(t))
				checkClientWording(t, r.body)
				if tc.field != "" {
					var e ErrorBody
					r.json(t, &e)
					if assert.NotEmpty(t, e.Details, "the error names the field: %s", r.body) {
						assert.Equal(t, tc.field, e.Details[0].Field, "%s", r.body)
					}
				}
				if tc.status == http.StatusMethodNotAllowed {
					assert.NotEmpty(t, r.header.Get("Allow"), "a 405 says which methods the path has")
				}
			})
		}
		var list List[Run]
		c.do("GET", "/v1/runs", nil).json(t, &list)
		require.Len(t, list.Data, 1, "no rejected request wrote a run")
		assert.Equal(t, "keep", list.Data[0].AgentName)
		var steps List[Step]
		c.do("GET", runPath+"/steps", nil).json(t, &steps)
		assert.Len(t, steps.Data, 1, "no rejected request wrote a step")
		var logs List[AuditLog]
		c.do("GET", "/v1/audit-logs", nil).json(t, &logs)
		assert.Len(t, logs.Data, 1, "only the one accepted write was audited")
		var health Data[Health]
		c.do("GET", "/v1/system-health", nil).json(t, &health)
		assert.Empty(t, health.Data, "no rejected request recorded health")
	})
}

// TestItemLimits sends more than the maximum of items to every route that
// accepts a list, on both backends: 400 naming the list, nothing written,
// never a 500; the maximum itself is accepted.
func TestItemLimits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		c := a.user()
		var run Run
		r := c.do("POST", "/v1/runs", map[string]any{"agentName": "limits", "status": "running"})
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		r.json(t, &run)
		runPath := "/v1/runs/" + run.ID.String()
		items := func(n int, item string) string {
			return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
		}
		const tooMany = 10_000
		step, call := `{"type":"t"}`, `{"toolName":"t","status":"failed"}`
		for _, tc := range []struct {
			name, path, body, field string
		}{
			{"create with steps", "/v1/runs", `{"agentName":"x","steps":` + items(tooMany, step) + `}`, "steps"},
			{"create with tool calls", "/v1/runs", `{"agentName":"x","toolCalls":` + items(tooMany, call) + `}`, "toolCalls"},
			{"create with both", "/v1/runs", `{"agentName":"x","steps":` + items(store.MaxItems+1, step) + `,"toolCalls":` + items(store.MaxItems+1, call) + `}`, "steps"},
			{"append steps", runPath + "/steps", `{"steps":` + items(tooMany, step) + `}`, "steps"},
			{"record tool calls", runPath + "/tool-calls", `{"toolCalls":` + items(tooMany, call) + `}`, "toolCalls"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := c.do("POST", tc.path, tc.body)
				require.Equal(t, http.StatusBadRequest, r.status, "%.300s", r.body)
				var e ErrorBody
				r.json(t, &e)
				require.NotEmpty(t, e.Details)
				assert.Equal(t, tc.field, e.Details[0].Field)
				assert.Contains(t, e.Details[0].Message, fmt.Sprint(store.MaxItems))
				checkClientWording(t, r.body)
			})
		}
		var list List[Run]
		c.do("GET", "/v1/runs", nil).json(t, &list)
		assert.Len(t, list.Data, 1, "no refused request wrote a run")
		var got Run
		c.do("GET", runPath+"?include=steps,toolCalls", nil).json(t, &got)
		assert.Empty(t, got.Steps, "no refused request wrote a step")
		assert.Empty(t, got.ToolCalls, "no refused request wrote a tool call")

		// The maximum, in every form.
		r = c.do("POST", "/v1/runs", `{"agentName":"max","steps":`+items(store.MaxItems, step)+`,"toolCalls":`+items(store.MaxItems, call)+`}`)
		require.Equal(t, http.StatusCreated, r.status, "%.300s", r.body)
		var full Run
		r.json(t, &full)
		assert.Len(t, full.Steps, store.MaxItems)
		assert.Len(t, full.ToolCalls, store.MaxItems)
		r = c.do("POST", runPath+"/steps", `{"steps":`+items(store.MaxItems, step)+`}`)
		require.Equal(t, http.StatusCreated, r.status, "%.300s", r.body)
		r = c.do("POST", runPath+"/tool-calls", `{"toolCalls":`+items(store.MaxItems, call)+`}`)
		require.Equal(t, http.StatusCreated, r.status, "%.300s", r.body)
		c.do("GET", runPath+"?include=steps,toolCalls", nil).json(t, &got)
		assert.Len(t, got.Steps, store.MaxItems)
		assert.Len(t, got.ToolCalls, store.MaxItems)
	})
}
