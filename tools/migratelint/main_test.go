package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// Migration file names the corpus is installed under: the base first, the
// linted case second.
const (
	baseName = "20250101000000_base.sql"
	caseName = "20250101000001_case.sql"
)

// reFinding matches a finding line of the report.
var reFinding = regexp.MustCompile(`(?m)^(\S+(?:\.sql|atlas\.sum))(?::(\d+))? ([A-Z]{2,}\d{3}|[a-z]+(?:-[a-z]+)+) (.*)$`)

// output is the outcome of one run.
type output struct {
	code           int
	stdout, stderr string
}

// codes returns the codes of the finding lines of the report, in order.
func (o output) codes() []string {
	var codes []string
	for _, m := range reFinding.FindAllStringSubmatch(o.stdout, -1) {
		codes = append(codes, m[3])
	}
	return codes
}

// runLinter runs the command with args and captures its output.
func runLinter(t *testing.T, args ...string) output {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return output{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// migrationDir creates a migration directory holding the given testdata
// files under the given names, plus a matching atlas.sum.
func migrationDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		b, err := os.ReadFile(filepath.Join("testdata", src))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	rehash(t, dir)
	return dir
}

// rehash rewrites the atlas.sum of dir, like `atlas migrate hash`.
func rehash(t *testing.T, dir string) {
	t.Helper()
	ld, err := migrate.NewLocalDir(dir)
	require.NoError(t, err)
	sum, err := ld.Checksum()
	require.NoError(t, err)
	require.NoError(t, migrate.WriteSumFile(ld, sum))
}

// TestLintCases lints each corpus file on top of testdata/base.sql.
func TestLintCases(t *testing.T) {
	dbtest.AdminURL(t) // fail, never skip, without PostgreSQL
	tests := []struct {
		file  string
		codes []string // expected finding codes, in report order
		line  int      // expected line of the first finding, if non-zero
	}{
		// Unsafe changes, one per Atlas rule. Each file sets lock_timeout,
		// so that squawk's require-lock-timeout stays out of the way.
		{file: "drop_table.sql", codes: []string{"DS102"}, line: 3},
		{file: "drop_column.sql", codes: []string{"DS103"}, line: 3},
		{file: "add_not_null_column.sql", codes: []string{"MF103"}, line: 3},
		{file: "add_unique_index.sql", codes: []string{"MF101", "require-concurrent-index-creation"}, line: 3},
		{file: "set_not_null.sql", codes: []string{"MF104"}, line: 3},
		{file: "rename_column.sql", codes: []string{"BC102"}, line: 3},
		{file: "rename_table.sql", codes: []string{"BC101"}, line: 3},
		{file: "drop_foreign_key.sql", codes: []string{"CD101"}, line: 3},
		// Unsafe changes, one per squawk rule.
		{file: "squawk_create_index.sql", codes: []string{"require-concurrent-index-creation"}, line: 3},
		{file: "squawk_drop_index.sql", codes: []string{"require-concurrent-index-deletion"}, line: 3},
		{file: "squawk_foreign_key.sql", codes: []string{"constraint-missing-not-valid", "adding-foreign-key-constraint"}, line: 3},
		{file: "squawk_check.sql", codes: []string{"constraint-missing-not-valid"}, line: 3},
		{file: "squawk_unique_constraint.sql", codes: []string{"MF101", "constraint-missing-not-valid", "disallowed-unique-constraint"}, line: 3},
		{file: "squawk_primary_key.sql", codes: []string{"constraint-missing-not-valid", "adding-serial-primary-key-field"}, line: 3},
		{file: "squawk_column_type.sql", codes: []string{"changing-column-type"}, line: 3},
		{file: "squawk_volatile_default.sql", codes: []string{"adding-field-with-default"}, line: 3},
		{file: "squawk_lock_timeout.sql", codes: []string{"require-lock-timeout"}, line: 6},
		{file: "squawk_new_table_fk.sql", codes: []string{"require-lock-timeout"}, line: 3},
		{file: "squawk_truncate_cascade.sql", codes: []string{"ban-truncate-cascade"}, line: 3},
		{file: "squawk_concurrently.sql", codes: []string{"ban-concurrent-index-creation-in-transaction"}, line: 3},
		{file: "squawk_transaction.sql", codes: []string{"transaction-nesting", "transaction-nesting"}, line: 3},
		// Files that run without a transaction (-- atlas:txmode none), and
		// statements that need one to run without.
		{file: "txmode_no_lock_timeout.sql", codes: []string{"require-lock-timeout"}, line: 4},
		{file: "txmode_set_local.sql", codes: []string{"TX002"}, line: 4},
		{file: "txmode_if_not_exists.sql", codes: []string{"TX003"}, line: 5},
		{file: "txmode_not_header.sql", codes: []string{"TX001", "ban-concurrent-index-creation-in-transaction"}, line: 4},
		{file: "txmode_all.sql", codes: []string{"TX001"}, line: 4},
		{file: "txmode_drop_index_in_transaction.sql", codes: []string{"TX004"}, line: 3},
		{file: "txmode_unique_concurrently.sql", codes: []string{"MF101"}, line: 5},
		// Safe changes.
		{file: "txmode_concurrently.sql"},
		{file: "add_nullable_column.sql"},
		{file: "add_not_null_column_default.sql"},
		{file: "add_table.sql"},
		{file: "rename_constraint_and_index.sql"},
		{file: "squawk_not_valid.sql"},
		{file: "squawk_new_table.sql"},
		// An opt-out on another statement does not apply.
		{file: "optout_other_statement.sql", codes: []string{"DS103"}, line: 6},
		// Invalid opt-outs are errors and suppress nothing.
		{file: "optout_no_reason.sql", codes: []string{"OPT001", "DS102"}, line: 2},
		{file: "optout_atlas_bare.sql", codes: []string{"OPT001", "DS102"}, line: 2},
		{file: "optout_empty_reason.sql", codes: []string{"OPT001", "DS102"}, line: 2},
		{file: "optout_unknown_code.sql", codes: []string{"OPT001", "DS102"}, line: 2},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".sql"), func(t *testing.T) {
			t.Parallel()
			dir := migrationDir(t, map[string]string{baseName: "base.sql", caseName: tt.file})
			out := runLinter(t, "-dir", dir, caseName)
			require.Empty(t, out.stderr)
			assert.Equal(t, tt.codes, out.codes(), out.stdout)
			assert.Contains(t, out.stdout, "1 file(s) linted")
			if len(tt.codes) == 0 {
				assert.Equal(t, exitOK, out.code, out.stdout)
				assert.Contains(t, out.stdout, "migratelint: ok:")
				return
			}
			assert.Equal(t, exitFindings, out.code, out.stdout)
			assert.Contains(t, out.stdout, "migratelint: FAILED:")
			if tt.line != 0 {
				m := reFinding.FindStringSubmatch(out.stdout)
				require.NotNil(t, m, out.stdout)
				assert.Equal(t, filepath.Join(dir, caseName), m[1])
				line, err := strconv.Atoi(m[2])
				require.NoError(t, err)
				assert.Equal(t, tt.line, line, out.stdout)
			}
			if tt.codes[0] == "OPT001" {
				assert.Contains(t, out.stdout, "invalid opt-out")
				assert.NotContains(t, out.stdout, "ignored ")
			}
		})
	}
}

