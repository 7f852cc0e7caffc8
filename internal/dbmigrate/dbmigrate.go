// Package dbmigrate applies Atlas-format versioned migration files (*.sql plus
// an atlas.sum integrity file) to one schema of a PostgreSQL database, using
// ariga.io/atlas as a library.
//
// Revisions are recorded in the table atlas_schema_revisions inside the target
// schema, with the layout the Atlas CLI uses, so the CLI can inspect a database
// migrated by this package:
//
//	atlas migrate status --dir file://migrations --url "postgres://...?search_path=<schema>"
//
// Each migration file runs in its own transaction (like the CLI's default
// "--tx-mode file"): a failing file is rolled back entirely and nothing is
// recorded for it. Consequently, statements that cannot run inside a
// transaction block (e.g. CREATE INDEX CONCURRENTLY) and files that manage
// transactions themselves (BEGIN/COMMIT) are not supported.
//
// Migrations rely on session-level state: a dedicated connection, its
// search_path and a session-level advisory lock. The *sql.DB must therefore
// reach PostgreSQL directly or through a pooler in session mode; a pooler in
// transaction mode (e.g. PgBouncer pool_mode=transaction) is NOT supported.
package dbmigrate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	"ariga.io/atlas/sql/schema"
)

const (
	// operatorVersion is stored in the operator_version column of every revision.
	operatorVersion = "agentstore"

	// lockName is the advisory lock name the Atlas CLI uses for
	// `migrate apply`, so Apply and the CLI also exclude each other. The lock
	// is database-wide: applies to different schemas of one database are
	// serialized as well.
	lockName = "atlas_migrate_execute"

	// lockTimeout bounds how long Apply waits for a concurrent applier.
	lockTimeout = 10 * time.Minute
)

// Dir returns the migration directory (an atlas migrate.Dir) held by fsys,
// typically an embed.FS (use fs.Sub to strip a leading directory). Only the
// top-level *.sql files and atlas.sum are read; other entries are ignored.
// The directory is validated against atlas.sum: a missing, malformed or
// mismatching sum file is an error (errors.Is(err, migrate.ErrChecksumMismatch)
// for edited, added or removed files).
func Dir(fsys fs.FS) (migrate.Dir, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("dbmigrate: read migration directory: %w", err)
	}
	dir := &migrate.MemDir{}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || (path.Ext(name) != ".sql" && name != migrate.HashFileName) {
			continue
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("dbmigrate: read migration file: %w", err)
		}
		if err := dir.WriteFile(name, b); err != nil {
			return nil, fmt.Errorf("dbmigrate: load migration file %q: %w", name, err)
		}
	}
	if err := migrate.Validate(dir); err != nil {
		return nil, fmt.Errorf("dbmigrate: validate migration directory against %s: %w", migrate.HashFileName, err)
	}
	return dir, nil
}

// Report describes the migration state of a schema, as returned by Status.
type Report struct {
	// Schema is the schema the report is about.
	Schema string
	// Current is the latest fully applied version, or "" if none was applied.
	Current string
	// Applied lists the versions recorded as fully applied, in ascending order.
	Applied []string
	// Pending lists the versions of the migration files Apply would run, in
	// execution order. A partially applied file (left by an Atlas CLI run
	// without transactions) is listed here too.
	Pending []string
}

// String renders the report for humans, one "key: value" line per field.
func (r Report) String() string {
	current, state := r.Current, "OK"
	if current == "" {
		current = "none"
	}
	pending := fmt.Sprint(len(r.Pending))
	if len(r.Pending) > 0 {
		state = "PENDING"
		pending += " (" + strings.Join(r.Pending, ", ") + ")"
	}
	return fmt.Sprintf("schema:          %s\nstatus:          %s\ncurrent version: %s\napplied files:   %d\npending files:   %s\n",
		r.Schema, state, current, len(r.Applied), pending)
}

