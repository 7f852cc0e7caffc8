package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/realtime"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

func init() {
	// The export's body is NDJSON; the document describes it as an array
	// whose items are its lines.
	openapi3filter.RegisterBodyDecoder(MIMENDJSON, func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef,
		_ openapi3filter.EncodingFn) (any, error) {
		return ndjsonLines(body)
	})
}

// ndjsonLines decodes one JSON value per line.
func ndjsonLines(r io.Reader) ([]any, error) {
	var out []any
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var v any
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(out)+1, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// service returns a service_role client acting for c's tenant.
func service(a *api, c *client) *client {
	svc := a.as(auth.MintOptions{Subject: "ops", Role: tenant.RoleServiceRole})
	svc.header.Set(HeaderTenantID, c.tenant.String())
	return svc
}

func TestDeleteRunRoute(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			events := &recorder{}
			a := newAPIWith(t, b.open(t), func(d *Deps) { d.Events = events })
			u := a.user()
			svc := service(a, u)
			var run Run
			r := u.do("POST", "/v1/runs", map[string]any{"agentName": "del", "steps": []map[string]any{{"type": "llm"}},
				"toolCalls": []map[string]any{{"toolName": "t", "status": "failed"}}})
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			r.json(t, &run)
			require.Equal(t, http.StatusCreated, svc.do("POST", "/v1/usage", map[string]any{"runId": run.ID, "model": "m", "inputTokens": 3}).status)
			events.taken()

			path := "/v1/runs/" + run.ID.String()
			r = u.do("DELETE", path, nil)
			assert.Equal(t, http.StatusForbidden, r.status, "an end user may not delete")
			assert.Equal(t, "FORBIDDEN", r.errCode(t))
			otherSvc := service(a, a.user())
			assert.Equal(t, http.StatusNotFound, otherSvc.do("DELETE", path, nil).status, "another tenant's run is 404")
			assert.Equal(t, http.StatusBadRequest, svc.do("DELETE", "/v1/runs/nope", nil).status)
			assert.Empty(t, events.taken())

			r = svc.do("DELETE", path, nil)
			require.Equal(t, http.StatusNoContent, r.status, string(r.body))
			assert.Empty(t, r.body)
			got := events.taken()
			require.Len(t, got, 1)
			assert.Equal(t, realtime.EventRunDeleted, got[0].event)
			assert.Equal(t, run.ID, got[0].runID)
			assert.Equal(t, u.tenant, got[0].tenantID)

			assert.Equal(t, http.StatusNotFound, u.do("GET", path, nil).status)
			assert.Equal(t, http.StatusNotFound, svc.do("DELETE", path, nil).status, "deleted once")
			var usage Data[UsageSummary]
			u.do("GET", "/v1/usage/summary?groupBy=model", nil).json(t, &usage)
			require.Len(t, usage.Data, 1, "the usage row stays")
			assert.Equal(t, int64(3), usage.Data[0].InputTokens)
			var audit List[AuditLog]
			u.do("GET", "/v1/audit-logs?action=run.delete&resourceId="+run.ID.String(), nil).json(t, &audit)
			require.Len(t, audit.Data, 1)
			assert.Equal(t, "service_role", audit.Data[0].ActorRole)
		})
	}
}

func TestErasureRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		u := a.user()
		svc := service(a, u)
		user := uuid.New()
		for range 2 {
			r := svc.do("POST", "/v1/runs", map[string]any{"agentName": "e", "userId": user, "steps": []map[string]any{{"type": "llm"}}})
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
		}
		require.Equal(t, http.StatusForbidden, u.do("POST", "/v1/erasures", map[string]any{"userId": user}).status)
		r := svc.do("POST", "/v1/erasures", map[string]any{"userId": user})
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		var job Erasure
		r.json(t, &job)
		assert.Equal(t, "pending", job.Status)
		assert.Equal(t, user, job.UserID)
		path := "/v1/erasures/" + job.ID.String()
		assert.Equal(t, http.StatusForbidden, u.do("GET", path, nil).status)
		assert.Equal(t, http.StatusNotFound, service(a, a.user()).do("GET", path, nil).status, "another tenant's erasure is 404")

		for _, bad := range []string{`{}`, `{"userId":"x"}`, `{"userId":null}`, `{"userId":"` + user.String() + `","extra":1}`, `[]`} {
			assert.Equal(t, http.StatusBadRequest, svc.do("POST", "/v1/erasures", bad).status, bad)
		}

		// The worker's steps, as internal/lifecycle runs them.
		ctx := store.WorkContext(context.Background(), mustJob(t, a, u.tenant, job.ID))
		for {
			got, err := a.st.Erasures.Work(ctx, job.ID, 1)
			require.NoError(t, err)
			if string(got.Status) == store.ErasureDone {
				break
			}
		}
		svc.do("GET", path, nil).json(t, &job)
		assert.Equal(t, "done", job.Status)
		assert.Equal(t, ErasureCounts{Runs: 2, Steps: 2, ToolCalls: 0}, job.Counts)
		var runs List[Run]
		u.do("GET", "/v1/runs", nil).json(t, &runs)
		assert.Empty(t, runs.Data)
		var audit List[AuditLog]
		u.do("GET", "/v1/audit-logs?action=user.erase", nil).json(t, &audit)
		require.Len(t, audit.Data, 1)
		assert.Equal(t, "ops", *audit.Data[0].ActorID, "the audit row names who asked")
	})
}

// mustJob reads an erasure as the worker does.
func mustJob(t *testing.T, a *api, tenantID, id uuid.UUID) *ent.Erasure {
	t.Helper()
	ctx := tenant.NewContext(context.Background(), tenant.Viewer{TenantID: tenantID, Role: "system"})
	job, err := a.st.Erasures.Get(ctx, id)
	require.NoError(t, err)
	return job
}

func TestExportRoute(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		u := a.user()
		svc := service(a, u)
		n := store.ExportPageSize + 2
		for i := range n {
			body := map[string]any{"agentName": fmt.Sprint("x", i)}
			if i%2 == 0 {
				body["steps"] = []map[string]any{{"type": "llm", "input": map[string]any{"i": i}}, {"type": "tool"}}
				body["toolCalls"] = []map[string]any{{"toolName": "t", "status": "succeeded"}}
			}
			r := u.do("POST", "/v1/runs", body)
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
		}
		assert.Equal(t, http.StatusForbidden, u.do("GET", "/v1/export/runs", nil).status)
		assert.Equal(t, http.StatusBadRequest, svc.do("GET", "/v1/export/runs?from=yesterday", nil).status)
		assert.Equal(t, http.StatusBadRequest, svc.do("GET", "/v1/export/runs?cursor=garbage", nil).status)

		r := svc.do("GET", "/v1/export/runs", nil)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		assert.Equal(t, MIMENDJSON, r.header.Get("Content-Type"))
		lines := strings.Split(strings.TrimSuffix(string(r.body), "\n"), "\n")
		require.Len(t, lines, n+3, "runs, two checkpoints, the end")
		assert.Equal(t, `{"nextCursor":null}`, lines[len(lines)-1])
		var cp ExportCheckpoint
		require.NoError(t, json.Unmarshal([]byte(lines[store.ExportPageSize]), &cp))
		require.NotNil(t, cp.NextCursor, "a checkpoint after the first page")

		var prev time.Time
		runs := 0
		for _, l := range lines {
			var run Run
			require.NoError(t, json.Unmarshal([]byte(l), &run))
			if run.ID == uuid.Nil {
				continue // a checkpoint
			}
			runs++
			assert.False(t, run.CreatedAt.Before(prev), "oldest first")
			prev = run.CreatedAt
			// The same JSON as GET /v1/runs/{id}?include=steps,toolCalls.
			one := u.do("GET", "/v1/runs/"+run.ID.String()+"?include=steps,toolCalls", nil)
			require.Equal(t, http.StatusOK, one.status)
			assert.Equal(t, strings.TrimSuffix(string(one.body), "\n"), l)
		}
		assert.Equal(t, n, runs)

		rest := svc.do("GET", "/v1/export/runs?cursor="+url.QueryEscape(*cp.NextCursor), nil)
		require.Equal(t, http.StatusOK, rest.status)
		assert.Equal(t, strings.Join(lines[store.ExportPageSize+1:], "\n")+"\n", string(rest.body), "resumed after the checkpoint")

		empty := service(a, a.user()).do("GET", "/v1/export/runs", nil)
		require.Equal(t, http.StatusOK, empty.status)
		assert.Equal(t, `{"nextCursor":null}`+"\n", string(empty.body), "another tenant exports nothing of this one")
		future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		assert.Equal(t, `{"nextCursor":null}`+"\n", string(svc.do("GET", "/v1/export/runs?from="+future, nil).body))
	})
}

