package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// runBody is a run with n steps and n tool calls under the given id.
func runBody(id string, n int) string {
	var steps, calls []string
	for i := 0; i < n; i++ {
		steps = append(steps, fmt.Sprintf(`{"type":"llm","input":{"i":%d}}`, i))
		calls = append(calls, `{"toolName":"search","status":"succeeded","durationMs":3}`)
	}
	return fmt.Sprintf(`{"id":%q,"agentName":"fault","steps":[%s],"toolCalls":[%s]}`, id, strings.Join(steps, ","), strings.Join(calls, ","))
}

// TestKillDuringIngestLosesNothingAcknowledged kills the server with
// SIGKILL while 16 clients write runs, restarts it, and checks that every
// run that got a 201 is whole and that no partial run exists.
func TestKillDuringIngestLosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	out, err := command(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "apply")
	require.NoError(t, err, out)
	env := []string{"DATABASE_URL=" + dbURL, "SUPABASE_JWT_SECRET=" + e2eSecret, "RATE_LIMIT_DISABLED=true"}
	s := start(t, env...)
	tok := mint(t, "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")

	var (
		mu    sync.Mutex
		acked []string
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				id := uuid.NewString()
				req, _ := http.NewRequest("POST", s.base+"/v1/runs", strings.NewReader(runBody(id, 10)))
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					continue // the server died under us: not acknowledged
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 50 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
	<-s.done
	s.done <- nil
	stop.Store(true)
	wg.Wait()
	t.Logf("%d runs acknowledged before SIGKILL", len(acked))

	db, err := sql.Open("pgx", dbURL)
	require.NoError(t, err)
	defer db.Close()
	var partial int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM agentstore.agent_runs r WHERE
		(SELECT count(*) FROM agentstore.agent_steps s WHERE s.run_id = r.id) <> 10 OR
		(SELECT count(*) FROM agentstore.tool_calls c WHERE c.run_id = r.id) <> 10 OR
		(SELECT count(*) FROM agentstore.audit_logs a WHERE a.resource_id = r.id::text) <> 1`).Scan(&partial))
	assert.Zero(t, partial, "no partial run exists")

	again := start(t, env...)
	for _, id := range acked {
		code, body := again.call(t, "GET", "/v1/runs/"+id+"?include=steps,toolCalls", tok, "")
		require.Equal(t, http.StatusOK, code, "acknowledged run %s is lost: %s", id, body)
		assert.Equal(t, 10, strings.Count(body, `"type":"llm"`), "steps of %s", id)
		assert.Equal(t, 10, strings.Count(body, `"toolName":"search"`), "tool calls of %s", id)
	}
}

// TestIdempotentRetriesAfterTimeouts retries every create with the same
// Idempotency-Key after a client timeout: each key makes exactly one run.
func TestIdempotentRetriesAfterTimeouts(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewDatabase(t)
	out, err := command(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "apply")
	require.NoError(t, err, out)
	s := start(t, "DATABASE_URL="+dbURL, "SUPABASE_JWT_SECRET="+e2eSecret, "RATE_LIMIT_DISABLED=true")
	tok := mint(t, "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e")
	impatient := &http.Client{Timeout: 3 * time.Millisecond}
	patient := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	const keys = 20
	for k := 0; k < keys; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"agentName":"retry","steps":[{"type":"llm"},{"type":"tool"}]}`
			send := func(c *http.Client) (*http.Response, error) {
				req, _ := http.NewRequest("POST", s.base+"/v1/runs", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Idempotency-Key", "key-"+strconv.Itoa(k))
				return c.Do(req)
			}
			for i := 0; i < 3; i++ {
				if resp, err := send(impatient); err == nil {
					resp.Body.Close()
				}
			}
			resp, err := send(patient)
			if assert.NoError(t, err) {
				resp.Body.Close()
				assert.Equal(t, http.StatusCreated, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	db, err := sql.Open("pgx", dbURL)
	require.NoError(t, err)
	defer db.Close()
	var runs, keysStored int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM agentstore.agent_runs`).Scan(&runs))
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM agentstore.idempotency_keys`).Scan(&keysStored))
	assert.Equal(t, keys, runs, "one run per key, however often it was retried")
	assert.Equal(t, keys, keysStored)
}

// pgCluster is a PostgreSQL cluster of the test's own, which it may restart.
type pgCluster struct {
	t    *testing.T
	bin  string
	dir  string
	port int
}

func newCluster(t *testing.T) *pgCluster {
	t.Helper()
	bin := os.Getenv("AGENTSTORE_TEST_PG_BIN")
	require.NotEmpty(t, bin, "AGENTSTORE_TEST_PG_BIN is not set: run through make test")
	dir, err := os.MkdirTemp("", "agentstore-pg")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o777))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	c := &pgCluster{t: t, bin: bin, dir: dir, port: port}
	c.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "--no-instructions")
	c.start()
	t.Cleanup(func() {
		c.run("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	return c
}

func (c *pgCluster) run(tool string, args ...string) {
	c.t.Helper()
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = c.dir
	if err := cmd.Run(); err != nil && tool != "pg_ctl" {
		c.t.Fatalf("%s: %v\n%s", tool, err, out.String())
	}
}

func (c *pgCluster) start() {
	c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-w", "-l", filepath.Join(c.dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, c.dir), "start")
}

func (c *pgCluster) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// TestPostgresRestartUnderLoad restarts PostgreSQL while clients write and
// read: failures are 503 UNAVAILABLE, never 500, none hangs, and the
// service works again without a restart of its own.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	pg := newCluster(t)
	out, err := command(t, []string{"DATABASE_URL=" + pg.url()}, "migrate", "apply")
	require.NoError(t, err, out)
	s := start(t, "DATABASE_URL="+pg.url(), "SUPABASE_JWT_SECRET="+e2eSecret, "RATE_LIMIT_DISABLED=true")
	tok := mint(t, "c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f")

	var (
		mu     sync.Mutex
		codes  = map[int]int{}
		stop   atomic.Bool
		wg     sync.WaitGroup
		hangs  atomic.Int32
		client = &http.Client{Timeout: 15 * time.Second}
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				method, path, body := "GET", "/v1/runs?limit=5", ""
				if w%2 == 0 {
					method, path, body = "POST", "/v1/runs", runBody(uuid.NewString(), 3)
				}
				req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					hangs.Add(1)
					continue
				}
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	pg.run("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-m", "fast", "stop")
	time.Sleep(1500 * time.Millisecond)
	pg.start()
	time.Sleep(500 * time.Millisecond)
	require.Eventually(t, func() bool {
		code, _ := s.call(t, "POST", "/v1/runs", tok, runBody(uuid.NewString(), 1))
		return code == http.StatusCreated
	}, 20*time.Second, 100*time.Millisecond, "writes succeed again without restarting the service")
	stop.Store(true)
	wg.Wait()
	t.Logf("status codes under restart: %v", codes)
	assert.Zero(t, codes[http.StatusInternalServerError], "no 500")
	assert.Positive(t, codes[http.StatusServiceUnavailable], "the outage was seen as 503")
	assert.Zero(t, hangs.Load(), "no request hung past the client deadline or lost its connection")
	for code := range codes {
		assert.Contains(t, []int{http.StatusOK, http.StatusCreated, http.StatusServiceUnavailable}, code)
	}
	code, _ := s.get(t, "/readyz")
	assert.Equal(t, http.StatusOK, code)
}
