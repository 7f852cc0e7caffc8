package ratelimit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The shared Redis of the test run comes from scripts/services.sh. Tests
// that need to stop Redis start their own redis-server instead.
const redisURLEnv = "AGENTSTORE_TEST_REDIS_URL"

// sharedRedis returns a client of the test run's Redis, failing the test
// when there is none: these tests must not pass without Redis.
func sharedRedis(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv(redisURLEnv)
	if url == "" {
		t.Fatalf("%s is not set: run the tests through scripts/services.sh (make test), "+
			"which starts Redis and sets it to redis://127.0.0.1:PORT/0", redisURLEnv)
	}
	opts, err := redis.ParseURL(url)
	require.NoError(t, err, "%s=%q", redisURLEnv, url)
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	require.NoError(t, rdb.Ping(context.Background()).Err(), "redis at %s=%q does not answer", redisURLEnv, url)
	return rdb
}

var unsafeKeyChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// testPrefix returns a key prefix of the test's own, and deletes its keys
// from rdb (when not nil) at the end.
func testPrefix(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	prefix := fmt.Sprintf("agentstore:rltest:%s:%d:", unsafeKeyChars.ReplaceAllString(t.Name(), "_"), time.Now().UnixNano())
	if rdb != nil {
		t.Cleanup(func() {
			ctx := context.Background()
			iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
			for iter.Next(ctx) {
				_ = rdb.Del(ctx, iter.Val()).Err()
			}
		})
	}
	return prefix
}

// redisServer is a redis-server process of the test's own, which the test
// may stop and start again on the same port.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

// startRedisServer starts a throwaway redis-server on a free port, stopped
// at the end of the test.
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	s := newRedisServer(t, freePort(t))
	s.start()
	return s
}

// newRedisServer returns a redis-server for port, not started yet, stopped
// at the end of the test.
func newRedisServer(t testing.TB, port int) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (scripts/services.sh installs it): %v", err)
	}
	s := &redisServer{t: t, port: port, dir: t.TempDir()}
	t.Cleanup(s.stop)
	return s
}

// freePort returns a loopback TCP port nobody listens on at the moment.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// client returns a client of the server with go-redis's default options,
// closed at the end of the test.
func (s *redisServer) client() *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.addr()})
	s.t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// start runs redis-server and waits until it answers PING.
func (s *redisServer) start() {
	s.t.Helper()
	require.Nil(s.t, s.cmd, "redis-server already running")
	s.out = &bytes.Buffer{}
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	require.NoError(s.t, cmd.Start())
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pingRaw(s.addr()) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	s.t.Fatalf("redis-server on port %d did not start:\n%s", s.port, s.out)
}

// stop kills the server (the way a crash would) and waits for it to exit.
func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// pingRaw reports whether a Redis server answers PING at addr.
func pingRaw(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// commandCalls returns the number of calls of every command the server has
// run, from INFO commandstats, such as {"evalsha": 12, "ping": 1}.
func commandCalls(t testing.TB, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	calls := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		// cmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,...
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				require.NoError(t, err, line)
				calls[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return calls
}

// commandDelta returns the calls per command between two commandCalls,
// without the INFO calls that measured them.
func commandDelta(before, after map[string]int64) (map[string]int64, int64) {
	delta, total := map[string]int64{}, int64(0)
	for name, n := range after {
		if d := n - before[name]; d > 0 && name != "info" {
			delta[name] = d
			total += d
		}
	}
	return delta, total
}

// roundTrips counts the round trips a client makes: one per command or
// pipeline it sends.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// logBuffer collects log lines from concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns the number of lines that contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, line := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
