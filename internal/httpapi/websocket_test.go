package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/ratelimit"
	"github.com/agentstore/agentstore/internal/realtime"
)

// wsAPI is an API over SQLite whose GET /v1/ws reaches a realtime hub of
// its own, which lets https://app.example.com connect; edit may change
// Deps further.
func wsAPI(t *testing.T, edit func(*Deps)) (*api, *realtime.Hub) {
	t.Helper()
	hub, err := realtime.New(context.Background(), realtime.Config{AllowedOrigins: []string{"https://app.example.com"}}, nil, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, hub.Shutdown(ctx))
	})
	a := newAPIWith(t, backends[1].open(t), func(d *Deps) {
		d.Events = hub
		d.WebSocket = hub.Endpoint(d.Auth, nil, nil)
		edit(d)
	})
	return a, hub
}

func wsURL(a *api) string { return "ws" + strings.TrimPrefix(a.srv.URL, "http") + "/v1/ws" }

// pingPong checks that an upgraded connection answers a ping.
func pingPong(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","ref":"p"}`)))
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(5*time.Second)))
	var f struct{ Type, Ref string }
	require.NoError(t, ws.ReadJSON(&f))
	assert.Equal(t, "pong", f.Type)
	assert.Equal(t, "p", f.Ref)
}

// TestWebSocketHandshake: the handshake passes through the middleware of
// every /v1 route, and each refusal, before any upgrade, is the error
// handler's JSON.
func TestWebSocketHandshake(t *testing.T) {
	t.Parallel()
	a, _ := wsAPI(t, func(*Deps) {})
	tenantID := uuid.New()
	mint := func(o auth.MintOptions) string {
		tok, err := auth.Mint(testSecret, o)
		require.NoError(t, err)
		return tok
	}
	good := mint(auth.MintOptions{Tenant: tenantID, Subject: "user-1"})
	other, err := auth.Mint([]byte("another-secret-another-secret-0123456789"), auth.MintOptions{Tenant: tenantID})
	require.NoError(t, err)
	anon := mint(auth.MintOptions{Tenant: tenantID, Role: "anon"})
	service := mint(auth.MintOptions{Role: "service_role"})

	tests := []struct {
		name   string
		header http.Header
		query  string
		status int
		code   string
	}{
		{"no token", nil, "", http.StatusUnauthorized, derrors.CodeUnauthenticated},
		{"not bearer", http.Header{"Authorization": {"Basic " + good}}, "", http.StatusUnauthorized, derrors.CodeUnauthenticated},
		{"garbage token", http.Header{"Authorization": {"Bearer not.a.jwt"}}, "", http.StatusUnauthorized, derrors.CodeUnauthenticated},
		{"wrong signature", http.Header{"Authorization": {"Bearer " + other}}, "", http.StatusUnauthorized, derrors.CodeUnauthenticated},
		{"expired", http.Header{"Authorization": {"Bearer " + mint(auth.MintOptions{Tenant: tenantID, TTL: -time.Minute})}}, "", http.StatusUnauthorized, derrors.CodeUnauthenticated},
		{"bad query token", nil, "?access_token=nope", http.StatusUnauthorized, derrors.CodeUnauthenticated},
		{"anon", http.Header{"Authorization": {"Bearer " + anon}}, "", http.StatusForbidden, derrors.CodeForbidden},
		{"no tenant", http.Header{"Authorization": {"Bearer " + mint(auth.MintOptions{})}}, "", http.StatusForbidden, derrors.CodeForbidden},
		{"service role without X-Tenant-ID", http.Header{"Authorization": {"Bearer " + service}}, "", http.StatusForbidden, derrors.CodeForbidden},
		{"bad origin", http.Header{"Authorization": {"Bearer " + good}, "Origin": {"https://evil.example.com"}}, "", http.StatusForbidden, derrors.CodeForbidden},
		{"null origin", http.Header{"Authorization": {"Bearer " + good}, "Origin": {"null"}}, "", http.StatusForbidden, derrors.CodeForbidden},
		{"header token", http.Header{"Authorization": {"Bearer " + good}}, "", http.StatusSwitchingProtocols, ""},
		{"query token", nil, "?access_token=" + good, http.StatusSwitchingProtocols, ""},
		{"allowed origin", http.Header{"Authorization": {"Bearer " + good}, "Origin": {"https://APP.example.com"}}, "", http.StatusSwitchingProtocols, ""},
		{"service role with X-Tenant-ID", http.Header{"Authorization": {"Bearer " + service}, "X-Tenant-Id": {tenantID.String()}}, "", http.StatusSwitchingProtocols, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := websocket.DefaultDialer.Dial(wsURL(a)+tt.query, tt.header)
			require.NotNil(t, resp, "dial: %v", err)
			defer resp.Body.Close()
			require.Equal(t, tt.status, resp.StatusCode)
			if tt.status == http.StatusSwitchingProtocols {
				require.NoError(t, err)
				pingPong(t, ws)
				_ = ws.Close()
				return
			}
			require.Error(t, err)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var body ErrorBody
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, tt.code, body.Code)
			assert.NotEmpty(t, body.Message)
			assert.NotEmpty(t, body.RequestID)
			assert.Equal(t, body.RequestID, resp.Header.Get("X-Request-ID"))
			if tt.status == http.StatusUnauthorized {
				assert.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("plain GET", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/v1/ws", nil)
		req.Header.Set("Authorization", "Bearer "+good)
		req.Header.Set("X-Request-ID", "req-123")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		var body ErrorBody
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		assert.Equal(t, derrors.CodeInvalidArgument, body.Code)
		assert.Equal(t, "req-123", body.RequestID)
	})

	t.Run("wrong method", func(t *testing.T) {
		c := &client{a: a, token: good, header: http.Header{}}
		r := c.do(http.MethodPost, "/v1/ws", nil)
		require.Equal(t, http.StatusMethodNotAllowed, r.status)
		assert.Equal(t, CodeMethodNotAllowed, r.errCode(t))
		assert.Contains(t, r.header.Get("Allow"), http.MethodGet)
	})

	t.Run("unsupported version", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/v1/ws", nil)
		req.Header.Set("Authorization", "Bearer "+good)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "8")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Equal(t, "13", resp.Header.Get("Sec-WebSocket-Version"))
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, derrors.CodeInvalidArgument, response{body: b}.errCode(t))
	})

	t.Run("the 101 carries the request id", func(t *testing.T) {
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL(a), http.Header{"Authorization": {"Bearer " + good}, "X-Request-ID": {"ws-req-1"}})
		require.NoError(t, err)
		resp.Body.Close()
		defer ws.Close()
		assert.Equal(t, "ws-req-1", resp.Header.Get("X-Request-ID"))
	})
}

