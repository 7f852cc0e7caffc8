package legacy

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// The test binary doubles as the import process that TestResumeAfterKill
// kills: with LEGACY_TEST_HELPER=import it imports LEGACY_TEST_URL and exits.
func TestMain(m *testing.M) {
	if os.Getenv("LEGACY_TEST_HELPER") == "import" {
		os.Exit(helperImport())
	}
	os.Exit(m.Run())
}

func helperImport() int {
	db, err := sql.Open("pgx", os.Getenv("LEGACY_TEST_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	batch, _ := strconv.Atoi(os.Getenv("LEGACY_TEST_BATCH"))
	if _, err := Import(context.Background(), db, Options{BatchSize: batch, Out: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// fixtures is testdata/fixtures of the repository.
func fixtures(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "fixtures")
}

// authSQL is the part of Supabase that the legacy schema and seed need: the
// authenticated role, auth.users (bootstrap.sql's column subset) and
// auth.jwt(). bootstrap.sql itself must run as supabase_admin on a cluster
// of its own.
const authSQL = `
DO $$ BEGIN
  CREATE ROLE authenticated NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
CREATE SCHEMA auth;
CREATE TABLE auth.users (
  instance_id uuid, id uuid PRIMARY KEY, aud varchar(255), role varchar(255),
  email varchar(255) UNIQUE, raw_app_meta_data jsonb, raw_user_meta_data jsonb,
  created_at timestamptz, updated_at timestamptz);
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE SET search_path = '' AS $$
  select nullif(current_setting('request.jwt.claims', true), '')::jsonb $$;
`

func psql(t testing.TB, url string, args ...string) {
	t.Helper()
	bin := "psql"
	if dir := os.Getenv("AGENTSTORE_TEST_PG_BIN"); dir != "" {
		bin = filepath.Join(dir, "psql")
	}
	cmd := exec.Command(bin, append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "psql %v: %s", args, out)
}

// legacyDB returns a fresh migrated database with the legacy tables seeded
// with runs runs, and its URL.
func legacyDB(t testing.TB, runs int) (*sql.DB, string) {
	t.Helper()
	url := dbtest.Postgres(t)
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.Exec(authSQL)
	require.NoError(t, err)
	dir := filepath.Join(fixtures(t), "legacy")
	psql(t, url, "-f", filepath.Join(dir, "schema.sql"))
	psql(t, url, "-v", fmt.Sprintf("runs=%d", runs), "-f", filepath.Join(dir, "seed.sql"))
	return db, url
}

// checksum digests the legacy tables and auth.users.
func checksum(t testing.TB, db *sql.DB) string {
	t.Helper()
	var parts []string
	for _, tbl := range append([]string{"auth.users"}, prefixed("public.", Tables)...) {
		var sum string
		require.NoError(t, db.QueryRow(`SELECT md5(coalesce(string_agg(md5(t::text), '' ORDER BY t.id), '')) FROM `+tbl+` t`).Scan(&sum))
		parts = append(parts, tbl+"="+sum)
	}
	return strings.Join(parts, " ")
}

// targetChecksum digests the new tables and the quarantine.
func targetChecksum(t testing.TB, db *sql.DB) string {
	t.Helper()
	var parts []string
	for _, tbl := range prefixed("agentstore.", Tables) {
		var sum string
		require.NoError(t, db.QueryRow(`SELECT md5(coalesce(string_agg(md5(t::text), '' ORDER BY t.id), '')) FROM `+tbl+` t`).Scan(&sum))
		parts = append(parts, tbl+"="+sum)
	}
	var sum string
	require.NoError(t, db.QueryRow(`SELECT md5(coalesce(string_agg(md5((t.source_table, t.source_id, t.code, t.reason, t."row")::text), '' ORDER BY t.source_table, t.source_id), '')) FROM agentstore.legacy_quarantine t`).Scan(&sum))
	return strings.Join(append(parts, "quarantine="+sum), " ")
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

func count(t testing.TB, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRow(query, args...).Scan(&n), query)
	return n
}

// requireBalanced asserts that Verify passes and that every table of rep
// accounts for every legacy row exactly once.
func requireBalanced(t *testing.T, db *sql.DB, rep Report) VerifyReport {
	t.Helper()
	require.Len(t, rep.Tables, len(Tables))
	for _, tr := range rep.Tables {
		src := count(t, db, "SELECT count(*) FROM public."+tr.Table)
		assert.Equal(t, src, tr.Scanned, "%s scanned", tr.Table)
		assert.Equal(t, tr.Scanned, tr.Inserted+tr.Updated+tr.Unchanged+tr.Quarantined, "%s outcome sum", tr.Table)
		imported := count(t, db, "SELECT count(*) FROM public."+tr.Table+" s JOIN agentstore."+tr.Table+" USING (id)")
		quarantined := count(t, db, "SELECT count(*) FROM agentstore.legacy_quarantine WHERE source_table = $1", tr.Table)
		assert.Equal(t, src, imported+quarantined, "%s: source = imported + quarantined", tr.Table)
	}
	var out bytes.Buffer
	vr, err := Verify(context.Background(), db, Options{Out: &out})
	require.NoError(t, err)
	require.True(t, vr.OK, "verify failed:\n%s", out.String())
	return vr
}

// counts returns the table counts of rep, without the timings and the
// source sizes, which only the invocation that walked a table knows.
func counts(rep Report) []TableReport {
	out := make([]TableReport, len(rep.Tables))
	for i, tr := range rep.Tables {
		tr.Elapsed, tr.Source = 0, 0
		out[i] = tr
	}
	return out
}

func quarantineCodes(t testing.TB, db *sql.DB) map[string][]string {
	t.Helper()
	return codesWhere(t, db, "true")
}

func codesWhere(t testing.TB, db *sql.DB, where string) map[string][]string {
	t.Helper()
	rows, err := db.Query(`SELECT DISTINCT source_table, code FROM agentstore.legacy_quarantine q WHERE ` + where + ` ORDER BY 1, 2`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var tbl, code string
		require.NoError(t, rows.Scan(&tbl, &code))
		out[tbl] = append(out[tbl], code)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestImportSeed(t *testing.T) {
	db, _ := legacyDB(t, 5000)
	before := checksum(t, db)
	ctx := context.Background()

	var out bytes.Buffer
	start := time.Now()
	rep, err := Import(ctx, db, Options{Out: &out})
	require.NoError(t, err)
	elapsed := time.Since(start)
	t.Logf("imported %d rows in %s (%.0f rows/s)\n%s", rep.Rows(), elapsed, float64(rep.Rows())/elapsed.Seconds(), out.String())
	assert.Equal(t, 1, rep.Pass)
	assert.False(t, rep.Resumed)
	requireBalanced(t, db, rep)
	assert.Contains(t, out.String(), "agent_runs: 5000/5000", "plain progress lines when not on a terminal")

	// Every planted kind of dirt is quarantined with its reason.
	assert.Equal(t, map[string][]string{
		"agent_runs":    {ReasonNoTenant},
		"agent_steps":   {ReasonDuplicateSeq, ReasonOrphan, ReasonParentQuarantined, ReasonTenantMismatch},
		"audit_logs":    {ReasonNoTenant},
		"tool_calls":    {ReasonDanglingStep, ReasonOrphan, ReasonParentQuarantined},
		"usage_metrics": {ReasonNoTenant},
	}, quarantineCodes(t, db))
	// ... and exactly the planted rows.
	assert.Equal(t, count(t, db, `SELECT count(*) FROM public.agent_runs WHERE tenant_id IS NULL AND user_id IS NULL`),
		count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine WHERE source_table = 'agent_runs'`))
	assert.Equal(t, count(t, db, `SELECT count(*) FROM public.agent_steps s WHERE NOT EXISTS (SELECT 1 FROM public.agent_runs r WHERE r.id = s.run_id)`),
		count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine WHERE source_table = 'agent_steps' AND code = 'orphan'`))
	dups := `SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY run_id, step_index ORDER BY created_at, id) AS rn
		FROM public.agent_steps) x WHERE rn > 1`
	assert.Equal(t, int64(400), count(t, db, `SELECT count(*) FROM (`+dups+`) d`), "1% duplicates planted")
	assert.Zero(t, count(t, db, `SELECT count(*) FROM (`+dups+`) d WHERE NOT EXISTS
		(SELECT 1 FROM agentstore.legacy_quarantine q WHERE q.source_table = 'agent_steps' AND q.source_id = d.id)`), "every duplicate is quarantined")
	assert.Equal(t, count(t, db, `SELECT count(*) FROM public.audit_logs WHERE tenant_id IS NULL AND user_id IS NULL`),
		count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine WHERE source_table = 'audit_logs'`))
	// The kept duplicate is the first by created_at.
	assert.Zero(t, count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine q
		JOIN public.agent_steps dup ON dup.id = q.source_id
		JOIN agentstore.agent_steps kept ON kept.run_id = dup.run_id AND kept.seq = dup.step_index
		WHERE q.code = 'duplicate_seq' AND (kept.created_at, kept.id) > (dup.created_at, dup.id)`))
	assert.NotZero(t, count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine WHERE code = 'duplicate_seq'`))

	// Ids and tenants are kept; a missing run tenant comes from the user.
	assert.Zero(t, count(t, db, `SELECT count(*) FROM public.agent_runs s JOIN agentstore.agent_runs t USING (id)
		WHERE t.tenant_id <> coalesce(s.tenant_id, (SELECT (raw_app_meta_data->>'tenant_id')::uuid FROM auth.users u WHERE u.id = s.user_id))`))
	assert.NotZero(t, count(t, db, `SELECT count(*) FROM public.agent_runs s JOIN agentstore.agent_runs t USING (id) WHERE s.tenant_id IS NULL`))
	assert.Zero(t, count(t, db, `SELECT count(*) FROM public.agent_steps s JOIN agentstore.agent_steps t USING (id)
		JOIN agentstore.agent_runs r ON r.id = t.run_id WHERE t.tenant_id <> coalesce(s.tenant_id, r.tenant_id) OR t.run_id <> s.run_id OR t.seq <> s.step_index`))

	// Usage: billing rows survive; a dangling run becomes NULL; NULLs filled.
	assert.Zero(t, count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine q JOIN public.usage_metrics u ON u.id = q.source_id
		JOIN public.agent_runs r ON r.id = u.run_id WHERE q.source_table = 'usage_metrics' AND (u.tenant_id IS NOT NULL OR r.tenant_id IS NOT NULL OR r.user_id IS NOT NULL)`),
		"only usage rows whose tenant is unknowable are quarantined")
	dangling := count(t, db, `SELECT count(*) FROM public.usage_metrics u WHERE NOT EXISTS (SELECT 1 FROM public.agent_runs r WHERE r.id = u.run_id)`)
	assert.NotZero(t, dangling)
	assert.Equal(t, dangling, count(t, db, `SELECT count(*) FROM public.usage_metrics u JOIN agentstore.usage_metrics t USING (id)
		WHERE t.run_id IS NULL AND NOT EXISTS (SELECT 1 FROM public.agent_runs r WHERE r.id = u.run_id)`), "dangling usage imported with run_id NULL")
	assert.Zero(t, count(t, db, `SELECT count(*) FROM public.usage_metrics u JOIN agentstore.usage_metrics t USING (id)
		WHERE t.total_tokens <> coalesce(u.total_tokens, u.prompt_tokens + u.completion_tokens) OR t.cost_usd <> coalesce(u.cost_usd, 0)
		   OR t.input_tokens <> u.prompt_tokens OR t.output_tokens <> u.completion_tokens OR t.recorded_at <> u.created_at`))

	// Tool calls: negative durations are NULL, success maps to status.
	assert.Equal(t, count(t, db, `SELECT count(*) FROM public.tool_calls s JOIN agentstore.tool_calls t USING (id) WHERE s.duration_ms < 0`),
		count(t, db, `SELECT count(*) FROM public.tool_calls s JOIN agentstore.tool_calls t USING (id) WHERE t.duration_ms IS NULL`))
	assert.Zero(t, count(t, db, `SELECT count(*) FROM public.tool_calls s JOIN agentstore.tool_calls t USING (id)
		WHERE t.status <> CASE WHEN s.success THEN 'succeeded' ELSE 'failed' END OR t.arguments <> s.args`))
	assert.Zero(t, count(t, db, `SELECT count(*) FROM public.audit_logs s JOIN agentstore.audit_logs t USING (id)
		WHERE t.resource_id <> s.entity_id OR t.resource_type <> s.entity OR t.actor_id <> s.user_id::text OR t.actor_role <> 'legacy'
		   OR t.changes <> s.details OR t.ip <> host(s.ip)`))

	// Statuses map as the table says.
	rows, err := db.Query(`SELECT DISTINCT s.status, t.status FROM public.agent_runs s JOIN agentstore.agent_runs t USING (id)`)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var from, to string
		require.NoError(t, rows.Scan(&from, &to))
		want, ok := MapRunStatus(from)
		assert.True(t, ok, from)
		assert.Equal(t, want, to, from)
		n++
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, 12, n, "the seed's twelve spellings")
	rows, err = db.Query(`SELECT DISTINCT s.status, t.status FROM public.system_health s JOIN agentstore.system_health t USING (id)`)
	require.NoError(t, err)
	for rows.Next() {
		var from, to string
		require.NoError(t, rows.Scan(&from, &to))
		want, _ := MapHealthStatus(from)
		assert.Equal(t, want, to, from)
	}
	require.NoError(t, rows.Err())

	assert.Equal(t, before, checksum(t, db), "the legacy tables are untouched")
}

func TestStatusMapping(t *testing.T) {
	runCases := []struct{ legacy, want string }{
		{"pending", "queued"}, {"running", "running"}, {"completed", "succeeded"}, {"Completed", "succeeded"},
		{"done", "succeeded"}, {"success", "succeeded"}, {"error", "failed"}, {"failed", "failed"},
		{"FAILED", "failed"}, {"cancelled", "cancelled"}, {"canceled", "cancelled"}, {"timeout", "failed"},
		{" ok\t", "succeeded"}, {"exploded", ""}, {"", ""},
	}
	healthCases := []struct{ legacy, want string }{
		{"up", "up"}, {"UP", "up"}, {"ok", "up"}, {"degraded", "degraded"}, {"down", "down"}, {"on fire", ""},
	}
	db, err := sql.Open("pgx", dbtest.Postgres(t))
	require.NoError(t, err)
	defer db.Close()
	sqlMap := func(m map[string]string, in string) string {
		var out sql.NullString
		require.NoError(t, db.QueryRow("SELECT "+caseSQL("$1::text", m), in).Scan(&out))
		return out.String
	}
	for _, c := range runCases {
		t.Run("run/"+c.legacy, func(t *testing.T) {
			got, ok := MapRunStatus(c.legacy)
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.want != "", ok)
			assert.Equal(t, c.want, sqlMap(RunStatuses, c.legacy), "SQL mapping")
		})
	}
	for _, c := range healthCases {
		t.Run("health/"+c.legacy, func(t *testing.T) {
			got, ok := MapHealthStatus(c.legacy)
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.want != "", ok)
			assert.Equal(t, c.want, sqlMap(HealthStatuses, c.legacy), "SQL mapping")
		})
	}
	for _, v := range RunStatuses {
		assert.Contains(t, []string{"queued", "running", "succeeded", "failed", "cancelled"}, v)
	}
	for _, v := range HealthStatuses {
		assert.Contains(t, []string{"up", "degraded", "down"}, v)
	}
}

