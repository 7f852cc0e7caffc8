package realtime

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/ratelimit"
)

func TestNewConfig(t *testing.T) {
	_, err := New(context.Background(), Config{AllowedOrigins: []string{"*"}, Production: true}, nil, nil, nil)
	require.ErrorContains(t, err, `"*"`)
	_, err = New(context.Background(), Config{AllowedOrigins: []string{"app.example.com"}}, nil, nil, nil)
	require.Error(t, err)
	_, err = New(context.Background(), Config{PingInterval: time.Minute, PongWait: time.Second}, nil, nil, nil)
	require.Error(t, err)

	h, err := New(context.Background(), Config{AllowedOrigins: []string{"*"}}, nil, nil, nil)
	require.NoError(t, err)
	assert.True(t, h.origins.allows("https://anything.example"))
	assert.Equal(t, int64(DefaultMaxMessageBytes), h.cfg.MaxMessageBytes)
	require.NoError(t, h.Shutdown(context.Background()))
}

func TestRepliesCarryRef(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{})
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		c := e.dial(t, 0, token(t, tenantID, 0))

		c.ping("p1")
		s := c.subscribe("s1", "runs", nil)
		assert.Nil(t, s.Recovered, "recovered only answers since")
		c.send(map[string]any{"type": "subscribe", "ref": "s2", "channel": "run:" + strings.ToUpper(runID.String())})
		s = c.expect(typeSubscribed)
		assert.Equal(t, "run:"+runID.String(), s.Channel, "channel names are canonical")
		c.send(map[string]any{"type": "subscribe", "ref": "s3", "channel": "runs"})
		c.expectError("s3", derrors.CodeConflict)

		c.send(map[string]any{"type": "unsubscribe", "ref": "u1", "channel": "runs"})
		u := c.expect(typeUnsubscribed)
		assert.Equal(t, "u1", u.Ref)
		assert.Equal(t, "runs", u.Channel)

		// Malformed frames: an error, and the connection stays.
		for _, tt := range []struct{ frame, ref string }{
			{`not json`, ""},
			{`[1,2]`, ""},
			{`{"type":"nope","ref":"m1"}`, "m1"},
			{`{"ref":"m2"}`, "m2"},
			{`{"type":"ping","ref":7}`, ""},
			{`{"type":"ping","ref":"m3","extra":1}`, "m3"},
			{`{"type":"ping","ref":"m4"} {}`, "m4"},
			{`{"type":"subscribe","ref":"m5","channel":"bogus"}`, "m5"},
			{`{"type":"subscribe","ref":"m6","channel":"run:not-a-uuid"}`, "m6"},
			{`{"type":"subscribe","ref":"m7","channel":"runs","since":-1}`, "m7"},
			{`{"type":"subscribe","ref":"m8","channel":"runs","since":1.5}`, "m8"},
			{`{"type":"publish","ref":"m9","channel":"runs","event":"x"}`, "m9"},
			{`{"type":"publish","ref":"m10","channel":"run:` + runID.String() + `","event":"run.created"}`, "m10"},
			{`{"type":"publish","ref":"m11","channel":"run:` + runID.String() + `","event":"bad event!"}`, "m11"},
			{`{"type":"publish","ref":"m12","channel":"run:` + runID.String() + `","event":"ok","payload":[1]}`, "m12"},
			{`{"type":"auth","ref":"m13"}`, "m13"},
			{`{"type":"ping","ref":"` + strings.Repeat("r", 200) + `"}`, ""},
		} {
			c.sendRaw(tt.frame)
			c.expectError(tt.ref, derrors.CodeInvalidArgument)
		}
		require.NoError(t, c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)))
		c.expectError("", derrors.CodeInvalidArgument)
		c.ping("p2")
	})
}

