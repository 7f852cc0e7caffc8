package httpapi

import (
	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// serviceRoleRoutes are the routes of the data lifecycle (SPEC 16) that
// only service_role may call (SPEC 13): an end user's token
// (authenticated) gets 403 FORBIDDEN. Keyed by "METHOD route template".
var serviceRoleRoutes = map[string]bool{
	"DELETE /v1/runs/:id":  true,
	"POST /v1/erasures":    true,
	"GET /v1/erasures/:id": true,
	"GET /v1/export/runs":  true,
}

// requireServiceRole refuses the routes of serviceRoleRoutes to every
// viewer but service_role. It runs after requireViewer.
func requireServiceRole(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !serviceRoleRoutes[c.Request().Method+" "+c.Path()] {
			return next(c)
		}
		if v, _ := tenant.FromContext(c.Request().Context()); !v.IsServiceRole() {
			return derrors.New(derrors.Forbidden, "only service_role may call %s %s", c.Request().Method, c.Path())
		}
		return next(c)
	}
}
