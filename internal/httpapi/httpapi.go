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

	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", readyz(d))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{})))
	// Everything else is rate limited, by tenant when the token is good.
	limited := func(a echo.MiddlewareFunc) []echo.MiddlewareFunc {
		if d.Limiter == nil {
			return []echo.MiddlewareFunc{a}
		}
		return []echo.MiddlewareFunc{a, rateLimit(d.Limiter)}
	}
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, OpenAPI)
	}, limited(identify(d.Auth, false))...)

	// The middleware goes on each route, not on the group: a group's
	// middleware makes Echo add a catch-all route under its prefix, which
	// answers a wrong method on a known path with 404 instead of 405.
	mw := append(limited(identify(d.Auth, false)), requireViewer)
	if d.WebSocket != nil {
		// The one route whose token may come in the query string.
		ws := append(limited(identify(d.Auth, true)), requireViewer)
		e.GET("/v1/ws", acceptWebSocket(d.WebSocket), ws...)
	}

	if d.UI != nil {
		ui := echo.WrapHandler(d.UI)
		for _, p := range []string{"/ui", "/ui/*"} {
			e.GET(p, ui)
			e.HEAD(p, ui)
		}
	}

	h := &handlers{st: d.Store, events: d.Events}
	v1 := e.Group("/v1")
	route := func(method, path string, handler echo.HandlerFunc) { v1.Add(method, path, handler, mw...) }
	route(http.MethodPost, "/runs", h.createRun)
	route(http.MethodGet, "/runs", h.listRuns)
	route(http.MethodGet, "/runs/stats", h.runStats)
	route(http.MethodGet, "/runs/:id", h.getRun)
	route(http.MethodPatch, "/runs/:id", h.patchRun)
	route(http.MethodPost, "/runs/:id/steps", h.appendSteps)
	route(http.MethodGet, "/runs/:id/steps", h.listSteps)
	route(http.MethodPost, "/runs/:id/tool-calls", h.appendToolCalls)
	route(http.MethodGet, "/runs/:id/tool-calls", h.listToolCalls)
	route(http.MethodPost, "/usage", h.recordUsage)
	route(http.MethodGet, "/usage/summary", h.usageSummary)
	route(http.MethodGet, "/audit-logs", h.listAudit)
	route(http.MethodGet, "/system-health", h.getHealth)
	route(http.MethodPost, "/system-health", h.recordHealth)
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