// exerciseLifecycle drives every documented response of the lifecycle
// routes through the validator of TestResponsesMatchOpenAPI.
func exerciseLifecycle(t *testing.T, a *api, v *validator, u, public, anon, svc *vclient) {
	svcT := svc.with(HeaderTenantID, u.c.tenant.String())
	var run Run
	u.do(201, "POST", "/v1/runs", map[string]any{"agentName": "doomed", "steps": []map[string]any{{"type": "llm"}}}).json(t, &run)
	runPath := "/v1/runs/" + run.ID.String()
	erasureBody := map[string]any{"userId": uuid.NewString()}
	for _, op := range []struct {
		method, path string
		body         any
	}{
		{"DELETE", runPath, nil},
		{"POST", "/v1/erasures", erasureBody},
		{"GET", "/v1/erasures/" + uuid.NewString(), nil},
		{"GET", "/v1/export/runs", nil},
	} {
		public.do(401, op.method, op.path, op.body)
		anon.do(403, op.method, op.path, op.body)
		svc.do(403, op.method, op.path, op.body) // without X-Tenant-ID
		u.do(403, op.method, op.path, op.body)   // an end user
	}

	svcT.bad(400, "DELETE", "/v1/runs/not-a-uuid", nil)
	svcT.do(404, "DELETE", "/v1/runs/"+uuid.NewString(), nil)
	svcT.do(204, "DELETE", runPath, nil)

	var job Erasure
	svcT.do(202, "POST", "/v1/erasures", erasureBody).json(t, &job)
	svcT.bad(400, "POST", "/v1/erasures", map[string]any{})
	svcT.bad(400, "POST", "/v1/erasures", map[string]any{"userId": "x"})
	svcT.bad(400, "POST", "/v1/erasures", map[string]any{"userId": uuid.NewString(), "reason": "gdpr"})
	svcT.bad(413, "POST", "/v1/erasures", map[string]any{"userId": overMaxBody()})
	svcT.do(200, "GET", "/v1/erasures/"+job.ID.String(), nil)
	svcT.bad(400, "GET", "/v1/erasures/nope", nil)
	svcT.do(404, "GET", "/v1/erasures/"+uuid.NewString(), nil)

	u.do(201, "POST", "/v1/runs", map[string]any{"agentName": "kept", "steps": []map[string]any{{"type": "llm"}},
		"toolCalls": []map[string]any{{"toolName": "t", "status": "succeeded"}}})
	past := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	svcT.do(200, "GET", "/v1/export/runs", nil)
	svcT.do(200, "GET", "/v1/export/runs?from="+past+"&to="+past, nil)
	svcT.bad(400, "GET", "/v1/export/runs?to=later", nil)
	svcT.do(400, "GET", "/v1/export/runs?cursor=garbage", nil)
}