func TestEventsReachSubscribers(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{})
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		all := e.dial(t, 0, token(t, tenantID, 0))
		one := e.dial(t, 0, token(t, tenantID, 0))
		s1 := all.subscribe("1", "runs", nil)
		s2 := one.subscribe("1", "run:"+runID.String(), nil)

		ctx := context.Background()
		e.hubs[0].Publish(ctx, tenantID, runID, "run.created", map[string]any{"id": runID, "status": "queued"})
		e.hubs[0].Publish(ctx, tenantID, runID, "step.appended", map[string]any{"seq": 1})

		for _, tt := range []struct {
			c   *client
			sub frame
		}{{all, s1}, {one, s2}} {
			f := tt.c.expect(typeEvent)
			assert.Equal(t, tt.sub.Channel, f.Channel)
			assert.Equal(t, "run.created", f.Event)
			assert.Equal(t, tt.sub.offset()+1, f.offset())
			assert.JSONEq(t, `{"id":"`+runID.String()+`","status":"queued"}`, string(f.Data))
			g := tt.c.expect(typeEvent)
			assert.Equal(t, "step.appended", g.Event)
			assert.Equal(t, f.offset()+1, g.offset())
		}
	})
}

func TestCrossInstanceOrder(t *testing.T) {
	e := newEnv(t, modeRedis, envOpts{hubs: 2})
	tenantID := uuid.New()
	runID := e.runs.add(tenantID)
	a := e.dial(t, 0, token(t, tenantID, 0))
	s := a.subscribe("1", "run:"+runID.String(), nil)

	const n = 50
	for i := 0; i < n; i++ {
		e.hubs[1].Publish(context.Background(), tenantID, runID, "run.updated", map[string]int{"i": i})
	}
	last := s.offset()
	for i := 0; i < n; i++ {
		f := a.expect(typeEvent)
		require.Equal(t, last+1, f.offset(), "event %d", i)
		require.JSONEq(t, `{"i":`+itoa(i)+`}`, string(f.Data))
		last = f.offset()
	}
}

func TestRecovery(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{hubs: 2, cfg: func(c *Config) { c.HistorySize = 30 }})
		if mode == modeMemory {
			e.hubs = e.hubs[:1] // one process, one history
			e.srvs = e.srvs[:1]
		}
		last := len(e.hubs) - 1
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		ch := "run:" + runID.String()
		ctx := context.Background()

		c := e.dial(t, 0, token(t, tenantID, 0))
		c.subscribe("1", ch, nil)
		e.hubs[last].Publish(ctx, tenantID, runID, "run.created", map[string]int{"i": -1})
		seen := c.expect(typeEvent).offset()
		require.NoError(t, c.ws.Close())

		for i := 0; i < 20; i++ {
			e.hubs[last].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": i})
		}

		// Reconnect to the other instance, when there is one.
		c = e.dial(t, last, token(t, tenantID, 0))
		s := c.subscribe("2", ch, &seen)
		require.NotNil(t, s.Recovered)
		require.True(t, *s.Recovered)
		require.Equal(t, seen+20, s.offset())
		for i := 0; i < 20; i++ {
			f := c.expect(typeEvent)
			require.Equal(t, seen+uint64(i)+1, f.offset())
			require.JSONEq(t, `{"i":`+itoa(i)+`}`, string(f.Data))
		}
		// Then live events, without a duplicate.
		e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": 20})
		f := c.expect(typeEvent)
		require.Equal(t, seen+21, f.offset())

		// Nothing missed: recovered, nothing replayed.
		top := f.offset()
		c2 := e.dial(t, 0, token(t, tenantID, 0))
		s = c2.subscribe("3", ch, &top)
		require.True(t, *s.Recovered)
		c2.ping("after")

		// A since from the future cannot be recovered.
		future := top + 1000
		s = c2.subscribe("4", "runs", &future)
		require.False(t, *s.Recovered)
	})
}

func TestRecoveryGapTooLarge(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{cfg: func(c *Config) { c.HistorySize = 5 }})
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		ctx := context.Background()
		c := e.dial(t, 0, token(t, tenantID, 0))
		s := c.subscribe("1", "runs", nil)
		since := s.offset()
		require.NoError(t, c.ws.Close())

		for i := 0; i < 20; i++ {
			e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": i})
		}
		c = e.dial(t, 0, token(t, tenantID, 0))
		s = c.subscribe("2", "runs", &since)
		require.False(t, *s.Recovered)
		require.Equal(t, since+20, s.offset())
		// Nothing is replayed; live events follow the reported offset.
		e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", nil)
		f := c.expect(typeEvent)
		require.Equal(t, since+21, f.offset())

		// A gap the history still holds is recovered.
		keep := since + 16
		c2 := e.dial(t, 0, token(t, tenantID, 0))
		s = c2.subscribe("4", "runs", &keep)
		require.True(t, *s.Recovered)
		for off := keep + 1; off <= since+21; off++ {
			require.Equal(t, off, c2.expect(typeEvent).offset())
		}
	})
}

