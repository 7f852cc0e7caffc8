package realtime

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// closeGrace is how long the server waits for the client to answer its
// close frame before it drops the TCP connection.
const closeGrace = 2 * time.Second

// conn is one WebSocket connection. Its reader goroutine reads and handles
// frames in order; its writer goroutine, which the reader starts and waits
// for, is the only one that writes data frames. Everything else reaches
// the client through the send queue: a slice under qmu that the writer
// swaps out whole, so a writer that fell behind catches up with one
// network write for everything that waits.
type conn struct {
	hub      *Hub
	ws       *websocket.Conn
	nc       *batchConn // ws's connection; nil when it is not one
	id       string     // origin of the events this connection publishes
	ip       string
	tenantID uuid.UUID // fixed for the connection's life: refresh keeps it
	auth     Authenticator
	runs     RunChecker
	limiter  EventLimiter

	// Owned by the reader goroutine.
	viewer tenant.Viewer
	subs   map[string]*subscription
	runOK  map[uuid.UUID]bool
	linger bool // the reader saw gorilla send a close frame; let it arrive

	ctx    context.Context
	cancel context.CancelFunc
	expiry *time.Timer // kicks with 4001 when the token expires; reset by "auth"
	pinger *time.Timer // asks the writer for a ping every PingInterval

	armed time.Time // the write deadline in force; owned by the writer

	qmu     sync.Mutex
	queue   [][]byte      // frames waiting for the writer, at most SendQueue before a batch
	pingDue bool          // the writer owes the client a ping
	wake    chan struct{} // capacity 1: the queue or pingDue changed, or the connection is ending

	once        sync.Once
	done        chan struct{} // closed by kick: the connection is ending
	closeCode   int           // written once, before done is closed; 0 = send no close frame
	closeReason string

	readerDone chan struct{}
	writerDone chan struct{}
}

// kick ends the connection with a close frame of code (none when 0), and
// reports whether this call was the one that ended it.
func (c *conn) kick(code int, reason string) bool {
	first := false
	c.once.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.done)
		first = true
	})
	if first {
		c.notify()
	}
	return first
}

func (c *conn) ending() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// slow drops a subscriber whose send queue is full, at once: a write that
// blocks on it is cut short, so that it holds nothing for long.
func (c *conn) slow() {
	if c.kick(CloseSlowConsumer, "slow consumer") {
		c.hub.m.drop(dropSlowConsumer)
		c.hub.log.Info("realtime: dropped a slow subscriber", "tenant_id", c.tenantID.String())
		_ = c.ws.NetConn().SetWriteDeadline(time.Now())
	}
}

// enqueue queues frames to be written in order, without blocking. Once
// SendQueue frames wait, the connection is dropped instead; a batch (a
// subscribe's reply with its replay) is queued whole.
func (c *conn) enqueue(frames ...[]byte) bool {
	if c.ending() {
		return false
	}
	c.qmu.Lock()
	if len(c.queue) >= c.hub.cfg.SendQueue {
		c.qmu.Unlock()
		c.slow()
		return false
	}
	c.queue = append(c.queue, frames...)
	c.qmu.Unlock()
	c.notify()
	return true
}

// notify wakes the writer, unless a wake-up is already pending.
func (c *conn) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// schedulePing runs on the ping timer's goroutine.
func (c *conn) schedulePing() {
	c.qmu.Lock()
	c.pingDue = true
	c.qmu.Unlock()
	c.notify()
}

func (c *conn) reply(f replyFrame) { c.enqueue(encodeReply(f)) }

func (c *conn) replyError(ref string, e *derrors.Error) {
	c.enqueue(encodeError(ref, e))
}

// run serves the connection until it ends, then releases everything it
// holds.
func (c *conn) run() {
	go c.writeLoop()
	c.readLoop()
	c.kick(0, "")
	<-c.writerDone
	c.expiry.Stop()
	c.pinger.Stop()
	for _, s := range c.subs {
		c.hub.removeSub(s)
	}
	c.subs = nil
	c.cancel()
}