// TestEveryQuarantineReason plants, on top of the seed, one row for each
// reason the seed does not have.
func TestEveryQuarantineReason(t *testing.T) {
	db, _ := legacyDB(t, 200)
	_, err := db.Exec(`
INSERT INTO public.agent_runs (id, tenant_id, agent_name, status) VALUES
  ('00000000-0000-0000-0000-00000000a001', md5('tenant1')::uuid, 'x', 'exploded'),
  ('00000000-0000-0000-0000-00000000a002', md5('tenant1')::uuid, '  ', 'done');
INSERT INTO public.agent_steps (id, run_id, tenant_id, step_index, kind, status) VALUES
  ('00000000-0000-0000-0000-00000000b001', md5('run1')::uuid, NULL, 0, 'llm', 'ok'),
  ('00000000-0000-0000-0000-00000000b002', md5('run1')::uuid, NULL, 100, 'llm', 'weird'),
  ('00000000-0000-0000-0000-00000000b003', md5('run1')::uuid, NULL, 101, 'llm', NULL);
INSERT INTO public.tool_calls (id, run_id, step_id, tool_name, success) VALUES
  ('00000000-0000-0000-0000-00000000c001', md5('run2')::uuid, '00000000-0000-0000-0000-00000000b003', 'x', NULL),
  ('00000000-0000-0000-0000-00000000c002', md5('run1')::uuid, '00000000-0000-0000-0000-00000000b001', 'x', true);
INSERT INTO public.usage_metrics (id, tenant_id, run_id, model) VALUES
  ('00000000-0000-0000-0000-00000000d001', NULL, NULL, NULL),
  ('00000000-0000-0000-0000-00000000d002', NULL, '00000000-0000-0000-0000-00000000a001', 'm');
INSERT INTO public.system_health (id, service, status) VALUES
  ('00000000-0000-0000-0000-00000000e001', 'api', 'on fire'),
  ('00000000-0000-0000-0000-00000000e002', '', 'up');
-- The service already holds run1 (imported earlier) and a step at seq 1:
-- the legacy step 1 of run1 conflicts on (run_id, seq).
INSERT INTO agentstore.agent_runs (id, tenant_id, created_at, agent_name, status, updated_at)
  SELECT id, tenant_id, created_at, agent_name, 'running', created_at FROM public.agent_runs WHERE id = md5('run1')::uuid;
INSERT INTO agentstore.agent_steps (id, tenant_id, created_at, run_id, seq, type)
  SELECT gen_random_uuid(), tenant_id, now(), id, 1, 'llm' FROM public.agent_runs WHERE id = md5('run1')::uuid;
`)
	require.NoError(t, err)
	before := checksum(t, db)
	rep, err := Import(context.Background(), db, Options{BatchSize: 97, Workers: 3})
	require.NoError(t, err)
	var all []string
	for _, codes := range quarantineCodes(t, db) {
		all = append(all, codes...)
	}
	for _, want := range []string{ReasonNoTenant, ReasonUnknownStatus, ReasonInvalidValue, ReasonOrphan, ReasonParentQuarantined,
		ReasonTenantMismatch, ReasonInvalidSeq, ReasonDuplicateSeq, ReasonDanglingStep, ReasonStepQuarantined,
		ReasonStepOtherRun, ReasonConflict} {
		assert.Contains(t, all, want)
	}
	reason := func(id string) (code, text string) {
		require.NoError(t, db.QueryRow(`SELECT code, reason FROM agentstore.legacy_quarantine WHERE source_id = $1`, id).Scan(&code, &text))
		return
	}
	code, text := reason("00000000-0000-0000-0000-00000000a001")
	assert.Equal(t, ReasonUnknownStatus, code)
	assert.Contains(t, text, "'exploded'")
	code, _ = reason("00000000-0000-0000-0000-00000000a002")
	assert.Equal(t, ReasonInvalidValue, code)
	code, _ = reason("00000000-0000-0000-0000-00000000b001")
	assert.Equal(t, ReasonInvalidSeq, code)
	code, _ = reason("00000000-0000-0000-0000-00000000b002")
	assert.Equal(t, ReasonUnknownStatus, code)
	code, text = reason("00000000-0000-0000-0000-00000000c001")
	assert.Equal(t, ReasonStepOtherRun, code)
	assert.Contains(t, text, "belongs to run")
	code, _ = reason("00000000-0000-0000-0000-00000000c002")
	assert.Equal(t, ReasonStepQuarantined, code)
	code, text = reason("00000000-0000-0000-0000-00000000d001")
	assert.Equal(t, ReasonNoTenant, code)
	assert.Contains(t, text, "no run")
	code, _ = reason("00000000-0000-0000-0000-00000000e001")
	assert.Equal(t, ReasonUnknownStatus, code)
	code, _ = reason("00000000-0000-0000-0000-00000000e002")
	assert.Equal(t, ReasonInvalidValue, code)
	var stepRun string
	require.NoError(t, db.QueryRow(`SELECT "row"->>'run_id' FROM agentstore.legacy_quarantine WHERE code = 'conflict'`).Scan(&stepRun))
	var run1 string
	require.NoError(t, db.QueryRow(`SELECT md5('run1')::uuid::text`).Scan(&run1))
	assert.Equal(t, run1, stepRun, "the conflicting step is run1's step 1")

	// A usage row whose run is quarantined but has a tenant of its own... or
	// none: d002's run a001 is quarantined for its status, yet the run's
	// tenant is not taken from a quarantined run: no user, so no tenant.
	code, _ = reason("00000000-0000-0000-0000-00000000d002")
	assert.Equal(t, ReasonNoTenant, code)
	// A step with NULL status is imported as succeeded.
	assert.Equal(t, int64(1), count(t, db, `SELECT count(*) FROM agentstore.agent_steps WHERE id = '00000000-0000-0000-0000-00000000b003' AND status = 'succeeded'`))
	// run1 existed: it counts as updated or unchanged, not inserted.
	assert.Equal(t, int64(1), rep.Tables[0].Updated)
	requireBalanced(t, db, rep)
	assert.Equal(t, before, checksum(t, db))
}