// TestRecoverySeam subscribes with since while events keep coming: the
// replay and the live stream join without a gap or a duplicate.
func TestRecoverySeam(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{})
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		ctx := context.Background()
		c := e.dial(t, 0, token(t, tenantID, 0))
		since := c.subscribe("1", "runs", nil).offset()
		require.NoError(t, c.ws.Close())

		const total = 300
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < total; i++ {
				e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": i})
				time.Sleep(200 * time.Microsecond) // still publishing while clients reconnect
			}
		}()
		// Reconnect mid-stream a few times, resuming from the last offset seen.
		end := since + total
		for _, stop := range []uint64{since + 50, since + 120, end} {
			c = e.dial(t, 0, token(t, tenantID, 0))
			s := c.subscribe("2", "runs", &since)
			require.True(t, *s.Recovered)
			for since < stop {
				f := c.expect(typeEvent)
				require.Equal(t, since+1, f.offset(), "no gap, no duplicate")
				since++
			}
			require.NoError(t, c.ws.Close())
		}
		<-done
	})
}

func TestTenantIsolation(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{hubs: 2})
		tenantA, tenantB := uuid.New(), uuid.New()
		runA, runB := e.runs.add(tenantA), e.runs.add(tenantB)
		ctx := context.Background()

		b := e.dial(t, 1, token(t, tenantB, 0))
		b.send(map[string]any{"type": "subscribe", "ref": "x", "channel": "run:" + runA.String()})
		b.expectError("x", derrors.CodeNotFound)
		b.send(map[string]any{"type": "publish", "ref": "y", "channel": "run:" + runA.String(), "event": "agent.thinking"})
		b.expectError("y", derrors.CodeNotFound)
		b.send(map[string]any{"type": "subscribe", "ref": "z", "channel": "run:" + uuid.NewString()})
		b.expectError("z", derrors.CodeNotFound)
		b.subscribe("r", "runs", nil)

		a := e.dial(t, 0, token(t, tenantA, 0))
		a.subscribe("r", "run:"+runA.String(), nil)
		a.send(map[string]any{"type": "publish", "ref": "p", "channel": "run:" + runA.String(), "event": "agent.thinking"})
		hubA := e.hubs[0]
		if mode == modeMemory {
			hubA = e.hubs[1] // in-process hubs do not share: publish where b is
		}
		for i := 0; i < 5; i++ {
			hubA.Publish(ctx, tenantA, runA, "run.updated", map[string]string{"secret": "of A"})
		}
		e.hubs[1].Publish(ctx, tenantB, runB, "run.created", map[string]string{"mine": "B"})
		f := b.expect(typeEvent)
		assert.Equal(t, "run.created", f.Event)
		assert.JSONEq(t, `{"mine":"B"}`, string(f.Data))
		b.ping("end")
	})
}

func TestClientPublish(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{hubs: 2})
		if mode == modeMemory {
			e.hubs, e.srvs = e.hubs[:1], e.srvs[:1]
		}
		last := len(e.hubs) - 1
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		ch := "run:" + runID.String()

		sender := e.dial(t, 0, token(t, tenantID, 0))
		near := e.dial(t, 0, token(t, tenantID, 0))
		far := e.dial(t, last, token(t, tenantID, 0))
		sender.subscribe("s", ch, nil)
		near.subscribe("s", ch, nil)
		far.subscribe("s", ch, nil)

		sender.send(map[string]any{"type": "publish", "ref": "p", "channel": ch, "event": "agent.thinking", "payload": map[string]any{"text": "hmm"}})
		for _, c := range []*client{near, far} {
			f := c.expect(typeEvent)
			assert.Equal(t, ch, f.Channel)
			assert.Equal(t, "agent.thinking", f.Event)
			assert.JSONEq(t, `{"text":"hmm"}`, string(f.Data))
		}
		// The sender does not get its own event back: the next event it
		// sees is the server's, published after it.
		e.hubs[last].Publish(context.Background(), tenantID, runID, "run.updated", nil)
		f := sender.expect(typeEvent)
		assert.Equal(t, "run.updated", f.Event)

		// A publish without a payload carries {}.
		far.send(map[string]any{"type": "publish", "ref": "q", "channel": ch, "event": "agent.idle"})
		f = sender.expect(typeEvent)
		assert.Equal(t, "agent.idle", f.Event)
		assert.JSONEq(t, `{}`, string(f.Data))
	})
}

