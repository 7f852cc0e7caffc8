package main

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// startPgBouncer runs pgbouncer in transaction mode in front of the test
// database dbURL, the way Supabase's pooler on port 6543 behaves, and
// returns the URL that goes through it.
func startPgBouncer(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	dbName := strings.TrimPrefix(u.Path, "/")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	dir, err := os.MkdirTemp("", "pgbouncer")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ini := fmt.Sprintf(`[databases]
%s = host=%s port=%s dbname=%s user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 5
max_client_conn = 200
logfile = %s/pgbouncer.log
`, dbName, u.Hostname(), u.Port(), dbName, port, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o644))
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chmod(dir, 0o777)) // pgbouncer refuses root: it runs as postgres
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", "/usr/sbin/pgbouncer"}, args...)...)
	} else {
		cmd = exec.Command("/usr/sbin/pgbouncer", args...)
	}
	// runuser forks pgbouncer: kill the whole process group at the end.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "pgbouncer.log")); err == nil {
				t.Logf("pgbouncer log:\n%s", b)
			}
		}
	})
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "pgbouncer did not start")
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, dbName)
}

// TestThroughTransactionPooler runs the server against PostgreSQL through
// pgbouncer in transaction mode, under concurrent writes: no session state
// may leak between transactions that share a server connection.
func TestThroughTransactionPooler(t *testing.T) {
	t.Parallel()
	direct := dbtest.NewDatabase(t)
	out, err := command(t, []string{"DATABASE_URL=" + direct}, "migrate", "apply")
	require.NoError(t, err, out)
	pooled := startPgBouncer(t, direct)

	s := start(t, "DATABASE_URL="+pooled, "SUPABASE_JWT_SECRET="+e2eSecret, "RATE_LIMIT_DISABLED=true")
	tenants := []string{"0b7e8a1c-2d3f-4a5b-8c6d-7e8f9a0b1c2d", "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c"}
	tokens := []string{mint(t, tenants[0]), mint(t, tenants[1])}
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan string, workers*each*3)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := tokens[w%2]
			for i := 0; i < each; i++ {
				code, body := s.call(t, "POST", "/v1/runs", tok, `{"agentName":"pooled","status":"running","steps":[{"type":"llm"}],"toolCalls":[{"toolName":"t","status":"succeeded"}]}`)
				if code != http.StatusCreated {
					errs <- fmt.Sprintf("create: %d %s", code, body)
					continue
				}
				id := body[strings.Index(body, `"id":"`)+6:][:36]
				if code, body := s.call(t, "POST", "/v1/runs/"+id+"/steps", tok, `{"type":"tool"}`); code != http.StatusCreated {
					errs <- fmt.Sprintf("append: %d %s", code, body)
				}
				if code, body := s.call(t, "PATCH", "/v1/runs/"+id, tok, `{"status":"succeeded"}`); code != http.StatusOK {
					errs <- fmt.Sprintf("patch: %d %s", code, body)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for i, tok := range tokens {
		code, body := s.call(t, "GET", "/v1/runs/stats", tok, "")
		require.Equal(t, http.StatusOK, code, body)
		assert.Contains(t, body, fmt.Sprintf(`{"key":"succeeded","runs":%d,`, workers*each/2), "tenant %d sees exactly its own runs", i)
	}
	require.NoError(t, s.stop(t))
}