func (c *conn) readLoop() {
	defer close(c.readerDone)
	cfg := c.hub.cfg
	c.ws.SetReadLimit(cfg.MaxMessageBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
	})
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			// Gorilla already sent 1009 (too large) or 1002 (protocol
			// error) for these; the writer lets that close frame arrive.
			var ce *websocket.CloseError
			c.linger = !errors.As(err, &ce) && !isNetError(err)
			return
		}
		if c.ending() {
			continue // draining until the client answers our close frame
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(cfg.PongWait))
		if mt != websocket.TextMessage {
			c.replyError("", invalid("frames must be JSON text frames"))
			continue
		}
		c.handle(data)
	}
}

// isNetError reports whether err came from the network rather than from
// the peer's frames.
func isNetError(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// keepQueue is the largest queue capacity the writer keeps between
// batches; a larger one, left by a burst, goes back to the garbage
// collector so that idle connections stay small.
const keepQueue = 16

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	var spare [][]byte
	for {
		<-c.wake // kick wakes it too
		if c.ending() {
			c.finish()
			return
		}
		c.qmu.Lock()
		batch, ping := c.queue, c.pingDue
		c.queue, c.pingDue = spare, false
		c.qmu.Unlock()
		if !c.write(batch, ping) {
			c.kick(0, "")
		}
		clear(batch) // the frames belong to events other connections share
		spare = batch[:0]
		if cap(spare) > keepQueue {
			spare = nil
		}
	}
}

// write writes a ping when ping is set, then frames, in one system call
// when there are several, and reports whether the connection took them.
func (c *conn) write(frames [][]byte, ping bool) bool {
	deadline := c.writeDeadline()
	if ping {
		if err := c.ws.WriteControl(websocket.PingMessage, nil, deadline); err != nil {
			return false
		}
		c.pinger.Reset(c.hub.cfg.PingInterval)
	}
	if len(frames) == 0 {
		return true
	}
	_ = c.ws.SetWriteDeadline(deadline)
	held := len(frames) > 1 && c.nc != nil
	if held {
		c.nc.hold()
	}
	for _, f := range frames {
		if err := c.ws.WriteMessage(websocket.TextMessage, f); err != nil {
			if held {
				_ = c.nc.flush()
			}
			return false
		}
	}
	return !held || c.nc.flush() == nil
}

// writeDeadline is the deadline of the next write: the one in force until
// half of WriteWait has passed, then WriteWait from now. Every write thus
// ends within WriteWait of its start, and the deadline (a runtime timer)
// is re-armed about twice per WriteWait instead of once per frame.
func (c *conn) writeDeadline() time.Time {
	now := time.Now()
	if c.armed.Sub(now) < c.hub.cfg.WriteWait/2 {
		c.armed = now.Add(c.hub.cfg.WriteWait)
	}
	return c.armed
}

// finish sends the close frame, gives the client a moment to answer it,
// and closes the TCP connection, which ends the reader.
func (c *conn) finish() {
	sent := false
	if c.closeCode != 0 {
		msg := websocket.FormatCloseMessage(c.closeCode, c.closeReason)
		sent = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.hub.cfg.WriteWait)) == nil
	}
	if sent {
		t := time.NewTimer(closeGrace)
		select {
		case <-c.readerDone:
		case <-t.C:
		}
		t.Stop()
	} else {
		select {
		case <-c.readerDone:
			if c.linger {
				// Read what the client still sends, up to its own close,
				// so that closing does not reset the connection before our
				// close frame reached it.
				nc := c.ws.NetConn()
				_ = nc.SetReadDeadline(time.Now().Add(closeGrace))
				_, _ = io.Copy(io.Discard, io.LimitReader(nc, c.hub.cfg.MaxMessageBytes*4))
			}
		default:
		}
	}
	_ = c.ws.Close()
}