func TestBoundsCoverTheKeySpace(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7, 16} {
		prev := uuid.NullUUID{}
		for k := 0; k < n; k++ {
			lo, hi := bounds(k, n)
			require.True(t, lo.Valid)
			if k == 0 {
				assert.Equal(t, uuid.Nil, lo.UUID, "the first part starts at the nil UUID")
			} else {
				assert.Equal(t, prev, lo, "part %d of %d starts where the previous ends", k, n)
			}
			assert.Equal(t, k == n-1, !hi.Valid, "only the last part is unbounded")
			if hi.Valid {
				assert.Negative(t, bytes.Compare(lo.UUID[:], hi.UUID[:]))
			}
			prev = hi
		}
	}
}

func TestRerunIsIdempotent(t *testing.T) {
	db, _ := legacyDB(t, 1000)
	ctx := context.Background()
	first, err := Import(ctx, db, Options{BatchSize: 1000})
	require.NoError(t, err)
	requireBalanced(t, db, first)
	sum := targetChecksum(t, db)

	// A plain re-run of a finished import does nothing.
	again, err := Import(ctx, db, Options{BatchSize: 1000})
	require.NoError(t, err)
	assert.True(t, again.UpToDate)
	assert.Equal(t, counts(first), counts(again))
	assert.Equal(t, sum, targetChecksum(t, db))

	// A new pass over unchanged data writes nothing.
	inc, err := Import(ctx, db, Options{BatchSize: 777, Incremental: true})
	require.NoError(t, err)
	assert.Equal(t, 2, inc.Pass)
	for i, tr := range inc.Tables {
		assert.Zero(t, tr.Inserted, tr.Table)
		assert.Zero(t, tr.Updated, tr.Table)
		assert.Zero(t, tr.Released, tr.Table)
		assert.Equal(t, first.Tables[i].Inserted, tr.Unchanged, tr.Table)
		assert.Equal(t, first.Tables[i].Quarantined, tr.Quarantined, tr.Table)
	}
	assert.Equal(t, sum, targetChecksum(t, db))
	requireBalanced(t, db, inc)
}

