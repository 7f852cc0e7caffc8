package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// HeaderRequestID carries the request id in and out.
const HeaderRequestID = "X-Request-ID"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

const requestIDKey = "request_id"

// requestIDMiddleware accepts a sane X-Request-ID or makes one, and echoes it.
func requestIDMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(HeaderRequestID)
		if !validRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(HeaderRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDKey).(string)
	return id
}

// recoverMiddleware turns a handler panic into a logged 500.
func recoverMiddleware(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if p := recover(); p != nil {
					log.ErrorContext(c.Request().Context(), "panic", "request_id", requestID(c), "route", c.Path(), "panic", fmt.Sprint(p))
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			return next(c)
		}
	}
}

// observe writes the error response of a failed request, then one log line
// (never a header, so never a token) and the request's metrics.
func observe(log *slog.Logger, m *Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			v, _ := tenant.FromContext(c.Request().Context())
			attrs := []any{
				"request_id", requestID(c), "method", c.Request().Method, "route", routeOf(c),
				"status", c.Response().Status, "latency_ms", float64(time.Since(start).Microseconds()) / 1000,
				"bytes_out", c.Response().Size, "ip", c.RealIP(),
			}
			if v.TenantID != uuid.Nil {
				attrs = append(attrs, "tenant_id", v.TenantID.String())
			}
			log.InfoContext(c.Request().Context(), "request", attrs...)
			m.observe(c, time.Since(start))
			return nil
		}
	}
}

// routeOf is the route template, or "unmatched" for unknown paths, so that
// logs and metrics never carry raw paths.
func routeOf(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "unmatched"
}

// Authenticator verifies bearer tokens and turns them into viewers.
type Authenticator interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
	Viewer(c auth.Claims, headerTenant string) (tenant.Viewer, error)
}

// HeaderTenantID names the tenant a service_role token acts for.
const HeaderTenantID = "X-Tenant-ID"

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(c echo.Context) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// authenticate puts the token's viewer, and what audit rows record of the
// request, into the request context. No token or a bad one is 401; a good
// token that may not act (anon, no tenant) is 403.
func authenticate(a Authenticator) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, ok := bearer(c)
			if !ok {
				return derrors.New(derrors.Unauthenticated, "missing bearer token")
			}
			claims, err := a.Verify(c.Request().Context(), token)
			if err != nil {
				return err
			}
			v, err := a.Viewer(claims, c.Request().Header.Get(HeaderTenantID))
			if err != nil {
				return err
			}
			ctx := tenant.NewContext(c.Request().Context(), v)
			ctx = store.WithRequestInfo(ctx, store.RequestInfo{
				RequestID: requestID(c), IP: c.RealIP(), UserAgent: truncate(c.Request().UserAgent(), 512),
			})
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// statusText is the status label of a metric.
func statusText(code int) string { return strconv.Itoa(code) }