// handle answers one client frame.
func (c *conn) handle(data []byte) {
	in, perr := decodeFrame(data)
	if perr != nil {
		ref := in.Ref
		if ref == "" {
			ref = refOf(data)
		}
		c.replyError(ref, perr)
		return
	}
	switch in.Type {
	case typeSubscribe:
		perr = c.subscribe(in)
	case typeUnsubscribe:
		perr = c.unsubscribe(in)
	case typePublish:
		perr = c.publish(in)
	case typeAuth:
		perr = c.refresh(in)
	case typePing:
		c.reply(replyFrame{Type: typePong, Ref: in.Ref})
	}
	if perr != nil {
		c.replyError(in.Ref, perr)
	}
}

// opContext is the context of one call to a dependency: it carries the
// viewer and ends with the connection.
func (c *conn) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(tenant.NewContext(c.ctx, c.viewer), opTimeout)
}

func (c *conn) subscribe(in inbound) *derrors.Error {
	name, runID, perr := parseChannel(in.Channel)
	if perr != nil {
		return perr
	}
	if in.Since != nil && *in.Since == math.MaxUint64 {
		return invalid("since is out of range")
	}
	if _, dup := c.subs[name]; dup {
		return derrors.New(derrors.Conflict, "already subscribed to %s", name)
	}
	if len(c.subs) >= c.hub.cfg.MaxSubscriptions {
		return invalid("at most %d subscriptions per connection", c.hub.cfg.MaxSubscriptions)
	}
	if runID != uuid.Nil {
		if perr := c.checkRun(runID); perr != nil {
			return perr
		}
	}

	// Live events are buffered from now on, before the offset and history
	// are read: an event is then in the snapshot, in the buffer, or both
	// (deduplicated by offset), never in neither.
	s := &subscription{c: c, key: chanKey{tenant: c.viewer.TenantID, channel: name}, buffering: true}
	c.hub.addSub(s)
	ctx, cancel := c.opContext()
	defer cancel()
	top, events, err := c.hub.broker.snapshot(ctx, s.key, in.Since)
	if err != nil {
		c.hub.removeSub(s)
		c.hub.log.Error("realtime: subscribe", "tenant_id", c.viewer.TenantID.String(), "err", err)
		return derrors.New(derrors.Unavailable, "realtime backend unavailable")
	}
	c.subs[name] = s
	reply := replyFrame{Type: typeSubscribed, Ref: in.Ref, Channel: name, Offset: &top}
	var replay []*event
	if in.Since != nil {
		var ok bool
		replay, ok = recovered(*in.Since, top, events)
		reply.Recovered = &ok
	}
	s.start(encodeReply(reply), replay, top)
	return nil
}

func (c *conn) unsubscribe(in inbound) *derrors.Error {
	name, _, perr := parseChannel(in.Channel)
	if perr != nil {
		return perr
	}
	if s, ok := c.subs[name]; ok {
		c.hub.removeSub(s)
		delete(c.subs, name)
	}
	c.reply(replyFrame{Type: typeUnsubscribed, Ref: in.Ref, Channel: name})
	return nil
}

func (c *conn) publish(in inbound) *derrors.Error {
	name, runID, perr := parseChannel(in.Channel)
	if perr != nil {
		return perr
	}
	if runID == uuid.Nil {
		return invalid("publish needs a run:<uuid> channel")
	}
	if perr := checkEventName(in.Event); perr != nil {
		return perr
	}
	payload, perr := checkPayload(in.Payload)
	if perr != nil {
		return perr
	}
	ctx, cancel := c.opContext()
	defer cancel()
	if c.limiter != nil {
		allowed, retry, err := c.limiter.Allow(ctx, c.viewer.TenantID.String(), c.viewer.UserID, c.ip, in.Event)
		if err != nil {
			c.hub.log.Error("realtime: event limiter", "tenant_id", c.viewer.TenantID.String(), "err", err)
			return derrors.New(derrors.Unavailable, "rate limiter unavailable")
		}
		if !allowed {
			return &derrors.Error{Category: derrors.RateLimited, Message: "too many events; retry later", RetryAfter: retry}
		}
	}
	if perr := c.checkRun(runID); perr != nil {
		return perr
	}
	key := chanKey{tenant: c.viewer.TenantID, channel: name}
	if err := c.hub.broker.publish(ctx, []chanKey{key}, in.Event, payload, c.id); err != nil {
		c.hub.log.Error("realtime: client publish", "tenant_id", c.viewer.TenantID.String(), "err", err)
		return derrors.New(derrors.Unavailable, "realtime backend unavailable")
	}
	return nil
}