func TestPublishRateLimited(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		const max = 20
		e := newEnv(t, mode, envOpts{hubs: 1, limiter: func(e *env) EventLimiter {
			l, err := ratelimit.NewEventLimiter(ratelimit.EventConfig{Max: max, Window: time.Minute, Prefix: e.prefix + "rl"}, e.rdb, nil, nil)
			require.NoError(t, err)
			return l
		}})
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		ch := "run:" + runID.String()
		sender := e.dial(t, 0, token(t, tenantID, 0))
		recv := e.dial(t, 0, token(t, tenantID, 0))
		recv.subscribe("s", ch, nil)

		const sent = 30
		for i := 0; i < sent; i++ {
			sender.send(map[string]any{"type": "publish", "ref": itoa(i), "channel": ch, "event": "agent.flood", "payload": map[string]int{"i": i}})
		}
		for i := max; i < sent; i++ {
			f := sender.expectError(itoa(i), derrors.CodeRateLimited)
			require.NotNil(t, f.RetryAfterMs)
			assert.Positive(t, *f.RetryAfterMs)
			assert.LessOrEqual(t, *f.RetryAfterMs, int64(time.Minute/time.Millisecond))
		}
		sender.ping("done") // every publish handled

		// Another event name has its own budget.
		sender.send(map[string]any{"type": "publish", "ref": "o", "channel": ch, "event": "agent.other"})
		sender.ping("done2")

		for i := 0; i < max; i++ {
			f := recv.expect(typeEvent)
			require.Equal(t, "agent.flood", f.Event)
			require.JSONEq(t, `{"i":`+itoa(i)+`}`, string(f.Data))
		}
		f := recv.expect(typeEvent)
		require.Equal(t, "agent.other", f.Event, "the throttled events were not delivered")
	})
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		// A subscriber that held the others up would do so until its write
		// timed out: WriteWait, long here, so that it shows against the
		// backlog of 32 KiB events that Redis itself builds under -race
		// (up to ~2.5 s).
		e := newEnv(t, mode, envOpts{cfg: func(c *Config) { c.SendQueue = 32; c.WriteWait = 30 * time.Second }})
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		slow := e.dial(t, 0, token(t, tenantID, 0))
		slow.subscribe("s", "runs", nil)
		fast := e.dial(t, 0, token(t, tenantID, 0))
		fast.subscribe("s", "runs", nil)

		var received atomic.Int64
		var maxLatency atomic.Int64
		readDone := make(chan error, 1)
		go func() {
			for {
				_ = fast.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, b, err := fast.ws.ReadMessage()
				if err != nil {
					readDone <- err
					return
				}
				if bytes.Contains(b, []byte(`"event":"end"`)) {
					readDone <- nil
					return
				}
				// Cheaper than decoding 32 KiB of JSON: the reader must keep up.
				_, rest, ok := bytes.Cut(b, []byte(`"sent":`))
				if !ok {
					continue
				}
				digits, _, _ := bytes.Cut(rest, []byte(`}`))
				digits, _, _ = bytes.Cut(digits, []byte(`,`))
				sent, err := strconv.ParseInt(string(digits), 10, 64)
				if err != nil {
					readDone <- err
					return
				}
				lat := time.Now().UnixNano() - sent
				for {
					old := maxLatency.Load()
					if lat <= old || maxLatency.CompareAndSwap(old, lat) {
						break
					}
				}
				received.Add(1)
			}
		}()

		dropped := func() float64 {
			return testutil.ToFloat64(e.metrics[0].dropped.WithLabelValues(dropSlowConsumer))
		}
		// Paced so that a healthy reader keeps up, while the slow one's
		// socket buffers and queue fill.
		pad := strings.Repeat("x", 32<<10)
		published := 0
		ctx := context.Background()
		for ; published < 5000 && dropped() == 0; published++ {
			e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", map[string]any{"pad": pad, "sent": time.Now().UnixNano()})
			time.Sleep(time.Millisecond)
		}
		require.Equal(t, float64(1), dropped(), "the slow subscriber was dropped after %d events", published)
		for i := 0; i < 20; i++ {
			e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", map[string]any{"sent": time.Now().UnixNano()})
			published++
		}
		e.hubs[0].Publish(ctx, tenantID, runID, "end", nil)

		select {
		case err := <-readDone:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("the fast subscriber did not get every event")
		}
		assert.Equal(t, int64(published), received.Load())
		assert.Less(t, time.Duration(maxLatency.Load()), 10*time.Second, "the slow subscriber never held the others up")

		// The slow one reads what reached it, then finds the connection gone.
		for {
			if _, err := slow.tryRead(10 * time.Second); err != nil {
				var ne interface{ Timeout() bool }
				require.False(t, errorsAs(err, &ne) && ne.Timeout(), "the connection should be closed, not idle: %v", err)
				break
			}
		}
		require.Eventually(t, func() bool {
			return testutil.ToFloat64(e.metrics[0].connections) == 1
		}, 5*time.Second, 10*time.Millisecond)
	})
}

