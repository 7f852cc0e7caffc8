package ratelimit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHeaders(t *testing.T) {
	now := time.Unix(1_700_000_000, 250_000_000) // x.25s
	tests := []struct {
		name string
		r    Result
		want map[string]string
	}{
		{
			name: "allowed",
			r: Result{Limit: 120, Remaining: 117, Reset: time.Unix(1_700_000_042, 0), Allowed: true,
				Policy: PolicyDefault, Window: time.Minute},
			want: map[string]string{
				"X-RateLimit-Limit":     "120",
				"X-RateLimit-Remaining": "117",
				"X-RateLimit-Reset":     "1700000042",
				"RateLimit-Policy":      `"default";q=120;w=60`,
				"RateLimit":             `"default";r=117;t=42`,
			},
		},
		{
			name: "refused",
			r: Result{Limit: 120, Remaining: 0, Reset: time.Unix(1_700_000_030, 0), Allowed: false,
				RetryAfter: 29750 * time.Millisecond, Policy: PolicyDefault, Window: time.Minute},
			want: map[string]string{
				"X-RateLimit-Limit":     "120",
				"X-RateLimit-Remaining": "0",
				"X-RateLimit-Reset":     "1700000030",
				"RateLimit-Policy":      `"default";q=120;w=60`,
				"RateLimit":             `"default";r=0;t=30`,
				"Retry-After":           "30",
			},
		},
		{
			name: "tenant override, sub-second parts rounded up",
			r: Result{Limit: 500, Remaining: 0, Reset: time.Unix(1_700_000_000, 600_000_000), Allowed: false,
				RetryAfter: 350 * time.Millisecond, Policy: PolicyTenant, Window: 1500 * time.Millisecond},
			want: map[string]string{
				"X-RateLimit-Limit":     "500",
				"X-RateLimit-Remaining": "0",
				"X-RateLimit-Reset":     "1700000001",
				"RateLimit-Policy":      `"tenant";q=500;w=2`,
				"RateLimit":             `"tenant";r=0;t=1`,
				"Retry-After":           "1",
			},
		},
		{
			name: "retry-after at least 1 and never before the window's end",
			r: Result{Limit: 1, Remaining: 0, Reset: time.Unix(1_700_000_003, 0), Allowed: false,
				RetryAfter: 0, Window: 100 * time.Millisecond},
			want: map[string]string{
				"X-RateLimit-Limit":     "1",
				"X-RateLimit-Remaining": "0",
				"X-RateLimit-Reset":     "1700000003",
				"RateLimit-Policy":      `"default";q=1;w=1`,
				"RateLimit":             `"default";r=0;t=3`,
				"Retry-After":           "3",
			},
		},
		{
			name: "reset passed",
			r: Result{Limit: 5, Remaining: 4, Reset: time.Unix(1_699_999_999, 0), Allowed: true,
				Policy: PolicyDefault, Window: time.Second},
			want: map[string]string{
				"X-RateLimit-Limit":     "5",
				"X-RateLimit-Remaining": "4",
				"X-RateLimit-Reset":     "1699999999",
				"RateLimit-Policy":      `"default";q=5;w=1`,
				"RateLimit":             `"default";r=4;t=0`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, headersAt(tt.r, now))
		})
	}
}

func TestHeadersNow(t *testing.T) {
	r := Result{Limit: 120, Remaining: 0, Reset: time.Now().Add(30 * time.Second), Allowed: false,
		RetryAfter: 30 * time.Second, Policy: PolicyDefault, Window: time.Minute}
	h := Headers(r)
	assert.Equal(t, `"default";r=0;t=30`, h["RateLimit"])
	assert.Equal(t, "30", h["Retry-After"])
}
