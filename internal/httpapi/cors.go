package httpapi

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/agentstore/agentstore/internal/ratelimit"
)

// corsAllowHeaders are the request headers a browser may send across
// origins: the token, the body's type and the API's own headers.
var corsAllowHeaders = []string{
	echo.HeaderAuthorization, echo.HeaderContentType, HeaderIdempotencyKey, HeaderRequestID, HeaderTenantID,
}

// corsExposeHeaders are the response headers a browser script may read:
// Retry-After, the request id, the replay mark of an idempotent create and
// every rate-limit header.
func corsExposeHeaders() []string {
	names := []string{echo.HeaderRetryAfter, HeaderRequestID, headerIdempotentReplayed}
	var limits []string
	// A refusal's headers: all of them, Retry-After included.
	for name := range ratelimit.Headers(ratelimit.Result{Limit: 1, Reset: time.Now(), Window: time.Second, RetryAfter: time.Second}) {
		if !slices.Contains(names, name) {
			limits = append(limits, name)
		}
	}
	sort.Strings(limits)
	return append(names, limits...)
}

// corsMaxAge is how long a browser may cache a preflight's answer.
const corsMaxAge = 10 * time.Minute

// cors is the CORS policy of the API for the origins allowed ("*" for any;
// an origin matches an entry case-insensitively). It runs before every
// route's own middleware, so that a preflight (an OPTIONS request with
// Access-Control-Request-Method) is answered 204 without a token and
// without counting against a rate limit: from an allowed origin with the
// route's methods and corsAllowHeaders, from any other without CORS
// headers, which the browser takes as a refusal. Every other response to
// an allowed origin, errors included, names the origin and exposes
// corsExposeHeaders.
func cors(allowed []string) echo.MiddlewareFunc {
	allowHeaders := strings.Join(corsAllowHeaders, ", ")
	expose := strings.Join(corsExposeHeaders(), ", ")
	maxAge := strconv.Itoa(int(corsMaxAge / time.Second))
	allowedOrigin := func(origin string) bool {
		return origin != "" && slices.ContainsFunc(allowed, func(a string) bool { return a == "*" || strings.EqualFold(a, origin) })
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req, h := c.Request(), c.Response().Header()
			origin := req.Header.Get(echo.HeaderOrigin)
			h.Add(echo.HeaderVary, echo.HeaderOrigin)
			if req.Method == http.MethodOptions && req.Header.Get(echo.HeaderAccessControlRequestMethod) != "" {
				h.Add(echo.HeaderVary, echo.HeaderAccessControlRequestMethod)
				h.Add(echo.HeaderVary, echo.HeaderAccessControlRequestHeaders)
				// The router names the methods of a path it knows.
				methods, _ := c.Get(echo.ContextKeyHeaderAllow).(string)
				if allowedOrigin(origin) && methods != "" {
					h.Set(echo.HeaderAccessControlAllowOrigin, origin)
					h.Set(echo.HeaderAccessControlAllowMethods, methods)
					h.Set(echo.HeaderAccessControlAllowHeaders, allowHeaders)
					h.Set(echo.HeaderAccessControlMaxAge, maxAge)
				}
				return c.NoContent(http.StatusNoContent)
			}
			if allowedOrigin(origin) {
				h.Set(echo.HeaderAccessControlAllowOrigin, origin)
				h.Set(echo.HeaderAccessControlExposeHeaders, expose)
			}
			return next(c)
		}
	}
}
