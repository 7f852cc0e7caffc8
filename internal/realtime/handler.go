package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Authenticator verifies tokens and turns them into viewers; the HTTP
// layer's Authenticator (an *auth.Verifier) has this method set.
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

// Header names the handshake reads and writes.
const (
	headerRequestID = "X-Request-ID"
	headerTenantID  = "X-Tenant-ID"
)

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Handler serves GET /v1/ws. The token (Authorization: Bearer, or the
// access_token query parameter for browsers) is checked before the
// upgrade: none or a bad one is a 401, one that may not act a 403, as is a
// browser Origin outside Config.AllowedOrigins; error bodies are the HTTP
// API's JSON envelope. runs decides which run channels a viewer may use
// (nil: none); limiter budgets client publishes (nil: no limit).
func (h *Hub) Handler(a Authenticator, runs RunChecker, limiter EventLimiter) http.Handler {
	return &endpoint{hub: h, auth: a, runs: runs, limiter: limiter}
}

type endpoint struct {
	hub     *Hub
	auth    Authenticator
	runs    RunChecker
	limiter EventLimiter
}

// errorBody is the HTTP API's error envelope.
type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"requestId"`
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := requestID(w, r)
	fail := func(status int, code, msg string) {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentstore"`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(errorBody{Code: code, Message: msg, RequestID: reqID})
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		fail(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "use GET")
		return
	}
	token, ok := tokenOf(r)
	if !ok {
		fail(http.StatusUnauthorized, codeUnauthenticated, "missing bearer token")
		return
	}
	claims, err := e.auth.Verify(r.Context(), token)
	if err != nil {
		fail(http.StatusUnauthorized, codeUnauthenticated, publicMessage(err, "invalid token"))
		return
	}
	viewer, err := e.auth.Viewer(claims, r.Header.Get(headerTenantID))
	if err != nil {
		if errors.Is(err, derrors.Unauthenticated) {
			fail(http.StatusUnauthorized, codeUnauthenticated, publicMessage(err, "invalid token"))
			return
		}
		fail(http.StatusForbidden, codeForbidden, publicMessage(err, "token may not be used here"))
		return
	}
	if !e.hub.origins.allows(r.Header.Get("Origin")) {
		fail(http.StatusForbidden, codeForbidden, "origin not allowed")
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		fail(http.StatusBadRequest, codeInvalidArgument, "expected a WebSocket upgrade request")
		return
	}
	if e.hub.isClosing() {
		fail(http.StatusServiceUnavailable, codeUnavailable, "server shutting down")
		return
	}

	ws, err := e.hub.upgrader.Upgrade(batchHijacker{w}, r, http.Header{headerRequestID: {reqID}})
	if err != nil {
		return // the upgrader answered the request
	}
	c := e.newConn(ws, r, viewer, claims.Expiry)
	if !e.hub.addConn(c) {
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(CloseGoingAway, "server shutting down"), time.Now().Add(e.hub.cfg.WriteWait))
		_ = ws.Close()
		return
	}
	// Serve the connection on goroutines of its own and return: net/http
	// then frees the request's state and write buffer, about 8 KiB that
	// every idle connection would otherwise keep.
	go func() {
		defer e.hub.removeConn(c)
		c.run()
	}()
}

func (e *endpoint) newConn(ws *websocket.Conn, r *http.Request, v tenant.Viewer, expiry time.Time) *conn {
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
		headerTenant: r.Header.Get(headerTenantID),
		auth:         e.auth, runs: e.runs, limiter: e.limiter,
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

// tokenOf returns the bearer token of the Authorization header or, when
// there is no such header, of the access_token query parameter.
func tokenOf(r *http.Request) (string, bool) {
	if hdr := r.Header.Get("Authorization"); hdr != "" {
		scheme, token, ok := strings.Cut(hdr, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", false
		}
		return token, true
	}
	token := strings.TrimSpace(r.URL.Query().Get("access_token"))
	return token, token != ""
}

// requestID returns the request's id: the one a middleware already set
// on the response, else a sane client-sent one, else a new one.
func requestID(w http.ResponseWriter, r *http.Request) string {
	if id := w.Header().Get(headerRequestID); id != "" {
		return id
	}
	id := r.Header.Get(headerRequestID)
	if !validRequestID.MatchString(id) {
		id = uuid.NewString()
	}
	w.Header().Set(headerRequestID, id)
	return id
}
