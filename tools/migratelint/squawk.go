package main

// Squawk (npm squawk-cli, a PostgreSQL migration linter) covers what Atlas's
// analyzers miss: how a statement locks a table that is already in use.
//
// # Which rules
//
// Only the rules of squawkRules are reported; the others are either what
// Atlas already reports (ban-drop-column DS103, ban-drop-table DS102,
// renaming-column BC102, renaming-table BC101, adding-required-field MF103,
// adding-not-nullable-field MF104), style (prefer-*, ban-char-field), or do
// not fit (require-statement-timeout: a statement_timeout would abort
// legitimate backfills; lock_timeout is what protects live traffic).
//
// # Only existing tables
//
// A statement on a table that the same file created earlier is harmless:
// nobody else can see the table before the file's transaction commits (and
// in a file without a transaction, no released code uses it yet). squawk
// runs with --assume-in-transaction, because internal/dbmigrate (and the
// Atlas CLI's default) runs each file in one transaction; squawk then
// itself skips new tables for CREATE INDEX and constraints, and reports
// CREATE INDEX CONCURRENTLY and BEGIN/COMMIT, which cannot work in that
// transaction. A file whose header says `-- atlas:txmode none` runs
// without a transaction, and squawk lints it without that flag. On top of that, migratelint drops every finding on a
// statement that touches only tables created earlier in the file (from the
// schema changes it replayed, plus the target of ALTER TABLE, CREATE INDEX,
// CREATE POLICY and CREATE TRIGGER statements), except for the two
// transaction rules. require-lock-timeout is reported by squawk once per
// file, at the first statement that needs it, so dropping it afterwards
// could hide a later one: for that rule squawk lints a copy of the file in
// which those statements are blanked out.
//
// squawk is installed with npm, pinned to squawkVersion, into
// .cache/squawk/VERSION at the repository root (gitignored), on first use.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlcheck"
)

// squawkVersion is the pinned version of the npm package squawk-cli.
const squawkVersion = "2.66.0"

// squawkAnalyzer is the analyzer name of squawk's findings; an opt-out may
// name it to silence every squawk rule on a statement.
const squawkAnalyzer = "squawk"

// squawkRules are the squawk rules migratelint reports.
var squawkRules = []string{
	"require-concurrent-index-creation",            // CREATE INDEX without CONCURRENTLY blocks writes
	"require-concurrent-index-deletion",            // DROP INDEX without CONCURRENTLY blocks everything
	"constraint-missing-not-valid",                 // FK/CHECK without NOT VALID scans under lock
	"adding-foreign-key-constraint",                // FK locks both tables (SHARE ROW EXCLUSIVE)
	"disallowed-unique-constraint",                 // UNIQUE constraint without USING INDEX builds under ACCESS EXCLUSIVE
	"adding-serial-primary-key-field",              // PRIMARY KEY without USING INDEX builds under ACCESS EXCLUSIVE
	"changing-column-type",                         // rewrites the table under ACCESS EXCLUSIVE
	"adding-field-with-default",                    // a volatile default rewrites the table
	"require-lock-timeout",                         // a blocked ALTER queues every later query behind it
	"ban-truncate-cascade",                         // truncates every referencing table too
	"ban-concurrent-index-creation-in-transaction", // fails in a file run in a transaction (no atlas:txmode none)
	"transaction-nesting",                          // BEGIN/COMMIT inside the file's transaction
}

// squawkTxRules are reported whatever table they concern.
var squawkTxRules = []string{"ban-concurrent-index-creation-in-transaction", "transaction-nesting"}

// squawkLockTimeout is reported from the masked copy of a file.
const squawkLockTimeout = "require-lock-timeout"

var (
	squawkOnce sync.Once
	squawkBin  string
	squawkErr  error
)

// squawkPath returns the pinned squawk binary, installing it on first use.
// $AGENTSTORE_SQUAWK names another binary.
func squawkPath(ctx context.Context) (string, error) {
	squawkOnce.Do(func() {
		if p := os.Getenv("AGENTSTORE_SQUAWK"); p != "" {
			squawkBin = p
			return
		}
		squawkBin, squawkErr = installSquawk(ctx)
	})
	return squawkBin, squawkErr
}

// installSquawk installs squawk-cli@squawkVersion with npm into the cache
// directory unless it is there already, and returns its binary.
func installSquawk(ctx context.Context) (string, error) {
	dir := filepath.Join(cacheRoot(), "squawk", squawkVersion)
	bin := filepath.Join(dir, "node_modules", ".bin", "squawk")
	ok := func() bool {
		out, err := exec.CommandContext(ctx, bin, "--version").Output()
		return err == nil && strings.TrimSpace(string(out)) == "squawk "+squawkVersion
	}
	if ok() {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("squawk: %w", err)
	}
	// Several linters (parallel tests, make targets) may install at once.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("squawk: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("squawk: lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if ok() {
		return bin, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", errors.New("squawk: npm is needed to install squawk-cli (apt-get install npm)")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-save", "--no-audit", "--no-fund",
		"--loglevel=error", "squawk-cli@"+squawkVersion)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("squawk: npm install squawk-cli@%s: %w\n%s", squawkVersion, err, out.String())
	}
	if !ok() {
		return "", fmt.Errorf("squawk: %s is not squawk %s after npm install", bin, squawkVersion)
	}
	return bin, nil
}

// cacheRoot returns the .cache directory at the root of the module the
// working directory is in, or the user's cache directory outside one.
func cacheRoot() string {
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return filepath.Join(d, ".cache")
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "agentstore")
	}
	return filepath.Join(os.TempDir(), "agentstore-cache")
}

