// Package httpapi is agentstore's HTTP surface: Echo routes, middleware,
// request and response shapes, and the one error handler.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Pinger is a dependency /readyz checks.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are what the API needs from the rest of the service.
type Deps struct {
	// Log receives one line per request and every internal error.
	Log *slog.Logger
	// Ready are the dependencies /readyz checks, by name.
	Ready map[string]Pinger
}

// New returns the Echo instance serving the API.
func New(d Deps) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		checks := map[string]string{}
		status := http.StatusOK
		for name, p := range d.Ready {
			if err := p.Ping(ctx); err != nil {
				checks[name] = "down"
				status = http.StatusServiceUnavailable
				d.Log.WarnContext(ctx, "readiness check failed", "check", name, "err", err)
				continue
			}
			checks[name] = "up"
		}
		return c.JSON(status, map[string]any{"status": map[bool]string{true: "ready", false: "not ready"}[status == http.StatusOK], "checks": checks})
	})
	return e
}
