package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	atlasmigrate "ariga.io/atlas/sql/migrate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// TestMigrationsMatchSchema fails when ent/schema changed without a new
// migration: replaying migrations/ and diffing against the schema must
// write nothing.
func TestMigrationsMatchSchema(t *testing.T) {
	tmp := t.TempDir()
	src, err := filepath.Glob("../../migrations/*")
	require.NoError(t, err)
	for _, f := range src {
		if filepath.Ext(f) == ".go" {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(tmp, filepath.Base(f)), b, 0o644))
	}
	dir, err := atlasmigrate.NewLocalDir(tmp)
	require.NoError(t, err)
	before, err := dir.Files()
	require.NoError(t, err)
	require.NotEmpty(t, before)

	require.NoError(t, run(context.Background(), "stale_check", tmp, dbtest.AdminURL(t)))

	after, err := dir.Files()
	require.NoError(t, err)
	if !assert.Len(t, after, len(before), "migrations/ is stale: run `make migrate-diff name=...` and commit the new file") {
		t.Logf("missing migration:\n%s", after[len(after)-1].Bytes())
	}
}

func TestRunNeedsNameAndDatabase(t *testing.T) {
	require.ErrorContains(t, run(context.Background(), "", "migrations", "postgres://x"), "-name")
	require.ErrorContains(t, run(context.Background(), "x", "migrations", ""), "AGENTSTORE_TEST_PG_URL")
}