func TestIncrementalPicksUpChanges(t *testing.T) {
	db, _ := legacyDB(t, 1000)
	ctx := context.Background()
	first, err := Import(ctx, db, Options{BatchSize: 500})
	require.NoError(t, err)
	requireBalanced(t, db, first)

	// The old platform keeps writing during the cut-over window.
	_, err = db.Exec(`
UPDATE public.agent_runs SET status = 'done', output = '{"answer": 42}', updated_at = now() WHERE id = md5('run2')::uuid;
UPDATE public.agent_steps SET content = '{"input": {"q": 1}, "output": {"a": 2}}', status = 'error' WHERE id = md5('step2-3')::uuid;
UPDATE public.tool_calls SET success = false, error = 'late failure' WHERE id = md5('tool2-2')::uuid;
UPDATE public.usage_metrics SET completion_tokens = 999, total_tokens = NULL WHERE id = md5('usage2-1')::uuid;
-- a quarantined run (no tenant, no user) gets its tenant: it and its
-- children are released from the quarantine
UPDATE public.agent_runs SET tenant_id = md5('tenant3')::uuid WHERE id = md5('run13')::uuid;
INSERT INTO public.agent_runs (id, tenant_id, agent_name, status) VALUES (md5('run-new')::uuid, md5('tenant1')::uuid, 'coder', 'running');
INSERT INTO public.agent_steps (id, run_id, step_index, kind) VALUES (md5('step-new')::uuid, md5('run-new')::uuid, 1, 'llm');
INSERT INTO public.usage_metrics (id, run_id, prompt_tokens, completion_tokens) VALUES (md5('usage-new')::uuid, md5('run-new')::uuid, 10, 5);
`)
	require.NoError(t, err)
	qBefore := count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine`)
	before := checksum(t, db)

	// Without --incremental nothing happens.
	rep, err := Import(ctx, db, Options{BatchSize: 500})
	require.NoError(t, err)
	assert.True(t, rep.UpToDate)

	rep, err = Import(ctx, db, Options{BatchSize: 500, Incremental: true})
	require.NoError(t, err)
	byName := map[string]TableReport{}
	var totalReleased int64
	for _, tr := range rep.Tables {
		byName[tr.Table] = tr
		totalReleased += tr.Released
	}
	assert.Equal(t, int64(2), byName["agent_runs"].Inserted, "run-new and run13")
	assert.Equal(t, int64(1), byName["agent_runs"].Updated)
	assert.Equal(t, int64(1), byName["agent_steps"].Updated, "%+v", byName["agent_steps"])
	assert.Equal(t, int64(1), byName["tool_calls"].Updated)
	assert.Equal(t, int64(1), byName["usage_metrics"].Updated)
	assert.Positive(t, totalReleased)
	assert.Equal(t, qBefore-count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine`), totalReleased)
	// Of run13's rows only its duplicate step stays quarantined.
	assert.Equal(t, map[string][]string{"agent_steps": {ReasonDuplicateSeq}}, codesWhere(t, db,
		`q."row"->>'run_id' = md5('run13')::uuid::text OR q.source_id = md5('run13')::uuid`))
	assert.Positive(t, byName["agent_steps"].Inserted)

	var status, output string
	require.NoError(t, db.QueryRow(`SELECT status, output::text FROM agentstore.agent_runs WHERE id = md5('run2')::uuid`).Scan(&status, &output))
	assert.Equal(t, "succeeded", status)
	assert.JSONEq(t, `{"answer": 42}`, output)
	var in, out string
	require.NoError(t, db.QueryRow(`SELECT status, input::text, output::text FROM agentstore.agent_steps WHERE id = md5('step2-3')::uuid`).Scan(&status, &in, &out))
	assert.Equal(t, "failed", status)
	assert.JSONEq(t, `{"q": 1}`, in)
	assert.JSONEq(t, `{"a": 2}`, out)
	require.NoError(t, db.QueryRow(`SELECT status FROM agentstore.tool_calls WHERE id = md5('tool2-2')::uuid`).Scan(&status))
	assert.Equal(t, "failed", status)
	assert.Equal(t, int64(1), count(t, db, `SELECT count(*) FROM agentstore.usage_metrics u, public.usage_metrics s
		WHERE u.id = md5('usage2-1')::uuid AND s.id = u.id AND u.output_tokens = 999 AND u.total_tokens = s.prompt_tokens + 999`))
	assert.Equal(t, int64(1), count(t, db, `SELECT count(*) FROM agentstore.usage_metrics WHERE id = md5('usage-new')::uuid AND tenant_id = md5('tenant1')::uuid AND run_id = md5('run-new')::uuid`))
	assert.Zero(t, count(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine WHERE source_id = md5('run13')::uuid`))
	requireBalanced(t, db, rep)
	assert.Equal(t, before, checksum(t, db))
}

func TestDryRunWritesNothing(t *testing.T) {
	db, _ := legacyDB(t, 500)
	ctx := context.Background()
	var out bytes.Buffer
	dry, err := Import(ctx, db, Options{BatchSize: 300, DryRun: true, Out: &out})
	require.NoError(t, err)
	assert.True(t, dry.DryRun)
	assert.Contains(t, out.String(), "dry run")
	for _, tbl := range Tables {
		assert.Zero(t, count(t, db, "SELECT count(*) FROM agentstore."+tbl), tbl)
	}
	assert.Zero(t, count(t, db, `SELECT count(*) FROM pg_tables WHERE schemaname = 'agentstore' AND tablename LIKE 'legacy%'`),
		"not even the quarantine and state tables")

	real, err := Import(ctx, db, Options{BatchSize: 300})
	require.NoError(t, err)
	assert.Equal(t, counts(real), counts(dry), "the dry run predicts the import exactly")
	assert.Equal(t, real.Quarantine, dry.Quarantine)
	requireBalanced(t, db, real)
}

func TestResumeAfterKill(t *testing.T) {
	db, url := legacyDB(t, 1000)
	before := checksum(t, db)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LEGACY_TEST_HELPER=import", "LEGACY_TEST_URL="+url, "LEGACY_TEST_BATCH=50")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	steps := 0
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "agent_steps: ") {
			steps++
		}
		if steps == 20 { // 20 of 160 step batches committed
			break
		}
	}
	if steps < 20 {
		_ = cmd.Wait()
		t.Fatalf("the import ended before it could be killed: %s", stderr.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	// agent_steps is imported by DefaultWorkers parts: the kill leaves the
	// table unfinished with at least one part past its start.
	var parts, done, started int
	require.NoError(t, db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE done), count(last_id)
		FROM agentstore.legacy_import_state WHERE source_table = 'agent_steps'`).Scan(&parts, &done, &started))
	require.Equal(t, DefaultWorkers, parts)
	require.Less(t, done, parts, "killed in the middle of agent_steps")
	require.Positive(t, started, "a part of agent_steps checkpointed before the kill")
	partial := count(t, db, `SELECT count(*) FROM agentstore.agent_steps`)
	require.Positive(t, partial)

	var out bytes.Buffer
	rep, err := Import(context.Background(), db, Options{BatchSize: 50, Out: &out})
	require.NoError(t, err)
	assert.True(t, rep.Resumed)
	assert.Equal(t, 1, rep.Pass)
	assert.Contains(t, out.String(), "(resumed)")
	assert.NotRegexp(t, `(?m)^agent_runs: `, out.String(), "finished tables are not walked again")
	requireBalanced(t, db, rep)
	assert.Equal(t, before, checksum(t, db))
}