// TestOptOut checks that valid opt-outs suppress the findings they name
// and are reported with their reason.
func TestOptOut(t *testing.T) {
	dbtest.AdminURL(t)
	tests := []struct {
		file    string
		ignored []string // expected "ignored ..." lines, without the file path
	}{
		{file: "optout_lint_ignore.sql", ignored: []string{
			`ignored DS102 in %s:3: table "c" was never written to in production`,
		}},
		{file: "optout_atlas_nolint.sql", ignored: []string{
			`ignored DS103 in %s:4: "b" is unread since the previous release`,
		}},
		{file: "optout_file_header.sql", ignored: []string{
			`ignored CD101 in %s:5: "c" is replaced, see the design doc`,
			`ignored DS102 in %s:7: "c" is replaced, see the design doc`,
		}},
		{file: "optout_txmode.sql", ignored: []string{
			`ignored TX003 in %s:5: an operator checks indisvalid after every apply`,
		}},
		{file: "optout_squawk.sql", ignored: []string{
			`ignored require-concurrent-index-creation in %s:3: "t" holds a few rows`,
			`ignored constraint-missing-not-valid in %s:5: "c" is empty in every environment`,
		}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".sql"), func(t *testing.T) {
			t.Parallel()
			dir := migrationDir(t, map[string]string{baseName: "base.sql", caseName: tt.file})
			out := runLinter(t, "-dir", dir, caseName)
			require.Empty(t, out.stderr)
			assert.Equal(t, exitOK, out.code, out.stdout)
			assert.Empty(t, out.codes(), out.stdout)
			path := filepath.Join(dir, caseName)
			var want []string
			for _, l := range tt.ignored {
				want = append(want, strings.ReplaceAll(l, "%s", path))
			}
			var got []string
			for _, l := range strings.Split(out.stdout, "\n") {
				if strings.HasPrefix(l, "ignored ") {
					got = append(got, l)
				}
			}
			assert.Equal(t, want, got, out.stdout)
			assert.NotContains(t, out.stdout, "unused opt-out")
		})
	}
}

