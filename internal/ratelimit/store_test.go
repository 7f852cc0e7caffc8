package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/derrors"
)

const (
	logOutage   = "rate limit store unavailable"
	logRecovery = "rate limit store available again"
	testProbe   = 50 * time.Millisecond
)

// Redis stops in the middle of the test, then comes back empty on the same
// port, as after a crash and restart.
func TestAllowRedisDown(t *testing.T) {
	tests := []struct {
		failMode string
	}{{FailOpen}, {FailClosed}}
	for _, tt := range tests {
		t.Run(tt.failMode, func(t *testing.T) {
			srv := startRedisServer(t)
			check := srv.client()
			logs := &logBuffer{}
			m := NewMetrics(prometheus.NewRegistry())
			l, err := New(Config{Max: 3, Window: time.Minute, FailMode: tt.failMode},
				srv.client(), slog.New(slog.NewTextHandler(logs, nil)), m)
			require.NoError(t, err)
			l.c.probeEvery = testProbe
			ctx := context.Background()
			key := l.c.redisKey(baseKey.String())

			r, err := l.Allow(ctx, baseKey)
			require.NoError(t, err)
			require.True(t, r.Allowed)
			require.Equal(t, "1", check.Get(ctx, key).Val(), "counted in Redis while it is up")

			srv.stop()
			start := time.Now()
			const calls = 200
			for i := 1; i <= calls; i++ {
				r, err := l.Allow(ctx, baseKey)
				if tt.failMode == FailClosed {
					require.Error(t, err, "call %d", i)
					assert.True(t, errors.Is(err, derrors.Unavailable), "call %d: %v", i, err)
					assert.Equal(t, derrors.Unavailable, derrors.Category(err))
					continue
				}
				require.NoError(t, err, "call %d: fail open never errs", i)
				// The fallback starts a fresh count: its own limit applies.
				assert.Equal(t, i <= 3, r.Allowed, "call %d", i)
				assert.Equal(t, max(3-i, 0), r.Remaining, "call %d", i)
			}
			elapsed := time.Since(start)
			wantGauge := 0.0
			if tt.failMode == FailOpen {
				wantGauge = 1
			}
			assert.Equal(t, wantGauge, testutil.ToFloat64(m.fallbackActive.WithLabelValues("http")))
			errs := testutil.ToFloat64(m.storeErrors.WithLabelValues("http"))
			assert.GreaterOrEqual(t, errs, 1.0)
			// One call per probe interval tries Redis; the others do not wait on it.
			assert.LessOrEqual(t, errs, 2+float64(elapsed/testProbe), "store errors in %v", elapsed)
			assert.Equal(t, 1, logs.count(logOutage), "logged once per outage:\n%s", logs)
			assert.Zero(t, logs.count(logRecovery))

			srv.start()
			require.Eventually(t, func() bool {
				_, err := l.Allow(ctx, baseKey)
				return err == nil && check.Exists(ctx, key).Val() == 1
			}, 10*time.Second, 20*time.Millisecond, "Redis is used again once it is back")
			assert.Equal(t, 0.0, testutil.ToFloat64(m.fallbackActive.WithLabelValues("http")))
			assert.Equal(t, 1, logs.count(logRecovery), "logged once:\n%s", logs)
			assert.Equal(t, 1, logs.count(logOutage), "logged once:\n%s", logs)

			r, err = l.Allow(ctx, baseKey)
			require.NoError(t, err)
			assert.Equal(t, "2", check.Get(ctx, key).Val(), "counting in Redis again")
			assert.True(t, r.Allowed)
		})
	}
}

