package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"
	redisstore "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/agentstore/agentstore/internal/derrors"
)

// Fail modes: what a limiter does while Redis does not answer.
const (
	// FailOpen counts in a per-instance memory store until Redis is back.
	FailOpen = "open"
	// FailClosed refuses with a derrors.Unavailable error until Redis is back.
	FailClosed = "closed"
)

// DefaultPrefix starts every Redis key of the limiters.
const DefaultPrefix = "agentstore:rl:"

// Defaults of the Redis fault handling.
const (
	// defaultCallTimeout bounds one Redis call of a request: the dial, the
	// wait for a pooled connection and the client's retries. Socket reads
	// on an open connection are bounded by the client's ReadTimeout, or by
	// this deadline too when the client has ContextTimeoutEnabled.
	defaultCallTimeout = 300 * time.Millisecond
	// defaultProbeEvery is how often, during an outage, one request tries
	// Redis again; the others go straight to the fallback.
	defaultProbeEvery = time.Second
)

// counter counts hits per key in Redis when one is given, and in memory
// otherwise or while Redis is down (fail open). It is shared by Limiter and
// EventLimiter.
//
// Health is a small circuit breaker: while Redis is up every call goes to it
// (one EVALSHA, one round trip); the first error opens the breaker, logs once
// and counts; then at most one call per probeEvery tries Redis again, the
// others use the fallback (or fail, when closed) without waiting on a dead
// server. The first success closes the breaker and logs once.
type counter struct {
	scope      string // "http" or "ws", for logs and metrics
	rdb        *redis.Client
	prefix     string // for ulule, without the trailing colon it adds
	failClosed bool
	log        *slog.Logger
	m          *Metrics

	callTimeout time.Duration
	probeEvery  time.Duration

	mem   limiter.Store                 // primary without Redis, fallback with it
	store atomic.Pointer[limiter.Store] // ulule's Redis store, once its scripts are loaded

	down      atomic.Bool // the breaker is open
	mu        sync.Mutex  // guards what follows
	probing   bool
	nextProbe time.Time
	since     time.Time // start of the outage
}

func newCounter(scope, failMode, prefix string, rdb *redis.Client, log *slog.Logger, m *Metrics) (*counter, error) {
	switch failMode {
	case "":
		failMode = FailOpen
	case FailOpen, FailClosed:
	default:
		return nil, fmt.Errorf("ratelimit: fail mode %q must be %q or %q", failMode, FailOpen, FailClosed)
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &counter{
		scope:       scope,
		rdb:         rdb,
		prefix:      strings.TrimSuffix(prefix, ":"),
		failClosed:  failMode == FailClosed,
		log:         log,
		m:           m,
		callTimeout: defaultCallTimeout,
		probeEvery:  defaultProbeEvery,
		mem: memory.NewStoreWithOptions(limiter.StoreOptions{
			Prefix:          "mem",
			CleanUpInterval: limiter.DefaultCleanUpInterval,
		}),
	}
	if rdb != nil {
		// Load the scripts now when Redis answers; otherwise start in an
		// outage rather than refuse to start, and let a probe load them.
		ctx, cancel := context.WithTimeout(context.Background(), c.callTimeout)
		defer cancel()
		if _, err := c.redisStore(ctx); err != nil {
			c.failed(err)
		}
	}
	return c, nil
}

// redisKey is the Redis key of a limiter key.
func (c *counter) redisKey(key string) string { return c.prefix + ":" + key }

// hit counts one hit on key under rate and returns the counter's state.
// Its only error is a derrors.Unavailable one, in closed mode.
func (c *counter) hit(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	if c.rdb == nil {
		return c.mem.Get(ctx, key, rate)
	}
	var err error
	if c.try() {
		var lc limiter.Context
		lc, err = c.hitRedis(ctx, key, rate)
		switch {
		case err == nil:
			c.recovered()
			return lc, nil
		case ctx.Err() != nil:
			// The caller gave up; that says nothing about Redis.
			c.mu.Lock()
			c.probing = false
			c.mu.Unlock()
		default:
			c.failed(err)
		}
	}
	if c.failClosed {
		return limiter.Context{}, &derrors.Error{
			Category: derrors.Unavailable,
			Message:  "rate limit store unavailable",
			Cause:    err,
		}
	}
	return c.mem.Get(ctx, key, rate)
}

// try reports whether this call should go to Redis: always while it is up,
// once per probeEvery during an outage.
func (c *counter) try() bool {
	if !c.down.Load() {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.probing || now.Before(c.nextProbe) {
		return false
	}
	c.probing = true
	return true
}

func (c *counter) hitRedis(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	st, err := c.redisStore(ctx)
	if err != nil {
		return limiter.Context{}, err
	}
	return st.Get(ctx, key, rate)
}

// redisStore returns ulule's Redis store, making it on first use. Making it
// loads two scripts, so it is only tried after a PING answers within the
// deadline: ulule loads them without one.
func (c *counter) redisStore(ctx context.Context) (limiter.Store, error) {
	if st := c.store.Load(); st != nil {
		return *st, nil
	}
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return nil, err
	}
	st, err := redisstore.NewStoreWithOptions(c.rdb, limiter.StoreOptions{Prefix: c.prefix})
	if err != nil {
		return nil, err
	}
	c.store.CompareAndSwap(nil, &st)
	return *c.store.Load(), nil
}

// failed records a Redis error and opens the breaker, logging when that
// starts an outage.
func (c *counter) failed(err error) {
	c.m.storeError(c.scope)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.probing = false
	c.nextProbe = now.Add(c.probeEvery)
	if c.down.Load() {
		return
	}
	c.down.Store(true)
	c.since = now
	if c.failClosed {
		c.log.Warn("rate limit store unavailable, refusing requests until it is back",
			"scope", c.scope, "fail_mode", FailClosed, "err", err)
		return
	}
	c.m.fallback(c.scope, true)
	c.log.Warn("rate limit store unavailable, counting in this instance's memory until it is back",
		"scope", c.scope, "fail_mode", FailOpen, "err", err)
}

// recovered closes the breaker, logging when that ends an outage.
func (c *counter) recovered() {
	if !c.down.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probing = false
	if !c.down.Load() {
		return
	}
	c.down.Store(false)
	if !c.failClosed {
		c.m.fallback(c.scope, false)
	}
	c.log.Info("rate limit store available again",
		"scope", c.scope, "outage_ms", time.Since(c.since).Milliseconds())
}
