package main

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisServer is a redis-server process of the test's own, which the test
// may stop and start again on the same port.
type redisServer struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func newRedis(t *testing.T) *redisServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	r := &redisServer{t: t, port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.t.TempDir())
	require.NoError(r.t, r.cmd.Start())
	require.Eventually(r.t, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "redis-server did not start")
}

func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

const e2eSecret = "e2e-secret-that-is-at-least-32-bytes"

func mint(t *testing.T, tenantID string) string {
	t.Helper()
	out, err := command(t, []string{"SUPABASE_JWT_SECRET=" + e2eSecret}, "token", "--tenant", tenantID, "--ttl", "10m")
	require.NoError(t, err, out)
	return strings.TrimSpace(out)
}

func TestRateLimitIsGlobalAcrossInstances(t *testing.T) {
	t.Parallel()
	rd := newRedis(t)
	env := []string{"SUPABASE_JWT_SECRET=" + e2eSecret, "REDIS_URL=" + rd.url(), "RATE_LIMIT_MAX=10", "RATE_LIMIT_WINDOW_MS=60000"}
	a, b := start(t, env...), start(t, env...)
	tok := mint(t, "3f0b8e57-6a55-4e0e-9c51-6f1d0a2b7c11")
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := s.call(t, "GET", "/v1/runs", tok, "")
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusOK: 10, http.StatusTooManyRequests: 20}, codes, "exactly RATE_LIMIT_MAX pass across both instances")
}

func TestRedisOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode     string
		whenDown int
	}{{"open", http.StatusOK}, {"closed", http.StatusServiceUnavailable}} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			rd := newRedis(t)
			s := start(t, "SUPABASE_JWT_SECRET="+e2eSecret, "REDIS_URL="+rd.url(), "RATE_LIMIT_FAIL_MODE="+tc.mode, "RATE_LIMIT_MAX=1000")
			tok := mint(t, "7c9e6679-7425-40de-944b-e07fc1f90ae7")
			code, body := s.call(t, "GET", "/v1/runs", tok, "")
			require.Equal(t, http.StatusOK, code, body)

			rd.stop()
			for i := 0; i < 5; i++ {
				code, body = s.call(t, "GET", "/v1/runs", tok, "")
				require.Equal(t, tc.whenDown, code, body)
				if tc.whenDown == http.StatusServiceUnavailable {
					assert.Contains(t, body, `"code":"UNAVAILABLE"`)
				}
			}
			code, _ = s.get(t, "/readyz")
			assert.Equal(t, http.StatusServiceUnavailable, code, "not ready without Redis")
			code, _ = s.get(t, "/healthz")
			assert.Equal(t, http.StatusOK, code, "alive all the same")

			rd.start()
			require.Eventually(t, func() bool {
				code, _ := s.call(t, "GET", "/v1/runs", tok, "")
				ready, _ := s.get(t, "/readyz")
				return code == http.StatusOK && ready == http.StatusOK
			}, 15*time.Second, 100*time.Millisecond, "recovers without a restart")
			require.NoError(t, s.stop(t), "no crash on the way")
		})
	}
}