func TestTokenExpiry(t *testing.T) {
	e := newEnv(t, modeMemory, envOpts{})
	tenantID := uuid.New()

	// Not refreshed: closed with 4001 when the token expires.
	t.Run("not refreshed", func(t *testing.T) {
		t.Parallel()
		c := e.dial(t, 0, token(t, tenantID, 2*time.Second))
		c.ping("p")
		assert.Equal(t, CloseTokenExpired, c.closeCode(5*time.Second))
	})
	// Refreshed with tokens that do not qualify: closed all the same.
	t.Run("refused refresh", func(t *testing.T) {
		t.Parallel()
		c := e.dial(t, 0, token(t, tenantID, 2*time.Second))
		c.send(map[string]any{"type": "auth", "ref": "1", "token": token(t, uuid.New(), time.Hour)})
		c.expectError("1", derrors.CodeForbidden)
		anon, err := auth.Mint(testSecret, auth.MintOptions{Tenant: tenantID, Role: "anon"})
		require.NoError(t, err)
		c.send(map[string]any{"type": "auth", "ref": "2", "token": anon})
		c.expectError("2", derrors.CodeForbidden)
		c.send(map[string]any{"type": "auth", "ref": "3", "token": "garbage"})
		c.expectError("3", derrors.CodeUnauthenticated)
		c.send(map[string]any{"type": "auth", "ref": "4", "token": token(t, tenantID, -time.Minute)})
		c.expectError("4", derrors.CodeUnauthenticated)
		assert.Equal(t, CloseTokenExpired, c.closeCode(5*time.Second))
	})
	// Refreshed: still open after the first token expired.
	t.Run("refreshed", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		c := e.dial(t, 0, token(t, tenantID, 2*time.Second))
		c.send(map[string]any{"type": "auth", "ref": "1", "token": token(t, tenantID, time.Hour)})
		c.ping("p1") // no error in between: the refresh took
		time.Sleep(3*time.Second - time.Since(start))
		c.ping("p2")
	})
}

func TestOversizedFrame(t *testing.T) {
	e := newEnv(t, modeMemory, envOpts{cfg: func(c *Config) { c.MaxMessageBytes = 1024 }})
	c := e.dial(t, 0, token(t, uuid.New(), 0))
	c.sendRaw(`{"type":"ping","ref":"` + strings.Repeat("a", 900) + `"}`) // under the limit
	c.expectError("", derrors.CodeInvalidArgument)
	c.sendRaw(`{"type":"ping","ref":"` + strings.Repeat("a", 4096) + `"}`)
	assert.Equal(t, CloseMessageTooBig, c.closeCode(5*time.Second))
}