// Apply applies every pending migration file in dir to the schema schemaName
// of the PostgreSQL database reachable via db, creating the schema and the
// revisions table if needed, and returns the number of files applied (0 when
// the schema is up to date).
//
// The files are unqualified SQL: they run with search_path set to schemaName
// only. Concurrent Apply calls (also from other processes, and the Atlas CLI's
// `migrate apply`) are serialized with a PostgreSQL advisory lock; the later
// ones find nothing pending. The operation uses a single connection taken
// from db, which is discarded afterwards instead of being returned to the pool
// with a modified session. A schema that already holds tables but has no
// revisions is refused (migrate.NotCleanError). log may be nil.
func Apply(ctx context.Context, db *sql.DB, schemaName string, dir migrate.Dir, log *slog.Logger) (applied int, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if schemaName == "" {
		return 0, errors.New("dbmigrate: empty schema name")
	}
	log = log.With("schema", schemaName)
	defer func() {
		if err != nil {
			err = fmt.Errorf("dbmigrate: apply migrations to schema %q: %w", schemaName, err)
		}
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("get connection: %w", err)
	}
	// The session was altered (search_path, advisory lock); never hand it back
	// to the pool. Returning driver.ErrBadConn from Raw makes database/sql
	// close the underlying connection.
	defer func() {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = conn.Close()
	}()
	drv, err := postgres.Open(conn)
	if err != nil {
		return 0, fmt.Errorf("open atlas driver: %w", err)
	}
	start := time.Now()
	log.Debug("acquiring migration lock", "lock", lockName)
	unlock, err := drv.Lock(ctx, lockName, lockTimeout)
	if err != nil {
		return 0, fmt.Errorf("acquire migration lock %q: %w", lockName, err)
	}
	defer func() {
		// Unlock runs on ctx; if that fails (e.g. ctx canceled), the lock is
		// released anyway when the discarded connection's session ends.
		if uerr := unlock(); uerr != nil {
			log.Debug("release migration lock failed; released with the connection", "error", uerr)
		}
	}()
	log.Debug("acquired migration lock", "wait_ms", time.Since(start).Milliseconds())
	// Create the schema and revisions table only while holding the lock:
	// concurrent "IF NOT EXISTS" DDL can fail with unique violations.
	if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(schemaName)); err != nil {
		return 0, fmt.Errorf("create schema: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SET search_path TO "+quoteIdent(schemaName)); err != nil {
		return 0, fmt.Errorf("set search_path: %w", err)
	}
	if err := (&revisions{q: conn, schema: schemaName}).ensureTable(ctx); err != nil {
		return 0, err
	}
	for {
		done, err := applyNext(ctx, conn, schemaName, dir, log)
		if err != nil {
			return applied, err
		}
		if done {
			break
		}
		applied++
	}
	log.Info("migrations up to date", "applied", applied, "duration_ms", time.Since(start).Milliseconds())
	return applied, nil
}

// applyNext applies the next pending file, if any, in its own transaction. It
// reports done=true when nothing was pending.
func applyNext(ctx context.Context, conn *sql.Conn, schemaName string, dir migrate.Dir, log *slog.Logger) (done bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err != nil || done {
			_ = tx.Rollback()
		}
	}()
	ex, rec, err := newExecutor(tx, schemaName, dir)
	if err != nil {
		return false, err
	}
	start := time.Now()
	switch err := ex.ExecuteN(ctx, 1); {
	case errors.Is(err, migrate.ErrNoPendingFiles):
		return true, nil
	case err != nil:
		return false, describe(err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration %s: %w", rec.file, err)
	}
	log.Info("applied migration", "file", rec.file, "version", rec.version,
		"statements", rec.stmts, "duration_ms", time.Since(start).Milliseconds())
	return false, nil
}

