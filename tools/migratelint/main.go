// Command migratelint lints Atlas versioned migration files for unsafe
// schema changes, using the analyzers of ariga.io/atlas/sql/sqlcheck and
// squawk (npm squawk-cli, pinned). It is the engine behind `make
// migrate-lint`.
//
// Usage:
//
//	go run ./tools/migratelint [-dir migrations] [-base REF] [-schema NAME] [FILE...]
//	go run ./tools/migratelint [-dir migrations] -hash
//
// -hash only rewrites DIR/atlas.sum from the files, as `atlas migrate hash`
// does (needed after editing or hand-writing a migration), and needs no
// database.
//
// # Which files are linted
//
// With FILE arguments, exactly those files are linted (each must be a *.sql
// file of -dir; a path or a bare name is accepted). Otherwise the linted
// files are the *.sql files present in the working tree of -dir that are
// absent from `git ls-tree BASE -- DIR`, i.e. the migrations this branch adds
// (committed or not) compared to BASE. -base defaults to "origin/main" if
// that resolves, else "main". If the base ref does not resolve (or -dir is
// not in a git repository), every file is linted. On main itself, with
// everything committed, nothing is new and nothing is linted.
//
// # How
//
// A scratch database is created through the superuser URL in
// AGENTSTORE_TEST_PG_URL (`scripts/services.sh -- CMD` provides one) and
// dropped at the end. The schema -schema (default "agentstore", as DB_SCHEMA)
// is created in it and every file is executed in version order with
// search_path set to that schema, up to the last linted file. The files
// before the first linted one just build the existing state; each linted
// file is executed statement by statement, the schema being inspected after
// each statement, and the resulting changes are given to the PostgreSQL
// analyzers registered by ariga.io/atlas/sql/postgres/postgrescheck:
//
//	destructive   DS101 drop schema, DS102 drop table, DS103 drop column
//	data_depend   MF101 unique index on existing columns, MF102 index made
//	              unique, MF103 NOT NULL column without default added to an
//	              existing table, MF104 nullable column made NOT NULL
//	incompatible  BC101 rename table, BC102 rename column
//	condrop       CD101 drop foreign-key constraint
//
// Then squawk lints each linted file for what the schema diff cannot show:
// locks taken on tables that are already in use (see squawk.go for the
// rules and why only existing tables count):
//
//	require-concurrent-index-creation   CREATE INDEX without CONCURRENTLY
//	require-concurrent-index-deletion   DROP INDEX without CONCURRENTLY
//	constraint-missing-not-valid        FK/CHECK without NOT VALID (or validated in the same file)
//	adding-foreign-key-constraint       FK without NOT VALID
//	disallowed-unique-constraint        UNIQUE constraint not USING INDEX
//	adding-serial-primary-key-field     PRIMARY KEY not USING INDEX
//	changing-column-type                column type change (table rewrite)
//	adding-field-with-default           volatile default (table rewrite)
//	require-lock-timeout                no `SET LOCAL lock_timeout = '...'` (`SET lock_timeout` in a file
//	                                    without a transaction) before the first lock on an existing table
//	ban-truncate-cascade                TRUNCATE ... CASCADE
//	ban-concurrent-index-creation-in-transaction, transaction-nesting
//	                                    CREATE INDEX CONCURRENTLY or BEGIN/COMMIT in a file that runs in
//	                                    one transaction
//
// A file runs in one transaction, unless its header (leading comment lines
// followed by an empty line) holds the Atlas CLI's directive
//
//	-- atlas:txmode none
//
// with which internal/dbmigrate, like the CLI, runs it statement by
// statement: that is how an index is built CONCURRENTLY on an existing
// table. squawk lints such a file without --assume-in-transaction, so
// CONCURRENTLY is accepted there while lock_timeout is still required, and
// the txmode analyzer (txmode.go) checks how each file will run:
//
//	TX001  atlas:txmode directive invalid, or not read by Atlas (not in the header)
//	TX002  SET LOCAL in a file without a transaction (it protects nothing)
//	TX003  CREATE INDEX CONCURRENTLY IF NOT EXISTS (would accept a failed build's INVALID index)
//	TX004  DROP INDEX / REINDEX / DETACH PARTITION ... CONCURRENTLY or VACUUM in a transactional file
//
// The Atlas CLI recognizes renames with a SQL parser that is not part of the
// library; migratelint recognizes the plain PostgreSQL forms of ALTER TABLE
// ... RENAME [COLUMN|CONSTRAINT] ... TO and ALTER INDEX ... RENAME TO, so a
// rename reports BC10x instead of a drop plus an add.
//
// The directory's atlas.sum must exist and match the files (as
// internal/dbmigrate requires at runtime); a mismatch is reported as an error.
//
// # Opt-outs
//
// A finding is suppressed by a reviewed comment naming its code (or the
// analyzer, e.g. "destructive", "squawk" or "txmode") and giving a reason:
//
//	-- lint:ignore DS103 reason: column unused since v1.4, see #123
//	-- atlas:nolint DS103 reason: column unused since v1.4, see #123
//	-- lint:ignore require-concurrent-index-creation reason: table holds 40 rows
//
// Both forms are equivalent; the second is Atlas's native directive, so the
// Atlas CLI honors it too. Several codes may be listed, separated by spaces
// or commas. A directive applies to the statement that contains it or, more
// usually, to the next statement; a directive in the file header (leading
// comment lines followed by an empty line) applies to the whole file. A
// directive without codes, with an unknown code or without a non-empty
// "reason:" is an error (code OPT001), as is one followed by no statement.
// Every opt-out used is reported; unused ones are reported as warnings.
// Editing a migration file changes its checksum: run `make migrate-hash`
// (or `atlas migrate hash`).
//
// # Output
//
// A "note:" line tells how the files were selected and a "linting:" line
// lists them. Then comes one line per finding, "FILE:LINE CODE message
// (analyzer)" (errors: OPT001 opt-out, SUM001 atlas.sum, EXEC001 statement
// failing on the replayed schema, which stops the run), then one line
// per opt-out used, "ignored CODE in FILE:LINE: reason", then a summary.
// The exit status is 0 when there is no finding left, 1 when there are
// findings (or opt-out errors, or a file fails to execute), and 2 on usage
// or environment errors (e.g. AGENTSTORE_TEST_PG_URL unset, or squawk that
// cannot be installed: it needs npm).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"ariga.io/atlas/sql/migrate"
)

