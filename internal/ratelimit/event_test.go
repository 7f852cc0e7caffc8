package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestEventLimiter(t *testing.T, cfg EventConfig, rdb *redis.Client, m *Metrics) *EventLimiter {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = testPrefix(t, rdb)
	}
	e, err := NewEventLimiter(cfg, rdb, nil, m)
	require.NoError(t, err)
	return e
}

const (
	evTenant = "0b7c6a3e-6c1f-4b8e-9a57-3f5d0c7e2a11"
	evUser   = "6f1d2c3b-aaaa-4bbb-8ccc-ddddeeeeffff"
	evIP     = "203.0.113.7"
)

func TestEventKey(t *testing.T) {
	assert.Equal(t, "ws:t:u:192.0.2.1:agent.thinking", EventKey("t", "u", "192.0.2.1", "agent.thinking"))
}

func TestEventLimiterAllow(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			e := newTestEventLimiter(t, EventConfig{Max: 3, Window: time.Second}, sc.rdb, m)
			ctx := context.Background()
			for i := 1; i <= 3; i++ {
				ok, retry, err := e.Allow(ctx, evTenant, evUser, evIP, "agent.thinking")
				require.NoError(t, err)
				assert.True(t, ok, "event %d", i)
				assert.Zero(t, retry)
			}
			ok, retry, err := e.Allow(ctx, evTenant, evUser, evIP, "agent.thinking")
			require.NoError(t, err)
			assert.False(t, ok, "event 4")
			assert.Greater(t, retry, time.Duration(0))
			assert.LessOrEqual(t, retry, time.Second, "never more than the window")
			assert.Equal(t, 1.0, testutil.ToFloat64(m.throttledTotal))

			others := []struct{ name, tenant, user, ip, event string }{
				{"another event", evTenant, evUser, evIP, "agent.done"},
				{"another user", evTenant, "11111111-2222-4333-8444-555555555555", evIP, "agent.thinking"},
				{"another tenant", "22222222-3333-4444-8555-666666666666", evUser, evIP, "agent.thinking"},
				{"another ip", evTenant, evUser, "198.51.100.9", "agent.thinking"},
			}
			for _, o := range others {
				ok, _, err := e.Allow(ctx, o.tenant, o.user, o.ip, o.event)
				require.NoError(t, err)
				assert.True(t, ok, o.name)
			}
			if sc.rdb != nil {
				assert.Equal(t, "4", sc.rdb.Get(ctx, e.c.redisKey(EventKey(evTenant, evUser, evIP, "agent.thinking"))).Val())
			}

			time.Sleep(retry)
			ok, _, err = e.Allow(ctx, evTenant, evUser, evIP, "agent.thinking")
			require.NoError(t, err)
			assert.True(t, ok, "after retryAfter, a new window")
		})
	}
}

// Two instances sharing one Redis enforce one event limit between them.
func TestEventLimiterSharedRedis(t *testing.T) {
	rdb := sharedRedis(t)
	cfg := EventConfig{Max: 200, Window: time.Minute, Prefix: testPrefix(t, rdb)}
	a := newTestEventLimiter(t, cfg, rdb, nil)
	other := redis.NewClient(rdb.Options())
	t.Cleanup(func() { _ = other.Close() })
	b := newTestEventLimiter(t, cfg, other, nil)

	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := range 10 {
		e := a
		if w%2 == 1 {
			e = b
		}
		wg.Go(func() {
			for range 30 {
				ok, _, err := e.Allow(context.Background(), evTenant, evUser, evIP, "agent.thinking")
				if !assert.NoError(t, err) {
					return
				}
				if ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(200), allowed.Load())
}
