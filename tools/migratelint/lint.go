package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"ariga.io/atlas/schemahcl"
	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	_ "ariga.io/atlas/sql/postgres/postgrescheck" // registers the PostgreSQL analyzers
	"ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlcheck"
	"ariga.io/atlas/sql/sqlclient"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/agentstore/agentstore/internal/dbmigrate"
)

// options configure one lint run.
type options struct {
	Dir      string   // migration directory
	Base     string   // git base ref; "" selects the default
	Schema   string   // schema the migrations run in
	Files    []string // explicit files to lint; empty selects by git
	AdminURL string   // superuser URL used to create the scratch database
}

// finding is one diagnostic of an analyzer, or an error attached to a file
// position (opt-out errors, statements that fail to execute).
type finding struct {
	File     string // file path as given by -dir
	Line     int    // 1-based line, 0 if unknown
	Code     string // e.g. DS103
	Analyzer string // analyzer name, "" for errors
	Text     string
}

// String renders f as "FILE:LINE CODE message (analyzer)".
func (f finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	s := fmt.Sprintf("%s %s %s", loc, f.Code, f.Text)
	if f.Analyzer != "" {
		s += " (" + f.Analyzer + ")"
	}
	return s
}

// suppression is a finding silenced by an opt-out directive.
type suppression struct {
	finding
	Reason string
}

// result is the outcome of a lint run.
type result struct {
	Notes    []string      // informational lines (file selection)
	Linted   []string      // linted file paths
	Findings []finding     // findings left, and errors
	Ignored  []suppression // findings silenced by an opt-out
	Warnings []string      // e.g. unused opt-outs
}

// failed reports whether the run must fail (exit status 1).
func (r *result) failed() bool { return len(r.Findings) > 0 }

// write prints the report: findings, opt-outs used, warnings and a summary.
func (r *result) write(w io.Writer) {
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Linted) > 0 {
		fmt.Fprintf(w, "linting: %s\n", strings.Join(r.Linted, " "))
	}
	for _, f := range r.Findings {
		fmt.Fprintln(w, f)
	}
	for _, s := range r.Ignored {
		fmt.Fprintf(w, "ignored %s in %s:%d: %s\n", s.Code, s.File, s.Line, s.Reason)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	status := "ok"
	if r.failed() {
		status = "FAILED"
	}
	fmt.Fprintf(w, "migratelint: %s: %d file(s) linted, %d finding(s), %d ignored\n",
		status, len(r.Linted), len(r.Findings), len(r.Ignored))
}

