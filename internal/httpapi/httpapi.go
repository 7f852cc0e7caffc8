// Package httpapi is agentstore's HTTP surface: Echo routes, middleware,
// request and response shapes, and the one error handler.
package httpapi

import (
	"context"
	_ "embed"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentstore/agentstore/internal/ratelimit"
	"github.com/agentstore/agentstore/internal/store"
)

// Pinger is a dependency /readyz checks.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what the API needs from the rest of the service.
type Deps struct {
	// Log receives one line per request and every internal error.
	Log *slog.Logger
	// Store holds the data.
	Store *store.Store
	// Auth verifies bearer tokens.
	Auth Authenticator
	// Events receives realtime events after commit; may be nil.
	Events Publisher
	// Ready are the dependencies /readyz checks, by name.
	Ready map[string]Pinger
	// Registry serves /metrics; the HTTP series are registered on it.
	Registry *prometheus.Registry
	// Limiter limits every route but /healthz, /readyz and /metrics; nil
	// turns limiting off (benchmarks measure the API without it).
	Limiter *ratelimit.Limiter
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []*net.IPNet
	// CORSAllowedOrigins are the browser origins that may call the API
	// from another origin ("*" for any); empty sends no CORS headers.
	CORSAllowedOrigins []string
	// Erasures is told of every erasure POST /v1/erasures records, so
	// that its worker starts at once; may be nil (the worker polls).
	Erasures Notifier
	// WebSocket accepts the connections of GET /v1/ws, whose handshake
	// passes through the same middleware as every /v1 route; nil leaves
	// the route out.
	WebSocket WebSocket
	// UI serves the run viewer under /ui (GET and HEAD, no token: the
	// page signs in itself); nil leaves it out. Its static assets are
	// not rate limited, like /healthz.
	UI http.Handler
}

// WebSocket accepts WebSocket connections; *realtime.Endpoint is one.
type WebSocket interface {
	// Accept upgrades an authenticated handshake, whose request context
	// carries the viewer and its token's claims, or writes nothing and
	// returns an error of a derrors category for the error handler.
	Accept(w http.ResponseWriter, r *http.Request) error
}

// OpenAPI is the OpenAPI 3 document of the API, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// New returns the Echo instance serving the API.
func New(d Deps) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = ClientIP(d.TrustedProxies)
	e.HTTPErrorHandler = errorHandler(d.Log)
	e.Use(requestIDMiddleware, observe(d.Log, NewMetrics(d.Registry)), recoverMiddleware(d.Log))
	if len(d.CORSAllowedOrigins) > 0 {
		// Before every route's own middleware: a preflight carries no
		// token and is never rate limited.
		e.Use(cors(d.CORSAllowedOrigins))
	}

	// Every route is an operation of the role table (roles.go) and goes
	// through the same chain: public ones take no token; the others are
	// identified, rate limited (by tenant when the token is good) and
	// authorized before their handler runs. The middleware goes on each
	// route, not on a group: a group's middleware makes Echo add a
	// catch-all route under its prefix, which answers a wrong method on a
	// known path with 404 instead of 405.
	add := func(method, path, op string, handler echo.HandlerFunc, inQuery bool) {
		a := accessOf(op)
		var mw []echo.MiddlewareFunc
		if !a.unlimited {
			mw = append(mw, identify(d.Auth, op, inQuery))
			if d.Limiter != nil {
				mw = append(mw, rateLimit(d.Limiter))
			}
		}
		if len(a.roles) > 0 {
			mw = append(mw, authorize(op))
		}
		e.Add(method, path, handler, mw...)
	}
	route := func(method, path, op string, handler echo.HandlerFunc) { add(method, path, op, handler, false) }

	route(http.MethodGet, "/healthz", "getLiveness", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	route(http.MethodGet, "/readyz", "getReadiness", readyz(d))
	route(http.MethodGet, "/metrics", "getMetrics", echo.WrapHandler(promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{})))
	route(http.MethodGet, "/openapi.json", "getOpenAPI", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, OpenAPI)
	})
	if d.WebSocket != nil {
		// The one route whose token may come in the query string.
		add(http.MethodGet, "/v1/ws", "openWebSocket", acceptWebSocket(d.WebSocket), true)
	}

	if d.UI != nil {
		ui := echo.WrapHandler(d.UI)
		for _, p := range []string{"/ui", "/ui/*"} {
			route(http.MethodGet, p, "getRunViewer", ui)
			route(http.MethodHead, p, "getRunViewer", ui)
		}
	}

	h := &handlers{st: d.Store, events: d.Events, log: d.Log, erasures: d.Erasures}
	route(http.MethodPost, "/v1/runs", "createRun", h.postRun)
	route(http.MethodGet, "/v1/runs", "listRuns", h.listRuns)
	route(http.MethodGet, "/v1/runs/stats", "runStats", h.runStats)
	route(http.MethodGet, "/v1/runs/:id", "getRun", h.getRun)
	route(http.MethodPatch, "/v1/runs/:id", "updateRun", h.patchRun)
	route(http.MethodPost, "/v1/runs/:id/steps", "appendSteps", h.postSteps)
	route(http.MethodGet, "/v1/runs/:id/steps", "listSteps", h.listSteps)
	route(http.MethodPost, "/v1/runs/:id/tool-calls", "appendToolCalls", h.postToolCalls)
	route(http.MethodGet, "/v1/runs/:id/tool-calls", "listToolCalls", h.listToolCalls)
	route(http.MethodPost, "/v1/usage", "recordUsage", h.postUsage)
	route(http.MethodPost, "/v1/ingest", "ingest", h.ingest)
	route(http.MethodPost, "/v1/traces", "exportTraces", h.traces)
	route(http.MethodGet, "/v1/usage/summary", "usageSummary", h.usageSummary)
	route(http.MethodGet, "/v1/audit-logs", "listAuditLogs", h.listAudit)
	route(http.MethodGet, "/v1/system-health", "getSystemHealth", h.getHealth)
	route(http.MethodPost, "/v1/system-health", "recordSystemHealth", h.recordHealth)
	route(http.MethodDelete, "/v1/runs/:id", "deleteRun", h.deleteRun)
	route(http.MethodPost, "/v1/erasures", "createErasure", h.createErasure)
	route(http.MethodGet, "/v1/erasures/:id", "getErasure", h.getErasure)
	route(http.MethodGet, "/v1/export/runs", "exportRuns", h.exportRuns)
	return e
}

// acceptWebSocket hands an authenticated handshake to ws; a refusal is
// answered by the error handler, as on every route.
func acceptWebSocket(ws WebSocket) echo.HandlerFunc {
	return func(c echo.Context) error {
		return ws.Accept(c.Response(), c.Request())
	}
}

func readyz(d Deps) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		checks := map[string]string{}
		status, word := http.StatusOK, "ready"
		for name, p := range d.Ready {
			if err := p.Ping(ctx); err != nil {
				checks[name] = "down"
				status, word = http.StatusServiceUnavailable, "not ready"
				d.Log.WarnContext(ctx, "readiness check failed", "check", name, "err", err)
				continue
			}
			checks[name] = "up"
		}
		return c.JSON(status, map[string]any{"status": word, "checks": checks})
	}
}
