// Package realtime is agentstore's WebSocket feed, GET /v1/ws: run events
// published after commit, and events clients publish to each other, fanned
// out to subscribers on every instance. The HTTP layer authenticates the
// handshake and hands it to an Endpoint; this package speaks the
// WebSocket protocol from there on.
//
// A Hub numbers the events of each channel ("runs" and "run:<uuid>", both
// inside one tenant) with a growing offset, keeps a bounded history for
// "since" recovery, and serves the connections of one instance. With Redis
// the offsets, history and fan-out are shared by every instance that uses
// the same key prefix; without it they live in the process.
//
// Replies carry the ref of the frame they answer. "publish" and "auth" are
// answered only when they fail; a client that wants to know a refresh took
// can send a ping right after it, since frames are handled in order.
//
// Close codes: 1001 shutdown, 1008 slow consumer (send queue full), 1009
// frame too large, 1012 events may have been lost (Redis was unreachable
// and is back; resubscribe with since), 4001 token expired. While Redis is
// unreachable an instance delivers the events written through it to its
// own subscribers (see failover).
package realtime

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

// opTimeout bounds each call a connection makes to a dependency (run
// check, rate limiter, broker) and each server-side publish.
const opTimeout = 5 * time.Second

// Hub fans events out to WebSocket subscribers. It implements the HTTP
// layer's Publisher, and accepts the connections of GET /v1/ws through an
// Endpoint.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	m        *Metrics
	origins  originPolicy
	broker   broker
	upgrader websocket.Upgrader

	// base is the parent of every connection's context; Shutdown cancels it.
	base   context.Context
	cancel context.CancelFunc

	mu      sync.RWMutex
	subs    map[chanKey]map[*subscription]struct{}
	conns   map[*conn]struct{}
	closing bool
	wg      sync.WaitGroup // one per connection handler

	stopOnce sync.Once
}

// New returns a Hub. With rdb nil it works within this process; otherwise
// it shares events through Redis and subscribes before returning, so ctx
// bounds that. log and m may be nil.
func New(ctx context.Context, cfg Config, rdb *redis.Client, log *slog.Logger, m *Metrics) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	origins, err := newOriginPolicy(cfg.AllowedOrigins, cfg.Production)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		cfg: cfg, log: log, m: m, origins: origins,
		subs:  make(map[chanKey]map[*subscription]struct{}),
		conns: make(map[*conn]struct{}),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: cfg.WriteWait,
			// A small read buffer of its own instead of keeping net/http's
			// 4 KiB one; writes borrow a buffer from the pool.
			ReadBufferSize:  1024,
			WriteBufferPool: &sync.Pool{},
			// Origins are checked before the upgrade, against AllowedOrigins.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	h.base, h.cancel = context.WithCancel(context.Background())
	if rdb == nil {
		h.broker = newMemBroker(cfg.HistorySize, cfg.HistoryTTL, h.dispatch, nil)
		return h, nil
	}
	rb, err := newRedisBroker(ctx, rdb, cfg.KeyPrefix, cfg.HistorySize, cfg.HistoryTTL, h.dispatch, log)
	if err != nil {
		h.cancel()
		return nil, err
	}
	local := newMemBroker(cfg.HistorySize, cfg.HistoryTTL, h.dispatch, localStart(h.sent))
	h.broker = newFailover(rb, local, h.resync, log, m)
	return h, nil
}

// Publish sends a run event to the tenant's "runs" channel and to the
// run's own channel, on every instance. It is called after the write
// committed; a failure is logged, not returned, since the write stands.
// It outlives ctx's cancellation for a few seconds, so that a client
// hanging up right after its write does not lose the event.
func (h *Hub) Publish(ctx context.Context, tenantID, runID uuid.UUID, event string, data any) {
	if tenantID == uuid.Nil || runID == uuid.Nil {
		h.log.ErrorContext(ctx, "realtime: publish without tenant or run", "event", event)
		return
	}
	raw, encoded := data.(json.RawMessage) // already JSON: the HTTP layer encodes a response once for both
	var err error
	if !encoded {
		raw, err = json.Marshal(data)
	}
	if err != nil {
		h.log.ErrorContext(ctx, "realtime: encode event", "event", event, "tenant_id", tenantID.String(), "run_id", runID.String(), "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	keys := []chanKey{{tenantID, channelRuns}, {tenantID, channelRunPrefix + runID.String()}}
	if err := h.broker.publish(ctx, keys, event, raw, ""); err != nil {
		h.log.ErrorContext(ctx, "realtime: publish", "event", event, "tenant_id", tenantID.String(), "run_id", runID.String(), "err", err)
	}
}

// dispatch hands one event to this instance's subscribers of its channel.
// It never blocks: a subscriber whose queue is full is disconnected.
func (h *Hub) dispatch(e *event) {
	h.mu.RLock()
	n := 0
	for s := range h.subs[e.key] {
		if s.deliver(e) {
			n++
		}
	}
	h.mu.RUnlock()
	h.m.delivered(n)
}

// sent is the highest offset of key that this instance's subscribers were
// sent, or know of: a channel the failover numbers locally starts above it.
func (h *Hub) sent(key chanKey) uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var top uint64
	for s := range h.subs[key] {
		s.mu.Lock()
		top = max(top, s.last)
		s.mu.Unlock()
	}
	return top
}

// resync closes every connection that has a subscription with 1012, when
// the failover rejoins Redis: events may have been lost while it was
// unreachable.
func (h *Hub) resync() {
	h.mu.RLock()
	seen := make(map[*conn]bool)
	for _, set := range h.subs {
		for s := range set {
			seen[s.c] = true
		}
	}
	h.mu.RUnlock()
	for c := range seen {
		if c.kick(CloseResync, "events may have been lost; resubscribe with since") {
			h.m.drop(dropResync)
		}
	}
}

// addConn registers a connection, or refuses it during shutdown.
func (h *Hub) addConn(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	h.m.addConnections(1)
	return true
}

func (h *Hub) removeConn(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.m.addConnections(-1)
	h.wg.Done()
}

func (h *Hub) addSub(s *subscription) {
	h.mu.Lock()
	set := h.subs[s.key]
	if set == nil {
		set = make(map[*subscription]struct{})
		h.subs[s.key] = set
	}
	set[s] = struct{}{}
	h.mu.Unlock()
	h.m.addSubscriptions(1)
}

func (h *Hub) removeSub(s *subscription) {
	h.mu.Lock()
	if set := h.subs[s.key]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(h.subs, s.key)
		}
	}
	h.mu.Unlock()
	h.m.addSubscriptions(-1)
	s.mu.Lock()
	s.closed = true
	s.buf = nil
	s.mu.Unlock()
}

// Shutdown closes every connection with 1001 and waits for their
// goroutines, then stops the broker's. When ctx ends first the
// connections are cut without waiting for their close handshake, and
// ctx's error is returned. New connections are refused from the start.
// Publish keeps working afterwards, so that writes still draining reach
// the other instances.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()

	h.cancel()
	for _, c := range conns {
		c.kick(CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { // ends when the last handler returns, which the cut below ensures
		h.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range conns {
			_ = c.ws.NetConn().Close()
		}
		<-done
	}
	h.stopOnce.Do(h.broker.stop)
	return err
}
