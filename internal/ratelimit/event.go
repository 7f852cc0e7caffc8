package ratelimit

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
)

// EventConfig configures the limiter of events that WebSocket clients
// publish.
type EventConfig struct {
	// Max is the number of events a key may publish per Window
	// (WS_BROADCAST_MAX, 200).
	Max int
	// Window is the length of a fixed window, at least a millisecond
	// (WS_BROADCAST_WINDOW_MS, 1s).
	Window time.Duration
	// FailMode is FailOpen (the default when empty) or FailClosed.
	FailMode string
	// Prefix starts the Redis keys, DefaultPrefix when empty. It may be the
	// HTTP limiter's: event keys start with "ws:", request keys never do.
	Prefix string
}

// EventLimiter limits the events a client publishes, per tenant, user,
// address and event name. It is safe for concurrent use.
type EventLimiter struct {
	c    *counter
	rate limiter.Rate
	m    *Metrics
}

// NewEventLimiter returns an EventLimiter that counts in Redis through rdb,
// or in memory when rdb is nil; see New for how Redis faults are handled.
// log and m may be nil.
func NewEventLimiter(cfg EventConfig, rdb *redis.Client, log *slog.Logger, m *Metrics) (*EventLimiter, error) {
	if err := checkRate(cfg.Max, cfg.Window); err != nil {
		return nil, err
	}
	c, err := newCounter("ws", cfg.FailMode, cfg.Prefix, rdb, log, m)
	if err != nil {
		return nil, err
	}
	return &EventLimiter{c: c, rate: limiter.Rate{Limit: int64(cfg.Max), Period: cfg.Window}, m: m}, nil
}

// EventKey returns the key of one event budget:
// "ws:<tenant>:<user>:<ip>:<event>".
func EventKey(tenant, user, ip, event string) string {
	return "ws:" + tenant + ":" + user + ":" + ip + ":" + event
}

// Allow counts one event and says whether it may be delivered, and if not,
// how long the client should wait. The caller should bound the length of
// event, which the client chooses. Its only error is a derrors.Unavailable
// one, when Redis is down and the fail mode is closed.
func (e *EventLimiter) Allow(ctx context.Context, tenant, user, ip, event string) (allowed bool, retryAfter time.Duration, err error) {
	lc, err := e.c.hit(ctx, EventKey(tenant, user, ip, event), e.rate)
	if err != nil {
		return false, 0, err
	}
	r := result(lc, time.Now(), e.rate.Period, PolicyDefault)
	if !r.Allowed {
		e.m.throttled()
	}
	return r.Allowed, r.RetryAfter, nil
}
