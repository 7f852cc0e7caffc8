package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// migratedDB returns a fresh migrated PostgreSQL database and a pool on it.
func migratedDB(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dbURL := dbtest.NewDatabase(t)
	out, err := command(t, []string{"DATABASE_URL=" + dbURL}, "migrate", "apply")
	require.NoError(t, err, out)
	db, err := sql.Open("pgx", dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return dbURL, db
}

// seedRuns inserts n runs of tenantID (and of user, when not nil) created
// age ago, each with steps steps, as many tool calls and one usage row.
func seedRuns(t *testing.T, db *sql.DB, tenantID uuid.UUID, user *uuid.UUID, n, steps int, age time.Duration) {
	t.Helper()
	batch := uuid.NewString() // marks this call's runs
	_, err := db.Exec(`INSERT INTO agentstore.agent_runs (id, tenant_id, created_at, updated_at, agent_name, status, user_id, metadata)
		SELECT gen_random_uuid(), $1, now() - $2::interval + g * interval '1 millisecond', now(), 'seed', 'succeeded', $3, jsonb_build_object('batch', $4::text)
		FROM generate_series(1, $5) g`, tenantID, fmt.Sprintf("%d seconds", int(age.Seconds())), user, batch, n)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO agentstore.agent_steps (id, tenant_id, created_at, run_id, seq, type, status, input)
		SELECT gen_random_uuid(), r.tenant_id, r.created_at, r.id, s, 'llm', 'succeeded', jsonb_build_object('prompt', 'p' || s)
		FROM agentstore.agent_runs r, generate_series(1, $2) s WHERE r.metadata->>'batch' = $1`, batch, steps)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO agentstore.tool_calls (id, tenant_id, created_at, run_id, tool_name, status)
		SELECT gen_random_uuid(), r.tenant_id, r.created_at, r.id, 'search', CASE WHEN s = 1 THEN 'failed' ELSE 'succeeded' END
		FROM agentstore.agent_runs r, generate_series(1, $2) s WHERE r.metadata->>'batch' = $1`, batch, steps)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO agentstore.usage_metrics (id, tenant_id, run_id, model, input_tokens, recorded_at)
		SELECT gen_random_uuid(), r.tenant_id, r.id, 'gpt', 10, r.created_at FROM agentstore.agent_runs r WHERE r.metadata->>'batch' = $1`, batch)
	require.NoError(t, err)
}

func count(t *testing.T, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n sql.NullInt64
	require.NoError(t, db.QueryRow(query, args...).Scan(&n), query)
	return n.Int64
}

// background starts the binary with args and env, and returns it running.
func background(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "DATA_DIR="+t.TempDir()), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &out
}

// TestRetentionKilledMidPassCompletes kills `retention run` with SIGKILL
// in the middle of a pass, checks that what it deleted so far is exactly
// what run_removals and the audit rows record, and that a second run
// finishes the job with exact totals.
func TestRetentionKilledMidPassCompletes(t *testing.T) {
	t.Parallel()
	dbURL, db := migratedDB(t)
	tenantA, tenantB := uuid.New(), uuid.New()
	const n = 6000
	seedRuns(t, db, tenantA, nil, n, 2, 100*24*time.Hour)
	seedRuns(t, db, tenantA, nil, 10, 2, time.Hour)
	seedRuns(t, db, tenantB, nil, 50, 2, 100*24*time.Hour)
	env := []string{"DATABASE_URL=" + dbURL, "RETENTION_DAYS=30", "RETENTION_TENANT_OVERRIDES=" + tenantB.String() + "=0"}

	oldA := func() int64 {
		return count(t, db, `SELECT count(*) FROM agentstore.agent_runs WHERE tenant_id = $1 AND created_at < now() - interval '30 days'`, tenantA)
	}
	removed := func(col string) int64 {
		return count(t, db, `SELECT sum(`+col+`) FROM agentstore.run_removals WHERE tenant_id = $1 AND reason = 'retention'`, tenantA)
	}
	audited := func() int64 {
		return count(t, db, `SELECT sum((changes->>'runs')::bigint) FROM agentstore.audit_logs WHERE tenant_id = $1 AND action = 'retention.delete'`, tenantA)
	}
	cmd, out := background(t, env, "retention", "run")
	require.Eventually(t, func() bool { return oldA() < n }, 30*time.Second, 5*time.Millisecond, "the pass starts deleting")
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	left := oldA()
	require.Positive(t, left, "killed in the middle of the pass: %s", out)
	deleted := n - left
	assert.Equal(t, deleted, removed("runs"), "run_removals records exactly what was deleted")
	assert.Equal(t, 2*deleted, removed("steps"))
	assert.Equal(t, 2*deleted, removed("tool_calls"))
	assert.Equal(t, deleted, removed("failed_tool_calls"))
	assert.Equal(t, deleted, audited(), "the audit rows record exactly what was deleted")
	assert.Zero(t, count(t, db, `SELECT count(*) FROM agentstore.agent_steps s WHERE NOT EXISTS (SELECT 1 FROM agentstore.agent_runs r WHERE r.id = s.run_id)`))

	dry, err := command(t, env, "retention", "run", "--dry-run")
	require.NoError(t, err, dry)
	assert.Contains(t, dry, fmt.Sprintf("total: 1 tenant(s): would delete %d runs, %d steps, %d tool calls; %d usage rows kept with runId null", left, 2*left, 2*left, left))
	assert.Equal(t, left, oldA(), "a dry run deletes nothing")

	rerun, err := command(t, env, "retention", "run")
	require.NoError(t, err, rerun)
	assert.Contains(t, rerun, fmt.Sprintf("tenant %s: 30 days, cut-off ", tenantA))
	assert.Contains(t, rerun, fmt.Sprintf("total: 1 tenant(s): deleted %d runs, %d steps, %d tool calls", left, 2*left, 2*left))
	assert.Zero(t, oldA())
	assert.Equal(t, []int64{n, 2 * n, 2 * n, n, n}, []int64{removed("runs"), removed("steps"), removed("tool_calls"), removed("usage_rows"), audited()})
	assert.Equal(t, int64(10), count(t, db, `SELECT count(*) FROM agentstore.agent_runs WHERE tenant_id = $1`, tenantA), "the fresh runs stay")
	assert.Equal(t, int64(50), count(t, db, `SELECT count(*) FROM agentstore.agent_runs WHERE tenant_id = $1`, tenantB), "a tenant that keeps forever")
	assert.Equal(t, int64(n+10), count(t, db, `SELECT count(*) FROM agentstore.usage_metrics WHERE tenant_id = $1`, tenantA), "every usage row stays")
	assert.Equal(t, int64(n), count(t, db, `SELECT count(*) FROM agentstore.usage_metrics WHERE tenant_id = $1 AND run_id IS NULL`, tenantA))
}

// call sends a request with a service_role token for tenantID.
func serviceCall(t *testing.T, s *server, method, path, tenantID, body string) (int, string) {
	t.Helper()
	tok, err := command(t, []string{"SUPABASE_JWT_SECRET=" + e2eSecret}, "token", "--tenant", tenantID, "--role", "service_role", "--ttl", "10m")
	require.NoError(t, err, tok)
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok))
	req.Header.Set("X-Tenant-ID", tenantID)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestErasureKilledMidJobCompletesAfterRestart kills the server with
// SIGKILL while its worker erases a user, restarts it, and checks that the
// job resumes by itself and ends done with exact counts.
func TestErasureKilledMidJobCompletesAfterRestart(t *testing.T) {
	t.Parallel()
	dbURL, db := migratedDB(t)
	tenantID, user, other := uuid.New(), uuid.New(), uuid.New()
	const n = 6000
	seedRuns(t, db, tenantID, &user, n, 2, time.Hour)
	seedRuns(t, db, tenantID, &other, 5, 2, time.Hour)
	env := []string{"DATABASE_URL=" + dbURL, "SUPABASE_JWT_SECRET=" + e2eSecret, "RATE_LIMIT_DISABLED=true"}
	s := start(t, env...)

	code, body := serviceCall(t, s, "POST", "/v1/erasures", tenantID.String(), fmt.Sprintf(`{"userId":%q}`, user))
	require.Equal(t, http.StatusAccepted, code, body)
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Counts struct{ Runs, Steps, ToolCalls int64 }
	}
	require.NoError(t, json.Unmarshal([]byte(body), &job))
	jobRuns := func() int64 { return count(t, db, `SELECT runs FROM agentstore.erasures WHERE id = $1`, job.ID) }
	userRuns := func() int64 {
		return count(t, db, `SELECT count(*) FROM agentstore.agent_runs WHERE tenant_id = $1 AND user_id = $2`, tenantID, user)
	}
	require.Eventually(t, func() bool { return jobRuns() > 0 }, 30*time.Second, 5*time.Millisecond, "the worker starts")
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
	<-s.done
	s.done <- nil
	left := userRuns()
	require.Positive(t, left, "killed in the middle of the job")
	assert.Equal(t, n-left, jobRuns(), "the job's count is exactly what was deleted")
	assert.Equal(t, 2*(n-left), count(t, db, `SELECT steps FROM agentstore.erasures WHERE id = $1`, job.ID))
	assert.Equal(t, n-left, count(t, db, `SELECT sum(runs) FROM agentstore.run_removals WHERE tenant_id = $1 AND reason = 'erasure'`, tenantID))

	s = start(t, env...) // resumes the unfinished job by itself
	require.Eventually(t, func() bool {
		code, body := serviceCall(t, s, "GET", "/v1/erasures/"+job.ID, tenantID.String(), "")
		require.Equal(t, http.StatusOK, code, body)
		require.NoError(t, json.Unmarshal([]byte(body), &job))
		return job.Status == "done"
	}, 60*time.Second, 100*time.Millisecond)
	assert.Equal(t, []int64{n, 2 * n, 2 * n}, []int64{job.Counts.Runs, job.Counts.Steps, job.Counts.ToolCalls})
	assert.Zero(t, userRuns())
	assert.Equal(t, int64(5), count(t, db, `SELECT count(*) FROM agentstore.agent_runs WHERE tenant_id = $1`, tenantID), "another user's runs stay")
	assert.Equal(t, int64(1), count(t, db, `SELECT count(*) FROM agentstore.audit_logs WHERE tenant_id = $1 AND action = 'user.erase' AND resource_id = $2`, tenantID, user.String()))
	assert.Equal(t, int64(n), count(t, db, `SELECT sum(runs) FROM agentstore.run_removals WHERE tenant_id = $1 AND reason = 'erasure'`, tenantID))
	assert.Equal(t, int64(n+5), count(t, db, `SELECT count(*) FROM agentstore.usage_metrics WHERE tenant_id = $1`, tenantID), "billing rows stay")
	require.NoError(t, s.stop(t))
}

// readExport returns the lines of an export file, gunzipped when gz.
func readExport(t *testing.T, path string, gz bool) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		require.NoError(t, err)
		r = zr
	}
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	return lines
}

// TestExportCommand writes a tenant's runs with `agentstore export`, plain
// and gzip, compares them with GET /v1/export/runs, and resumes an export
// cut off after its first checkpoint, with a torn line after it.
func TestExportCommand(t *testing.T) {
	t.Parallel()
	dbURL, db := migratedDB(t)
	tenantID := uuid.New()
	seedRuns(t, db, tenantID, nil, 450, 2, time.Hour)
	seedRuns(t, db, uuid.New(), nil, 20, 1, time.Hour)
	env := []string{"DATABASE_URL=" + dbURL, "SUPABASE_JWT_SECRET=" + e2eSecret}
	s := start(t, env...)
	code, body := serviceCall(t, s, "GET", "/v1/export/runs", tenantID.String(), "")
	require.Equal(t, http.StatusOK, code)
	want := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	require.Len(t, want, 450+3+1, "runs, a checkpoint per page of 200, the end")
	require.NoError(t, s.stop(t))

	dir := t.TempDir()
	for _, name := range []string{"runs.ndjson", "runs.ndjson.gz"} {
		out := filepath.Join(dir, name)
		res, err := command(t, env, "export", "--tenant", tenantID.String(), "--out", out)
		require.NoError(t, err, res)
		assert.Contains(t, res, "export: 450 runs of tenant "+tenantID.String())
		assert.Equal(t, want, readExport(t, out, strings.HasSuffix(name, ".gz")), name)
		_, err = os.Stat(out + ".state")
		assert.True(t, os.IsNotExist(err), "the state file goes when the export is complete")
	}

	// A crash after the first checkpoint: the state file names it, and the
	// file holds a torn line after it.
	var first struct{ NextCursor string }
	require.NoError(t, json.Unmarshal([]byte(want[200]), &first))
	head := strings.Join(want[:201], "\n") + "\n"
	for _, gz := range []bool{false, true} {
		out := filepath.Join(dir, fmt.Sprintf("crashed-%v.ndjson", gz))
		var file bytes.Buffer
		if gz {
			out += ".gz"
			zw := gzip.NewWriter(&file)
			_, err := zw.Write([]byte(head))
			require.NoError(t, err)
			require.NoError(t, zw.Close())
		} else {
			file.WriteString(head)
		}
		offset := file.Len()
		file.WriteString(`{"id":"torn`)
		require.NoError(t, os.WriteFile(out, file.Bytes(), 0o644))
		state, err := json.Marshal(map[string]any{"tenant": tenantID, "from": "", "to": "", "cursor": first.NextCursor, "offset": offset, "runs": 200})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(out+".state", state, 0o644))

		res, err := command(t, env, "export", "--tenant", tenantID.String(), "--out", out)
		require.NoError(t, err, res)
		assert.Contains(t, res, fmt.Sprintf("export: resumed at byte %d after 200 runs", offset))
		assert.Contains(t, res, "export: 450 runs")
		assert.Equal(t, want, readExport(t, out, gz), "gzip %v: the resumed file is the whole export", gz)

		require.NoError(t, os.WriteFile(out+".state", state, 0o644))
		res, err = command(t, env, "export", "--tenant", uuid.NewString(), "--out", out)
		require.Error(t, err)
		assert.Contains(t, res, "belongs to another export")
	}

	// The window and the flags.
	out := filepath.Join(dir, "window.ndjson")
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	res, err := command(t, env, "export", "--tenant", tenantID.String(), "--from", future, "--out", out)
	require.NoError(t, err, res)
	assert.Equal(t, []string{`{"nextCursor":null}`}, readExport(t, out, false))
	for _, args := range [][]string{{"--out", out}, {"--tenant", "x", "--out", out}, {"--tenant", tenantID.String()}, {"--tenant", tenantID.String(), "--from", "soon", "--out", out}} {
		res, err := command(t, env, append([]string{"export"}, args...)...)
		require.Error(t, err, "%v: %s", args, res)
	}
}