func TestVerifyDetectsTampering(t *testing.T) {
	db, _ := legacyDB(t, 300)
	ctx := context.Background()
	rep, err := Import(ctx, db, Options{})
	require.NoError(t, err)
	requireBalanced(t, db, rep)

	// A row deleted behind the importer's back.
	_, err = db.Exec(`DELETE FROM agentstore.tool_calls WHERE id = (SELECT id FROM agentstore.tool_calls ORDER BY id LIMIT 1)`)
	require.NoError(t, err)
	var out bytes.Buffer
	vr, err := Verify(ctx, db, Options{Out: &out})
	require.NoError(t, err)
	assert.False(t, vr.OK)
	assert.Contains(t, out.String(), "FAIL")
	assert.Len(t, vr.Failures(), 1)
	assert.Contains(t, vr.Failures()[0], "tool_calls: source")

	// A quarantined row lost too, and a broken tenant.
	_, err = db.Exec(`DELETE FROM agentstore.legacy_quarantine WHERE ctid = (SELECT ctid FROM agentstore.legacy_quarantine WHERE source_table = 'agent_steps' LIMIT 1);
		UPDATE agentstore.agent_steps SET tenant_id = gen_random_uuid() WHERE id = (SELECT id FROM agentstore.agent_steps ORDER BY id LIMIT 1)`)
	require.NoError(t, err)
	vr, err = Verify(ctx, db, Options{})
	require.NoError(t, err)
	failures := strings.Join(vr.Failures(), "\n")
	assert.Contains(t, failures, "agent_steps: source")
	assert.Contains(t, failures, "step tenant = run tenant")
	assert.Contains(t, failures, "tenant_id kept (steps)")
}

