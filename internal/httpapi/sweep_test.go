package httpapi

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/tenant"
)

// TestTenantIsolationSweep walks every operation of /openapi.json as
// tenant B, with every id set to one of tenant A's, and a request body
// generated from the operation's schema: B gets a 404, a refusal that
// reveals nothing, or a result without a trace of A. A new route is swept
// as soon as it is documented, which TestOpenAPIRoutesMatchServer enforces.
func TestTenantIsolationSweep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, a *api) {
		alice := a.user()
		var run Run
		r := alice.do("POST", "/v1/runs", map[string]any{"agentName": "alice-secret", "status": "running",
			"steps": []map[string]any{{"type": "llm"}}, "toolCalls": []map[string]any{{"toolName": "t", "status": "failed"}}})
		require.Equal(t, http.StatusCreated, r.status)
		r.json(t, &run)
		require.Equal(t, http.StatusCreated, alice.service().do("POST", "/v1/usage", map[string]any{"runId": run.ID, "model": "alice-model"}).status)
		secrets := []string{run.ID.String(), run.Steps[0].ID.String(), alice.tenant.String(), "alice-secret", "alice-model"}

		bob := a.user()
		svcBob := a.as(auth.MintOptions{Role: "service_role"})
		svcBob.header.Set(HeaderTenantID, bob.tenant.String())

		doc := loadOpenAPI(t)
		paths := doc.Paths.InMatchingOrder()
		sort.Strings(paths)
		swept := 0
		for _, path := range paths {
			if !strings.HasPrefix(path, "/v1/") || path == "/v1/ws" {
				continue
			}
			for method, op := range doc.Paths.Value(path).Operations() {
				swept++
				t.Run(method+" "+path, func(t *testing.T) {
					url := strings.ReplaceAll(path, "{id}", run.ID.String())
					if q := queryFor(op, run); q != "" {
						url += "?" + q
					}
					var body any
					if op.RequestBody != nil {
						body = example(op.RequestBody.Value.Content.Get("application/json").Schema.Value, run)
					}
					caller := bob
					if !RoleAllowed(op.OperationID, tenant.RoleAuthenticated) {
						caller = svcBob // only service_role may call it
					}
					r := caller.do(method, url, body)
					switch {
					case strings.Contains(path, "{id}"):
						assert.Equal(t, http.StatusNotFound, r.status, "B may not touch A's run: %s", r.body)
					case r.status >= 400:
						assert.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict}, r.status, "%s", r.body)
					}
					for _, s := range secrets {
						assert.NotContains(t, string(r.body), s, "B's answer carries A's %s", s)
					}
				})
			}
		}
		assert.GreaterOrEqual(t, swept, 13, "every documented /v1 operation was swept")
	})
}

// queryFor fills the operation's query parameters: ids with A's run, times
// with a wide window, enums with their first value.
func queryFor(op *openapi3.Operation, run Run) string {
	var q []string
	for _, p := range op.Parameters {
		if p.Value.In != "query" {
			continue
		}
		s := p.Value.Schema.Value
		var v string
		switch {
		case strings.HasSuffix(p.Value.Name, "Id") || p.Value.Name == "resourceId":
			v = run.ID.String()
		case s.Format == "date-time":
			if strings.Contains(strings.ToLower(p.Value.Name), "before") || p.Value.Name == "to" {
				v = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
			} else {
				v = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
			}
		case len(s.Enum) > 0:
			v = s.Enum[0].(string)
		case p.Value.Name == "agentName":
			v = run.AgentName
		default:
			continue
		}
		q = append(q, p.Value.Name+"="+v)
	}
	return strings.Join(q, "&")
}

// example builds a value of schema s: every uuid is A's run, except an
// "id" of its own (a new resource's client-supplied id).
func example(s *openapi3.Schema, run Run) any {
	if len(s.OneOf) > 0 {
		return example(s.OneOf[0].Value, run)
	}
	switch {
	case s.Type.Is(openapi3.TypeObject):
		out := map[string]any{}
		for name, p := range s.Properties {
			if name == "id" {
				continue
			}
			if v := example(p.Value, run); v != nil {
				out[name] = v
			}
		}
		return out
	case s.Type.Is(openapi3.TypeArray):
		return []any{example(s.Items.Value, run)}
	case s.Type.Is(openapi3.TypeString):
		switch {
		case len(s.Enum) > 0:
			return s.Enum[0]
		case s.Format == "uuid":
			return run.ID.String()
		case s.Format == "date-time":
			return time.Now().UTC().Format(time.RFC3339)
		}
		return "x"
	case s.Type.Is(openapi3.TypeInteger), s.Type.Is(openapi3.TypeNumber):
		return 1
	case s.Type.Is(openapi3.TypeBoolean):
		return true
	}
	return nil
}
