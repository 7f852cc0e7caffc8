package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/ratelimit"
)

const dashboard = "https://dashboard.example.com"

// corsAPI is an API on SQLite that allows the dashboard's origin, with a
// limiter of max requests a minute.
func corsAPI(t *testing.T, max int) *api {
	t.Helper()
	return newAPIWith(t, backends[1].open(t), func(d *Deps) {
		l, err := ratelimit.New(ratelimit.Config{Max: max, Window: time.Minute, FailMode: ratelimit.FailOpen}, nil, d.Log, ratelimit.NewMetrics(d.Registry))
		require.NoError(t, err)
		d.Limiter = l
		d.CORSAllowedOrigins = []string{"https://other.example.com", dashboard}
	})
}

// preflightFrom sends the preflight a browser sends before a cross-origin
// method request with headers.
func preflightFrom(c *client, origin, method, path string, headers ...string) response {
	c.header.Set("Origin", origin)
	c.header.Set("Access-Control-Request-Method", method)
	c.header.Set("Access-Control-Request-Headers", strings.ToLower(strings.Join(headers, ",")))
	defer func() {
		for _, h := range []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"} {
			c.header.Del(h)
		}
	}()
	return c.do(http.MethodOptions, path, nil)
}

func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	a := corsAPI(t, 1)
	anon := &client{a: a, header: http.Header{}} // a preflight carries no token
	for _, tc := range []struct{ method, path, methods string }{
		{"POST", "/v1/runs", "GET, POST"},
		{"PATCH", "/v1/runs/0190a7b2-0000-7000-8000-000000000000", "GET, PATCH"},
		{"POST", "/v1/runs/0190a7b2-0000-7000-8000-000000000000/steps", "GET, POST"},
		{"POST", "/v1/usage", "POST"},
		{"GET", "/v1/audit-logs", "GET"},
	} {
		for i := range 3 { // over the limit of 1 a minute: preflights are not limited
			r := preflightFrom(anon, dashboard, tc.method, tc.path, corsAllowHeaders...)
			require.Equal(t, http.StatusNoContent, r.status, "%s %s #%d: %s", tc.method, tc.path, i, r.body)
			assert.Equal(t, dashboard, r.header.Get("Access-Control-Allow-Origin"))
			for _, m := range strings.Split(tc.methods, ", ") {
				assert.Contains(t, r.header.Get("Access-Control-Allow-Methods"), m, "%s", tc.path)
			}
			for _, h := range []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID", "X-Tenant-ID"} {
				assert.Contains(t, r.header.Get("Access-Control-Allow-Headers"), h)
			}
			assert.Equal(t, "600", r.header.Get("Access-Control-Max-Age"))
			assert.Contains(t, r.header.Values("Vary"), "Origin")
			assert.Empty(t, r.header.Get("X-RateLimit-Limit"), "a preflight is not rate limited")
			assert.Empty(t, r.body)
		}
	}

	r := preflightFrom(anon, "https://evil.example.com", "POST", "/v1/runs", "authorization")
	assert.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "an origin not listed gets no CORS headers")
	assert.Empty(t, r.header.Get("Access-Control-Allow-Methods"))
	r = preflightFrom(anon, "https://dashboard.example.com.evil.com", "POST", "/v1/runs", "authorization")
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "origins match whole")
	r = preflightFrom(anon, "HTTPS://Dashboard.Example.com", "GET", "/v1/runs")
	assert.Equal(t, "HTTPS://Dashboard.Example.com", r.header.Get("Access-Control-Allow-Origin"), "origins match case-insensitively")
}

func TestCORSResponsesExposeHeaders(t *testing.T) {
	t.Parallel()
	a := corsAPI(t, 2)
	c := a.user()
	c.header.Set("Origin", dashboard)
	r := c.do("GET", "/v1/runs", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	assert.Equal(t, dashboard, r.header.Get("Access-Control-Allow-Origin"))
	exposed := r.header.Get("Access-Control-Expose-Headers")
	for _, h := range []string{"Retry-After", "X-Request-ID", "Idempotent-Replayed", "RateLimit", "RateLimit-Policy",
		"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		assert.Contains(t, strings.Split(exposed, ", "), h)
	}
	names := map[string]bool{}
	for _, h := range strings.Split(exposed, ", ") {
		assert.False(t, names[http.CanonicalHeaderKey(h)], "%s is exposed once", h)
		names[http.CanonicalHeaderKey(h)] = true
	}
	for h := range r.header {
		if strings.Contains(strings.ToLower(h), "ratelimit") {
			assert.True(t, names[h], "every rate-limit header the API sends is exposed: %s", h)
		}
	}

	r = c.do("GET", "/v1/runs", nil)
	require.Equal(t, http.StatusOK, r.status)
	r = c.do("GET", "/v1/runs", nil)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, dashboard, r.header.Get("Access-Control-Allow-Origin"), "a browser may read a 429")
	assert.Contains(t, r.header.Get("Access-Control-Expose-Headers"), "Retry-After")
	assert.NotEmpty(t, r.header.Get("Retry-After"))

	unauth := &client{a: a, header: http.Header{"Origin": {dashboard}}}
	r = unauth.do("GET", "/v1/audit-logs", nil)
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, dashboard, r.header.Get("Access-Control-Allow-Origin"), "a browser may read a 401")

	other := a.user()
	other.header.Set("Origin", "https://evil.example.com")
	r = other.do("GET", "/v1/runs", nil)
	require.Equal(t, http.StatusOK, r.status, "CORS is the browser's check; the server still answers")
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
	assert.Empty(t, r.header.Get("Access-Control-Expose-Headers"))
}

func TestNoCORSWithoutOrigins(t *testing.T) {
	t.Parallel()
	a := newAPI(t, backends[1].open(t))
	anon := &client{a: a, header: http.Header{}}
	r := preflightFrom(anon, dashboard, "POST", "/v1/runs", "authorization")
	for h := range r.header {
		assert.False(t, strings.HasPrefix(h, "Access-Control-"), "no CORS header: %s", h)
	}
	c := a.user()
	c.header.Set("Origin", dashboard)
	r = c.do("GET", "/v1/runs", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
}