// TestWebSocketShutdown: once the hub shuts down, a handshake is refused
// with 503 UNAVAILABLE by the error handler.
func TestWebSocketShutdown(t *testing.T) {
	t.Parallel()
	a, hub := wsAPI(t, func(*Deps) {})
	require.NoError(t, hub.Shutdown(context.Background()))
	tok, err := auth.Mint(testSecret, auth.MintOptions{Tenant: uuid.New()})
	require.NoError(t, err)
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(a)+"?access_token="+tok, nil)
	require.Error(t, err)
	require.NotNil(t, resp)
	defer resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	var body ErrorBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, derrors.CodeUnavailable, body.Code)
	assert.Equal(t, "server shutting down", body.Message)
}

// TestTokenInQueryOnlyForWebSocket: no route but /v1/ws reads a token
// from the query string, and neither the access log nor the metrics
// record a handshake's query string or token.
func TestTokenInQueryOnlyForWebSocket(t *testing.T) {
	t.Parallel()
	a, _ := wsAPI(t, func(*Deps) {})
	c := a.user()
	r := (&client{a: a, header: http.Header{}}).do(http.MethodGet, "/v1/runs?access_token="+c.token, nil)
	require.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, derrors.CodeUnauthenticated, r.errCode(t))
	require.Equal(t, http.StatusOK, c.do(http.MethodGet, "/v1/runs", nil).status)

	ws, resp, err := websocket.DefaultDialer.Dial(wsURL(a)+"?access_token="+c.token, nil)
	require.NoError(t, err)
	resp.Body.Close()
	pingPong(t, ws)
	require.NoError(t, ws.Close())
	bogus := "bogus-" + uuid.NewString()
	_, resp, err = websocket.DefaultDialer.Dial(wsURL(a)+"?access_token="+bogus, nil)
	require.Error(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	metrics := (&client{a: a, header: http.Header{}}).do(http.MethodGet, "/metrics", nil)
	require.Equal(t, http.StatusOK, metrics.status)
	logs := a.log.String()
	require.Contains(t, logs, `"route":"/v1/ws"`, "the handshakes were logged")
	require.Contains(t, string(metrics.body), `route="/v1/ws"`, "the handshakes were counted")
	for _, secret := range []string{c.token, bogus, "access_token"} {
		assert.NotContains(t, logs, secret)
		assert.NotContains(t, string(metrics.body), secret)
	}
}

// TestWebSocketRateLimited: the handshake is counted by the rate limiter
// like any /v1 request, and its 101 carries the rate-limit headers.
func TestWebSocketRateLimited(t *testing.T) {
	t.Parallel()
	a, _ := wsAPI(t, func(d *Deps) {
		l, err := ratelimit.New(ratelimit.Config{Max: 2, Window: time.Minute, FailMode: ratelimit.FailOpen}, nil, d.Log, ratelimit.NewMetrics(d.Registry))
		require.NoError(t, err)
		d.Limiter = l
	})
	c := a.user()
	for i := 0; i < 2; i++ {
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL(a)+"?access_token="+c.token, nil)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, "2", resp.Header.Get("X-RateLimit-Limit"))
		require.NoError(t, ws.Close())
	}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(a)+"?access_token="+c.token, nil)
	require.Error(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	var body ErrorBody
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, derrors.CodeRateLimited, body.Code)
}
