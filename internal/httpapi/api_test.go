package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/store"
)

// testSecret signs the tokens of the API tests.
var testSecret = []byte("test-secret-that-is-at-least-32-bytes-long")

// api is a real Echo instance over a real database, served by httptest on
// loopback, driven by a real HTTP client.
type api struct {
	t   *testing.T
	srv *httptest.Server
	st  *store.Store
	log *syncBuffer // everything the API logged
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// backends are the databases the API tests run on.
var backends = []struct {
	name string
	open func(t *testing.T) *store.Store
}{
	{"postgres", func(t *testing.T) *store.Store {
		db, err := store.OpenPostgres(context.Background(), dbtest.Postgres(t), 10)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return store.New(db, dialect.Postgres, dbtest.Schema, nil)
	}},
	{"sqlite", func(t *testing.T) *store.Store {
		db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "api.db"))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return store.New(db, dialect.SQLite, "", nil)
	}},
}

// forEachBackend runs fn against an API over each backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, a *api)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newAPI(t, b.open(t)))
		})
	}
}

func newAPI(t *testing.T, st *store.Store) *api {
	t.Helper()
	return newAPIWith(t, st, func(*Deps) {})
}

// newAPIWith is newAPI with Deps edited by edit before the server starts.
func newAPIWith(t *testing.T, st *store.Store, edit func(*Deps)) *api {
	t.Helper()
	v, err := auth.New(context.Background(), auth.Config{HS256Secret: testSecret}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	logs := &syncBuffer{}
	d := Deps{
		Log:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Store:    st,
		Auth:     v,
		Ready:    map[string]Pinger{"db": st},
		Registry: prometheus.NewRegistry(),
	}
	edit(&d)
	e := New(d)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &api{t: t, srv: srv, st: st, log: logs}
}

// client is a caller with a token.
type client struct {
	a      *api
	token  string
	tenant uuid.UUID
	header http.Header
}

// user returns a client acting as a user of a fresh tenant.
func (a *api) user() *client {
	return a.as(auth.MintOptions{Tenant: uuid.New(), Subject: uuid.NewString(), Role: "authenticated"})
}

// service returns a service_role client acting for c's tenant.
func (c *client) service() *client {
	svc := c.a.as(auth.MintOptions{Subject: "worker", Role: "service_role"})
	svc.tenant = c.tenant
	svc.header.Set(HeaderTenantID, c.tenant.String())
	return svc
}

// as returns a client holding a token minted with o.
func (a *api) as(o auth.MintOptions) *client {
	a.t.Helper()
	tok, err := auth.Mint(testSecret, o)
	require.NoError(a.t, err)
	return &client{a: a, token: tok, tenant: o.Tenant, header: http.Header{}}
}

// response is what a call returned.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into v.
func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

// errCode returns the error body's code.
func (r response) errCode(t *testing.T) string {
	t.Helper()
	var e ErrorBody
	r.json(t, &e)
	require.NotEmpty(t, e.RequestID, "every error carries the request id")
	return e.Code
}

// do sends a request; body may be nil, a string or a value to encode.
func (c *client) do(method, path string, body any) response {
	c.a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		require.NoError(c.a.t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.a.srv.URL+path, rd)
	require.NoError(c.a.t, err)
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.a.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(c.a.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: out}
}

func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