// A limiter starts while Redis is down, and moves to Redis when it comes up.
func TestNewWithRedisDown(t *testing.T) {
	srv := newRedisServer(t, freePort(t))
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	logs := &logBuffer{}
	m := NewMetrics(prometheus.NewRegistry())
	l, err := New(Config{Max: 2, Window: time.Minute}, rdb, slog.New(slog.NewTextHandler(logs, nil)), m)
	require.NoError(t, err, "a down Redis is an outage, not a configuration error")
	l.c.probeEvery = testProbe
	assert.Equal(t, 1.0, testutil.ToFloat64(m.fallbackActive.WithLabelValues("http")))
	assert.Equal(t, 1, logs.count(logOutage))

	ctx := context.Background()
	r, err := l.Allow(ctx, baseKey)
	require.NoError(t, err)
	assert.True(t, r.Allowed, "counted in memory")

	srv.start()
	check := srv.client()
	require.Eventually(t, func() bool {
		_, err := l.Allow(ctx, baseKey)
		return err == nil && check.Exists(ctx, l.c.redisKey(baseKey.String())).Val() == 1
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, 0.0, testutil.ToFloat64(m.fallbackActive.WithLabelValues("http")))
	assert.Equal(t, 1, logs.count(logRecovery))
}

// A request whose caller has gone is not a Redis fault.
func TestAllowCanceledContextIsNoOutage(t *testing.T) {
	logs := &logBuffer{}
	m := NewMetrics(prometheus.NewRegistry())
	rdb := sharedRedis(t)
	l, err := New(Config{Max: 2, Window: time.Minute, Prefix: testPrefix(t, rdb)}, rdb, slog.New(slog.NewTextHandler(logs, nil)), m)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.Allow(ctx, baseKey)
	require.NoError(t, err)
	assert.Zero(t, logs.count(logOutage))
	assert.False(t, l.c.down.Load())
	assert.Equal(t, 0.0, testutil.ToFloat64(m.storeErrors.WithLabelValues("http")))
}

// Each Allow costs one round trip to Redis: one EVALSHA of ulule's script.
// The count is measured twice: by a hook on the client, and by the
// server's INFO commandstats (which also lists the commands the script runs).
func TestAllowOneRedisRoundTrip(t *testing.T) {
	srv := startRedisServer(t)
	rdb := srv.client()
	hook := &roundTrips{}
	rdb.AddHook(hook)
	l, err := New(Config{Max: 5, Window: time.Minute}, rdb, nil, nil)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = l.Allow(ctx, baseKey) // a warm connection
	require.NoError(t, err)

	check := srv.client()
	before := commandCalls(t, check)
	trips := hook.n.Load()
	const n = 100
	for i := range n {
		// New keys and existing ones, under and over the limit.
		k := baseKey
		k.IP = fmt.Sprintf("192.0.2.%d", i%10)
		_, err := l.Allow(ctx, k)
		require.NoError(t, err)
	}
	delta, _ := commandDelta(before, commandCalls(t, check))
	perAllow := float64(hook.n.Load()-trips) / n
	t.Logf("per Allow: %.2f round trips; server commands over %d calls: %v", perAllow, n, delta)
	assert.Equal(t, 1.0, perAllow, "round trips per Allow")
	assert.Equal(t, int64(n), delta["evalsha"], "EVALSHA per Allow")
	for cmd := range delta {
		assert.Contains(t, []string{"evalsha", "incrby", "pexpire", "pttl"}, cmd, "only the script and what it runs")
	}
}

// After Redis restarts, its script cache is empty: ulule reloads the scripts
// (NOSCRIPT, two SCRIPT LOADs, EVALSHA again) once, then it is one round
// trip again.
func TestAllowReloadsScriptsAfterFlush(t *testing.T) {
	srv := startRedisServer(t)
	rdb := srv.client()
	l, err := New(Config{Max: 5, Window: time.Minute}, rdb, nil, nil)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, rdb.ScriptFlush(ctx).Err())
	r, err := l.Allow(ctx, baseKey)
	require.NoError(t, err)
	assert.True(t, r.Allowed)
	assert.False(t, l.c.down.Load(), "a flushed script cache is no outage")
	assert.Equal(t, "1", rdb.Get(ctx, l.c.redisKey(baseKey.String())).Val())
}
