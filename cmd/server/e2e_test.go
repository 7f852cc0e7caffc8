package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/migrations"
)

// binary is the server under test: $AGENTSTORE_BIN (make test builds it),
// or one built here.
var binary string

func TestMain(m *testing.M) {
	binary = os.Getenv("AGENTSTORE_BIN")
	if binary == "" {
		dir, err := os.MkdirTemp("", "agentstore-bin")
		if err != nil {
			panic(err)
		}
		binary = filepath.Join(dir, "agentstore")
		out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build server: %v\n%s", err, out)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
	}
	os.Exit(m.Run())
}

// server is a running server process.
type server struct {
	cmd      *exec.Cmd
	base     string
	devToken string // the token printed in development without JWT config
	done     chan error
}

// start runs `binary serve` with env and waits until it listens.
func start(t *testing.T, env ...string) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), append([]string{"ADDR=127.0.0.1:0", "DATA_DIR=" + t.TempDir()}, env...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = &testWriter{t: t}
	require.NoError(t, cmd.Start())
	s := &server{cmd: cmd, done: make(chan error, 1)}
	lines := bufio.NewScanner(stdout)
	found := make(chan string, 1)
	tokenc := make(chan string, 1)
	go func() {
		for lines.Scan() {
			line := lines.Text()
			if rest, ok := strings.CutPrefix(line, "agentstore listening on "); ok {
				found <- strings.Fields(rest)[0]
			}
			if tok, ok := strings.CutPrefix(line, "  eyJ"); ok {
				tokenc <- "eyJ" + tok
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { s.done <- cmd.Wait() }()
	select {
	case s.base = <-found:
		select {
		case s.devToken = <-tokenc:
		case <-time.After(time.Second):
		}
	case err := <-s.done:
		t.Fatalf("server exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("server did not start within 30s")
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	return s
}

// stop sends SIGTERM and returns the exit error.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop within 20s of SIGTERM")
		return nil
	}
}

func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	return s.call(t, "GET", path, "", "")
}

// call sends a request with an optional bearer token and JSON body.
func (s *server) call(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	return s.callFor(t, method, path, token, "", body)
}

// callFor is call with the X-Tenant-ID header a service_role token needs,
// when tenantID is not empty.
func (s *server) callFor(t *testing.T, method, path, token, tenantID, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if tenantID != "" {
		req.Header.Set("X-Tenant-ID", tenantID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(out)
}

// testWriter sends a process's stderr to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("server: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// command runs the binary to completion and returns its output.
func command(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(append(os.Environ(), "DATA_DIR="+t.TempDir()), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestServeEmbedded(t *testing.T) {
	t.Parallel()
	s := start(t)
	code, body := s.get(t, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ok"}`, body)
	code, body = s.get(t, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ready","checks":{"db":"up"}}`, body)

	require.NotEmpty(t, s.devToken, "development prints a ready token")
	code, body = s.call(t, "POST", "/v1/runs", s.devToken, `{"agentName":"e2e","steps":[{"type":"llm"}]}`)
	require.Equal(t, http.StatusCreated, code, body)
	var run struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &run))
	code, body = s.call(t, "GET", "/v1/runs/"+run.ID+"?include=steps", s.devToken, "")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"seq":1`)
	code, _ = s.call(t, "GET", "/v1/runs", "", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body = s.get(t, "/metrics")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `agentstore_http_requests_total{method="POST",route="/v1/runs",status="201"} 1`)
	require.NoError(t, s.stop(t), "SIGTERM is a clean exit")
}

func TestMigrateThenServePostgres(t *testing.T) {
	t.Parallel()
	for _, schema := range []string{"agentstore", "custom_schema"} {
		t.Run(schema, func(t *testing.T) {
			t.Parallel()
			env := []string{"DATABASE_URL=" + dbtest.NewDatabase(t), "DB_SCHEMA=" + schema}

			out, err := command(t, env, "serve")
			require.Error(t, err, "serve refuses an unmigrated database")
			assert.Contains(t, out, "pending migration")

			out, err = command(t, env, "migrate", "status")
			require.NoError(t, err, out)
			assert.Contains(t, out, "PENDING")

			out, err = command(t, env, "migrate", "apply")
			require.NoError(t, err, out)
			assert.Contains(t, out, fmt.Sprintf("applied %d migration(s) to schema %s", migrationFiles(t), schema))
			assert.Contains(t, out, "status:          OK")

			out, err = command(t, env, "migrate", "apply")
			require.NoError(t, err, out)
			assert.Contains(t, out, "applied 0 migration(s)", "a second apply does nothing")

			out, err = command(t, append(env, "DB_TENANT_RLS=on", "SUPABASE_JWT_SECRET="+e2eSecret), "serve")
			require.Error(t, err, "RLS on with a role that bypasses it is refused")
			assert.Contains(t, out, "bypasses row-level security")

			db, err := sql.Open("pgx", strings.TrimPrefix(env[0], "DATABASE_URL="))
			require.NoError(t, err)
			defer db.Close()
			var tables int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename IN
				('agent_runs','agent_steps','tool_calls','audit_logs','usage_metrics','system_health','atlas_schema_revisions')`, schema).Scan(&tables))
			assert.Equal(t, 7, tables, "the six tables and the revisions table live in %s", schema)
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables))
			assert.Zero(t, tables, "nothing lands in public")

			env = append(env, "SUPABASE_JWT_SECRET=e2e-secret-that-is-at-least-32-bytes")
			s := start(t, env...)
			code, body := s.get(t, "/readyz")
			assert.Equal(t, http.StatusOK, code, body)
			assert.Empty(t, s.devToken, "no development token once JWT is configured")

			tok, err := command(t, env, "token", "--tenant", "9b0c8a39-1f4c-4b8e-9d3a-1c2b3d4e5f60", "--ttl", "5m")
			require.NoError(t, err, tok)
			tok = strings.TrimSpace(tok)
			code, body = s.call(t, "POST", "/v1/runs", tok, `{"agentName":"pg","toolCalls":[{"toolName":"t","status":"succeeded"}]}`)
			require.Equal(t, http.StatusCreated, code, body)
			assert.Contains(t, body, `"tenantId":"9b0c8a39-1f4c-4b8e-9d3a-1c2b3d4e5f60"`)
			var n int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM "`+schema+`".tool_calls`).Scan(&n))
			assert.Equal(t, 1, n, "the write landed in %s", schema)
			require.NoError(t, s.stop(t))
		})
	}
}

func TestInvalidConfiguration(t *testing.T) {
	t.Parallel()
	out, err := command(t, []string{"APP_ENV=staging", "DB_SCHEMA=Bad-Name", "LOG_LEVEL=loud"}, "serve")
	require.Error(t, err)
	for _, name := range []string{"APP_ENV", "DB_SCHEMA", "LOG_LEVEL"} {
		assert.Contains(t, out, name+":", "one message per bad value")
	}
	out, err = command(t, nil, "migrate", "apply")
	require.Error(t, err)
	assert.Contains(t, out, "DATABASE_URL")
	out, err = command(t, nil, "frobnicate")
	require.Error(t, err)
	assert.Contains(t, out, "usage:")
}

// migrationFiles counts the embedded migration files.
func migrationFiles(t *testing.T) int {
	t.Helper()
	files, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	return len(files)
}

// TestCORSOfTheBinary sends a browser's preflight and request to the built
// binary configured with CORS_ALLOWED_ORIGINS, with a limit of one
// request a minute that the preflights do not count against, and checks
// that production refuses "*".
func TestCORSOfTheBinary(t *testing.T) {
	t.Parallel()
	const origin = "http://localhost:5173"
	s := start(t, "CORS_ALLOWED_ORIGINS=https://app.example.com,"+origin, "RATE_LIMIT_MAX=1")
	for range 3 {
		req, err := http.NewRequest(http.MethodOptions, s.base+"/v1/runs", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		assert.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Idempotency-Key")
	}
	req, err := http.NewRequest(http.MethodPost, s.base+"/v1/runs", strings.NewReader(`{"agentName":"browser"}`))
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Authorization", "Bearer "+s.devToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "the preflights did not use up the limit of 1")
	assert.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "X-RateLimit-Remaining")

	out, err := command(t, []string{"APP_ENV=production", "SUPABASE_JWT_SECRET=" + e2eSecret, "WS_ALLOWED_ORIGINS=" + origin, "CORS_ALLOWED_ORIGINS=*"}, "serve")
	require.Error(t, err)
	assert.Contains(t, out, "CORS_ALLOWED_ORIGINS: production refuses *")
}