func TestConcurrentImportIsRefused(t *testing.T) {
	db, _ := legacyDB(t, 100)
	ctx := context.Background()
	// Another importer advances the checkpoint under this one.
	im := &importer{db: db, dst: `"agentstore"`, src: `"public"`}
	im.opts, _ = Options{BatchSize: 100}.withDefaults()
	im.specs = specs(im.src, im.dst, UsersTable)
	require.NoError(t, im.inTx(ctx, func(q querier) error { return im.setup(ctx, q) }))
	var rep Report
	var states map[string][]state
	require.NoError(t, im.inTx(ctx, func(q querier) error {
		var err error
		states, _, err = im.choosePass(ctx, q, &rep)
		return err
	}))
	_, err := db.Exec(`UPDATE agentstore.legacy_import_state SET last_id = gen_random_uuid() WHERE source_table = 'agent_runs'`)
	require.NoError(t, err)
	_, _, err = im.phase(ctx, im.specs[0], states["agent_runs"])
	assert.ErrorIs(t, err, ErrConcurrentImport)
}

func TestSkipFKTriggers(t *testing.T) {
	db, url := legacyDB(t, 500)
	ctx := context.Background()
	rep, err := Import(ctx, db, Options{SkipFKTriggers: true, BatchSize: 1000})
	require.NoError(t, err)
	requireBalanced(t, db, rep) // verify checks the references the triggers did not

	// A role that may not set session_replication_role is refused up front.
	role := fmt.Sprintf("legacy_test_%d", os.Getpid())
	_, err = db.Exec(`CREATE ROLE ` + role + ` LOGIN`)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.Exec(`DROP ROLE IF EXISTS ` + role) })
	u, err := neturl.Parse(url)
	require.NoError(t, err)
	u.User = neturl.User(role)
	other, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	_, err = Import(ctx, other, Options{SkipFKTriggers: true, Incremental: true})
	other.Close()
	assert.ErrorContains(t, err, "session_replication_role")
}