func TestShutdown(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{})
		tenantID := uuid.New()
		a := e.dial(t, 0, token(t, tenantID, 0))
		a.subscribe("s", "runs", nil)
		b := e.dial(t, 0, token(t, tenantID, 0))
		b.ping("p")

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- e.hubs[0].Shutdown(ctx) }()
		assert.Equal(t, CloseGoingAway, a.closeCode(5*time.Second))
		assert.Equal(t, CloseGoingAway, b.closeCode(5*time.Second))
		require.NoError(t, <-errc)
		assert.Equal(t, float64(0), testutil.ToFloat64(e.metrics[0].connections))
		assert.Equal(t, float64(0), testutil.ToFloat64(e.metrics[0].subscriptions))

		_, resp, err := websocket.DefaultDialer.Dial(wsURL(e.srvs[0])+"?access_token="+token(t, tenantID, 0), nil)
		require.Error(t, err)
		require.NotNil(t, resp)
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	})
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, modeMemory, envOpts{})
	m := e.metrics[0]
	tenantID := uuid.New()
	runID := e.runs.add(tenantID)
	c := e.dial(t, 0, token(t, tenantID, 0))
	c.subscribe("1", "runs", nil)
	c.subscribe("2", "run:"+runID.String(), nil)
	assert.Equal(t, float64(1), testutil.ToFloat64(m.connections))
	assert.Equal(t, float64(2), testutil.ToFloat64(m.subscriptions))

	e.hubs[0].Publish(context.Background(), tenantID, runID, "run.created", nil)
	c.expect(typeEvent)
	c.expect(typeEvent)
	assert.Equal(t, float64(2), testutil.ToFloat64(m.deliveries))

	c.send(map[string]any{"type": "unsubscribe", "ref": "3", "channel": "runs"})
	c.expect(typeUnsubscribed)
	assert.Equal(t, float64(1), testutil.ToFloat64(m.subscriptions))
	require.NoError(t, c.ws.Close())
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(m.connections) == 0 && testutil.ToFloat64(m.subscriptions) == 0
	}, 5*time.Second, 10*time.Millisecond)
}

func TestSubscriptionLimit(t *testing.T) {
	e := newEnv(t, modeMemory, envOpts{cfg: func(c *Config) { c.MaxSubscriptions = 2 }})
	tenantID := uuid.New()
	c := e.dial(t, 0, token(t, tenantID, 0))
	c.subscribe("1", "runs", nil)
	c.subscribe("2", "run:"+e.runs.add(tenantID).String(), nil)
	c.send(map[string]any{"type": "subscribe", "ref": "3", "channel": "run:" + e.runs.add(tenantID).String()})
	c.expectError("3", derrors.CodeInvalidArgument)
}

// TestRedisLinkLoss cuts a hub's pub/sub connection: once it is back, the
// hub closes its subscribed connections with 1012, since events may have
// been published meanwhile, and they recover with since.
func TestRedisLinkLoss(t *testing.T) {
	e := newEnv(t, modeRedis, envOpts{hubs: 2})
	tenantID := uuid.New()
	runID := e.runs.add(tenantID)
	ctx := context.Background()
	sub := e.dial(t, 0, token(t, tenantID, 0))
	since := sub.subscribe("1", "runs", nil).offset()
	idle := e.dial(t, 0, token(t, tenantID, 0)) // no subscription: unaffected

	list, err := e.rdb.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	require.NoError(t, err)
	killed := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if !strings.Contains(line, " name="+e.names[0]+" ") {
			continue
		}
		id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
		require.NoError(t, e.rdb.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
		killed++
	}
	require.Equal(t, 1, killed, "hub 0 holds one pub/sub connection")
	e.hubs[1].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": 1})

	assert.Equal(t, CloseResync, sub.closeCode(10*time.Second))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(e.metrics[0].dropped.WithLabelValues(dropResync)) == 1
	}, 5*time.Second, 10*time.Millisecond)
	idle.ping("still here")

	sub = e.dial(t, 0, token(t, tenantID, 0))
	s := sub.subscribe("2", "runs", &since)
	require.True(t, *s.Recovered)
	require.Equal(t, since+1, sub.expect(typeEvent).offset())
	// Live events flow again through the new pub/sub connection.
	e.hubs[1].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": 2})
	require.Equal(t, since+2, sub.expect(typeEvent).offset())
}

