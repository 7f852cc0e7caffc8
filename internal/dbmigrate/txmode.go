package dbmigrate

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/schema"
)

// The transaction modes of a migration file, chosen by the Atlas CLI's file
// directive `-- atlas:txmode <mode>` in the file header (the leading comment
// lines, followed by an empty line).
const (
	txModeDirective = "txmode"

	// TxModeFile runs the file in one transaction: a failing file is rolled
	// back entirely and nothing is recorded for it. It is the default.
	TxModeFile = "file"

	// TxModeNone runs the file statement by statement, each in its own
	// implicit transaction, as `atlas migrate apply` does for it: the only
	// way to run CREATE INDEX CONCURRENTLY, which PostgreSQL refuses inside
	// a transaction block. Every applied statement is recorded (the
	// revision's applied count and partial hashes), so a failed file stays
	// partly applied and the next apply resumes at the failed statement.
	TxModeNone = "none"
)

// FileTxMode returns the transaction mode of a migration file, TxModeFile
// or TxModeNone, read from its `-- atlas:txmode` directive the way the
// Atlas CLI reads it. Like the CLI, it refuses "all" (a mode for a whole
// run, not a file), an unknown mode and several directives.
func FileTxMode(f migrate.File) (string, error) {
	lf, ok := f.(*migrate.LocalFile)
	if !ok {
		return TxModeFile, nil
	}
	switch ds := lf.Directive(txModeDirective); {
	case len(ds) == 0:
		return TxModeFile, nil
	case len(ds) > 1:
		return "", fmt.Errorf("migration %s has %d atlas:txmode directives (%q); it may have one", f.Name(), len(ds), ds)
	case ds[0] == TxModeNone, ds[0] == TxModeFile:
		return ds[0], nil
	case ds[0] == "all":
		return "", fmt.Errorf("migration %s: atlas:txmode all is a mode for a whole run, not a file directive; use %q or %q",
			f.Name(), TxModeFile, TxModeNone)
	default:
		return "", fmt.Errorf("migration %s: unknown atlas:txmode %q (want %q or %q)", f.Name(), ds[0], TxModeFile, TxModeNone)
	}
}

// prepareResume readies the session for resuming a file that an earlier run
// without a transaction left partly applied (rev.Applied of rev.Total
// statements), before the executor runs the remaining statements:
//
//   - The file's session settings among the applied statements (SET
//     lock_timeout = ..., and any other plain SET) run again, so the
//     remaining statements run under the settings the file chose: they
//     lived in the session of the run that failed.
//   - When the statement to resume at is CREATE [UNIQUE] INDEX
//     CONCURRENTLY and the index it names exists but is INVALID, that index
//     is dropped (DROP INDEX CONCURRENTLY) so the statement can build it
//     again. A failed concurrent build leaves such an index behind: it is
//     never used by queries but slows every write, and a second CREATE
//     INDEX would fail on its name (or, with IF NOT EXISTS, silently keep
//     it). Only this file's own run can have left it: the revision says the
//     file was started, and the migration lock is held, so no other
//     migrator is building it (a backend still building it for a vanished
//     client would still hold the lock). A VALID index of that name is left
//     alone and the statement fails on it: see the migration guide.
func prepareResume(ctx context.Context, q schema.ExecQuerier, drv migrate.Driver, f migrate.File, rev *migrate.Revision, log *slog.Logger) error {
	stmts, err := migrate.FileStmtDecls(drv, f)
	if err != nil {
		return fmt.Errorf("scan statements of %s: %w", f.Name(), err)
	}
	if rev.Applied > len(stmts) {
		return nil // the executor reports the changed file
	}
	for _, s := range stmts[:rev.Applied] {
		if isSessionSet(s.Text) {
			if _, err := q.ExecContext(ctx, s.Text); err != nil {
				return fmt.Errorf("resume %s: set the file's session setting again (%s): %w", f.Name(), s.Text, err)
			}
		}
	}
	if rev.Applied == len(stmts) {
		return nil
	}
	index, table, ok := concurrentIndex(stmts[rev.Applied].Text)
	if !ok {
		return nil
	}
	rows, err := q.QueryContext(ctx, `SELECT c.oid::regclass::text, i.indisvalid
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass($1) AND c.relname = $2`, table, index)
	if err != nil {
		return fmt.Errorf("resume %s: look up index %q: %w", f.Name(), index, err)
	}
	var (
		name  string
		valid bool
		found bool
	)
	for rows.Next() {
		if err := rows.Scan(&name, &valid); err != nil {
			rows.Close()
			return err
		}
		found = true
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if !found || valid {
		return nil
	}
	log.Warn("dropping the invalid index a failed concurrent build left, to build it again",
		"file", f.Name(), "index", name, "statement", rev.Applied+1)
	if _, err := q.ExecContext(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+name); err != nil {
		return fmt.Errorf("resume %s: drop the invalid index %s left by the failed build: %w", f.Name(), name, err)
	}
	return nil
}

// isSessionSet reports whether a statement is a plain session setting,
// `SET [SESSION] name {TO | =} value`: not SET LOCAL (which outlives no
// statement outside a transaction), ROLE, SESSION AUTHORIZATION,
// TRANSACTION or CONSTRAINTS.
func isSessionSet(stmt string) bool {
	w := strings.Fields(strings.ToUpper(stripComments(stmt)))
	if len(w) < 2 || w[0] != "SET" {
		return false
	}
	w = w[1:]
	if w[0] == "SESSION" {
		if len(w) < 2 || w[1] == "AUTHORIZATION" || w[1] == "CHARACTERISTICS" {
			return false
		}
		w = w[1:]
	}
	switch w[0] {
	case "LOCAL", "ROLE", "TRANSACTION", "CONSTRAINTS":
		return false
	}
	return true
}

// stripComments removes the "--" comments of a statement.
func stripComments(stmt string) string {
	var b strings.Builder
	for _, line := range strings.Split(stmt, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

const identPattern = `(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`

// reConcurrentIndex matches CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT
// EXISTS] name ON [ONLY] [schema.]table.
var reConcurrentIndex = regexp.MustCompile(`(?is)^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?(` +
	identPattern + `)\s+ON\s+(?:ONLY\s+)?(` + identPattern + `(?:\s*\.\s*` + identPattern + `)?)`)

// concurrentIndex returns the index name (as stored in the catalog) and the
// table (as written, for to_regclass) of a CREATE INDEX CONCURRENTLY
// statement, or ok=false for any other statement.
func concurrentIndex(stmt string) (index, table string, ok bool) {
	m := reConcurrentIndex.FindStringSubmatch(stripComments(stmt))
	if m == nil {
		return "", "", false
	}
	index = m[1]
	if strings.HasPrefix(index, `"`) {
		index = strings.ReplaceAll(index[1:len(index)-1], `""`, `"`)
	} else {
		index = strings.ToLower(index)
	}
	return index, m[2], true
}
