package dbmigrate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"testing/fstest"

	"ariga.io/atlas/sql/migrate"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const pgURLEnv = "AGENTSTORE_TEST_PG_URL"

const (
	v1 = "20240101000000"
	v2 = "20240102000000"
	v3 = "20240103000000"
)

// migrationFile is one migration file of a test directory.
type migrationFile struct{ name, sql string }

var (
	file1 = migrationFile{v1 + "_create_users.sql", `CREATE TABLE users (
  id bigint PRIMARY KEY,
  name text NOT NULL
);
CREATE INDEX users_name_idx ON users (name);
`}
	file2 = migrationFile{v2 + "_add_email.sql", `ALTER TABLE users ADD COLUMN email text;
`}
	// file3 uses dollar quoting with semicolons in the body, which only the
	// PostgreSQL-aware statement scanner splits correctly.
	file3 = migrationFile{v3 + "_create_posts.sql", `CREATE TABLE posts (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id)
);
CREATE FUNCTION post_count(uid bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  SELECT count(*) INTO n FROM posts WHERE user_id = uid;
  RETURN n;
END;
$$;
`}
)

// testDir returns an in-memory migration directory holding files and a
// matching atlas.sum.
func testDir(t *testing.T, files ...migrationFile) *migrate.MemDir {
	t.Helper()
	dir := &migrate.MemDir{}
	for _, f := range files {
		require.NoError(t, dir.WriteFile(f.name, []byte(f.sql)))
	}
	sum, err := dir.Checksum()
	require.NoError(t, err)
	require.NoError(t, migrate.WriteSumFile(dir, sum))
	return dir
}

// newDB creates a fresh database on the cluster at AGENTSTORE_TEST_PG_URL,
// dropped when the test ends, and returns a pool connected to it.
func newDB(t *testing.T) *sql.DB {
	t.Helper()
	raw := os.Getenv(pgURLEnv)
	if raw == "" {
		t.Fatalf("%s is not set: it must hold a superuser PostgreSQL URL to a maintenance database "+
			"(e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable); these tests need a real PostgreSQL", pgURLEnv)
	}
	ctx := context.Background()
	admin, err := sql.Open("pgx", raw)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	require.NoError(t, admin.PingContext(ctx), "connect to %s", pgURLEnv)

	b := make([]byte, 8)
	_, err = rand.Read(b)
	require.NoError(t, err)
	name := "dbmigrate_test_" + hex.EncodeToString(b)
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name))
	require.NoError(t, err)

	u, err := url.Parse(raw)
	require.NoError(t, err)
	u.Path = "/" + name
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = db.Close()
		_, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)")
		assert.NoError(t, err, "drop test database %s", name)
	})
	return db
}

// tablesIn returns the base tables of schema s.
func tablesIn(t *testing.T, db *sql.DB, s string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT table_name FROM information_schema.tables
		WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name`, s)
	require.NoError(t, err)
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	return names
}

// revisionVersions returns the version column of the revisions table in s,
// including duplicates, if any.
func revisionVersions(t *testing.T, db *sql.DB, s string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM ` + qualifiedRevisionTable(s) + ` ORDER BY version`)
	require.NoError(t, err)
	defer rows.Close()
	var vs []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		vs = append(vs, v)
	}
	require.NoError(t, rows.Err())
	return vs
}

func TestApplyLifecycle(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const s = "agentstore"

	rep, err := Status(ctx, db, s, testDir(t, file1, file2))
	require.NoError(t, err)
	assert.Equal(t, Report{Schema: s, Pending: []string{v1, v2}}, rep)
	assert.Empty(t, tablesIn(t, db, s), "Status must not create anything")

	n, err := Apply(ctx, db, s, testDir(t, file1, file2), nil)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, []string{revisionTable, "users"}, tablesIn(t, db, s))
	assert.Empty(t, tablesIn(t, db, "public"), "unqualified migration SQL must land in the target schema")
	var cols int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'users' AND column_name = 'email'`, s).Scan(&cols))
	assert.Equal(t, 1, cols, "second migration must have added users.email")

	n, err = Apply(ctx, db, s, testDir(t, file1, file2), nil)
	require.NoError(t, err)
	assert.Equal(t, 0, n)

	rep, err = Status(ctx, db, s, testDir(t, file1, file2))
	require.NoError(t, err)
	assert.Equal(t, Report{Schema: s, Current: v2, Applied: []string{v1, v2}}, rep)
	assert.Contains(t, rep.String(), "current version: "+v2)
	assert.Contains(t, rep.String(), "status:          OK")

	three := testDir(t, file1, file2, file3)
	rep, err = Status(ctx, db, s, three)
	require.NoError(t, err)
	assert.Equal(t, Report{Schema: s, Current: v2, Applied: []string{v1, v2}, Pending: []string{v3}}, rep)
	assert.Contains(t, rep.String(), "pending files:   1 ("+v3+")")

	n, err = Apply(ctx, db, s, three, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []string{revisionTable, "posts", "users"}, tablesIn(t, db, s))
	var funcs int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.proname = 'post_count'`, s).Scan(&funcs))
	assert.Equal(t, 1, funcs, "dollar-quoted function must be created in the target schema")

	rep, err = Status(ctx, db, s, three)
	require.NoError(t, err)
	assert.Equal(t, Report{Schema: s, Current: v3, Applied: []string{v1, v2, v3}}, rep)
	assert.Equal(t, []string{v1, v2, v3}, revisionVersions(t, db, s))
}

