package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// wsFrame is any server frame.
type wsFrame struct {
	Type      string          `json:"type"`
	Ref       string          `json:"ref"`
	Channel   string          `json:"channel"`
	Event     string          `json:"event"`
	Offset    uint64          `json:"offset"`
	Recovered *bool           `json:"recovered"`
	Code      string          `json:"code"`
	Data      json.RawMessage `json:"data"`
}

func dialWS(t *testing.T, s *server, token string) *websocket.Conn {
	t.Helper()
	u := strings.Replace(s.base, "http://", "ws://", 1) + "/v1/ws?access_token=" + token
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

func readFrame(t *testing.T, c *websocket.Conn) wsFrame {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	var f wsFrame
	require.NoError(t, c.ReadJSON(&f))
	return f
}

// TestWebSocketAcrossInstances writes through one instance and watches
// through another: every event arrives, in order, with rising offsets, and
// a subscriber that reconnects with since gets exactly what it missed.
func TestWebSocketAcrossInstances(t *testing.T) {
	t.Parallel()
	rd := newRedis(t)
	dbURL := dbtest.NewDatabase(t)
	out, err := command(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "apply")
	require.NoError(t, err, out)
	env := []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + rd.url(), "SUPABASE_JWT_SECRET=" + e2eSecret, "RATE_LIMIT_DISABLED=true"}
	a, b := start(t, env...), start(t, env...)
	tenantA := "8d2f1e3c-4b5a-4c6d-9e8f-7a6b5c4d3e2f"
	tok := mint(t, tenantA)
	other := mint(t, "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f")

	// Handshake without a valid token is refused before any upgrade.
	_, resp, err := websocket.DefaultDialer.Dial(strings.Replace(a.base, "http://", "ws://", 1)+"/v1/ws?access_token=bogus", nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	sub := dialWS(t, a, tok)
	require.NoError(t, sub.WriteJSON(map[string]any{"type": "subscribe", "ref": "1", "channel": "runs"}))
	f := readFrame(t, sub)
	require.Equal(t, "subscribed", f.Type)
	require.Equal(t, "1", f.Ref)
	spy := dialWS(t, a, other)
	require.NoError(t, spy.WriteJSON(map[string]any{"type": "subscribe", "ref": "s", "channel": "runs"}))
	require.Equal(t, "subscribed", readFrame(t, spy).Type)

	code, body := b.call(t, "POST", "/v1/runs", tok, `{"agentName":"ws","status":"running"}`)
	require.Equal(t, http.StatusCreated, code, body)
	var run struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &run))
	for i := 0; i < 3; i++ {
		code, body = b.call(t, "POST", "/v1/runs/"+run.ID+"/steps", tok, `{"type":"llm"}`)
		require.Equal(t, http.StatusCreated, code, body)
	}
	want := []string{"run.created", "step.appended", "step.appended", "step.appended"}
	var last uint64
	for i, ev := range want {
		f := readFrame(t, sub)
		require.Equal(t, "event", f.Type)
		assert.Equal(t, ev, f.Event, "event %d in order", i)
		assert.Greater(t, f.Offset, last, "offsets rise")
		last = f.Offset
		if i == 0 {
			assert.Contains(t, string(f.Data), `"id":"`+run.ID+`"`, "run.created carries the REST JSON of the run")
		}
	}

	// Subscribing to the run's own channel on another tenant: NOT_FOUND.
	require.NoError(t, spy.WriteJSON(map[string]any{"type": "subscribe", "ref": "x", "channel": "run:" + run.ID}))
	f = readFrame(t, spy)
	assert.Equal(t, "error", f.Type)
	assert.Equal(t, "NOT_FOUND", f.Code)
	require.NoError(t, spy.WriteJSON(map[string]any{"type": "ping", "ref": "p"}))
	assert.Equal(t, "pong", readFrame(t, spy).Type, "the other tenant received none of A's events")

	// Disconnect, miss 5 events, reconnect to the other instance with since.
	sub.Close()
	for i := 0; i < 5; i++ {
		code, body = a.call(t, "POST", "/v1/runs/"+run.ID+"/steps", tok, `{"type":"tool"}`)
		require.Equal(t, http.StatusCreated, code, body)
	}
	again := dialWS(t, b, tok)
	require.NoError(t, again.WriteJSON(map[string]any{"type": "subscribe", "ref": "2", "channel": "runs", "since": last}))
	var got []uint64
	for len(got) < 6 { // the subscribed reply and the 5 missed events
		f := readFrame(t, again)
		switch f.Type {
		case "subscribed":
			require.NotNil(t, f.Recovered)
			assert.True(t, *f.Recovered)
			got = append(got, 0)
		case "event":
			assert.Equal(t, "step.appended", f.Event)
			got = append(got, f.Offset)
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
	}
	for i := 2; i < len(got); i++ {
		assert.Equal(t, got[i-1]+1, got[i], "no gap, no duplicate: %v", got)
	}
	require.NoError(t, a.stop(t))
}