// refresh replaces the connection's token with a newer one of the same
// tenant, moving its expiry.
func (c *conn) refresh(in inbound) *derrors.Error {
	if in.Token == "" {
		return invalid("token is required")
	}
	ctx, cancel := c.opContext()
	defer cancel()
	claims, err := c.auth.Verify(ctx, in.Token)
	if err != nil {
		return derrors.New(derrors.Unauthenticated, "%s", publicMessage(err, "invalid token"))
	}
	// The tenant a service_role connection named at the handshake is the
	// one a service_role token acts for; other tokens carry their own.
	var actsFor string
	if c.viewer.IsServiceRole() {
		actsFor = c.viewer.TenantID.String()
	}
	v, err := c.auth.Viewer(claims, actsFor)
	if err != nil {
		return derrors.New(derrors.Forbidden, "%s", publicMessage(err, "token may not be used here"))
	}
	if v.TenantID != c.viewer.TenantID {
		return derrors.New(derrors.Forbidden, "token belongs to another tenant")
	}
	c.viewer = v
	c.expiry.Reset(time.Until(claims.Expiry))
	return nil
}

// checkRun reports NOT_FOUND unless the run exists in the viewer's
// tenant; runs found once are remembered for the connection's life.
func (c *conn) checkRun(id uuid.UUID) *derrors.Error {
	if c.runOK[id] {
		return nil
	}
	notFound := derrors.New(derrors.NotFound, "run not found")
	if c.runs == nil {
		return notFound
	}
	ctx, cancel := c.opContext()
	defer cancel()
	ok, err := c.runs.RunExists(ctx, id)
	switch {
	case errors.Is(err, derrors.NotFound):
		return notFound
	case err != nil:
		c.hub.log.Error("realtime: run check", "tenant_id", c.viewer.TenantID.String(), "err", err)
		return &derrors.Error{Message: "internal error"} // no category: INTERNAL
	case !ok:
		return notFound
	}
	c.runOK[id] = true
	return nil
}

// publicMessage is err's client-safe message, or fallback when it has none.
func publicMessage(err error, fallback string) string {
	var de *derrors.Error
	if errors.As(err, &de) && de.Message != "" {
		return de.Message
	}
	return fallback
}

// subscription is one connection's interest in one channel.
type subscription struct {
	c   *conn
	key chanKey

	mu        sync.Mutex
	buffering bool     // live events wait in buf until the snapshot is sent
	buf       []*event // at most SendQueue events
	last      uint64   // the highest offset sent, or known to the client
	closed    bool
}

// deliver queues a live event, in offset order and at most once, and
// reports whether it was queued for the client.
func (s *subscription) deliver(e *event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.buffering {
		if len(s.buf) >= s.c.hub.cfg.SendQueue {
			s.c.slow()
			return false
		}
		s.buf = append(s.buf, e)
		return false
	}
	if e.offset <= s.last {
		return false
	}
	s.last = e.offset
	if e.origin == s.c.id {
		return false
	}
	return s.c.enqueue(e.frame())
}

// start queues the subscribed reply, the replayed events and the live
// events buffered meanwhile, as one batch, then lets live events through.
func (s *subscription) start(reply []byte, replay []*event, top uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	frames := [][]byte{reply}
	for _, e := range replay {
		if e.origin != s.c.id {
			frames = append(frames, e.frame())
		}
	}
	s.last = top
	for _, e := range s.buf {
		if e.offset > s.last {
			s.last = e.offset
			if e.origin != s.c.id {
				frames = append(frames, e.frame())
			}
		}
	}
	s.buf, s.buffering = nil, false
	if s.c.enqueue(frames...) {
		s.c.hub.m.delivered(len(frames) - 1)
	}
}