// TestRedisOutage stops Redis under two hubs: events written through a
// hub keep reaching its own subscribers, with growing offsets; once Redis
// is back, subscribed connections are closed with 1012, a resubscription
// with since learns that events may have been missed, and events cross
// instances again with offsets above every local one.
func TestRedisOutage(t *testing.T) {
	e := newEnv(t, modeRedis, envOpts{hubs: 2, proxy: true})
	tenantID := uuid.New()
	runID := e.runs.add(tenantID)
	ctx := context.Background()
	sub := e.dial(t, 0, token(t, tenantID, 0))
	top := sub.subscribe("1", "runs", nil).offset()
	e.hubs[1].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": 0})
	before := sub.expect(typeEvent).offset()
	require.Equal(t, top+1, before)

	e.proxy.cut()
	var last uint64
	for i := 1; i <= 3; i++ {
		e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": i})
		f := sub.expect(typeEvent)
		require.Greater(t, f.offset(), max(before, last), "offsets grow through the outage")
		require.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i), string(f.Data))
		last = f.offset()
	}
	// The pub/sub reader may be the one that noticed the cut: it sets the
	// gauge a moment after the publishes went local.
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metrics[0].localOnly) == 1 },
		5*time.Second, 10*time.Millisecond)
	// Written through the other instance: it cannot cross without Redis.
	e.hubs[1].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": 99})
	time.Sleep(300 * time.Millisecond)
	sub.ping("nothing crossed") // the next frame is the pong, not an event
	// A new subscriber on the cut-off hub is served locally.
	late := e.dial(t, 0, token(t, tenantID, 0))
	require.Equal(t, last, late.subscribe("1", "runs", nil).offset())

	e.proxy.restore()
	require.Equal(t, CloseResync, sub.closeCode(15*time.Second))
	require.Equal(t, CloseResync, late.closeCode(5*time.Second))
	require.Equal(t, 0.0, testutil.ToFloat64(e.metrics[0].localOnly))
	// Hub 1 numbered its own event alone too: once it rejoins, it raises
	// the Redis offset above its local one. Resubscribe after both did, so
	// that the next offset is the one after the subscription's.
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.metrics[1].localOnly) == 0 },
		15*time.Second, 10*time.Millisecond)

	sub = e.dial(t, 0, token(t, tenantID, 0))
	s := sub.subscribe("2", "runs", &last)
	require.False(t, *s.Recovered, "events written through hub 1 during the outage never reached hub 0")
	require.Greater(t, s.offset(), last)
	e.hubs[1].Publish(ctx, tenantID, runID, "run.updated", map[string]int{"i": 4})
	f := sub.expect(typeEvent)
	require.Equal(t, s.offset()+1, f.offset())
	require.JSONEq(t, `{"i":4}`, string(f.Data))
}

// TestHistoryExpires forgets a channel HistoryTTL after its last event:
// since cannot be recovered, and offsets still only grow.
func TestHistoryExpires(t *testing.T) {
	forModes(t, func(t *testing.T, mode string) {
		e := newEnv(t, mode, envOpts{cfg: func(c *Config) { c.HistoryTTL = 200 * time.Millisecond }})
		tenantID := uuid.New()
		runID := e.runs.add(tenantID)
		ctx := context.Background()
		c := e.dial(t, 0, token(t, tenantID, 0))
		since := c.subscribe("1", "runs", nil).offset()
		e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", nil)
		require.Equal(t, since+1, c.expect(typeEvent).offset())
		time.Sleep(500 * time.Millisecond)

		c2 := e.dial(t, 0, token(t, tenantID, 0))
		s := c2.subscribe("2", "runs", &since)
		require.False(t, *s.Recovered)
		assert.Greater(t, s.offset(), since+1)
		e.hubs[0].Publish(ctx, tenantID, runID, "run.updated", nil)
		next := c.expect(typeEvent).offset()
		assert.Greater(t, next, since+1, "offsets never go back")
		assert.Equal(t, next, c2.expect(typeEvent).offset())
	})
}

// TestKeepalive drops a client that answers no ping, and keeps one that
// does.
func TestKeepalive(t *testing.T) {
	e := newEnv(t, modeMemory, envOpts{cfg: func(c *Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PongWait = 200 * time.Millisecond
	}})
	tenantID := uuid.New()
	silent := e.dial(t, 0, token(t, tenantID, 0))
	alive := e.dial(t, 0, token(t, tenantID, 0))

	// Reading answers pings (gorilla's default handler); not reading does not.
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		_ = alive.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, _, err := alive.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(e.metrics[0].connections) == 1
	}, 5*time.Second, 10*time.Millisecond, "the silent client is dropped")
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, float64(1), testutil.ToFloat64(e.metrics[0].connections), "the answering client stays")
	select {
	case <-readerDone:
		t.Fatal("the answering client was dropped")
	default:
	}
	_, err := silent.tryRead(time.Second)
	require.Error(t, err)
	_ = alive.ws.Close()
	<-readerDone
}