// TestWebSocketLimitsOnTheBinary checks the limits a deployment configures
// through the environment: the publish flood limit, the frame size limit
// and the close on token expiry.
func TestWebSocketLimitsOnTheBinary(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	out, err := command(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "apply")
	require.NoError(t, err, out)
	s := start(t, "DATABASE_URL="+dbURL, "SUPABASE_JWT_SECRET="+e2eSecret, "RATE_LIMIT_DISABLED=true",
		"WS_BROADCAST_MAX=5", "WS_BROADCAST_WINDOW_MS=60000", "WS_MAX_MESSAGE_BYTES=2048")
	tenantID := "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	tok := mint(t, tenantID)
	code, body := s.call(t, "POST", "/v1/runs", tok, `{"agentName":"limits"}`)
	require.Equal(t, http.StatusCreated, code, body)
	var run struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &run))
	channel := "run:" + run.ID

	t.Run("flood", func(t *testing.T) {
		sender, receiver := dialWS(t, s, tok), dialWS(t, s, tok)
		require.NoError(t, receiver.WriteJSON(map[string]any{"type": "subscribe", "ref": "r", "channel": channel}))
		require.Equal(t, "subscribed", readFrame(t, receiver).Type)
		for i := 0; i < 8; i++ {
			require.NoError(t, sender.WriteJSON(map[string]any{"type": "publish", "ref": strconv.Itoa(i), "channel": channel,
				"event": "agent.thinking", "payload": map[string]any{"i": i}}))
		}
		limited := 0
		for i := 0; i < 3; i++ {
			f := readFrame(t, sender)
			if f.Type == "error" && f.Code == "RATE_LIMITED" {
				limited++
			}
		}
		assert.Equal(t, 3, limited, "publishes 6 to 8 are refused")
		delivered := 0
		require.NoError(t, receiver.WriteJSON(map[string]any{"type": "ping", "ref": "end"}))
		for {
			f := readFrame(t, receiver)
			if f.Type == "pong" {
				break
			}
			if f.Type == "event" && f.Event == "agent.thinking" {
				delivered++
			}
		}
		assert.Equal(t, 5, delivered, "exactly WS_BROADCAST_MAX delivered in the window")
	})

	t.Run("oversized frame closes with 1009", func(t *testing.T) {
		c := dialWS(t, s, tok)
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","ref":"`+strings.Repeat("x", 4096)+`"}`)))
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
	})

	t.Run("expired token closes with 4001", func(t *testing.T) {
		short, err := command(t, []string{"SUPABASE_JWT_SECRET=" + e2eSecret}, "token", "--tenant", tenantID, "--ttl", "2s")
		require.NoError(t, err, short)
		c := dialWS(t, s, strings.TrimSpace(short))
		require.NoError(t, c.SetReadDeadline(time.Now().Add(40*time.Second)))
		for {
			_, _, err := c.ReadMessage()
			if err == nil {
				continue
			}
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, 4001, ce.Code)
			break
		}
	})
}

