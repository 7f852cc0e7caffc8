package health

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

func TestProberRecordsAndPrunes(t *testing.T) {
	db, err := store.OpenPostgres(context.Background(), dbtest.Postgres(t), 4)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	st := store.New(db, dialect.Postgres, dbtest.Schema, nil)
	sys := tenant.SystemContext(context.Background())
	old := time.Now().Add(-48 * time.Hour)
	_, err = st.Health.Record(sys, store.NewHealth{Component: "db", Status: "up", CheckedAt: &old})
	require.NoError(t, err)

	p := &Prober{
		Store: st, Interval: time.Hour, Retention: 24 * time.Hour, Log: slog.New(slog.DiscardHandler),
		Checks: []Check{
			{Component: "db", Ping: st.Ping},
			{Component: "redis", Ping: func(context.Context) error { return errors.New("connection refused") }},
		},
	}
	p.ProbeOnce(context.Background())

	user := tenant.NewContext(context.Background(), tenant.Viewer{TenantID: uuid.New(), Role: "authenticated"})
	latest, err := st.Health.Latest(user)
	require.NoError(t, err)
	require.Len(t, latest, 2)
	assert.Equal(t, "db", latest[0].Component)
	assert.Equal(t, "up", string(latest[0].Status))
	assert.Equal(t, "redis", latest[1].Component)
	assert.Equal(t, "down", string(latest[1].Status))
	assert.Contains(t, string(latest[1].Details), "connection refused")
	hist, err := st.Health.History(user, "db", store.Window{}, 0)
	require.NoError(t, err)
	assert.Len(t, hist, 1, "the 48h-old check was pruned")
}
