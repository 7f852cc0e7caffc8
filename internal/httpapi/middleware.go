package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/ratelimit"
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

// queryToken is the query parameter that carries the token of a WebSocket
// handshake, since browsers cannot set headers on one. No other route
// reads it, and logs and metrics never record a query string.
const queryToken = "access_token"

// tokenOf returns the token of an "Authorization: Bearer" header or, when
// inQuery is set and there is no such header, of the access_token query
// parameter.
func tokenOf(c echo.Context, inQuery bool) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if h == "" && inQuery {
		token := strings.TrimSpace(c.QueryParam(queryToken))
		return token, token != ""
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// identity is what identify found out about the caller.
type identity struct {
	viewer tenant.Viewer
	claims auth.Claims
	err    error // why the caller may not proceed; nil when it may
}

const identityKey = "identity"

// identify verifies the bearer token, once, and remembers the viewer or the
// reason to refuse it, without refusing yet: the rate limiter needs the
// tenant (or "-") first, and authorize refuses after it. On a global
// operation of op (system health) a service_role token that names no
// tenant acts for none. With inQuery the token may also come in the
// access_token query parameter.
func identify(a Authenticator, op string, inQuery bool) echo.MiddlewareFunc {
	global := accessOf(op).global
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := identity{}
			token, ok := tokenOf(c, inQuery)
			headerTenant := c.Request().Header.Get(HeaderTenantID)
			if !ok {
				id.err = derrors.New(derrors.Unauthenticated, "missing bearer token")
			} else if claims, err := a.Verify(c.Request().Context(), token); err != nil {
				id.err = err
			} else if id.claims = claims; global && claims.Role == tenant.RoleServiceRole && strings.TrimSpace(headerTenant) == "" {
				id.viewer = tenant.Viewer{UserID: claims.Subject, Role: claims.Role}
			} else {
				id.viewer, id.err = a.Viewer(claims, headerTenant)
			}
			c.Set(identityKey, id)
			return next(c)
		}
	}
}

// rateLimit counts the request against its key, <tenant or ->|<METHOD>|
// <route template>|<client ip>, sets the rate-limit headers on every
// limited response, and refuses the request over the limit with 429.
func rateLimit(l *ratelimit.Limiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key := ratelimit.Key{Tenant: "-", Method: c.Request().Method, Route: routeOf(c), IP: c.RealIP()}
			if id, _ := c.Get(identityKey).(identity); id.err == nil && id.viewer.TenantID != uuid.Nil {
				key.Tenant = id.viewer.TenantID.String()
			}
			res, err := l.Allow(c.Request().Context(), key)
			if err != nil {
				return err
			}
			for k, v := range ratelimit.Headers(res) {
				c.Response().Header().Set(k, v)
			}
			if !res.Allowed {
				return &derrors.Error{
					Category:   derrors.RateLimited,
					Message:    fmt.Sprintf("rate limit of %d requests per %s exceeded", res.Limit, res.Window),
					RetryAfter: res.RetryAfter,
				}
			}
			return next(c)
		}
	}
}

// ClientIP reads the client address from the peer, and from
// X-Forwarded-For only when the peer is one of trusted: then the rightmost
// address that is not a trusted proxy, never the spoofable leftmost one.
func ClientIP(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// maxUserAgent is how much of the User-Agent header audit rows keep.
const maxUserAgent = 512

// userAgent is what audit rows keep of a User-Agent header: valid UTF-8
// without NUL (PostgreSQL's text stores neither invalid bytes nor NUL), at
// most maxUserAgent bytes, cut between characters.
func userAgent(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) <= maxUserAgent {
		return s
	}
	n := maxUserAgent
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// statusText is the status label of a metric.
func statusText(code int) string { return strconv.Itoa(code) }
