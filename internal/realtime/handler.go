package realtime

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Authenticator verifies the tokens of "auth" frames, which refresh a
// connection's token; *auth.Verifier is one.
type Authenticator interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
	Viewer(c auth.Claims, headerTenant string) (tenant.Viewer, error)
}

// RunChecker says whether a run exists in the tenant of the tenant.Viewer
// that ctx carries; a run of another tenant does not exist.
type RunChecker interface {
	RunExists(ctx context.Context, runID uuid.UUID) (bool, error)
}

// EventLimiter budgets the events clients publish, per tenant, user,
// address and event name (the key "ws:<tenant>:<user>:<ip>:<event>");
// *ratelimit.EventLimiter is one. A false allowed means the event is not
// delivered and the client is told to wait retryAfter.
type EventLimiter interface {
	Allow(ctx context.Context, tenant, user, ip, event string) (allowed bool, retryAfter time.Duration, err error)
}

// Endpoint accepts the hub's WebSocket connections. runs decides which run
// channels a viewer may use (nil: none); limiter budgets client publishes
// (nil: no limit); auth verifies the tokens of "auth" frames.
type Endpoint struct {
	hub     *Hub
	auth    Authenticator
	runs    RunChecker
	limiter EventLimiter
}

// Endpoint returns the endpoint through which the HTTP layer hands the
// hub its WebSocket handshakes.
func (h *Hub) Endpoint(a Authenticator, runs RunChecker, limiter EventLimiter) *Endpoint {
	return &Endpoint{hub: h, auth: a, runs: runs, limiter: limiter}
}

// Accept upgrades a WebSocket handshake that the HTTP layer authenticated:
// r's context carries the tenant.Viewer the connection acts as and the
// auth.Claims of its token, whose expiry closes the connection with 4001
// unless an "auth" frame refreshes it. The 101 response carries the
// headers already set on w (the request id, the rate-limit headers).
//
// A handshake it refuses gets no response from it: Accept writes nothing
// and returns an error of a derrors category for the HTTP layer to answer,
// Forbidden for a browser Origin outside Config.AllowedOrigins,
// InvalidArgument for a request that is not a WebSocket handshake,
// Unavailable once the hub is shutting down. After an upgrade it returns
// nil and serves the connection on goroutines of its own.
func (e *Endpoint) Accept(w http.ResponseWriter, r *http.Request) error {
	h := e.hub
	viewer, ok := tenant.FromContext(r.Context())
	claims, ok2 := auth.FromContext(r.Context())
	if !ok || !ok2 || viewer.TenantID == uuid.Nil {
		return derrors.New(derrors.Unauthenticated, "missing token")
	}
	if !h.origins.allows(r.Header.Get("Origin")) {
		return derrors.New(derrors.Forbidden, "origin not allowed")
	}
	if r.Method != http.MethodGet || !websocket.IsWebSocketUpgrade(r) {
		return derrors.New(derrors.InvalidArgument, "expected a WebSocket upgrade request")
	}
	if h.isClosing() {
		return derrors.New(derrors.Unavailable, "server shutting down")
	}

	// A copy of the upgrader whose refusals (a bad version or key) are
	// returned, not written.
	var refused error
	u := h.upgrader
	u.Error = func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
		refused = handshakeRefusal(w, status, reason)
	}
	ws, err := u.Upgrade(batchHijacker{w}, r, w.Header())
	if err != nil {
		if refused != nil {
			return refused
		}
		// Failed after the hijack: gorilla closed the connection, and
		// there is nobody left to answer.
		h.log.DebugContext(r.Context(), "realtime: handshake failed after the upgrade", "err", err)
		return nil
	}
	c := e.newConn(ws, r, viewer, claims.Expiry)
	if !h.addConn(c) {
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(CloseGoingAway, "server shutting down"), time.Now().Add(h.cfg.WriteWait))
		_ = ws.Close()
		return nil
	}
	// Serve the connection on goroutines of its own and return: net/http
	// then frees the request's state and write buffer, about 8 KiB that
	// every idle connection would otherwise keep.
	go func() {
		defer h.removeConn(c)
		c.run()
	}()
	return nil
}

// handshakeRefusal is the error of a handshake the upgrader refused with
// status. Like gorilla's own answer, the response names the one protocol
// version the server speaks.
func handshakeRefusal(w http.ResponseWriter, status int, reason error) error {
	w.Header().Set("Sec-WebSocket-Version", "13")
	msg := strings.TrimPrefix(reason.Error(), "websocket: ")
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return derrors.New(derrors.InvalidArgument, "%s", msg)
	case http.StatusForbidden:
		return derrors.New(derrors.Forbidden, "%s", msg)
	default:
		return fmt.Errorf("realtime: upgrade: %w", reason)
	}
}

func (e *Endpoint) newConn(ws *websocket.Conn, r *http.Request, v tenant.Viewer, expiry time.Time) *conn {
	h := e.hub
	var ip string
	if h.cfg.ClientIP != nil {
		ip = h.cfg.ClientIP(r)
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ip = host
	} else {
		ip = r.RemoteAddr
	}
	nc, _ := ws.NetConn().(*batchConn)
	c := &conn{
		hub: h, ws: ws, nc: nc, id: uuid.NewString(), ip: ip, tenantID: v.TenantID,
		auth: e.auth, runs: e.runs, limiter: e.limiter,
		viewer: v,
		subs:   make(map[string]*subscription),
		runOK:  make(map[uuid.UUID]bool),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}), readerDone: make(chan struct{}), writerDone: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(h.base)
	c.expiry = time.AfterFunc(time.Until(expiry), func() { c.kick(CloseTokenExpired, "token expired") })
	c.pinger = time.AfterFunc(h.cfg.PingInterval, c.schedulePing)
	return c
}

func (h *Hub) isClosing() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closing
}
