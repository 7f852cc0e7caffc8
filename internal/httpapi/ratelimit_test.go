package httpapi

import (
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/ratelimit"
)

// limitedAPI is an API whose limiter allows max requests per window, with
// 127.0.0.0/8 as trusted proxies when trustLoopback is set.
func limitedAPI(t *testing.T, max int, window time.Duration, trustLoopback bool) *api {
	t.Helper()
	st := backends[1].open(t)
	return newAPIWith(t, st, func(d *Deps) {
		l, err := ratelimit.New(ratelimit.Config{Max: max, Window: window, FailMode: ratelimit.FailOpen}, nil, d.Log, ratelimit.NewMetrics(d.Registry))
		require.NoError(t, err)
		d.Limiter = l
		if trustLoopback {
			_, n, _ := net.ParseCIDR("127.0.0.0/8")
			d.TrustedProxies = []*net.IPNet{n}
		}
	})
}

func TestRateLimitThresholdAndHeaders(t *testing.T) {
	t.Parallel()
	a := limitedAPI(t, 5, time.Minute, false)
	c := a.user()
	for i := 1; i <= 5; i++ {
		r := c.do("GET", "/v1/runs", nil)
		require.Equal(t, http.StatusOK, r.status, "request %d", i)
		assert.Equal(t, "5", r.header.Get("X-RateLimit-Limit"))
		assert.Equal(t, strconv.Itoa(5-i), r.header.Get("X-RateLimit-Remaining"))
		assert.NotEmpty(t, r.header.Get("X-RateLimit-Reset"))
		assert.Equal(t, `"default";q=5;w=60`, r.header.Get("RateLimit-Policy"))
		assert.Regexp(t, `^"default";r=`+strconv.Itoa(5-i)+`;t=\d+$`, r.header.Get("RateLimit"))
	}
	r := c.do("GET", "/v1/runs", nil)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	var body ErrorBody
	r.json(t, &body)
	assert.Equal(t, derrors.CodeRateLimited, body.Code)
	require.NotNil(t, body.RetryAfterMs)
	assert.Positive(t, *body.RetryAfterMs)
	assert.NotEmpty(t, body.RequestID)
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, retry, 1)
	assert.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))

	assert.Equal(t, http.StatusOK, a.user().do("GET", "/v1/runs", nil).status, "another tenant has its own budget")
	assert.Equal(t, http.StatusNotFound, c.do("GET", "/v1/runs/"+uuid.NewString(), nil).status, "another route has its own budget")
	assert.Equal(t, http.StatusCreated, c.do("POST", "/v1/runs", map[string]any{"agentName": "x"}).status, "another method has its own budget")
	anon := &client{a: a, header: http.Header{}}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		for i := 0; i < 7; i++ {
			require.Equal(t, http.StatusOK, anon.do("GET", path, nil).status, "%s is never limited", path)
		}
	}
	r = anon.do("GET", "/metrics", nil)
	assert.Contains(t, string(r.body), `agentstore_ratelimit_rejected_total{method="GET",route="/v1/runs",scope="http"} 1`)
}

func TestRateLimitWindowResets(t *testing.T) {
	t.Parallel()
	a := limitedAPI(t, 2, time.Second, false)
	c := a.user()
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/runs", nil).status)
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/runs", nil).status)
	r := c.do("GET", "/v1/runs", nil)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	var body ErrorBody
	r.json(t, &body)
	time.Sleep(time.Duration(*body.RetryAfterMs)*time.Millisecond + 50*time.Millisecond)
	assert.Equal(t, http.StatusOK, c.do("GET", "/v1/runs", nil).status, "a new window")
}

func TestRateLimitsBadTokensUnderDash(t *testing.T) {
	t.Parallel()
	a := limitedAPI(t, 3, time.Minute, false)
	bad := &client{a: a, token: "garbage", header: http.Header{}}
	none := &client{a: a, header: http.Header{}}
	assert.Equal(t, http.StatusUnauthorized, bad.do("GET", "/v1/runs", nil).status)
	assert.Equal(t, http.StatusUnauthorized, none.do("GET", "/v1/runs", nil).status)
	assert.Equal(t, http.StatusUnauthorized, bad.do("GET", "/v1/runs", nil).status)
	r := none.do("GET", "/v1/runs", nil)
	assert.Equal(t, http.StatusTooManyRequests, r.status, "callers without a valid token share the tenant - budget and are limited before rejection")
	assert.Equal(t, http.StatusOK, a.user().do("GET", "/v1/runs", nil).status, "a real tenant is unaffected")
}

func TestRateLimitClientIP(t *testing.T) {
	t.Parallel()
	t.Run("untrusted peer: X-Forwarded-For is ignored", func(t *testing.T) {
		t.Parallel()
		a := limitedAPI(t, 2, time.Minute, false)
		c := a.user()
		for i, xff := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
			c.header.Set("X-Forwarded-For", xff)
			want := http.StatusOK
			if i == 2 {
				want = http.StatusTooManyRequests
			}
			assert.Equal(t, want, c.do("GET", "/v1/runs", nil).status, "spoofed %s does not change the key", xff)
		}
	})
	t.Run("trusted proxy: the rightmost untrusted hop is the client", func(t *testing.T) {
		t.Parallel()
		a := limitedAPI(t, 1, time.Minute, true)
		c := a.user()
		c.header.Set("X-Forwarded-For", "198.51.100.9, 203.0.113.1")
		assert.Equal(t, http.StatusOK, c.do("GET", "/v1/runs", nil).status)
		c.header.Set("X-Forwarded-For", "198.51.100.77, 203.0.113.1")
		assert.Equal(t, http.StatusTooManyRequests, c.do("GET", "/v1/runs", nil).status, "a forged leftmost entry does not buy a new budget")
		c.header.Set("X-Forwarded-For", "203.0.113.2")
		assert.Equal(t, http.StatusOK, c.do("GET", "/v1/runs", nil).status, "another client address has its own budget")
		var logs List[AuditLog]
		c.header.Set("X-Forwarded-For", "203.0.113.3")
		c.do("POST", "/v1/runs", map[string]any{"agentName": "x"})
		c.header.Set("X-Forwarded-For", "203.0.113.4")
		c.do("GET", "/v1/audit-logs", nil).json(t, &logs)
		require.Len(t, logs.Data, 1)
		assert.Equal(t, "203.0.113.3", *logs.Data[0].IP, "audit rows record the client address")
	})
}
