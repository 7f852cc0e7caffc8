package main

import (
	"database/sql"
	"net/http"
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
