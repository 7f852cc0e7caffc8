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
// recorded for it. A file whose header holds the Atlas CLI's directive
//
//	-- atlas:txmode none
//
// (followed by an empty line, as every Atlas file directive) runs without a
// transaction instead, statement by statement, as the CLI runs it: that is
// how an index is built CONCURRENTLY. Each applied statement is recorded in
// the file's revision (applied count and partial hashes); a failing
// statement leaves the file partly applied, with the error and the failed
// statement recorded, and the next Apply resumes at that statement (see
// FileTxMode and Apply). Files that manage transactions themselves
// (BEGIN/COMMIT) are not supported.
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
	// execution order. A partially applied file is listed here too.
	Pending []string
	// Partial is the file a failed or interrupted run left partly applied,
	// nil when there is none. Only a file run without a transaction
	// (`-- atlas:txmode none`) can be; Apply resumes it.
	Partial *Partial
}

// Partial describes a partly applied migration file, from its revision.
type Partial struct {
	// Version is the file's version.
	Version string
	// Applied and Total count the file's applied and all statements.
	Applied, Total int
	// Error is the error of the last attempt, "" if it was interrupted
	// without recording one.
	Error string
	// ErrorStmt is the statement that failed.
	ErrorStmt string
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
	out := fmt.Sprintf("schema:          %s\nstatus:          %s\ncurrent version: %s\napplied files:   %d\npending files:   %s\n",
		r.Schema, state, current, len(r.Applied), pending)
	if p := r.Partial; p != nil {
		out += fmt.Sprintf("partial file:    %s (%d of %d statements applied; migrate apply resumes at statement %d)\n",
			p.Version, p.Applied, p.Total, p.Applied+1)
		if p.Error != "" {
			out += fmt.Sprintf("last error:      %s\n", oneLine(p.Error))
		}
		if p.ErrorStmt != "" {
			out += fmt.Sprintf("error statement: %s\n", oneLine(p.ErrorStmt))
		}
	}
	return out
}

// oneLine collapses the white space of s, so that it fits on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

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
//
// Each file runs in its own transaction, or statement by statement when its
// header says `-- atlas:txmode none` (see TxModeNone), still under the
// advisory lock. A failure in such a file returns an error naming the
// statement it stopped at; the file stays partly applied (Status reports it
// in Report.Partial) and the next Apply resumes there.
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
	// The pending files are computed once, under the lock: no other
	// migrator can change them.
	ex, _, err := newExecutor(conn, schemaName, dir)
	if err != nil {
		return 0, err
	}
	pending, err := ex.Pending(ctx)
	switch {
	case errors.Is(err, migrate.ErrNoPendingFiles):
		pending = nil
	case err != nil:
		return 0, describe(err)
	}
	for _, f := range pending {
		mode, err := FileTxMode(f)
		if err != nil {
			return applied, err
		}
		if mode == TxModeNone {
			err = applyWithoutTx(ctx, conn, schemaName, dir, f, log)
		} else {
			err = applyInTx(ctx, conn, schemaName, dir, f, log)
		}
		if err != nil {
			return applied, err
		}
		applied++
	}
	log.Info("migrations up to date", "applied", applied, "duration_ms", time.Since(start).Milliseconds())
	return applied, nil
}

// applyInTx applies the pending file f in its own transaction.
func applyInTx(ctx context.Context, conn *sql.Conn, schemaName string, dir migrate.Dir, f migrate.File, log *slog.Logger) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	ex, rec, err := newExecutor(tx, schemaName, dir)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := ex.Execute(ctx, f); err != nil {
		return describe(err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration %s: %w", f.Name(), err)
	}
	log.Info("applied migration", "file", rec.file, "version", rec.version, "txmode", TxModeFile,
		"statements", rec.stmts, "duration_ms", time.Since(start).Milliseconds())
	return nil
}

// applyWithoutTx applies the pending file f (`-- atlas:txmode none`)
// statement by statement on conn, each statement in its own implicit
// transaction, still under the migration lock. The executor records every
// applied statement, so a failure leaves the file partly applied and
// resumable; a file that an earlier run left so resumes at its failed
// statement (prepareResume readies the session first). Once the file is
// applied, the session settings it made are reset, so that they do not leak
// into the next file.
func applyWithoutTx(ctx context.Context, conn *sql.Conn, schemaName string, dir migrate.Dir, f migrate.File, log *slog.Logger) error {
	ex, rec, err := newExecutor(conn, schemaName, dir)
	if err != nil {
		return err
	}
	revs := &revisions{q: conn, schema: schemaName}
	resumeAt := 0
	switch rev, err := revs.ReadRevision(ctx, f.Version()); {
	case errors.Is(err, migrate.ErrRevisionNotExist):
	case err != nil:
		return fmt.Errorf("read revision of %s: %w", f.Name(), err)
	case rev.Applied < rev.Total:
		resumeAt = rev.Applied
		log.Info("resuming partly applied migration", "file", f.Name(), "statement", rev.Applied+1, "total", rev.Total,
			"previous_error", rev.Error)
		drv, err := postgres.Open(conn)
		if err != nil {
			return fmt.Errorf("open atlas driver: %w", err)
		}
		if err := prepareResume(ctx, conn, drv, f, rev, log); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := ex.Execute(ctx, f); err != nil {
		err = describe(err)
		rev, rerr := revs.ReadRevision(ctx, f.Version())
		if rerr != nil || rev.Applied >= rev.Total {
			return fmt.Errorf("migration %s (atlas:txmode none): %w", f.Name(), err)
		}
		return fmt.Errorf("migration %s runs without a transaction (atlas:txmode none) and stopped at statement %d of %d; "+
			"the %d statement(s) before it are applied and recorded in %s: fix the cause and run migrate apply again, "+
			"it resumes at statement %d: %w", f.Name(), rev.Applied+1, rev.Total, rev.Applied, qualifiedRevisionTable(schemaName),
			rev.Applied+1, err)
	}
	if _, err := conn.ExecContext(ctx, "RESET ALL"); err != nil {
		return fmt.Errorf("reset the session settings of %s: %w", f.Name(), err)
	}
	if _, err := conn.ExecContext(ctx, "SET search_path TO "+quoteIdent(schemaName)); err != nil {
		return fmt.Errorf("set search_path: %w", err)
	}
	log.Info("applied migration", "file", rec.file, "version", rec.version, "txmode", TxModeNone,
		"statements", rec.stmts, "resumed_at", resumeAt+1, "duration_ms", time.Since(start).Milliseconds())
	return nil
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
			continue
		}
		rep.Partial = &Partial{Version: r.Version, Applied: r.Applied, Total: r.Total, Error: r.Error, ErrorStmt: r.ErrorStmt}
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
