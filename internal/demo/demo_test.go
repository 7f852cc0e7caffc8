package demo

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

func openStores(t *testing.T) map[string]*store.Store {
	t.Helper()
	pg, err := store.OpenPostgres(context.Background(), dbtest.Postgres(t), 8)
	require.NoError(t, err)
	t.Cleanup(func() { pg.Close() })
	lite, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "agentstore.db"))
	require.NoError(t, err)
	t.Cleanup(func() { lite.Close() })
	return map[string]*store.Store{
		"postgres": store.New(pg, dialect.Postgres, dbtest.Schema, nil),
		"sqlite":   store.New(lite, dialect.SQLite, "", nil),
	}
}

// TestSeed checks that the demo holds what a newcomer should see: several
// agents and models, nested child runs, failed runs with an error, failed
// tool calls, a running run, a month of usage and a health baseline with
// an incident, all in the seeded tenant and none in another.
func TestSeed(t *testing.T) {
	t.Parallel()
	for name, st := range openStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tenantID := uuid.New()
			now := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
			res, err := Seed(ctx, st, tenantID, Options{Now: now, LargeRunSteps: 1500})
			require.NoError(t, err)
			assert.Equal(t, tenantID, res.Tenant)
			assert.NotEqual(t, uuid.Nil, res.LargeRun)
			assert.NotEqual(t, uuid.Nil, res.Running)

			vctx := tenant.NewContext(ctx, tenant.Viewer{TenantID: tenantID, Role: "authenticated"})
			c := st.Client()
			runs, err := c.AgentRun.Query().All(vctx)
			require.NoError(t, err)
			assert.Len(t, runs, res.Runs)
			agents, modelsSeen := map[string]bool{}, map[string]bool{}
			byStatus := map[agentrun.Status]int{}
			depth := map[uuid.UUID]int{}
			parents := map[uuid.UUID]*uuid.UUID{}
			for _, r := range runs {
				agents[r.AgentName] = true
				modelsSeen[*r.Model] = true
				byStatus[r.Status]++
				parents[r.ID] = r.ParentRunID
				if r.Status == agentrun.StatusFailed {
					assert.NotEmpty(t, r.Error, "a failed run says why")
				}
			}
			maxDepth := 0
			for id := range parents {
				d := 0
				for p := parents[id]; p != nil; p = parents[*p] {
					d++
				}
				depth[id] = d
				maxDepth = max(maxDepth, d)
			}
			assert.GreaterOrEqual(t, len(agents), 5, "several agents")
			assert.GreaterOrEqual(t, len(modelsSeen), 4, "several models")
			assert.GreaterOrEqual(t, maxDepth, 2, "child runs have children of their own")
			assert.Positive(t, byStatus[agentrun.StatusFailed])
			assert.Positive(t, byStatus[agentrun.StatusRunning])
			assert.Positive(t, byStatus[agentrun.StatusSucceeded])
			assert.Positive(t, byStatus[agentrun.StatusCancelled])

			failedCalls, err := c.ToolCall.Query().Where(toolcall.StatusEQ(toolcall.StatusFailed)).Count(vctx)
			require.NoError(t, err)
			assert.Positive(t, failedCalls)
			assert.GreaterOrEqual(t, res.ToolCalls, 50)
			large, err := c.AgentStep.Query().Where(agentstep.RunID(res.LargeRun)).Count(vctx)
			require.NoError(t, err)
			assert.Equal(t, 1500, large)

			days, err := st.Usage.Summary(vctx, store.Window{From: now.AddDate(0, 0, -31), To: now.Add(time.Hour)}, "day")
			require.NoError(t, err)
			assert.Len(t, days, 30, "usage on each of the last 30 days")
			byModel, err := st.Usage.Summary(vctx, store.Window{From: now.AddDate(0, 0, -31), To: now.Add(time.Hour)}, "model")
			require.NoError(t, err)
			assert.Len(t, byModel, len(models))
			for _, m := range byModel {
				assert.Positive(t, m.CostUSD, m.Key)
			}

			latest, err := st.Health.Latest(vctx)
			require.NoError(t, err)
			assert.Len(t, latest, len(components))
			hist, err := st.Health.History(vctx, "vector-store", store.Window{From: now.Add(-73 * time.Hour), To: now}, 1000)
			require.NoError(t, err)
			var down int
			for _, h := range hist {
				if h.Status == "down" {
					down++
				}
			}
			assert.Positive(t, down, "the baseline has an outage to look at")

			other := tenant.NewContext(ctx, tenant.Viewer{TenantID: uuid.New(), Role: "authenticated"})
			n, err := c.AgentRun.Query().Count(other)
			require.NoError(t, err)
			assert.Zero(t, n, "another tenant sees none of it")
		})
	}
}
