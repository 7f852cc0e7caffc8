// Package ratelimit decides whether a request or a WebSocket event is within
// its budget. Counters live in Redis when there is one, so that every
// instance enforces one global limit, and in memory otherwise; both stores
// are ulule/limiter's fixed windows. When Redis fails, a limiter either
// keeps counting in its own memory (fail open) or refuses (fail closed).
//
// The package knows no HTTP types: the middleware asks Allow for a Result
// and renders it with Headers.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
)

// Policies name the budget a Result was counted against.
const (
	// PolicyDefault is the budget of every tenant without an override.
	PolicyDefault = "default"
	// PolicyTenant is a tenant's own budget, from TenantOverrides.
	PolicyTenant = "tenant"
)

// Config configures the HTTP limiter.
type Config struct {
	// Max is the number of requests a key may make per Window
	// (RATE_LIMIT_MAX, 120).
	Max int
	// Window is the length of a fixed window, at least a millisecond
	// (RATE_LIMIT_WINDOW_MS, 60s).
	Window time.Duration
	// TenantOverrides replaces Max for the keys of some tenants
	// (RATE_LIMIT_TENANT_OVERRIDES, read by ParseOverrides).
	TenantOverrides map[uuid.UUID]int
	// FailMode is FailOpen (the default when empty) or FailClosed
	// (RATE_LIMIT_FAIL_MODE).
	FailMode string
	// Prefix starts the Redis keys, DefaultPrefix when empty. Instances
	// that share a limit share a prefix.
	Prefix string
}

// Key identifies one budget: a tenant's (or an anonymous caller's) requests
// with one method to one route from one client address.
type Key struct {
	// Tenant is the tenant's UUID, or "-" (or empty) when the request
	// carries no valid token.
	Tenant string
	// Method is the HTTP method.
	Method string
	// Route is the route template, such as "/v1/runs/:id", never the raw
	// path: a raw path would give every resource its own budget.
	Route string
	// IP is the client address.
	IP string
}

// String returns the key as stored: "<tenant or ->|<METHOD>|<route>|<ip>".
func (k Key) String() string {
	t := k.Tenant
	if t == "" {
		t = "-"
	}
	return t + "|" + k.Method + "|" + k.Route + "|" + k.IP
}

// Result is the decision on one request and the state of its budget.
type Result struct {
	// Limit is the budget per window.
	Limit int
	// Remaining is what is left of it after this request, never negative.
	Remaining int
	// Reset is when the window ends. It is rounded up to the second (the
	// stores count in whole seconds) but never later than a Window from now.
	Reset time.Time
	// Allowed reports whether the request may proceed.
	Allowed bool
	// RetryAfter is how long to wait when not Allowed; positive then.
	RetryAfter time.Duration
	// Policy is PolicyDefault or PolicyTenant.
	Policy string
	// Window is the length of the window.
	Window time.Duration
}

// Limiter limits HTTP requests per Key. It is safe for concurrent use.
type Limiter struct {
	c         *counter
	window    time.Duration
	rate      limiter.Rate
	overrides map[uuid.UUID]limiter.Rate
	m         *Metrics
}

// New returns a Limiter that counts in Redis through rdb, or in memory when
// rdb is nil. Its only error is a bad cfg; Redis being down is not one: the
// limiter starts in an outage and recovers when Redis answers.
//
// Each Redis call is bounded by a short deadline (300ms) that covers dialing,
// pool waits and the client's retries; give rdb a short ReadTimeout too, or
// ContextTimeoutEnabled, so that a hung (not refused) server cannot hold a
// request longer. During an outage only one request per second tries Redis.
// log and m may be nil.
func New(cfg Config, rdb *redis.Client, log *slog.Logger, m *Metrics) (*Limiter, error) {
	if err := checkRate(cfg.Max, cfg.Window); err != nil {
		return nil, err
	}
	l := &Limiter{
		window:    cfg.Window,
		rate:      limiter.Rate{Limit: int64(cfg.Max), Period: cfg.Window},
		overrides: make(map[uuid.UUID]limiter.Rate, len(cfg.TenantOverrides)),
		m:         m,
	}
	for id, n := range cfg.TenantOverrides {
		if n < 1 {
			return nil, fmt.Errorf("ratelimit: override of tenant %s: max %d must be at least 1", id, n)
		}
		l.overrides[id] = limiter.Rate{Limit: int64(n), Period: cfg.Window}
	}
	c, err := newCounter("http", cfg.FailMode, cfg.Prefix, rdb, log, m)
	if err != nil {
		return nil, err
	}
	l.c = c
	return l, nil
}

