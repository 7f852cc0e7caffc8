package dbmigrate

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const v4 = "20240104000000"

// indexState returns whether the index name exists in schema s and, if so,
// whether it is valid.
func indexState(t *testing.T, db *sql.DB, s, name string) (exists, valid bool) {
	t.Helper()
	err := db.QueryRow(`SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`, s, name).Scan(&valid)
	if err == sql.ErrNoRows {
		return false, false
	}
	require.NoError(t, err)
	return true, valid
}

// revisionRow is the part of a revision row the tests check.
type revisionRow struct {
	applied, total   int
	errText, errStmt string
	partialHashes    string
}

func readRevisionRow(t *testing.T, db *sql.DB, s, version string) revisionRow {
	t.Helper()
	var r revisionRow
	require.NoError(t, db.QueryRow(`SELECT applied, total, coalesce(error, ''), coalesce(error_stmt, ''), coalesce(partial_hashes::text, '')
		FROM `+qualifiedRevisionTable(s)+` WHERE version = $1`, version).Scan(&r.applied, &r.total, &r.errText, &r.errStmt, &r.partialHashes))
	return r
}

func TestFileTxMode(t *testing.T) {
	tests := []struct {
		name, src string
		want      string
		err       string
	}{
		{name: "no directive", src: "CREATE TABLE t (id int);\n", want: TxModeFile},
		{name: "none", src: "-- atlas:txmode none\n\nCREATE INDEX CONCURRENTLY i ON t (id);\n", want: TxModeNone},
		{name: "none among other header comments", src: "-- Build i without blocking writes.\n-- atlas:txmode none\n\nCREATE INDEX CONCURRENTLY i ON t (id);\n", want: TxModeNone},
		{name: "file", src: "-- atlas:txmode file\n\nCREATE TABLE t (id int);\n", want: TxModeFile},
		// Atlas reads file directives only in a header followed by an empty
		// line; the CLI would run this file in a transaction, and so does Apply.
		{name: "not a header", src: "-- atlas:txmode none\nCREATE INDEX CONCURRENTLY i ON t (id);\n", want: TxModeFile},
		{name: "all", src: "-- atlas:txmode all\n\nSELECT 1;\n", err: "mode for a whole run"},
		{name: "unknown", src: "-- atlas:txmode never\n\nSELECT 1;\n", err: `unknown atlas:txmode "never"`},
		{name: "twice", src: "-- atlas:txmode none\n-- atlas:txmode file\n\nSELECT 1;\n", err: "2 atlas:txmode directives"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FileTxMode(migrate.NewLocalFile(v4+"_x.sql", []byte(tt.src)))
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestConcurrentIndexAndSessionSet(t *testing.T) {
	for _, tt := range []struct {
		stmt, index, table string
	}{
		{`CREATE INDEX CONCURRENTLY "agentstep_x" ON "agent_steps" ("tenant_id");`, "agentstep_x", `"agent_steps"`},
		{"create unique index concurrently if not exists Users_Name on only public.users (name);", "users_name", "public.users"},
		{"-- why\nCREATE INDEX CONCURRENTLY \"a\"\"b\" ON \"s\".\"t\" USING btree (c);", `a"b`, `"s"."t"`},
	} {
		index, table, ok := concurrentIndex(tt.stmt)
		assert.True(t, ok, tt.stmt)
		assert.Equal(t, tt.index, index, tt.stmt)
		assert.Equal(t, tt.table, table, tt.stmt)
	}
	for _, stmt := range []string{"CREATE INDEX i ON t (c);", "DROP INDEX CONCURRENTLY i;", "REINDEX INDEX CONCURRENTLY i;"} {
		_, _, ok := concurrentIndex(stmt)
		assert.False(t, ok, stmt)
	}
	for stmt, want := range map[string]bool{
		"SET lock_timeout = '5s';":                      true,
		"set session statement_timeout to '1min';":      true,
		"SET lock_timeout='5s';":                        true,
		"SET LOCAL lock_timeout = '5s';":                false,
		"SET ROLE postgres;":                            false,
		"SET SESSION AUTHORIZATION postgres;":           false,
		"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;": false,
		"SET CONSTRAINTS ALL DEFERRED;":                 false,
		"SELECT set_config('a.b', 'c', false);":         false,
	} {
		assert.Equal(t, want, isSessionSet(stmt), stmt)
	}
}

// TestApplyTxModeNone applies a file that runs without a transaction: the
// CONCURRENTLY build, which PostgreSQL refuses in a transaction block,
// succeeds, the revision is complete, and the file's session setting does
// not leak into the next file.
func TestApplyTxModeNone(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const s = "agentstore"
	concurrent := migrationFile{v2 + "_users_name_cidx.sql", `-- Build the index without blocking writes.
-- atlas:txmode none

SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY "users_name_cidx" ON "users" ("name");
`}
	after := migrationFile{v3 + "_after.sql", `DO $$ BEGIN
  IF current_setting('lock_timeout') <> '0' THEN
    RAISE EXCEPTION 'lock_timeout leaked from the previous file: %', current_setting('lock_timeout');
  END IF;
END $$;
ALTER TABLE users ADD COLUMN email text;
`}
	inTx := migrationFile{v2 + "_users_name_cidx.sql", "CREATE INDEX CONCURRENTLY \"users_name_cidx\" ON \"users\" (\"name\");\n"}
	_, err := Apply(ctx, db, s, testDir(t, file1, inTx), nil)
	require.ErrorContains(t, err, "cannot run inside a transaction block", "without the directive, the file runs in a transaction")
	exists, _ := indexState(t, db, s, "users_name_cidx")
	assert.False(t, exists)

	db = newDB(t)
	n, err := Apply(ctx, db, s, testDir(t, file1, concurrent, after), nil)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	exists, valid := indexState(t, db, s, "users_name_cidx")
	assert.True(t, exists && valid, "the concurrent build completed")
	assert.Equal(t, revisionRow{applied: 2, total: 2, partialHashes: "null"}, readRevisionRow(t, db, s, v2))

	rep, err := Status(ctx, db, s, testDir(t, file1, concurrent, after))
	require.NoError(t, err)
	assert.Equal(t, Report{Schema: s, Current: v3, Applied: []string{v1, v2, v3}}, rep)
	n, err = Apply(ctx, db, s, testDir(t, file1, concurrent, after), nil)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestApplyTxModeNoneResumes fails a file without a transaction in the
// middle, like the Atlas CLI leaves it (partly applied, error and failed
// statement recorded, an INVALID index left by the failed concurrent
// build), then resumes it after the cause is fixed.
func TestApplyTxModeNoneResumes(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const s = "agentstore"
	unique := migrationFile{v2 + "_users_name_key.sql", `-- atlas:txmode none

SET lock_timeout = '5s';
CREATE UNIQUE INDEX CONCURRENTLY "users_name_key" ON "users" ("name");
DO $$ BEGIN
  IF current_setting('lock_timeout') <> '5s' THEN
    RAISE EXCEPTION 'lock_timeout is %, not the file''s 5s', current_setting('lock_timeout');
  END IF;
END $$;
ALTER TABLE users ADD COLUMN nickname text;
`}
	_, err := Apply(ctx, db, s, testDir(t, file1), nil)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO agentstore.users (id, name) VALUES (1, 'ada'), (2, 'ada'), (3, 'grace')`)
	require.NoError(t, err)

	dir := testDir(t, file1, unique)
	for attempt := 1; attempt <= 2; attempt++ {
		n, err := Apply(ctx, db, s, dir, nil)
		require.Error(t, err, "attempt %d: the duplicate names fail the unique build", attempt)
		assert.Zero(t, n)
		var se *migrate.StmtExecError
		require.ErrorAs(t, err, &se)
		assert.Contains(t, se.Stmt.Text, "CREATE UNIQUE INDEX CONCURRENTLY")
		assert.ErrorContains(t, err, "stopped at statement 2 of 4")
		assert.ErrorContains(t, err, "resumes at statement 2")

		rev := readRevisionRow(t, db, s, v2)
		assert.Equal(t, 1, rev.applied, "attempt %d: the SET is applied and recorded", attempt)
		assert.Equal(t, 4, rev.total)
		assert.Contains(t, rev.errText, "could not create unique index")
		assert.Contains(t, rev.errStmt, "CREATE UNIQUE INDEX CONCURRENTLY")
		assert.Regexp(t, `^\["h1:[^"]+"\]$`, rev.partialHashes, "the applied statement's hash, as the Atlas CLI records it")
		exists, valid := indexState(t, db, s, "users_name_key")
		assert.True(t, exists, "attempt %d: a failed concurrent build leaves its index behind", attempt)
		assert.False(t, valid, "attempt %d: ... INVALID", attempt)

		rep, err := Status(ctx, db, s, dir)
		require.NoError(t, err)
		assert.Equal(t, []string{v2}, rep.Pending)
		assert.Equal(t, v1, rep.Current)
		require.NotNil(t, rep.Partial)
		assert.Equal(t, Partial{Version: v2, Applied: 1, Total: 4, Error: rev.errText, ErrorStmt: rev.errStmt}, *rep.Partial)
		assert.Contains(t, rep.String(), "partial file:    "+v2+" (1 of 4 statements applied; migrate apply resumes at statement 2)")
		assert.Contains(t, rep.String(), "last error:      ")
		assert.Contains(t, rep.String(), "error statement: CREATE UNIQUE INDEX CONCURRENTLY")
	}
	var cols int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'users' AND column_name = 'nickname'`, s).Scan(&cols))
	assert.Zero(t, cols, "the statements after the failed one did not run")

	// The cause is fixed; the next apply drops the invalid index, builds it
	// again and runs the rest, with the file's lock_timeout (the DO block).
	_, err = db.Exec(`DELETE FROM agentstore.users WHERE id = 2`)
	require.NoError(t, err)
	var logs bytes.Buffer
	n, err := Apply(ctx, db, s, dir, slog.New(slog.NewJSONHandler(&logs, nil)))
	require.NoError(t, err, logs.String())
	assert.Equal(t, 1, n)
	assert.Contains(t, logs.String(), `"msg":"resuming partly applied migration"`)
	assert.Contains(t, logs.String(), `"msg":"dropping the invalid index a failed concurrent build left, to build it again"`)
	exists, valid := indexState(t, db, s, "users_name_key")
	assert.True(t, exists && valid, "the index is rebuilt, valid")
	assert.Equal(t, revisionRow{applied: 4, total: 4, partialHashes: "null"}, readRevisionRow(t, db, s, v2))
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'users' AND column_name = 'nickname'`, s).Scan(&cols))
	assert.Equal(t, 1, cols)
	rep, err := Status(ctx, db, s, dir)
	require.NoError(t, err)
	assert.Equal(t, Report{Schema: s, Current: v2, Applied: []string{v1, v2}}, rep)
	n, err = Apply(ctx, db, s, dir, nil)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// TestApplyTxModeNoneKeepsValidIndex checks that a resumed file never drops
// a VALID index: the statement fails on it, and the state stays resumable.
func TestApplyTxModeNoneKeepsValidIndex(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const s = "agentstore"
	f := migrationFile{v2 + "_users_name_cidx.sql", "-- atlas:txmode none\n\nSET lock_timeout = '5s';\nSELECT 1 / (SELECT count(*) FROM users);\nCREATE INDEX CONCURRENTLY \"users_name_cidx\" ON \"users\" (\"name\");\n"}
	_, err := Apply(ctx, db, s, testDir(t, file1, f), nil)
	require.ErrorContains(t, err, "division by zero")
	_, err = db.Exec(`INSERT INTO agentstore.users (id, name) VALUES (1, 'ada'); CREATE INDEX "users_name_cidx" ON agentstore.users (name)`)
	require.NoError(t, err)
	_, err = Apply(ctx, db, s, testDir(t, file1, f), nil)
	require.ErrorContains(t, err, `relation "users_name_cidx" already exists`)
	exists, valid := indexState(t, db, s, "users_name_cidx")
	assert.True(t, exists && valid, "a valid index is never dropped")
	assert.Equal(t, 2, readRevisionRow(t, db, s, v2).applied)
}

func TestApplyTxModeNoneConcurrent(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	concurrent := migrationFile{v2 + "_users_name_cidx.sql", "-- atlas:txmode none\n\nSET lock_timeout = '5s';\nCREATE INDEX CONCURRENTLY \"users_name_cidx\" ON \"users\" (\"name\");\n"}
	dir := testDir(t, file1, concurrent, file3)
	const appliers = 4
	var (
		wg     sync.WaitGroup
		counts [appliers]int
		errs   [appliers]error
		start  = make(chan struct{})
	)
	for i := range appliers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			counts[i], errs[i] = Apply(ctx, db, "agentstore", dir, nil)
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range appliers {
		require.NoError(t, errs[i], "applier %d", i)
		total += counts[i]
	}
	assert.Equal(t, 3, total, "the migration lock serializes the appliers, the file without a transaction too: %v", counts)
	assert.Equal(t, []string{v1, v2, v3}, revisionVersions(t, db, "agentstore"))
}

func TestApplyRejectsBadTxMode(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	bad := migrationFile{v2 + "_all.sql", "-- atlas:txmode all\n\nALTER TABLE users ADD COLUMN email text;\n"}
	n, err := Apply(ctx, db, "agentstore", testDir(t, file1, bad), nil)
	require.ErrorContains(t, err, "atlas:txmode all is a mode for a whole run")
	assert.Equal(t, 1, n)
	assert.Equal(t, []string{v1}, revisionVersions(t, db, "agentstore"))
}