// Status reports the migration state of schema schemaName: the current
// version, the applied versions and the versions still pending in dir. It
// only reads; a database or schema that was never migrated reports every
// file as pending. An invalid dir (atlas.sum mismatch) is an error, as is a
// schema holding tables but no revisions (see Apply).
func Status(ctx context.Context, db *sql.DB, schemaName string, dir migrate.Dir) (Report, error) {
	rep := Report{Schema: schemaName}
	if schemaName == "" {
		return rep, errors.New("dbmigrate: empty schema name")
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return rep, fmt.Errorf("dbmigrate: get connection: %w", err)
	}
	defer conn.Close()
	ex, _, err := newExecutor(conn, schemaName, dir)
	if err != nil {
		return rep, fmt.Errorf("dbmigrate: status of schema %q: %w", schemaName, err)
	}
	revs, err := (&revisions{q: conn, schema: schemaName}).ReadRevisions(ctx)
	if err != nil {
		return rep, fmt.Errorf("dbmigrate: read revisions of schema %q: %w", schemaName, err)
	}
	for _, r := range revs {
		if r.Applied == r.Total {
			rep.Applied = append(rep.Applied, r.Version)
			rep.Current = r.Version
		}
	}
	pending, err := ex.Pending(ctx)
	if err != nil && !errors.Is(err, migrate.ErrNoPendingFiles) {
		return rep, fmt.Errorf("dbmigrate: status of schema %q: %w", schemaName, describe(err))
	}
	for _, f := range pending {
		rep.Pending = append(rep.Pending, f.Version())
	}
	return rep, nil
}

// newExecutor opens the atlas driver on q (a connection or transaction) and
// returns an executor bound to schemaName, plus the recorder of its log.
func newExecutor(q schema.ExecQuerier, schemaName string, dir migrate.Dir) (*migrate.Executor, *recorder, error) {
	drv, err := postgres.Open(q)
	if err != nil {
		return nil, nil, fmt.Errorf("open atlas driver: %w", err)
	}
	rec := &recorder{}
	ex, err := migrate.NewExecutor(
		schemaDriver{Driver: drv, schema: schemaName},
		dir,
		&revisions{q: q, schema: schemaName},
		migrate.WithOperatorVersion(operatorVersion),
		migrate.WithLogger(rec),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("create executor: %w", err)
	}
	return ex, rec, nil
}

// describe makes the not-clean error self-explanatory.
func describe(err error) error {
	if nc := (*migrate.NotCleanError)(nil); errors.As(err, &nc) {
		return fmt.Errorf("schema already contains tables but has no migration revisions "+
			"(it was not created by these migrations); refusing to migrate it: %w", err)
	}
	return err
}

// schemaDriver binds an atlas postgres driver to one schema. postgres.Open
// leaves the driver unbound (only the Atlas URL opener sets the schema from
// search_path), so its CheckClean would inspect the whole database and call
// any other schema with tables (e.g. public) "not clean".
type schemaDriver struct {
	migrate.Driver
	schema string
}

// CheckClean implements migrate.CleanChecker like the schema-bound atlas
// driver: the schema is clean if it does not exist, is empty, or holds only
// the revisions table.
func (d schemaDriver) CheckClean(ctx context.Context, revT *migrate.TableIdent) error {
	s, err := d.InspectSchema(ctx, d.schema, &schema.InspectOptions{Mode: schema.InspectTables})
	switch {
	case schema.IsNotExistError(err):
		return nil
	case err != nil:
		return err
	case len(s.Tables) == 0:
		return nil
	case len(s.Tables) == 1 && revT != nil && s.Tables[0].Name == revT.Name:
		return nil
	}
	name := s.Tables[0].Name
	if revT != nil && name == revT.Name {
		name = s.Tables[1].Name
	}
	return &migrate.NotCleanError{
		State:  schema.NewRealm(s),
		Reason: fmt.Sprintf("found table %q in schema %q", name, d.schema),
	}
}

// ScanStmts keeps the PostgreSQL-aware statement splitter (dollar quoting,
// etc.) visible to the executor, which type-asserts for it.
func (d schemaDriver) ScanStmts(input string) ([]*migrate.Stmt, error) {
	if s, ok := d.Driver.(migrate.StmtScanner); ok {
		return s.ScanStmts(input)
	}
	return migrate.Stmts(input)
}

// recorder is a migrate.Logger remembering the executed file and statement count.
type recorder struct {
	file, version string
	stmts         int
}

// Log implements migrate.Logger.
func (r *recorder) Log(e migrate.LogEntry) {
	switch e := e.(type) {
	case migrate.LogFile:
		r.file, r.version = e.File.Name(), e.File.Version()
	case migrate.LogStmt:
		r.stmts++
	}
}
