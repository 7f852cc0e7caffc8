package httpapi

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/markdown"
	"github.com/agentstore/agentstore/internal/tenant"
)

// TestRoleMatrix drives every authenticated route with a request it
// accepts, as each role: an end user (authenticated), service_role for the
// user's tenant, service_role naming no tenant, and a role the API does not
// know. The users column is SPEC 13's matrix written out again, so that the
// table in roles.go cannot drift from it unnoticed.
func TestRoleMatrix(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		user := a.user()
		svc := user.service()
		globalSvc := a.as(auth.MintOptions{Subject: "prober", Role: tenant.RoleServiceRole})
		editor := a.as(auth.MintOptions{Tenant: user.tenant, Subject: uuid.NewString(), Role: "editor"})

		// One run per caller that may write to it, so that each caller's
		// request is accepted on its own.
		newRun := func() string {
			var run Run
			r := user.do("POST", "/v1/runs", map[string]any{"agentName": "roles", "status": "running"})
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			r.json(t, &run)
			return run.ID.String()
		}
		type request struct {
			method, path string
			body         any
		}
		cases := []struct {
			op     string
			users  bool // SPEC 13: may an end user call it?
			global bool // may service_role call it without X-Tenant-ID?
			req    func() request
		}{
			{"createRun", true, false, func() request { return request{"POST", "/v1/runs", map[string]any{"agentName": "r"}} }},
			{"listRuns", true, false, func() request { return request{"GET", "/v1/runs", nil} }},
			{"runStats", true, false, func() request { return request{"GET", "/v1/runs/stats", nil} }},
			{"getRun", true, false, func() request { return request{"GET", "/v1/runs/" + newRun(), nil} }},
			{"updateRun", true, false, func() request {
				return request{"PATCH", "/v1/runs/" + newRun(), map[string]any{"metadata": map[string]any{"k": 1}}}
			}},
			{"appendSteps", true, false, func() request {
				return request{"POST", "/v1/runs/" + newRun() + "/steps", map[string]any{"type": "llm"}}
			}},
			{"listSteps", true, false, func() request { return request{"GET", "/v1/runs/" + newRun() + "/steps", nil} }},
			{"appendToolCalls", true, false, func() request {
				return request{"POST", "/v1/runs/" + newRun() + "/tool-calls", map[string]any{"toolName": "t", "status": "succeeded"}}
			}},
			{"listToolCalls", true, false, func() request { return request{"GET", "/v1/runs/" + newRun() + "/tool-calls", nil} }},
			{"recordUsage", false, false, func() request { return request{"POST", "/v1/usage", map[string]any{"model": "m", "inputTokens": 1}} }},
			{"usageSummary", true, false, func() request { return request{"GET", "/v1/usage/summary", nil} }},
			{"listAuditLogs", true, false, func() request { return request{"GET", "/v1/audit-logs", nil} }},
			{"getSystemHealth", true, true, func() request { return request{"GET", "/v1/system-health", nil} }},
			{"recordSystemHealth", false, true, func() request {
				return request{"POST", "/v1/system-health", map[string]any{"component": "c-" + uuid.NewString()[:8], "status": "up"}}
			}},
			// A batch's items are checked one by one against their routes'
			// roles (TestIngestAppliesItemsInOrderWithAResultEach); the batch
			// itself is open to both.
			{"ingest", true, false, func() request {
				return request{"POST", "/v1/ingest", map[string]any{"batch": []any{
					map[string]any{"id": uuid.NewString(), "type": "run.create", "body": map[string]any{"agentName": "r"}},
				}}}
			}},
			{"exportTraces", true, false, func() request { return request{"POST", "/v1/traces", map[string]any{"resourceSpans": []any{}}} }},
			{"deleteRun", false, false, func() request { return request{"DELETE", "/v1/runs/" + newRun(), nil} }},
			{"createErasure", false, false, func() request {
				return request{"POST", "/v1/erasures", map[string]any{"userId": uuid.NewString()}}
			}},
			{"getErasure", false, false, func() request {
				var e Erasure
				r := svc.do("POST", "/v1/erasures", map[string]any{"userId": uuid.NewString()})
				require.Equal(t, http.StatusAccepted, r.status, string(r.body))
				r.json(t, &e)
				return request{"GET", "/v1/erasures/" + e.ID.String(), nil}
			}},
			{"exportRuns", false, false, func() request { return request{"GET", "/v1/export/runs", nil} }},
		}
		var tested []string
		for _, tc := range cases {
			tested = append(tested, tc.op)
			t.Run(tc.op, func(t *testing.T) {
				require.Equal(t, tc.users, RoleAllowed(tc.op, tenant.RoleAuthenticated), "the role table disagrees with SPEC 13")
				require.True(t, RoleAllowed(tc.op, tenant.RoleServiceRole), "service_role may do everything")
				require.Equal(t, tc.global, operations[tc.op].global)
				for _, caller := range []struct {
					name    string
					c       *client
					allowed bool
				}{
					{"authenticated", user, tc.users},
					{"service_role", svc, true},
					{"service_role without X-Tenant-ID", globalSvc, tc.global},
					{"unknown role", editor, false},
				} {
					req := tc.req()
					r := caller.c.do(req.method, req.path, req.body)
					if caller.allowed {
						assert.Contains(t, []int{http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent, http.StatusMultiStatus}, r.status, "%s %s as %s: %s", req.method, req.path, caller.name, r.body)
						continue
					}
					if assert.Equal(t, http.StatusForbidden, r.status, "%s %s as %s: %s", req.method, req.path, caller.name, r.body) {
						assert.Equal(t, derrors.CodeForbidden, r.errCode(t))
					}
				}
			})
		}
		for op, acc := range operations {
			if len(acc.roles) > 0 && op != "openWebSocket" {
				assert.Contains(t, tested, op, "the role matrix test misses %s", op)
			}
		}

		// A refused write wrote nothing: the one usage row is service_role's.
		var sum Data[UsageSummary]
		r := user.do("GET", "/v1/usage/summary?groupBy=model", nil)
		require.Equal(t, http.StatusOK, r.status)
		r.json(t, &sum)
		require.Len(t, sum.Data, 1)
		assert.EqualValues(t, 1, sum.Data[0].InputTokens, "only service_role's usage was recorded")
		var logs List[AuditLog]
		user.do("GET", "/v1/audit-logs?action=usage.record", nil).json(t, &logs)
		require.Len(t, logs.Data, 1)
		assert.Equal(t, tenant.RoleServiceRole, logs.Data[0].ActorRole)
	})
}

