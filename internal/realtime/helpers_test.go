package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

var testSecret = []byte("agentstore-realtime-test-secret-0123456789")

const (
	modeMemory = "memory"
	modeRedis  = "redis"
)

// forModes runs fn once per broker: in-process and Redis.
func forModes(t *testing.T, fn func(t *testing.T, mode string)) {
	for _, mode := range []string{modeMemory, modeRedis} {
		t.Run(mode, func(t *testing.T) { fn(t, mode) })
	}
}

// testRedis returns a client of the test run's Redis, failing (never
// skipping) when AGENTSTORE_TEST_REDIS_URL is not set.
func testRedis(t *testing.T) *redis.Client { return testRedisNamed(t, "") }

// testRedisNamed is testRedis whose connections carry a client name.
func testRedisNamed(t *testing.T, name string) *redis.Client {
	t.Helper()
	url := os.Getenv("AGENTSTORE_TEST_REDIS_URL")
	if url == "" {
		t.Fatal("AGENTSTORE_TEST_REDIS_URL is not set: run the tests through scripts/services.sh (make test)")
	}
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	opts.ClientName = name
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	require.NoError(t, rdb.Ping(context.Background()).Err())
	return rdb
}

var unsafeKeyChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// testPrefix is a Redis key prefix of the test's own; its keys are deleted
// at the end.
func testPrefix(t *testing.T, rdb *redis.Client) string {
	prefix := fmt.Sprintf("agentstore:wstest:%s:%d:", unsafeKeyChars.ReplaceAllString(t.Name(), "_"), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			_ = rdb.Del(ctx, iter.Val()).Err()
		}
	})
	return prefix
}

// runSet is the test's RunChecker: runs and the tenant each belongs to.
type runSet struct {
	mu   sync.Mutex
	runs map[uuid.UUID]uuid.UUID
}

func (r *runSet) add(tenantID uuid.UUID) uuid.UUID {
	id := uuid.New()
	r.mu.Lock()
	r.runs[id] = tenantID
	r.mu.Unlock()
	return id
}

func (r *runSet) RunExists(ctx context.Context, id uuid.UUID) (bool, error) {
	v, ok := tenant.FromContext(ctx)
	if !ok {
		return false, fmt.Errorf("no viewer in context")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	owner, ok := r.runs[id]
	return ok && owner == v.TenantID, nil
}

// env is one or more hubs, each behind its own httptest server, sharing
// Redis in redis mode.
type env struct {
	mode     string
	cfg      Config
	verifier *auth.Verifier
	runs     *runSet
	hubs     []*Hub
	srvs     []*httptest.Server
	metrics  []*Metrics
	names    []string // Redis client name of each hub
	rdb      *redis.Client
	prefix   string
	proxy    *tcpProxy
}

type envOpts struct {
	hubs int
	// proxy puts a tcpProxy between the hubs and Redis, which the test can
	// cut (e.proxy).
	proxy   bool
	cfg     func(*Config)
	limiter func(e *env) EventLimiter
}

func newEnv(t *testing.T, mode string, o envOpts) *env {
	t.Helper()
	if o.hubs == 0 {
		o.hubs = 1
	}
	v, err := auth.New(context.Background(), auth.Config{HS256Secret: testSecret}, nil)
	require.NoError(t, err)
	e := &env{mode: mode, verifier: v, runs: &runSet{runs: make(map[uuid.UUID]uuid.UUID)}}
	e.cfg = Config{AllowedOrigins: []string{"https://app.example.com"}}
	if mode == modeRedis {
		e.rdb = testRedis(t)
		e.prefix = testPrefix(t, e.rdb)
		e.cfg.KeyPrefix = e.prefix
		if o.proxy {
			e.proxy = newTCPProxy(t, e.rdb.Options().Addr)
		}
	}
	if o.cfg != nil {
		o.cfg(&e.cfg)
	}
	var limiter EventLimiter
	if o.limiter != nil {
		limiter = o.limiter(e)
	}
	for i := 0; i < o.hubs; i++ {
		var rdb *redis.Client
		if mode == modeRedis {
			name := fmt.Sprintf("wstest-%d-%d", i, time.Now().UnixNano())
			rdb = testRedisNamed(t, name) // one client per instance, as in production
			e.names = append(e.names, name)
			if e.proxy != nil {
				opts := *rdb.Options()
				opts.Addr = e.proxy.addr
				opts.MaxRetries = -1 // fail fast while cut, as against a stopped server
				rdb = redis.NewClient(&opts)
				t.Cleanup(func() { _ = rdb.Close() })
			}
		}
		m := NewMetrics(prometheus.NewRegistry())
		h, err := New(context.Background(), e.cfg, rdb, nil, m)
		require.NoError(t, err)
		srv := httptest.NewServer(e.httpLayer(h.Endpoint(e.verifier, e.runs, limiter)))
		t.Cleanup(srv.Close)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, h.Shutdown(ctx))
		})
		e.hubs = append(e.hubs, h)
		e.srvs = append(e.srvs, srv)
		e.metrics = append(e.metrics, m)
	}
	return e
}

