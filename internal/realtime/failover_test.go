package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestLocalStartsAboveFloor: a channel the failover numbers locally starts
// above its floor (what this instance already sent, numbered by a clock
// ahead of ours), and at the clock in microseconds otherwise.
func TestLocalStartsAboveFloor(t *testing.T) {
	var got []*event
	ctx := context.Background()
	tenantID := uuid.New()
	ahead := chanKey{tenant: tenantID, channel: "runs"}
	other := chanKey{tenant: tenantID, channel: "run:" + uuid.NewString()}
	far := uint64(time.Now().Add(time.Hour).UnixMicro())
	sent := func(k chanKey) uint64 {
		if k == ahead {
			return far
		}
		return 0
	}
	b := newMemBroker(10, time.Minute, func(e *event) { got = append(got, e) }, localStart(sent))
	defer b.stop()

	before := uint64(time.Now().UnixMicro())
	require.NoError(t, b.publish(ctx, []chanKey{ahead, other}, "e", json.RawMessage(`{}`), ""))
	require.Len(t, got, 2)
	require.Equal(t, far+1, got[0].offset, "above the floor")
	require.Greater(t, got[1].offset, before, "from the clock")
	require.Less(t, got[1].offset, far)

	top, _, err := b.snapshot(ctx, ahead, nil)
	require.NoError(t, err)
	require.Equal(t, far+1, top)
}

// brokerGoroutines counts the goroutines running one of the brokers'
// loops: the memory broker's sweep, the Redis broker's pub/sub reader and
// the failover's probe. A goroutine started but not yet running its loop
// is not counted; one whose loop returned is not either, even while it
// still runs the deferred Done of its WaitGroup.
func brokerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range []string{"realtime.(*memBroker).sweep(", "realtime.(*redisBroker).receive(", "realtime.(*failover).probe("} {
			if strings.Contains(g, fn) {
				count++
				break
			}
		}
	}
	return count
}

// TestStopWaitsForGoroutines: each broker's stop returns only once every
// goroutine it started has ended, the failover's probe included.
func TestStopWaitsForGoroutines(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		base := brokerGoroutines()
		b := newMemBroker(10, time.Minute, func(*event) {}, nil)
		t.Cleanup(b.stop)
		require.Eventually(t, func() bool { return brokerGoroutines() == base+1 }, 5*time.Second, time.Millisecond, "the sweep runs")
		b.stop()
		require.Equal(t, base, brokerGoroutines(), "the sweep ended before stop returned")
		b.stop() // a second stop is harmless
	})

	t.Run("failover", func(t *testing.T) {
		rdb := testRedis(t)
		prefix := testPrefix(t, rdb)
		proxy := newTCPProxy(t, rdb.Options().Addr)
		opts := *rdb.Options()
		opts.Addr = proxy.addr
		opts.MaxRetries = -1
		cut := redis.NewClient(&opts)
		t.Cleanup(func() { _ = cut.Close() })

		base := brokerGoroutines()
		log := slog.New(slog.DiscardHandler)
		rb, err := newRedisBroker(context.Background(), cut, prefix, 10, time.Minute, func(*event) {}, log)
		require.NoError(t, err)
		f := newFailover(rb, newMemBroker(10, time.Minute, func(*event) {}, nil), func() {}, log, nil)
		t.Cleanup(f.stop)
		require.Eventually(t, func() bool { return brokerGoroutines() == base+2 }, 5*time.Second, time.Millisecond,
			"the sweep and the pub/sub reader run")

		proxy.cut() // the pub/sub link breaks: local-only, with a probe
		require.Eventually(t, func() bool { return f.localOnly.Load() && brokerGoroutines() == base+3 },
			10*time.Second, 10*time.Millisecond, "the probe runs")
		f.stop()
		require.Equal(t, base, brokerGoroutines(), "every goroutine ended before stop returned")
	})

	// A probe stuck in a call that outlasts its context, as one on a
	// hanging network would: stop waits for it all the same.
	t.Run("probe", func(t *testing.T) {
		base := brokerGoroutines()
		p := &downPrimary{pinging: make(chan struct{})}
		f := newFailover(p, newMemBroker(10, time.Minute, func(*event) {}, nil), func() {}, slog.New(slog.DiscardHandler), nil)
		t.Cleanup(f.stop)
		key := chanKey{tenant: uuid.New(), channel: "runs"}
		require.NoError(t, f.publish(context.Background(), []chanKey{key}, "e", json.RawMessage(`{}`), ""))
		require.True(t, f.localOnly.Load())
		select {
		case <-p.pinging:
		case <-time.After(10 * time.Second):
			t.Fatal("the probe never pinged")
		}
		require.Equal(t, base+2, brokerGoroutines(), "the sweep and the probe")
		f.stop()
		require.Equal(t, base, brokerGoroutines(), "the probe ended before stop returned")
	})

	// Publish keeps working after stop (writes still draining reach the
	// other instances); when Redis fails then, it goes local-only without
	// starting a probe that nothing would wait for.
	t.Run("publish after stop", func(t *testing.T) {
		rdb := testRedis(t)
		prefix := testPrefix(t, rdb)
		proxy := newTCPProxy(t, rdb.Options().Addr)
		opts := *rdb.Options()
		opts.Addr = proxy.addr
		opts.MaxRetries = -1
		cut := redis.NewClient(&opts)
		t.Cleanup(func() { _ = cut.Close() })

		base := brokerGoroutines()
		log := slog.New(slog.DiscardHandler)
		rb, err := newRedisBroker(context.Background(), cut, prefix, 10, time.Minute, func(*event) {}, log)
		require.NoError(t, err)
		var local []*event
		f := newFailover(rb, newMemBroker(10, time.Minute, func(e *event) { local = append(local, e) }, nil), func() {}, log, nil)
		f.stop()
		require.Equal(t, base, brokerGoroutines(), "every goroutine ended before stop returned")

		key := chanKey{tenant: uuid.New(), channel: "runs"}
		ctx := context.Background()
		require.NoError(t, f.publish(ctx, []chanKey{key}, "shared", json.RawMessage(`{}`), ""))
		require.Empty(t, local, "through Redis")
		proxy.cut()
		require.NoError(t, f.publish(ctx, []chanKey{key}, "local", json.RawMessage(`{}`), ""))
		require.True(t, f.localOnly.Load())
		require.Len(t, local, 1, "delivered locally")
		require.Equal(t, base, brokerGoroutines(), "no probe after stop")
	})
}

// downPrimary is a primary that is down: publish fails, and ping returns
// only a while after its context ended.
type downPrimary struct {
	pinging chan struct{} // closed by the first ping
	once    sync.Once
}

func (p *downPrimary) publish(context.Context, []chanKey, string, json.RawMessage, string) error {
	return errors.New("down")
}

func (p *downPrimary) snapshot(context.Context, chanKey, *uint64) (uint64, []*event, error) {
	return 0, nil, errors.New("down")
}

func (p *downPrimary) run(func(bool, error)) {}

func (p *downPrimary) ping(ctx context.Context) error {
	p.once.Do(func() { close(p.pinging) })
	<-ctx.Done()
	time.Sleep(200 * time.Millisecond)
	return ctx.Err()
}

func (p *downPrimary) raise(context.Context, map[chanKey]uint64) error { return errors.New("down") }

func (p *downPrimary) stop() {}
