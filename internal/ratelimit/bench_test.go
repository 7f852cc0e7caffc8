package ratelimit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkAllow measures one decision on each store. On Redis (a server of
// the benchmark's own, so that no other test's commands are counted) it
// reports the round trips and the EVALSHAs per decision.
func BenchmarkAllow(b *testing.B) {
	cfg := Config{Max: 1 << 30, Window: time.Minute}
	b.Run("memory", func(b *testing.B) {
		l, err := New(cfg, nil, nil, nil)
		require.NoError(b, err)
		benchAllow(b, l)
	})
	for _, parallel := range []bool{false, true} {
		name := "redis"
		if parallel {
			name = "redis-parallel"
		}
		b.Run(name, func(b *testing.B) {
			srv := startRedisServer(b)
			rdb := srv.client()
			hook := &roundTrips{}
			rdb.AddHook(hook)
			l, err := New(cfg, rdb, nil, nil)
			require.NoError(b, err)
			check := srv.client()
			before := commandCalls(b, check)
			trips := hook.n.Load()
			if parallel {
				benchAllowParallel(b, l)
			} else {
				benchAllow(b, l)
			}
			b.StopTimer()
			delta, _ := commandDelta(before, commandCalls(b, check))
			b.ReportMetric(float64(hook.n.Load()-trips)/float64(b.N), "round-trips/op")
			b.ReportMetric(float64(delta["evalsha"])/float64(b.N), "evalsha/op")
		})
	}
}

func benchAllow(b *testing.B, l *Limiter) {
	ctx := context.Background()
	k := baseKey
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k.IP = "192.0.2." + strconv.Itoa(i%200)
		if _, err := l.Allow(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
}

func benchAllowParallel(b *testing.B, l *Limiter) {
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		k := baseKey
		for pb.Next() {
			k.IP = "192.0.2." + strconv.Itoa(int(n.Add(1)%200))
			if _, err := l.Allow(ctx, k); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