// TestUnusedOptOutWarns checks that an opt-out matching no finding is
// reported as a warning without failing the run.
func TestUnusedOptOutWarns(t *testing.T) {
	dbtest.AdminURL(t)
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, caseName), []byte(
		"-- lint:ignore DS102 reason: nothing is dropped\nCREATE TABLE \"x\" (\"id\" integer NULL);\n"), 0o644))
	rehash(t, dir)
	out := runLinter(t, "-dir", dir, caseName)
	assert.Equal(t, exitOK, out.code, out.stdout)
	assert.Contains(t, out.stdout, "warning: "+filepath.Join(dir, caseName)+":1: unused opt-out lint:ignore DS102")
}

// TestGitSelection checks that, without FILE arguments, only the files
// absent from the base ref are linted, and all files when it does not
// resolve.
func TestGitSelection(t *testing.T) {
	dbtest.AdminURL(t)
	t.Parallel()
	repo := t.TempDir()
	dir := filepath.Join(repo, "migrations")
	require.NoError(t, os.Mkdir(dir, 0o755))
	gitRun := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=test", "-c", "user.email=test@example.com",
			"-c", "commit.gpgsign=false"}, args...)...)
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, string(b))
	}
	gitRun("init", "-q", "-b", "main")
	b, err := os.ReadFile(filepath.Join("testdata", "base.sql"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, baseName), b, 0o644))
	rehash(t, dir)
	gitRun("add", ".")
	gitRun("commit", "-q", "-m", "base")
	gitRun("checkout", "-q", "-b", "feature")

	// Nothing new yet.
	out := runLinter(t, "-dir", dir)
	assert.Equal(t, exitOK, out.code, out.stdout+out.stderr)
	assert.Contains(t, out.stdout, "linting 0 migration file(s) of "+dir+" absent from main")

	// A new, uncommitted, unsafe migration.
	b, err = os.ReadFile(filepath.Join("testdata", "drop_table.sql"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, caseName), b, 0o644))
	rehash(t, dir)
	out = runLinter(t, "-dir", dir)
	assert.Equal(t, exitFindings, out.code, out.stdout+out.stderr)
	assert.Contains(t, out.stdout, "linting 1 migration file(s) of "+dir+" absent from main")
	assert.Equal(t, []string{"DS102"}, out.codes())
	assert.Contains(t, out.stdout, "1 file(s) linted")

	// Committed on the feature branch: still new compared to main.
	gitRun("add", ".")
	gitRun("commit", "-q", "-m", "drop")
	out = runLinter(t, "-dir", dir, "-base", "main")
	assert.Equal(t, []string{"DS102"}, out.codes(), out.stdout+out.stderr)

	// An unknown base: everything is linted.
	out = runLinter(t, "-dir", dir, "-base", "no-such-ref")
	assert.Equal(t, exitFindings, out.code, out.stdout+out.stderr)
	assert.Contains(t, out.stdout, "does not resolve")
	assert.Contains(t, out.stdout, "2 file(s) linted")
	assert.Equal(t, []string{"DS102"}, out.codes())

	// Compared to the feature branch itself, nothing is new.
	out = runLinter(t, "-dir", dir, "-base", "feature")
	assert.Equal(t, exitOK, out.code, out.stdout+out.stderr)
	assert.Contains(t, out.stdout, "0 file(s) linted")
}