// TestOpenAPIRolesMatchTable holds the document to the role table: every
// operation that takes a token lists the table's roles in x-roles and says
// them in its description; a public one has no security and no x-roles.
func TestOpenAPIRolesMatchTable(t *testing.T) {
	doc := loadOpenAPI(t)
	seen := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			acc, ok := operations[op.OperationID]
			require.True(t, ok, "%s: operation %q is not in the role table", name, op.OperationID)
			seen[op.OperationID] = true
			raw, has := op.Extensions["x-roles"]
			if len(acc.roles) == 0 {
				assert.False(t, has, "%s is public and lists no roles", name)
				require.NotNil(t, op.Security, "%s", name)
				assert.Empty(t, *op.Security, "%s is public: no security", name)
				continue
			}
			require.True(t, has, "%s has no x-roles", name)
			var roles []string
			for _, r := range raw.([]any) {
				roles = append(roles, r.(string))
			}
			assert.Equal(t, acc.roles, roles, "%s: x-roles differ from the role table", name)
			assert.Contains(t, op.Description, "Roles: "+strings.Join(acc.roles, ", ")+".", "%s: the description says who may call it", name)
			if !slices.Contains(acc.roles, tenant.RoleAuthenticated) {
				assert.Contains(t, op.Description, "403 FORBIDDEN", "%s: the description says what an end user gets", name)
			}
			if acc.global {
				assert.Contains(t, op.Description, "no X-Tenant-ID", "%s", name)
			}
		}
	}
	for op := range operations {
		if op != "openWebSocket" && op != "getRunViewer" { // the WebSocket and the viewer's files are not in OpenAPI 3.0's terms
			assert.True(t, seen[op], "the role table has %s, which the document lacks", op)
		}
	}
}

func TestRoleAllowed(t *testing.T) {
	for _, tc := range []struct {
		op, role string
		want     bool
	}{
		{"recordUsage", tenant.RoleServiceRole, true},
		{"recordUsage", tenant.RoleAuthenticated, false},
		{"createRun", tenant.RoleAuthenticated, true},
		{"createRun", "anon", false},
		{"createRun", "", false},
		{"getLiveness", "", true},
		{"noSuchOperation", tenant.RoleServiceRole, false},
	} {
		assert.Equal(t, tc.want, RoleAllowed(tc.op, tc.role), fmt.Sprintf("%s as %q", tc.op, tc.role))
	}
}

// TestReadmeRolesMatchTable holds the README's table of roles to the role
// table: the same operations, with the same roles, on the routes Echo
// serves them on.
func TestReadmeRolesMatchTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	section, ok := markdown.Section(string(b), "Roles")
	require.True(t, ok, "the README has a Roles section")
	routes := map[string]string{} // operationId → "METHOD /path"
	doc := loadOpenAPI(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			routes[op.OperationID] = method + " " + path
		}
	}
	routes["openWebSocket"] = "GET /v1/ws"
	documented := map[string]bool{}
	for _, row := range markdown.TableRows(section) {
		require.Len(t, row, 3, "%v", row)
		route, op := markdown.CodeSpans(row[0]), markdown.CodeSpans(row[1])
		require.Len(t, route, 1, "%v", row)
		require.Len(t, op, 1, "%v", row)
		acc, ok := operations[op[0]]
		require.True(t, ok, "the README names %s, which the role table lacks", op[0])
		assert.Equal(t, routes[op[0]], route[0], "the README's route of %s", op[0])
		assert.Equal(t, acc.roles, markdown.CodeSpans(row[2]), "the README's roles of %s", op[0])
		documented[op[0]] = true
	}
	for op, acc := range operations {
		if len(acc.roles) > 0 {
			assert.True(t, documented[op], "the README's Roles table lacks %s", op)
		}
	}
}