func TestApplySchemaNames(t *testing.T) {
	tests := []struct {
		name   string
		schema string
	}{
		{"default", "agentstore"},
		{"underscore", "my_schema"},
		{"needs quoting", `Mixed-Case "Schema"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := newDB(t)
			n, err := Apply(ctx, db, tt.schema, testDir(t, file1, file2), nil)
			require.NoError(t, err)
			assert.Equal(t, 2, n)
			assert.Equal(t, []string{revisionTable, "users"}, tablesIn(t, db, tt.schema))
			assert.Empty(t, tablesIn(t, db, "public"))

			rep, err := Status(ctx, db, tt.schema, testDir(t, file1, file2))
			require.NoError(t, err)
			assert.Equal(t, Report{Schema: tt.schema, Current: v2, Applied: []string{v1, v2}}, rep)
		})
	}
}

func TestApplyRejectsBadDir(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, d *migrate.MemDir)
		is     error
	}{
		{
			name: "file edited after hashing",
			mutate: func(t *testing.T, d *migrate.MemDir) {
				require.NoError(t, d.WriteFile(file2.name, []byte("ALTER TABLE users ADD COLUMN phone text;\n")))
			},
			is: migrate.ErrChecksumMismatch,
		},
		{
			name: "file added after hashing",
			mutate: func(t *testing.T, d *migrate.MemDir) {
				require.NoError(t, d.WriteFile(file3.name, []byte(file3.sql)))
			},
			is: migrate.ErrChecksumMismatch,
		},
		{
			name: "sum file tampered",
			mutate: func(t *testing.T, d *migrate.MemDir) {
				b, err := fs.ReadFile(d, migrate.HashFileName)
				require.NoError(t, err)
				b[len(b)-3] ^= 1 // flip a bit of the last file hash
				require.NoError(t, d.WriteFile(migrate.HashFileName, b))
			},
			is: migrate.ErrChecksumMismatch,
		},
		{
			name: "sum file missing",
			mutate: func(t *testing.T, d *migrate.MemDir) {
				d2 := &migrate.MemDir{}
				require.NoError(t, d2.WriteFile(file1.name, []byte(file1.sql)))
				require.NoError(t, d2.WriteFile(file2.name, []byte(file2.sql)))
				*d = *d2
			},
			is: migrate.ErrChecksumNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := newDB(t)
			dir := testDir(t, file1, file2)
			tt.mutate(t, dir)

			n, err := Apply(ctx, db, "agentstore", dir, nil)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.is)
			assert.Equal(t, 0, n)
			assert.Equal(t, []string{revisionTable}, tablesIn(t, db, "agentstore"), "nothing may be applied")

			_, err = Status(ctx, db, "agentstore", dir)
			assert.ErrorIs(t, err, tt.is)
		})
	}
}

func TestApplyConcurrent(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const appliers = 4
	var (
		wg     sync.WaitGroup
		counts [appliers]int
		errs   [appliers]error
		dir    = testDir(t, file1, file2) // shared and only read, like an embedded directory
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
	assert.Equal(t, 2, total, "exactly one applier applies the two files: %v", counts)
	assert.Equal(t, []string{v1, v2}, revisionVersions(t, db, "agentstore"))
	assert.Equal(t, []string{revisionTable, "users"}, tablesIn(t, db, "agentstore"))
}

func TestRevisionTableMatchesAtlasCLI(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const s = "agentstore"
	_, err := Apply(ctx, db, s, testDir(t, file1, file2), nil)
	require.NoError(t, err)

	// The layout Ent generates for the Atlas CLI's Revision schema on PostgreSQL.
	type column struct{ name, typ, nullable, def string }
	want := []column{
		{"version", "character varying", "NO", ""},
		{"description", "character varying", "NO", ""},
		{"type", "bigint", "NO", "2"},
		{"applied", "bigint", "NO", "0"},
		{"total", "bigint", "NO", "0"},
		{"executed_at", "timestamp with time zone", "NO", ""},
		{"execution_time", "bigint", "NO", ""},
		{"error", "text", "YES", ""},
		{"error_stmt", "text", "YES", ""},
		{"hash", "character varying", "NO", ""},
		{"partial_hashes", "jsonb", "YES", ""},
		{"operator_version", "character varying", "NO", ""},
	}
	rows, err := db.Query(`SELECT column_name, data_type, is_nullable, coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
		s, revisionTable)
	require.NoError(t, err)
	var got []column
	for rows.Next() {
		var c column
		require.NoError(t, rows.Scan(&c.name, &c.typ, &c.nullable, &c.def))
		got = append(got, c)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	assert.Equal(t, want, got)

	var pk string
	require.NoError(t, db.QueryRow(`SELECT string_agg(a.attname, ',')
		FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1::regclass AND i.indisprimary`, qualifiedRevisionTable(s)).Scan(&pk))
	assert.Equal(t, "version", pk)

	// The rows hold what the executor recorded.
	dir := testDir(t, file1, file2)
	sum, err := dir.Checksum()
	require.NoError(t, err)
	for _, f := range []struct {
		version, desc string
		total         int
		name          string
	}{{v1, "create_users", 2, file1.name}, {v2, "add_email", 1, file2.name}} {
		var (
			desc, hash, op, errText string
			typ, applied, total     int
			partial                 sql.NullString
		)
		require.NoError(t, db.QueryRow(`SELECT description, type, applied, total, hash, operator_version,
			coalesce(error, ''), partial_hashes::text FROM `+qualifiedRevisionTable(s)+` WHERE version = $1`, f.version).
			Scan(&desc, &typ, &applied, &total, &hash, &op, &errText, &partial))
		wantHash, err := sum.SumByName(f.name)
		require.NoError(t, err)
		assert.Equal(t, f.desc, desc)
		assert.Equal(t, int(migrate.RevisionTypeExecute), typ)
		assert.Equal(t, f.total, total)
		assert.Equal(t, f.total, applied)
		assert.Equal(t, wantHash, hash)
		assert.Equal(t, operatorVersion, op)
		assert.Empty(t, errText)
		assert.Equal(t, "null", partial.String, "partial hashes are cleared once a file is fully applied")
	}

	// A row written by the Atlas CLI for Atlas Cloud is not a revision.
	_, err = db.Exec(`INSERT INTO `+qualifiedRevisionTable(s)+` (version, description, executed_at, execution_time, hash, operator_version)
		VALUES ($1, 'c1b3d1e2-0000-4000-8000-000000000000', now(), 0, '', 'Atlas CLI')`, cloudIdentifierVersion)
	require.NoError(t, err)
	rep, err := Status(ctx, db, s, testDir(t, file1, file2, file3))
	require.NoError(t, err)
	assert.Equal(t, Report{Schema: s, Current: v2, Applied: []string{v1, v2}, Pending: []string{v3}}, rep)
	n, err := Apply(ctx, db, s, testDir(t, file1, file2, file3), nil)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func TestApplyCleanCheck(t *testing.T) {
	tests := []struct {
		name    string
		setup   string
		wantErr bool
	}{
		{"unrelated table in target schema", `CREATE SCHEMA agentstore; CREATE TABLE agentstore.legacy (id int)`, true},
		{"tables in other schemas are fine", `CREATE TABLE public.other (id int); CREATE SCHEMA x; CREATE TABLE x.t (id int)`, false},
		{"existing empty schema is fine", `CREATE SCHEMA agentstore`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := newDB(t)
			_, err := db.Exec(tt.setup)
			require.NoError(t, err)

			n, err := Apply(ctx, db, "agentstore", testDir(t, file1, file2), nil)
			_, statusErr := Status(ctx, db, "agentstore", testDir(t, file1, file2))
			if !tt.wantErr {
				require.NoError(t, err)
				require.NoError(t, statusErr)
				assert.Equal(t, 2, n)
				return
			}
			require.Error(t, err)
			var nc *migrate.NotCleanError
			assert.ErrorAs(t, err, &nc)
			assert.ErrorContains(t, err, "has no migration revisions")
			assert.ErrorContains(t, err, `found table "legacy"`)
			assert.Equal(t, 0, n)
			assert.ErrorAs(t, statusErr, &nc)
		})
	}
}

func TestApplyFailedFileRollsBack(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	bad := migrationFile{v3 + "_broken.sql", "CREATE TABLE posts (id bigint PRIMARY KEY);\nALTER TABLE nope ADD COLUMN x int;\n"}

	n, err := Apply(ctx, db, "agentstore", testDir(t, file1, file2, bad), nil)
	require.Error(t, err)
	var se *migrate.StmtExecError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, v3, se.Version)
	assert.Equal(t, 2, n, "the files before the broken one are applied")
	assert.Equal(t, []string{revisionTable, "users"}, tablesIn(t, db, "agentstore"), "the broken file is rolled back entirely")
	assert.Equal(t, []string{v1, v2}, revisionVersions(t, db, "agentstore"))

	n, err = Apply(ctx, db, "agentstore", testDir(t, file1, file2, file3), nil)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
}

func TestApplyLeavesNoSessionState(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	db.SetMaxOpenConns(1) // the only pooled connection is the one Apply would have used

	_, err := Apply(ctx, db, "agentstore", testDir(t, file1, file2), nil)
	require.NoError(t, err)

	var searchPath string
	require.NoError(t, db.QueryRow(`SHOW search_path`).Scan(&searchPath))
	assert.Equal(t, `"$user", public`, searchPath)
	var locks int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`).Scan(&locks))
	assert.Zero(t, locks)
}

func TestDir(t *testing.T) {
	good := testDir(t, file1, file2)
	sum, err := fs.ReadFile(good, migrate.HashFileName)
	require.NoError(t, err)

	tests := []struct {
		name    string
		fsys    fstest.MapFS
		wantErr error
	}{
		{
			name: "valid, extra entries ignored",
			fsys: fstest.MapFS{
				file1.name:                   {Data: []byte(file1.sql)},
				file2.name:                   {Data: []byte(file2.sql)},
				migrate.HashFileName:         {Data: sum},
				"README.md":                  {Data: []byte("docs")},
				"nested/" + v3 + "_skip.sql": {Data: []byte("SELECT 1;")},
			},
		},
		{
			name: "tampered file",
			fsys: fstest.MapFS{
				file1.name:           {Data: []byte(file1.sql)},
				file2.name:           {Data: []byte("DROP TABLE users;")},
				migrate.HashFileName: {Data: sum},
			},
			wantErr: migrate.ErrChecksumMismatch,
		},
		{
			name: "missing sum",
			fsys: fstest.MapFS{
				file1.name: {Data: []byte(file1.sql)},
			},
			wantErr: migrate.ErrChecksumNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := Dir(tt.fsys)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			files, err := dir.Files()
			require.NoError(t, err)
			var names []string
			for _, f := range files {
				names = append(names, f.Name())
			}
			assert.Equal(t, []string{file1.name, file2.name}, names)
		})
	}

	t.Run("applies", func(t *testing.T) {
		dir, err := Dir(fstest.MapFS{
			file1.name:           {Data: []byte(file1.sql)},
			file2.name:           {Data: []byte(file2.sql)},
			migrate.HashFileName: {Data: sum},
		})
		require.NoError(t, err)
		n, err := Apply(context.Background(), newDB(t), "agentstore", dir, nil)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
	})
}

func TestReportString(t *testing.T) {
	tests := []struct {
		name string
		rep  Report
		want string
	}{
		{
			name: "empty",
			rep:  Report{Schema: "agentstore", Pending: []string{v1}},
			want: "schema:          agentstore\nstatus:          PENDING\ncurrent version: none\napplied files:   0\npending files:   1 (" + v1 + ")\n",
		},
		{
			name: "up to date",
			rep:  Report{Schema: "agentstore", Current: v2, Applied: []string{v1, v2}},
			want: "schema:          agentstore\nstatus:          OK\ncurrent version: " + v2 + "\napplied files:   2\npending files:   0\n",
		},
		{
			name: "partly applied",
			rep: Report{Schema: "agentstore", Current: v1, Applied: []string{v1}, Pending: []string{v2},
				Partial: &Partial{Version: v2, Applied: 1, Total: 3, Error: "ERROR: could not\ncreate unique index", ErrorStmt: "CREATE UNIQUE INDEX CONCURRENTLY i\n  ON t (c);"}},
			want: "schema:          agentstore\nstatus:          PENDING\ncurrent version: " + v1 + "\napplied files:   1\npending files:   1 (" + v2 + ")\n" +
				"partial file:    " + v2 + " (1 of 3 statements applied; migrate apply resumes at statement 2)\n" +
				"last error:      ERROR: could not create unique index\n" +
				"error statement: CREATE UNIQUE INDEX CONCURRENTLY i ON t (c);\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.rep.String())
		})
	}
}

func TestApplyValidatesArguments(t *testing.T) {
	_, err := Apply(context.Background(), nil, "", testDir(t, file1), nil)
	assert.ErrorContains(t, err, "empty schema name")
	_, err = Status(context.Background(), nil, "", testDir(t, file1))
	assert.ErrorContains(t, err, "empty schema name")
}