// envAdminURL names the variable holding the superuser URL of the
// PostgreSQL cluster the scratch database is created in.
const envAdminURL = "AGENTSTORE_TEST_PG_URL"

// Exit statuses.
const (
	exitOK       = 0
	exitFindings = 1
	exitError    = 2
)

// main runs the linter with the process arguments and exits with its status.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, lints the selected migration files and writes the report
// to stdout and errors to stderr. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("migratelint", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var opts options
	fset.StringVar(&opts.Dir, "dir", "migrations", "migration directory (Atlas format: *.sql and atlas.sum)")
	fset.StringVar(&opts.Base, "base", "", `git ref the migrations are compared to (default "origin/main" if it exists, else "main")`)
	fset.StringVar(&opts.Schema, "schema", defaultSchema(), "schema the migrations are applied to in the scratch database (default $DB_SCHEMA or agentstore)")
	hash := fset.Bool("hash", false, "only rewrite DIR/atlas.sum from the migration files (like `atlas migrate hash`) and exit")
	fset.Usage = func() {
		fmt.Fprintf(stderr, "usage: migratelint [-dir DIR] [-base REF] [-schema NAME] [FILE...]\n       migratelint [-dir DIR] -hash\n\n"+
			"Lints the migration files new compared to REF (or the given FILEs) with Atlas's analyzers,\n"+
			"replaying the migrations in a scratch database of $%s.\n\n", envAdminURL)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	opts.Files = fset.Args()
	if *hash {
		if err := writeSum(opts.Dir); err != nil {
			fmt.Fprintf(stderr, "migratelint: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stdout, "migratelint: wrote %s\n", filepath.Join(opts.Dir, migrate.HashFileName))
		return exitOK
	}
	opts.AdminURL = os.Getenv(envAdminURL)
	if opts.AdminURL == "" {
		fmt.Fprintf(stderr, "migratelint: %s is not set: it must hold the superuser URL of a PostgreSQL cluster "+
			"to create a scratch database in; run `scripts/services.sh -- go run ./tools/migratelint` (or `make migrate-lint`)\n", envAdminURL)
		return exitError
	}
	res, err := lint(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "migratelint: %v\n", err)
		return exitError
	}
	res.write(stdout)
	if res.failed() {
		return exitFindings
	}
	return exitOK
}

// defaultSchema returns $DB_SCHEMA, or "agentstore" when it is unset.
func defaultSchema() string {
	if s := os.Getenv("DB_SCHEMA"); s != "" {
		return s
	}
	return "agentstore"
}

// writeSum rewrites the atlas.sum of the migration directory dir from its
// files, as `atlas migrate hash` does (`make migrate-hash`).
func writeSum(dir string) error {
	ld, err := migrate.NewLocalDir(dir)
	if err != nil {
		return fmt.Errorf("open migration directory: %w", err)
	}
	sum, err := ld.Checksum()
	if err != nil {
		return fmt.Errorf("hash migration directory: %w", err)
	}
	return migrate.WriteSumFile(ld, sum)
}
