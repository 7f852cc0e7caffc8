package main

import (
	"database/sql"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
)

// TestRollupsCommands runs the built binary's `rollups verify` and
// `rollups rebuild` on a migrated PostgreSQL database: verify passes on
// rollups the API wrote, fails (non-zero) once raw rows change behind the
// service's back, and passes again after rebuild, with --tenant and a
// window too.
func TestRollupsCommands(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.Postgres(t)
	env := []string{"DATABASE_URL=" + dbURL, "SUPABASE_JWT_SECRET=" + e2eSecret}
	const tenantID = "5d1c9e1a-7b3f-4c2e-8a6d-2f0e4b9c1a77"
	s := start(t, env...)
	tok, err := command(t, env, "token", "--tenant", tenantID, "--ttl", "5m")
	require.NoError(t, err, tok)
	tok = strings.TrimSpace(tok)
	for range 3 {
		code, body := s.call(t, "POST", "/v1/runs", tok, `{"agentName":"cli","status":"running","toolCalls":[{"toolName":"t","status":"failed"}]}`)
		require.Equal(t, http.StatusCreated, code, body)
	}
	require.NoError(t, s.stop(t))

	out, err := command(t, env, "rollups", "verify")
	require.NoError(t, err, out)
	assert.Contains(t, out, " 0 difference(s)")

	db, err := sql.Open("pgx", dbURL)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`UPDATE agentstore.agent_runs SET status = 'cancelled'`)
	require.NoError(t, err)
	out, err = command(t, env, "rollups", "verify")
	require.Error(t, err, "verify exits non-zero on a difference:\n%s", out)
	assert.Contains(t, out, `status="cancelled"`)

	out, err = command(t, env, "rollups", "rebuild", "--tenant", tenantID, "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z")
	require.NoError(t, err, out)
	assert.Contains(t, out, "rollups rebuild: 1 tenant(s)")
	out, err = command(t, env, "rollups", "verify", "--tenant", tenantID)
	require.NoError(t, err, out)

	out, err = command(t, env, "rollups", "rebuild", "--tenant", "nope")
	require.Error(t, err)
	assert.Contains(t, out, "--tenant")
	out, err = command(t, env, "rollups", "verify", "--from", "monday")
	require.Error(t, err)
	assert.Contains(t, out, "RFC 3339")
}

// TestReadmeListsEveryCommand keeps the README's table of the binary's
// commands true to the usage text.
func TestReadmeListsEveryCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^  ([a-z]+(?: [a-z]+)?)\s`)
	var cmds []string
	for _, m := range re.FindAllStringSubmatch(usage, -1) {
		cmds = append(cmds, m[1])
	}
	require.Contains(t, cmds, "rollups rebuild")
	for _, c := range cmds {
		name := strings.Fields(c)
		if name[0] == "token" || name[0] == "legacy" {
			continue // documented in their own sections
		}
		assert.Contains(t, string(readme), "| `agentstore "+c, "README's command table lacks `agentstore %s`", c)
	}
}
