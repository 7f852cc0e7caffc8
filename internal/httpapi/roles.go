package httpapi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// access is who may call one operation.
type access struct {
	// roles are the token roles that may call the operation; none for a
	// public operation, which needs no token.
	roles []string
	// global operations touch no tenant's data (system health): a
	// service_role token calls them without X-Tenant-ID.
	global bool
	// unlimited operations (probes, scrapes) are never rate limited, and
	// so never look at a token.
	unlimited bool
}

var (
	everyRole   = []string{tenant.RoleAuthenticated, tenant.RoleServiceRole}
	serviceRole = []string{tenant.RoleServiceRole}
)

// operations is the role matrix of SPEC 13, by OpenAPI operationId: the one
// place that says who may call what. Every route is registered under one
// of these names (New panics on a name missing here), the OpenAPI document
// lists the same roles in each operation's x-roles (a test compares them),
// and a token whose role an operation does not list is refused with 403
// FORBIDDEN before the handler runs. End users (authenticated) read
// everything of their tenant and write runs, steps and tool calls; only
// service_role records usage and system health (in a batch of POST
// /v1/ingest or through traces as well), deletes runs, erases end users
// and exports.
var operations = map[string]access{
	"getLiveness":  {unlimited: true},
	"getReadiness": {unlimited: true},
	"getMetrics":   {unlimited: true},
	"getOpenAPI":   {}, // public, rate limited

	"createRun":          {roles: everyRole},
	"listRuns":           {roles: everyRole},
	"runStats":           {roles: everyRole},
	"getRun":             {roles: everyRole},
	"updateRun":          {roles: everyRole},
	"appendSteps":        {roles: everyRole},
	"listSteps":          {roles: everyRole},
	"appendToolCalls":    {roles: everyRole},
	"listToolCalls":      {roles: everyRole},
	"recordUsage":        {roles: serviceRole},
	"usageSummary":       {roles: everyRole},
	"listAuditLogs":      {roles: everyRole},
	"getSystemHealth":    {roles: everyRole, global: true},
	"recordSystemHealth": {roles: serviceRole, global: true},
	// A batch: each item is checked against its own route's roles.
	"ingest": {roles: everyRole},
	// OpenTelemetry traces: LLM spans record usage only for the roles
	// of recordUsage, and are steps without usage for the others.
	"exportTraces": {roles: everyRole},
	// The data lifecycle: a correction, an end user's erasure and bulk
	// export are the service's, never an end user's.
	"deleteRun":     {roles: serviceRole},
	"createErasure": {roles: serviceRole},
	"getErasure":    {roles: serviceRole},
	"exportRuns":    {roles: serviceRole},
	// GET /ui and its assets, the run viewer: static files, public and
	// never rate limited (the page signs in itself); not an API operation,
	// so not in the OpenAPI document.
	"getRunViewer": {unlimited: true},
	// GET /v1/ws, the WebSocket handshake; OpenAPI 3.0 does not describe it.
	// Both roles may subscribe and publish.
	"openWebSocket": {roles: everyRole},
}

// RoleAllowed reports whether a token with role may call the operation
// named operationID (an OpenAPI operationId, such as "recordUsage"). It is
// false for an unknown operation, and true for every role on a public one.
// Handlers that act for several operations in one request (a batch) ask it
// for each item.
func RoleAllowed(operationID, role string) bool {
	a, ok := operations[operationID]
	return ok && (len(a.roles) == 0 || slices.Contains(a.roles, role))
}

// accessOf returns the access of operation op; a name missing from the
// table is a programming error, found by the first test that builds the
// server.
func accessOf(op string) access {
	a, ok := operations[op]
	if !ok {
		panic(fmt.Sprintf("httpapi: operation %q is not in the role table", op))
	}
	return a
}

// authorize refuses a caller identify could not accept (401 or 403) and a
// role the operation op does not list (403), then puts the viewer, its
// token's claims and what audit rows record of the request into the
// request context.
func authorize(op string) echo.MiddlewareFunc {
	a := accessOf(op)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id, _ := c.Get(identityKey).(identity)
			if id.err != nil {
				return id.err
			}
			if !slices.Contains(a.roles, id.viewer.Role) {
				return derrors.New(derrors.Forbidden, "a token with role %q may not call %s %s; it is for %s",
					id.viewer.Role, c.Request().Method, c.Path(), strings.Join(a.roles, " or "))
			}
			ctx := tenant.NewContext(c.Request().Context(), id.viewer)
			ctx = auth.NewContext(ctx, id.claims)
			ctx = store.WithRequestInfo(ctx, store.RequestInfo{
				RequestID: requestID(c), IP: c.RealIP(), UserAgent: userAgent(c.Request().UserAgent()),
			})
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}