// squawkFinding is one item of squawk's JSON report.
type squawkFinding struct {
	File     string `json:"file"`
	Line     int    `json:"line"`   // 0-based
	Column   int    `json:"column"` // 0-based
	Message  string `json:"message"`
	Help     string `json:"help"`
	RuleName string `json:"rule_name"`
}

// squawkFile lints the linted file sf (at path) with squawk and returns
// its findings as diagnostics: Pos is the position of the statement they
// concern, which opt-outs match. inTx tells whether migrate apply runs the
// file in one transaction (squawk's --assume-in-transaction) or statement
// by statement (`-- atlas:txmode none`).
func squawkFile(ctx context.Context, sf *sqlcheck.File, inTx bool) ([]sqlcheck.Diagnostic, error) {
	bin, err := squawkPath(ctx)
	if err != nil {
		return nil, err
	}
	src := sf.Bytes()
	stmts := make([]*migrate.Stmt, len(sf.Changes))
	for i, c := range sf.Changes {
		stmts[i] = c.Stmt
	}
	newOnly := newTableStatements(sf)
	masked := slices.Clone(src)
	for i, s := range stmts {
		if newOnly[i] {
			for j := s.Pos; j < s.Pos+len(s.Text) && j < len(masked); j++ {
				if masked[j] != '\n' {
					masked[j] = ' '
				}
			}
		}
	}
	tmp, err := os.MkdirTemp("", "migratelint-squawk-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	full, mask, cfg := filepath.Join(tmp, "full.sql"), filepath.Join(tmp, "masked.sql"), filepath.Join(tmp, "squawk.toml")
	for name, b := range map[string][]byte{full: src, mask: masked, cfg: nil} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			return nil, err
		}
	}
	var stdout, stderr bytes.Buffer
	// An empty configuration: no .squawk.toml of the working tree applies.
	args := []string{"--config", cfg, "--pg-version", "15.0", "--reporter", "json", full, mask}
	if inTx {
		args = append([]string{"--assume-in-transaction"}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var found []squawkFinding
	if jerr := json.Unmarshal(stdout.Bytes(), &found); jerr != nil {
		if err == nil {
			err = jerr
		}
		return nil, fmt.Errorf("squawk: %w: %s%s", err, stderr.String(), stdout.String())
	}
	lineStarts := []int{0}
	for i, c := range src {
		if c == '\n' {
			lineStarts = append(lineStarts, i+1)
		}
	}
	var diags []sqlcheck.Diagnostic
	for _, f := range found {
		rule := f.RuleName
		if !slices.Contains(squawkRules, rule) || (f.File == mask) != (rule == squawkLockTimeout) {
			continue
		}
		off := len(src)
		if f.Line >= 0 && f.Line < len(lineStarts) {
			off = min(lineStarts[f.Line]+max(f.Column, 0), len(src))
		}
		i := statementAt(stmts, off)
		if i < 0 || (newOnly[i] && !slices.Contains(squawkTxRules, rule)) {
			continue
		}
		text := f.Message
		if f.Help != "" {
			text += " " + f.Help
		}
		diags = append(diags, sqlcheck.Diagnostic{Pos: stmts[i].Pos, Text: text, Code: rule})
	}
	return diags, nil
}

// statementAt returns the index of the statement containing the byte
// offset off, else of the next one, else of the last one (-1 when none).
func statementAt(stmts []*migrate.Stmt, off int) int {
	for i, s := range stmts {
		if off < s.Pos+len(s.Text) {
			return i
		}
	}
	return len(stmts) - 1
}

var (
	// reTarget matches the table a statement without schema change works on.
	reTarget = regexp.MustCompile(`(?is)^\s*(?:ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?|` +
		`CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:(?:IF\s+NOT\s+EXISTS\s+)?` + identRE + `\s+)?ON\s+(?:ONLY\s+)?|` +
		`CREATE\s+POLICY\s+` + identRE + `\s+ON\s+|` +
		`CREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\s+` + identRE + `\s+.*?\bON\s+)(` + qnameRE + `)`)
)

// newTableStatements reports, per statement of sf, whether it touches only
// tables that the same file created (by that statement or an earlier one).
func newTableStatements(sf *sqlcheck.File) []bool {
	created := map[string]bool{}
	out := make([]bool, len(sf.Changes))
	for i, c := range sf.Changes {
		for _, ch := range c.Changes {
			if add, isAdd := ch.(*schema.AddTable); isAdd {
				created[add.T.Name] = true
			}
		}
		tables, ok := touched(c.Stmt.Text, c.Changes)
		out[i] = ok && len(tables) > 0
		for _, t := range tables {
			if !created[t] {
				out[i] = false
			}
		}
	}
	return out
}

// touched returns the tables a statement with the given text and schema
// changes works on (a created table included), and those its new foreign
// keys reference. ok is false for a statement that drops or renames
// tables, or changes schemas.
func touched(text string, changes schema.Changes) (tables []string, ok bool) {
	add := func(name string) {
		if !slices.Contains(tables, name) {
			tables = append(tables, name)
		}
	}
	for _, c := range changes {
		switch c := c.(type) {
		case *schema.AddTable:
			add(c.T.Name)
			for _, fk := range c.T.ForeignKeys {
				if fk.RefTable != nil {
					add(fk.RefTable.Name)
				}
			}
		case *schema.ModifyTable:
			add(c.T.Name)
			for _, mc := range c.Changes {
				if fk, isFK := mc.(*schema.AddForeignKey); isFK && fk.F.RefTable != nil {
					add(fk.F.RefTable.Name)
				}
			}
		default:
			return nil, false
		}
	}
	if m := reTarget.FindStringSubmatch(text); m != nil {
		add(lastIdent(m[1]))
	}
	return tables, true
}