func checkRate(limit int, window time.Duration) error {
	if limit < 1 {
		return fmt.Errorf("ratelimit: max %d must be at least 1", limit)
	}
	if window < time.Millisecond {
		return fmt.Errorf("ratelimit: window %v must be at least 1ms", window)
	}
	return nil
}

// Allow counts one request against k's budget and says whether it may
// proceed. Its only error is a derrors.Unavailable one, when Redis is down
// and the fail mode is closed.
func (l *Limiter) Allow(ctx context.Context, k Key) (Result, error) {
	rate, policy := l.rateOf(k.Tenant)
	lc, err := l.c.hit(ctx, k.String(), rate)
	if err != nil {
		return Result{}, err
	}
	r := result(lc, time.Now(), l.window, policy)
	if !r.Allowed {
		l.m.rejected(k.Method, k.Route)
	}
	return r, nil
}

// rateOf returns the rate and policy of a tenant's keys.
func (l *Limiter) rateOf(tenant string) (limiter.Rate, string) {
	if len(l.overrides) == 0 || tenant == "" || tenant == "-" {
		return l.rate, PolicyDefault
	}
	id, err := uuid.Parse(tenant)
	if err != nil {
		return l.rate, PolicyDefault
	}
	if r, ok := l.overrides[id]; ok {
		return r, PolicyTenant
	}
	return l.rate, PolicyDefault
}

// result turns ulule's context into a Result. ulule reports the window's end
// in whole Unix seconds, truncated: the true end lies in [Reset, Reset+1s),
// so Reset+1s is a safe bound, and so is now+window.
func result(lc limiter.Context, now time.Time, window time.Duration, policy string) Result {
	reset := time.Unix(lc.Reset+1, 0)
	if latest := now.Add(window); reset.After(latest) {
		reset = latest
	}
	r := Result{
		Limit:     int(lc.Limit),
		Remaining: int(lc.Remaining),
		Reset:     reset,
		Allowed:   !lc.Reached,
		Policy:    policy,
		Window:    window,
	}
	if !r.Allowed {
		r.RetryAfter = max(reset.Sub(now), time.Millisecond)
	}
	return r
}

// ParseOverrides reads RATE_LIMIT_TENANT_OVERRIDES: comma-separated
// "<tenant uuid>=<max>" pairs, spaces allowed around each part. An empty
// string gives an empty map.
func ParseOverrides(s string) (map[uuid.UUID]int, error) {
	out := map[uuid.UUID]int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var errs []error
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		idText, maxText, ok := strings.Cut(item, "=")
		idText, maxText = strings.TrimSpace(idText), strings.TrimSpace(maxText)
		if !ok {
			errs = append(errs, fmt.Errorf("%q: want <tenant uuid>=<max>", item))
			continue
		}
		tenant, err := uuid.Parse(idText)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q: %q is not a UUID", item, idText))
			continue
		}
		n, err := strconv.Atoi(maxText)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%q: max %q must be a positive integer", item, maxText))
			continue
		}
		if _, dup := out[tenant]; dup {
			errs = append(errs, fmt.Errorf("%q: tenant %s is listed twice", item, tenant))
			continue
		}
		out[tenant] = n
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
