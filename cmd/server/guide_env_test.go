package main

import (
	"crypto/md5"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/legacy"
	"github.com/agentstore/agentstore/internal/markdown"
)

// guideEnv turns the guide's placeholders and production settings into
// test values.
type guideEnv struct {
	dbURL        string // the scratch database as the superuser (postgres)
	role         string // the test's stand-in for agentstore_app
	appURL       string // the scratch database as role
	placeholders map[string]string
}

var placeholderRE = regexp.MustCompile(`<[a-z][a-z0-9-]*>`)

// fill replaces the placeholders of s, failing on one without a test value.
func (e *guideEnv) fill(t *testing.T, line int, s string) string {
	t.Helper()
	for k, v := range e.placeholders {
		s = strings.ReplaceAll(s, k, v)
	}
	if m := placeholderRE.FindString(s); m != "" {
		t.Fatalf("guide line %d: no test value for the placeholder %s", line, m)
	}
	return s
}

var appRoleRE = regexp.MustCompile(`\bagentstore_app\b`)

// sql returns the text of an sql block with its placeholders filled and
// the test's role in place of agentstore_app.
func (e *guideEnv) sql(t *testing.T, b markdown.Block) string {
	t.Helper()
	return appRoleRE.ReplaceAllString(e.fill(t, b.Line, b.Text), e.role)
}

// prepare returns the environment and the arguments of a run: the
// guide's, with the connections, secrets, addresses and placeholder values
// of the test.
func (e *guideEnv) prepare(t *testing.T, r guideRun) (env, args []string) {
	t.Helper()
	for k, v := range r.env {
		switch k {
		case "DATABASE_URL":
			if _, port := guideURLParts(v); port == "6543" {
				v = e.appURL
			} else {
				v = e.dbURL
			}
		case "REDIS_URL":
			v = dbtest.RedisURL(t)
		case "SUPABASE_JWT_SECRET":
			v = e2eSecret
		case "ADDR":
			v = "127.0.0.1:0"
		case "DATA_DIR":
			v = t.TempDir()
		default:
			v = e.fill(t, r.line, v)
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	for _, a := range r.args {
		args = append(args, e.fill(t, r.line, a))
	}
	return env, args
}

// run runs r to completion and returns its output.
func (e *guideEnv) run(t *testing.T, r guideRun) (string, error) {
	t.Helper()
	env, args := e.prepare(t, r)
	return command(t, env, args...)
}

// verify runs the guide's `legacy verify` commands and expects OK.
func (e *guideEnv) verify(t *testing.T, runs guideRuns) {
	t.Helper()
	for _, r := range runs {
		out, err := e.run(t, r)
		require.NoError(t, err, "guide line %d: %s", r.line, out)
		assert.Contains(t, out, "verify: OK", "guide line %d", r.line)
		assert.Contains(t, out, "usage_metrics", "guide line %d: verify lists the tables", r.line)
	}
}

// mintFor mints a token for another tenant the way the guide's token
// command does, without another run of the binary.
func mintFor(t *testing.T, tenantID string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(e2eSecret), auth.MintOptions{Tenant: uuid.MustParse(tenantID), Subject: uuid.NewString(), TTL: 10 * time.Minute})
	require.NoError(t, err)
	return tok
}

// guidePsql runs psql as the superuser on dbURL with ON_ERROR_STOP: the
// script from stdin, or the given arguments.
func guidePsql(t *testing.T, dbURL string, env []string, script string, args ...string) {
	t.Helper()
	bin := "psql"
	if dir := os.Getenv("AGENTSTORE_TEST_PG_BIN"); dir != "" {
		bin = filepath.Join(dir, "psql")
	}
	cmd := exec.Command(bin, append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbURL}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if script != "" {
		cmd.Stdin = strings.NewReader(script)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "psql %v\n%s\n%s", args, script, out)
}

// legacyChecksum digests the six legacy tables.
func legacyChecksum(t *testing.T, db *sql.DB) string {
	t.Helper()
	var parts []string
	for _, table := range legacy.Tables {
		var sum string
		require.NoError(t, db.QueryRow(`SELECT md5(coalesce(string_agg(md5(t::text), '' ORDER BY t.id), '')) FROM public.`+table+` t`).Scan(&sum))
		parts = append(parts, table+"="+sum)
	}
	return strings.Join(parts, " ")
}

func guideCount(t *testing.T, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRow(query, args...).Scan(&n), query)
	return n
}

// md5UUID is PostgreSQL's md5(s)::uuid, the seed's ids.
func md5UUID(s string) string { return uuid.UUID(md5.Sum([]byte(s))).String() }

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// columns returns the column names of schema.table.
func columns(t *testing.T, db *sql.DB, schema, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, schema, table)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		out = append(out, c)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, out, "%s.%s has no columns", schema, table)
	return out
}