// httpLayer stands in for the HTTP API, which authenticates a handshake
// before the hub sees it: the token comes in the access_token query
// parameter, and a refusal is answered with its category's status and
// public code.
func (e *env) httpLayer(ep *Endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := func() error {
			claims, err := e.verifier.Verify(r.Context(), r.URL.Query().Get("access_token"))
			if err != nil {
				return err
			}
			v, err := e.verifier.Viewer(claims, r.Header.Get("X-Tenant-ID"))
			if err != nil {
				return err
			}
			return ep.Accept(w, r.WithContext(auth.NewContext(tenant.NewContext(r.Context(), v), claims)))
		}()
		if err != nil {
			status, ok := statusOfCode[derrors.Code(err)]
			if !ok {
				status = http.StatusInternalServerError
			}
			http.Error(w, derrors.Code(err), status)
		}
	})
}

// statusOfCode is the HTTP status of the refusals httpLayer answers.
var statusOfCode = map[string]int{
	derrors.CodeInvalidArgument: http.StatusBadRequest,
	derrors.CodeUnauthenticated: http.StatusUnauthorized,
	derrors.CodeForbidden:       http.StatusForbidden,
	derrors.CodeUnavailable:     http.StatusServiceUnavailable,
}

// token mints a token of tenantID that lives ttl (0: an hour).
func token(t *testing.T, tenantID uuid.UUID, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, auth.MintOptions{Tenant: tenantID, Subject: "user-" + tenantID.String()[:8], TTL: ttl})
	require.NoError(t, err)
	return tok
}

func wsURL(srv *httptest.Server) string { return "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws" }

// dial connects to hub i with tok.
func (e *env) dial(t *testing.T, i int, tok string) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL(e.srvs[i])+"?access_token="+tok, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	require.NoError(t, err)
	c := &client{t: t, ws: ws}
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

// frame is any server frame.
type frame struct {
	Type         string          `json:"type"`
	Ref          string          `json:"ref"`
	Channel      string          `json:"channel"`
	Event        string          `json:"event"`
	Offset       *uint64         `json:"offset"`
	Recovered    *bool           `json:"recovered"`
	Data         json.RawMessage `json:"data"`
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	RetryAfterMs *int64          `json:"retryAfterMs"`
}

func (f frame) offset() uint64 {
	if f.Offset == nil {
		return 0
	}
	return *f.Offset
}

// client is a test's WebSocket client; one goroutine uses it.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	require.NoError(c.t, err)
	require.NoError(c.t, c.ws.WriteMessage(websocket.TextMessage, b))
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	require.NoError(c.t, c.ws.WriteMessage(websocket.TextMessage, []byte(s)))
}

// read returns the next frame, failing after 5s.
func (c *client) read() frame {
	c.t.Helper()
	f, err := c.tryRead(5 * time.Second)
	require.NoError(c.t, err)
	return f
}

func (c *client) tryRead(wait time.Duration) (frame, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(wait))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("bad frame %s: %w", b, err)
	}
	return f, nil
}

// expect reads the next frame and checks its type.
func (c *client) expect(typ string) frame {
	c.t.Helper()
	f := c.read()
	require.Equal(c.t, typ, f.Type, "frame %+v", f)
	return f
}

// expectError reads the next frame and checks it is an error of code
// answering ref.
func (c *client) expectError(ref, code string) frame {
	c.t.Helper()
	f := c.expect(typeError)
	require.Equal(c.t, ref, f.Ref, "frame %+v", f)
	require.Equal(c.t, code, f.Code, "frame %+v", f)
	require.NotEmpty(c.t, f.Message)
	return f
}

func (c *client) subscribe(ref, channel string, since *uint64) frame {
	c.t.Helper()
	m := map[string]any{"type": "subscribe", "ref": ref, "channel": channel}
	if since != nil {
		m["since"] = *since
	}
	c.send(m)
	f := c.expect(typeSubscribed)
	require.Equal(c.t, ref, f.Ref)
	require.Equal(c.t, channel, f.Channel)
	require.NotNil(c.t, f.Offset)
	return f
}

// ping round-trips a ping: every frame sent before it has been handled.
func (c *client) ping(ref string) {
	c.t.Helper()
	c.send(map[string]any{"type": "ping", "ref": ref})
	f := c.expect(typePong)
	require.Equal(c.t, ref, f.Ref)
}

// closeCode reads until the connection ends and returns its close code.
func (c *client) closeCode(wait time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		_ = c.ws.SetReadDeadline(deadline)
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		require.True(c.t, ok, "connection ended without a close frame: %v", err)
		return ce.Code
	}
}

func ptr[T any](v T) *T { return &v }

// tcpProxy forwards TCP connections to a target (the test's Redis) until
// cut, which closes its listener and every connection as a stopped server
// would; restore listens again on the same address.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target, conns: make(map[net.Conn]struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln {
				p.mu.Unlock()
				_ = c.Close()
				_ = up.Close()
				return
			}
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
}

// cut stops the proxy: new connections are refused, open ones closed.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// restore listens again on the proxy's address.
func (p *tcpProxy) restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(p.t, err)
	p.serve(ln)
}