// TestChecksumMismatch checks that a directory out of sync with its
// atlas.sum fails the lint.
func TestChecksumMismatch(t *testing.T) {
	dbtest.AdminURL(t)
	t.Parallel()
	dir := migrationDir(t, map[string]string{baseName: "base.sql", caseName: "add_nullable_column.sql"})
	f := filepath.Join(dir, caseName)
	b, err := os.ReadFile(f)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f, append(b, "-- edited\n"...), 0o644))
	out := runLinter(t, "-dir", dir, caseName)
	assert.Equal(t, exitFindings, out.code, out.stdout)
	assert.Equal(t, []string{"SUM001"}, out.codes(), out.stdout)
}

// TestFailingStatement checks that a statement failing on the replayed
// schema is reported at its line.
func TestFailingStatement(t *testing.T) {
	dbtest.AdminURL(t)
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, caseName), []byte("-- nothing to drop\n\nDROP TABLE \"missing\";\n"), 0o644))
	rehash(t, dir)
	out := runLinter(t, "-dir", dir, caseName)
	assert.Equal(t, exitFindings, out.code, out.stdout)
	assert.Contains(t, out.stdout, filepath.Join(dir, caseName)+":3 EXEC001 ")
}

// TestRepositoryMigrations checks that the repository's migrations lint
// clean, all of them.
func TestRepositoryMigrations(t *testing.T) {
	dbtest.AdminURL(t)
	t.Parallel()
	dir := filepath.Join("..", "..", "migrations")
	names, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	out := runLinter(t, append([]string{"-dir", dir}, names...)...)
	require.Empty(t, out.stderr)
	assert.Equal(t, exitOK, out.code, out.stdout)
	assert.Empty(t, out.codes(), out.stdout)
	assert.Contains(t, out.stdout, "migratelint: ok:")
}

// TestUsageErrors checks the errors that stop the run before linting.
func TestUsageErrors(t *testing.T) {
	dbtest.AdminURL(t)
	dir := migrationDir(t, map[string]string{baseName: "base.sql"})

	out := runLinter(t, "-dir", dir, "nope.sql")
	assert.Equal(t, exitError, out.code)
	assert.Contains(t, out.stderr, "no migration file nope.sql")

	out = runLinter(t, "-dir", dir, filepath.Join("elsewhere", baseName))
	assert.Equal(t, exitError, out.code)
	assert.Contains(t, out.stderr, "is not in the migration directory")

	t.Setenv(envAdminURL, "")
	out = runLinter(t, "-dir", dir, baseName)
	assert.Equal(t, exitError, out.code)
	assert.Contains(t, out.stderr, envAdminURL+" is not set")
}

