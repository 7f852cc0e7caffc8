package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// repoRoot is the repository root, from this package's directory.
const repoRoot = "../.."

// sqlBlocks returns the ```sql blocks of a markdown document, also those
// indented in list items, without their indentation.
func sqlBlocks(doc string) []string {
	var (
		out    []string
		body   []string
		indent = -1
	)
	for _, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case indent < 0 && trimmed == "```sql":
			indent, body = len(line)-len(strings.TrimLeft(line, " ")), nil
		case indent >= 0 && trimmed == "```":
			out = append(out, strings.Join(body, "\n")+"\n")
			indent = -1
		case indent >= 0:
			n := 0
			for n < indent && n < len(line) && line[n] == ' ' {
				n++
			}
			body = append(body, line[n:])
		}
	}
	return out
}

// TestMigrationGuideExamples lints the migration guide's example files
// that run without a transaction (those starting with `-- atlas:txmode
// none`) on top of the repository's migrations: they must execute on the
// real schema and lint clean, as the guide tells readers to copy them.
func TestMigrationGuideExamples(t *testing.T) {
	dbtest.AdminURL(t)
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "development", "migration-guide.md"))
	require.NoError(t, err)
	var examples []string
	for _, blk := range sqlBlocks(string(b)) {
		if strings.HasPrefix(blk, "-- atlas:txmode none\n") {
			examples = append(examples, blk)
		}
	}
	require.NotEmpty(t, examples, "the guide shows a migration file that runs without a transaction")
	names, err := filepath.Glob(filepath.Join(repoRoot, "migrations", "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for i, ex := range examples {
		dir := t.TempDir()
		for _, n := range names {
			src, err := os.ReadFile(n)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(n)), src, 0o644))
		}
		const name = "29990101000000_guide_example.sql"
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(ex), 0o644))
		rehash(t, dir)
		out := runLinter(t, "-dir", dir, name)
		require.Empty(t, out.stderr)
		assert.Equal(t, exitOK, out.code, "example %d:\n%s\n%s", i+1, ex, out.stdout)
		assert.Empty(t, out.codes(), "example %d:\n%s\n%s", i+1, ex, out.stdout)
	}
}