// lint selects the files to lint in opts.Dir, replays the migrations in a
// scratch database and runs the analyzers on the selected files.
func lint(ctx context.Context, opts options) (*result, error) {
	if opts.Schema == "" {
		return nil, errors.New("empty schema name")
	}
	dir, err := migrate.NewLocalDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("open migration directory: %w", err)
	}
	files, err := dir.Files()
	if err != nil {
		return nil, fmt.Errorf("read migration directory: %w", err)
	}
	res := &result{}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name()
	}
	var selected []string
	if len(opts.Files) > 0 {
		if selected, err = explicitFiles(opts.Dir, names, opts.Files); err != nil {
			return nil, err
		}
	} else {
		var note string
		if selected, note, err = gitNewFiles(ctx, opts.Dir, names, opts.Base); err != nil {
			return nil, err
		}
		res.Notes = append(res.Notes, note)
	}
	if err := migrate.Validate(dir); err != nil {
		f := finding{File: filepath.Join(opts.Dir, migrate.HashFileName), Code: "SUM001",
			Text: fmt.Sprintf("migration directory does not match %s (%v); run `make migrate-hash`", migrate.HashFileName, err)}
		if ce := (*migrate.ChecksumError)(nil); errors.As(err, &ce) && ce.File != "" {
			f.Line = ce.Line
			f.Text = fmt.Sprintf("%s does not match the migration directory: %s was %s; run `make migrate-hash`",
				migrate.HashFileName, ce.File, ce.Reason)
		}
		res.Findings = append(res.Findings, f)
	}
	if len(selected) == 0 {
		return res, nil
	}
	isLinted := make(map[string]bool, len(selected))
	for _, n := range selected {
		isLinted[n] = true
		res.Linted = append(res.Linted, filepath.Join(opts.Dir, n))
	}
	// Files after the last linted one need not run.
	last := slices.IndexFunc(files, func(f migrate.File) bool { return f.Name() == selected[len(selected)-1] })
	files = files[:last+1]

	err = withScratchDB(ctx, opts.AdminURL, func(conn *sql.Conn) error {
		l, err := newLoader(ctx, conn, opts.Schema)
		if err != nil {
			return err
		}
		azs, err := analyzers()
		if err != nil {
			return err
		}
		for _, f := range files {
			path := filepath.Join(opts.Dir, f.Name())
			if !isLinted[f.Name()] {
				if ferr, err := l.replay(ctx, f); err != nil || ferr != nil {
					if ferr != nil {
						res.Findings = append(res.Findings, ferr.at(path))
						return nil
					}
					return err
				}
				continue
			}
			sf, ferr, err := l.load(ctx, f)
			switch {
			case err != nil:
				return err
			case ferr != nil:
				res.Findings = append(res.Findings, ferr.at(path))
				return nil // later files would run on a broken state
			}
			if err := analyzeFile(ctx, l.client, azs, sf, path, res); err != nil {
				return fmt.Errorf("analyze %s: %w", path, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	byPosition := func(a, b finding) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	}
	slices.SortStableFunc(res.Findings, byPosition)
	slices.SortStableFunc(res.Ignored, func(a, b suppression) int { return byPosition(a.finding, b.finding) })
	return res, nil
}

// explicitFiles maps the FILE arguments to names of files in dir, in
// version order.
func explicitFiles(dir string, names, args []string) ([]string, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(args))
	for _, a := range args {
		if d := filepath.Dir(a); d != "." {
			if absD, err := filepath.Abs(d); err != nil || absD != absDir {
				return nil, fmt.Errorf("file %s is not in the migration directory %s (see -dir)", a, dir)
			}
		}
		base := filepath.Base(a)
		if !slices.Contains(names, base) {
			return nil, fmt.Errorf("file %s: no migration file %s in %s", a, base, dir)
		}
		want[base] = true
	}
	var out []string
	for _, n := range names {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// withScratchDB creates an empty database through adminURL, calls fn with a
// dedicated connection to it, and drops the database afterwards (also when
// ctx is canceled).
func withScratchDB(ctx context.Context, adminURL string, fn func(*sql.Conn) error) (err error) {
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return fmt.Errorf("open %s: %w", envAdminURL, err)
	}
	defer admin.Close()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("migratelint_%d_%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("create scratch database: %w", err)
	}
	defer func() {
		// Drop even if ctx was canceled.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, derr := admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); derr != nil {
			err = errors.Join(err, fmt.Errorf("drop scratch database %s: %w", name, derr))
		}
	}()
	u, err := url.Parse(adminURL)
	if err != nil {
		return fmt.Errorf("parse %s: %w", envAdminURL, err)
	}
	u.Path = "/" + name
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to scratch database: %w", err)
	}
	defer func() {
		// The session was altered (search_path); never reuse it.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		_ = conn.Close()
	}()
	return fn(conn)
}

// loader executes migration files on the scratch database and turns the
// statements of linted files into sqlcheck changes, like Atlas's DevLoader.
type loader struct {
	conn   *sql.Conn
	schema string
	client *sqlclient.Client
	cur    *schema.Realm // state after the last executed statement
}

// newLoader creates the schema, binds the session to it and inspects the
// (empty) initial state.
func newLoader(ctx context.Context, conn *sql.Conn, schemaName string) (*loader, error) {
	q := quoteIdent(schemaName)
	if _, err := conn.ExecContext(ctx, "CREATE SCHEMA "+q); err != nil {
		return nil, fmt.Errorf("create schema: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SET search_path TO "+q); err != nil {
		return nil, fmt.Errorf("set search_path: %w", err)
	}
	drv, err := postgres.Open(conn)
	if err != nil {
		return nil, fmt.Errorf("open atlas driver: %w", err)
	}
	l := &loader{conn: conn, schema: schemaName, client: &sqlclient.Client{Name: postgres.DriverName, Driver: drv}}
	if l.cur, err = l.inspect(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// fileError is a statement of a migration file that failed to execute.
type fileError struct {
	Line int
	Err  error
}

// at renders e as a finding of the file at path.
func (e *fileError) at(path string) finding {
	return finding{File: path, Line: e.Line, Code: "EXEC001",
		Text: fmt.Sprintf("statement fails on the replayed schema (linting stops here): %v", e.Err)}
}

// stmts scans the statements of f with the PostgreSQL-aware scanner.
func (l *loader) stmts(f migrate.File) ([]*migrate.Stmt, *fileError) {
	stmts, err := migrate.FileStmtDecls(l.client.Driver, f)
	if err != nil {
		return nil, &fileError{Err: fmt.Errorf("scan statements: %w", err)}
	}
	return stmts, nil
}

// exec runs one statement of f.
func (l *loader) exec(ctx context.Context, f migrate.File, s *migrate.Stmt) *fileError {
	if _, err := l.conn.ExecContext(ctx, s.Text); err != nil {
		return &fileError{Line: lineOf(f.Bytes(), s.Pos), Err: err}
	}
	return nil
}

// replay executes the file f without analysis (a file before the linted
// ones). A failing statement is returned as a fileError; err reports
// database or inspection failures.
func (l *loader) replay(ctx context.Context, f migrate.File) (*fileError, error) {
	stmts, ferr := l.stmts(f)
	if ferr != nil {
		return ferr, nil
	}
	for _, s := range stmts {
		if ferr := l.exec(ctx, f, s); ferr != nil {
			return ferr, nil
		}
	}
	var err error
	l.cur, err = l.inspect(ctx)
	return nil, err
}

// load executes the file f statement by statement and returns it with the
// schema changes of each statement attached, as the analyzers expect.
func (l *loader) load(ctx context.Context, f migrate.File) (*sqlcheck.File, *fileError, error) {
	stmts, ferr := l.stmts(f)
	if ferr != nil {
		return nil, ferr, nil
	}
	start := l.cur
	sf := &sqlcheck.File{File: f, From: start}
	for _, s := range stmts {
		if ferr := l.exec(ctx, f, s); ferr != nil {
			return nil, ferr, nil
		}
		next, err := l.inspect(ctx)
		if err != nil {
			return nil, nil, err
		}
		changes, err := l.client.RealmDiff(l.cur, next)
		if err != nil {
			return nil, nil, fmt.Errorf("diff after statement at line %d: %w", lineOf(f.Bytes(), s.Pos), err)
		}
		l.cur = next
		sf.Changes = append(sf.Changes, &sqlcheck.Change{Stmt: s, Changes: fixRenames(s.Text, changes)})
	}
	sum, err := l.client.RealmDiff(start, l.cur)
	if err != nil {
		return nil, nil, err
	}
	sf.Sum, sf.To = sum, l.cur
	return sf, nil, nil
}

// inspect returns the current state of the schema as a realm.
func (l *loader) inspect(ctx context.Context) (*schema.Realm, error) {
	s, err := l.client.InspectSchema(ctx, l.schema, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect schema %q: %w", l.schema, err)
	}
	if s.Realm == nil {
		s.Realm = schema.NewRealm(s)
	}
	return s.Realm, nil
}

// analyzers returns the analyzers registered for PostgreSQL, configured not
// to return an error on findings (findings are collected from the reports).
func analyzers() ([]sqlcheck.NamedAnalyzer, error) {
	azs, err := sqlcheck.AnalyzerFor(postgres.DriverName, nil)
	if err != nil {
		return nil, err
	}
	cfg := &schemahcl.Resource{}
	for _, az := range azs {
		if n, ok := az.(sqlcheck.NamedAnalyzer); ok {
			cfg.Children = append(cfg.Children, &schemahcl.Resource{
				Type:  n.Name(),
				Attrs: []*schemahcl.Attr{schemahcl.BoolAttr("error", false)},
			})
		}
	}
	if azs, err = sqlcheck.AnalyzerFor(postgres.DriverName, cfg); err != nil {
		return nil, err
	}
	if len(azs) == 0 {
		return nil, errors.New("no sqlcheck analyzers registered for postgres")
	}
	named := make([]sqlcheck.NamedAnalyzer, 0, len(azs))
	for _, az := range azs {
		n, ok := az.(sqlcheck.NamedAnalyzer)
		if !ok {
			return nil, fmt.Errorf("analyzer %T has no name", az)
		}
		named = append(named, n)
	}
	return named, nil
}

// analyzeFile runs every analyzer on sf and records its diagnostics in res,
// applying the opt-out directives of the file.
func analyzeFile(ctx context.Context, dev *sqlclient.Client, azs []sqlcheck.NamedAnalyzer, sf *sqlcheck.File, path string, res *result) error {
	stmts := make([]*migrate.Stmt, len(sf.Changes))
	for i, c := range sf.Changes {
		stmts[i] = c.Stmt
	}
	names := make([]string, len(azs))
	for i, az := range azs {
		names[i] = az.Name()
	}
	names = append(append(names, squawkAnalyzer, txmodeAnalyzer), squawkRules...)
	dirs, errs := parseDirectives(sf.Bytes(), stmts, names)
	for _, e := range errs {
		res.Findings = append(res.Findings, finding{File: path, Line: e.Line, Code: "OPT001", Text: e.Text})
	}
	for _, az := range azs {
		var reports []sqlcheck.Report
		pass := &sqlcheck.Pass{
			File:     sf,
			Dev:      dev,
			Reporter: sqlcheck.ReportWriterFunc(func(r sqlcheck.Report) { reports = append(reports, r) }),
		}
		if err := az.Analyze(ctx, pass); err != nil {
			return fmt.Errorf("analyzer %s: %w", az.Name(), err)
		}
		for _, r := range reports {
			for _, d := range r.Diagnostics {
				f := finding{File: path, Line: lineOf(sf.Bytes(), d.Pos), Code: d.Code, Analyzer: az.Name(), Text: d.Text}
				if f.Code == "" {
					f.Code = "??"
				}
				if dir := dirs.match(d.Pos, d.Code, az.Name()); dir != nil {
					res.Ignored = append(res.Ignored, suppression{finding: f, Reason: dir.Reason})
					continue
				}
				res.Findings = append(res.Findings, f)
			}
		}
	}
	mode, txDiags := txmodeFindings(sf)
	sqDiags, err := squawkFile(ctx, sf, mode == dbmigrate.TxModeFile)
	if err != nil {
		return err
	}
	for _, a := range []struct {
		name  string
		diags []sqlcheck.Diagnostic
	}{{txmodeAnalyzer, txDiags}, {squawkAnalyzer, sqDiags}} {
		analyzer := a.name
		for _, d := range a.diags {
			f := finding{File: path, Line: lineOf(sf.Bytes(), d.Pos), Code: d.Code, Analyzer: analyzer, Text: d.Text}
			if dir := dirs.match(d.Pos, d.Code, analyzer); dir != nil {
				res.Ignored = append(res.Ignored, suppression{finding: f, Reason: dir.Reason})
				continue
			}
			res.Findings = append(res.Findings, f)
		}
	}
	for _, d := range dirs {
		if !d.used {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s:%d: unused opt-out %s %s: no such finding",
				path, d.Line, d.Form, strings.Join(d.Rules, ",")))
		}
	}
	return nil
}

// lineOf returns the 1-based line of the byte offset pos in b.
func lineOf(b []byte, pos int) int {
	pos = min(max(pos, 0), len(b))
	return strings.Count(string(b[:pos]), "\n") + 1
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