func TestMissingTargetIsAnError(t *testing.T) {
	db, err := sql.Open("pgx", dbtest.NewDatabase(t))
	require.NoError(t, err)
	defer db.Close()
	_, err = Import(context.Background(), db, Options{})
	assert.ErrorContains(t, err, "migrate apply")
}

// BenchmarkImport imports a seed of LEGACY_BENCH_RUNS runs (default 1000;
// the performance target is 100000 within 60 s) and reports rows/s and the
// peak RSS of the process. LEGACY_BENCH_SKIP_FK=1 imports with
// SkipFKTriggers.
//
//	LEGACY_BENCH_RUNS=100000 scripts/services.sh --durable -- \
//	  go test -run '^$' -bench BenchmarkImport -benchtime 1x ./internal/legacy/
func BenchmarkImport(b *testing.B) {
	runs := 1000
	if v, err := strconv.Atoi(os.Getenv("LEGACY_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	skipFK := os.Getenv("LEGACY_BENCH_SKIP_FK") == "1"
	var rows int64
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db, _ := legacyDB(b, runs)
		if _, err := db.Exec(`VACUUM ANALYZE`); err != nil { // as production's tables are
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		rep, err := Import(context.Background(), db, Options{SkipFKTriggers: skipFK})
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		rows += rep.Rows()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
}

// peakRSS reads VmHWM from /proc/self/status, in bytes (0 when unknown).
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
