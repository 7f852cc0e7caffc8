package store

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/tenant"
)

// backend opens a Store over a fresh database of one kind.
type backend struct {
	name string
	open func(t *testing.T) *Store
}

var backends = []backend{
	{"postgres", openPostgres},
	{"sqlite", openSQLite},
}

func openPostgres(t *testing.T) *Store {
	t.Helper()
	db, err := OpenPostgres(context.Background(), dbtest.Postgres(t), 20)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return New(db, dialect.Postgres, dbtest.Schema, nil)
}

func openSQLite(t *testing.T) *Store {
	t.Helper()
	db, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "agentstore.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return New(db, dialect.SQLite, "", nil)
}

// forEachBackend runs fn once per backend, each on a fresh database.
func forEachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

// asTenant returns a context acting as a fresh tenant's user.
func asTenant(t *testing.T) (context.Context, uuid.UUID) {
	t.Helper()
	id := uuid.New()
	return tenant.NewContext(context.Background(), tenant.Viewer{TenantID: id, UserID: uuid.NewString(), Role: "authenticated"}), id
}

func ptr[T any](v T) *T { return &v }

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// newRun is a run with n steps and n tool calls, the i-th call in the
// i-th step.
func newRun(n int) NewRun {
	in := NewRun{AgentName: "researcher", Input: raw(`{"q":"why"}`), Model: ptr("gpt-x")}
	for i := 0; i < n; i++ {
		id := uuid.New()
		in.Steps = append(in.Steps, NewStep{ID: &id, Type: "llm", Input: raw(`{"i":1}`)})
		in.ToolCalls = append(in.ToolCalls, NewToolCall{StepID: &id, ToolName: "search", Status: "succeeded", DurationMs: ptr(int64(12))})
	}
	return in
}