// TestParseDirectives checks directive parsing and scoping without a database.
func TestParseDirectives(t *testing.T) {
	analyzers := []string{"destructive", "data_depend", "incompatible", "condrop", "squawk", "require-lock-timeout"}
	tests := []struct {
		name   string
		src    string
		rules  [][]string // rules of the valid directives
		reason string     // reason of the first valid directive
		file   bool       // the first valid directive is file-scoped
		stmt   int        // index of the statement of the first valid directive
		errs   []string   // substrings of the errors
	}{
		{name: "lint ignore", src: "-- lint:ignore DS102 reason: ok\nDROP TABLE t;\n",
			rules: [][]string{{"DS102"}}, reason: "ok"},
		{name: "atlas nolint several codes", src: "-- atlas:nolint ds102 DS103 reason: fine, really\nDROP TABLE t;\n",
			rules: [][]string{{"DS102", "DS103"}}, reason: "fine, really"},
		{name: "comma separated and analyzer", src: "SELECT 1;\n-- lint:ignore DS102,incompatible  Reason:  why\nDROP TABLE t;\n",
			rules: [][]string{{"DS102", "incompatible"}}, reason: "why", stmt: 1},
		{name: "block comment", src: "/* atlas:nolint DS102 reason: ok */\nDROP TABLE t;\n",
			rules: [][]string{{"DS102"}}, reason: "ok"},
		{name: "file header", src: "-- lint:ignore DS102 reason: whole file\n\nSELECT 1;\nDROP TABLE t;\n",
			rules: [][]string{{"DS102"}}, reason: "whole file", file: true},
		{name: "inside a statement", src: "ALTER TABLE t\n-- lint:ignore DS103 reason: inside\nDROP COLUMN b;\nSELECT 1;\n",
			rules: [][]string{{"DS103"}}, reason: "inside"},
		{name: "squawk rule", src: "-- lint:ignore require-lock-timeout, DS103 reason: empty table\nALTER TABLE t DROP COLUMN b;\n",
			rules: [][]string{{"require-lock-timeout", "DS103"}}, reason: "empty table"},
		{name: "no reason", src: "-- lint:ignore DS102\nDROP TABLE t;\n", errs: []string{"gives no reason"}},
		{name: "empty reason", src: "-- lint:ignore DS102 reason:   \nDROP TABLE t;\n", errs: []string{"gives no reason"}},
		{name: "bare atlas nolint", src: "-- atlas:nolint\nDROP TABLE t;\n", errs: []string{"names no code", "gives no reason"}},
		{name: "unknown word", src: "-- lint:ignore DS102 because\nDROP TABLE t;\n", errs: []string{`"because" is neither a code`}},
		{name: "no statement after", src: "DROP TABLE t;\n-- lint:ignore DS102 reason: late\n", errs: []string{"followed by no statement"}},
		{name: "not a directive", src: "-- lint:ignored DS102\n-- atlas:nolintx\nDROP TABLE t;\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stmts, err := migrate.Stmts(tt.src)
			require.NoError(t, err)
			ds, errs := parseDirectives([]byte(tt.src), stmts, analyzers)
			require.Len(t, errs, min(len(tt.errs), 1))
			for _, e := range tt.errs {
				assert.Contains(t, errs[0].Text, e)
			}
			var rules [][]string
			for _, d := range ds {
				rules = append(rules, d.Rules)
			}
			assert.Equal(t, tt.rules, rules)
			if len(ds) == 0 {
				return
			}
			assert.Equal(t, tt.reason, ds[0].Reason)
			assert.Equal(t, tt.file, ds[0].fileScope)
			if !tt.file {
				assert.Equal(t, stmts[tt.stmt].Pos, ds[0].stmtPos)
			}
		})
	}
}

// TestHash checks that -hash rewrites atlas.sum without a database.
func TestHash(t *testing.T) {
	t.Setenv(envAdminURL, "")
	dir := migrationDir(t, map[string]string{baseName: "base.sql"})
	b, err := os.ReadFile(filepath.Join("testdata", "drop_table.sql"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, caseName), b, 0o644))
	ld, err := migrate.NewLocalDir(dir)
	require.NoError(t, err)
	require.Error(t, migrate.Validate(ld), "atlas.sum is stale")
	out := runLinter(t, "-dir", dir, "-hash")
	require.Equal(t, exitOK, out.code, out.stderr)
	assert.Contains(t, out.stdout, "wrote "+filepath.Join(dir, "atlas.sum"))
	require.NoError(t, migrate.Validate(ld))
}