// TestWebSocketThroughRedisRestart stops Redis under two instances while
// runs are written through both: the writes keep succeeding, a subscriber
// keeps receiving the events of the runs written through its own
// instance, and once Redis is back it is told to resync (1012), learns on
// resubscribing that it may have missed events, and receives runs written
// through the other instance again.
func TestWebSocketThroughRedisRestart(t *testing.T) {
	t.Parallel()
	rd := newRedis(t)
	dbURL := dbtest.NewDatabase(t)
	out, err := command(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "apply")
	require.NoError(t, err, out)
	env := []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + rd.url(), "SUPABASE_JWT_SECRET=" + e2eSecret,
		"RATE_LIMIT_FAIL_MODE=open", "RATE_LIMIT_MAX=1000000"}
	a, b := start(t, env...), start(t, env...)
	tok := mint(t, "3f0b8a2e-9c4d-4e5f-8a6b-7c8d9e0f1a2b")

	// Background load through both instances for the whole test: every
	// write must succeed, Redis or not.
	stop := make(chan struct{})
	var load sync.WaitGroup
	var loadErr atomic.Value
	var written atomic.Int64
	for _, s := range []*server{a, b} {
		load.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				req, _ := http.NewRequest("POST", s.base+"/v1/runs", strings.NewReader(`{"agentName":"load"}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					loadErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					loadErr.CompareAndSwap(nil, "status "+resp.Status)
					continue
				}
				written.Add(1)
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); load.Wait() })
	defer stopLoad()

	subscribe := func(since *uint64) (*websocket.Conn, wsFrame) {
		c := dialWS(t, a, tok)
		m := map[string]any{"type": "subscribe", "ref": "1", "channel": "runs"}
		if since != nil {
			m["since"] = *since
		}
		require.NoError(t, c.WriteJSON(m))
		f := readFrame(t, c)
		require.Equal(t, "subscribed", f.Type, "%+v", f)
		return c, f
	}
	var last uint64
	// create writes a run through s and returns its id; await reads sub
	// until that run's run.created, checking that offsets rise.
	create := func(s *server, name string) string {
		code, body := s.call(t, "POST", "/v1/runs", tok, `{"agentName":"`+name+`"}`)
		require.Equal(t, http.StatusCreated, code, body)
		var run struct{ ID string }
		require.NoError(t, json.Unmarshal([]byte(body), &run))
		return run.ID
	}
	await := func(sub *websocket.Conn, id string) {
		t.Helper()
		for {
			f := readFrame(t, sub)
			require.Equal(t, "event", f.Type, "%+v", f)
			require.Greater(t, f.Offset, last, "offsets rise")
			last = f.Offset
			if f.Event == "run.created" && strings.Contains(string(f.Data), `"id":"`+id+`"`) {
				return
			}
		}
	}

	sub, f := subscribe(nil)
	last = f.Offset
	await(sub, create(b, "before"))

	rd.stop()
	for i := 0; i < 5; i++ {
		await(sub, create(a, "during-"+strconv.Itoa(i))) // local delivery continues
	}
	create(b, "during-elsewhere") // acknowledged; its event cannot cross without Redis
	w0 := written.Load()
	require.Eventually(t, func() bool { return written.Load() >= w0+10 }, 20*time.Second, 10*time.Millisecond,
		"the background load goes on while Redis is down")
	rd.start()

	// Told to resync once Redis is back.
	require.NoError(t, sub.SetReadDeadline(time.Now().Add(30*time.Second)))
	for {
		_, _, err := sub.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, 1012, ce.Code)
			break
		}
	}
	// Both instances rejoin Redis.
	require.Eventually(t, func() bool {
		for _, s := range []*server{a, b} {
			_, m := s.get(t, "/metrics")
			if !strings.Contains(m, "\nagentstore_ws_local_only 0\n") {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "instances leave local-only mode")

	sub, f = subscribe(&last)
	require.NotNil(t, f.Recovered)
	assert.False(t, *f.Recovered, "the run written through b during the outage never reached a")
	require.Greater(t, f.Offset, last)
	last = f.Offset
	await(sub, create(b, "after")) // cross-instance delivery resumed

	stopLoad()
	assert.Nil(t, loadErr.Load(), "every write succeeded through the outage")
	require.NoError(t, a.stop(t))
	require.NoError(t, b.stop(t))
}
