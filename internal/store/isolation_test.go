package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/privacy"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// TestTenantIsolation writes one of everything as tenant A and checks that
// tenant B can neither read, count, aggregate nor change any of it, through
// the repositories (both layers) and through the bare ent client (the
// privacy policy alone).
func TestTenantIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		a, _ := asTenant(t)
		b, _ := asTenant(t)
		run, err := s.Runs.Create(a, NewRun{AgentName: "a", Status: "running", Steps: []NewStep{{Type: "llm"}},
			ToolCalls: []NewToolCall{{ToolName: "x", Status: "failed"}}})
		require.NoError(t, err)
		usage, err := s.Usage.Record(a, NewUsage{RunID: &run.ID, Model: "m", InputTokens: 5})
		require.NoError(t, err)

		t.Run("repositories", func(t *testing.T) {
			_, err := s.Runs.Get(b, run.ID, Include{Steps: true, ToolCalls: true})
			assert.ErrorIs(t, err, derrors.NotFound)
			runs, _, err := s.Runs.List(b, RunFilter{})
			require.NoError(t, err)
			assert.Empty(t, runs)
			_, err = s.Runs.Update(b, run.ID, RunPatch{Status: ptr("cancelled")})
			assert.ErrorIs(t, err, derrors.NotFound)
			_, err = s.Runs.AppendSteps(b, run.ID, []NewStep{{Type: "llm"}})
			assert.ErrorIs(t, err, derrors.NotFound)
			_, err = s.Runs.ListSteps(b, run.ID)
			assert.ErrorIs(t, err, derrors.NotFound)
			_, err = s.Runs.AppendToolCalls(b, run.ID, []NewToolCall{{ToolName: "x", Status: "succeeded"}})
			assert.ErrorIs(t, err, derrors.NotFound)
			_, err = s.Runs.ListToolCalls(b, run.ID)
			assert.ErrorIs(t, err, derrors.NotFound)
			_, err = s.Usage.Record(b, NewUsage{RunID: &run.ID, Model: "m"})
			assert.ErrorIs(t, err, derrors.InvalidArgument, "B cannot bill to A's run")
			_, err = s.Runs.Create(b, NewRun{AgentName: "child", ParentRunID: &run.ID})
			assert.ErrorIs(t, err, derrors.InvalidArgument, "B cannot hang a run under A's")
			stats, err := s.Runs.Stats(b, Window{}, "status")
			require.NoError(t, err)
			assert.Empty(t, stats)
			for _, by := range []string{"day", "model", "agentName"} {
				sum, err := s.Usage.Summary(b, Window{}, by)
				require.NoError(t, err)
				assert.Empty(t, sum, by)
			}
			logs, _, err := s.Audit.List(b, AuditFilter{})
			require.NoError(t, err)
			assert.Empty(t, logs, "B wrote nothing that succeeded and sees none of A's audit rows")
		})

		t.Run("privacy policy alone", func(t *testing.T) {
			c := s.Client()
			counts := map[string]func(context.Context) (int, error){
				"runs":       func(ctx context.Context) (int, error) { return c.AgentRun.Query().Count(ctx) },
				"steps":      func(ctx context.Context) (int, error) { return c.AgentStep.Query().Count(ctx) },
				"tool calls": func(ctx context.Context) (int, error) { return c.ToolCall.Query().Count(ctx) },
				"audit":      func(ctx context.Context) (int, error) { return c.AuditLog.Query().Count(ctx) },
				"usage":      func(ctx context.Context) (int, error) { return c.UsageMetric.Query().Count(ctx) },
			}
			for name, count := range counts {
				n, err := count(a)
				require.NoError(t, err)
				assert.Positive(t, n, "A sees its %s", name)
				n, err = count(b)
				require.NoError(t, err)
				assert.Zero(t, n, "B sees none of A's %s", name)
				_, err = count(context.Background())
				assert.ErrorIs(t, err, privacy.Deny, "no viewer, no %s", name)
			}
			_, err := c.AgentRun.UpdateOneID(run.ID).SetStatus("cancelled").Save(b)
			assert.True(t, ent.IsNotFound(err), "B cannot update A's run: %v", err)
			n, err := c.AgentStep.Delete().Exec(b)
			require.NoError(t, err)
			assert.Zero(t, n, "B deletes none of A's steps")
			err = c.UsageMetric.DeleteOneID(usage.ID).Exec(b)
			assert.True(t, ent.IsNotFound(err), "B cannot delete A's usage: %v", err)
			_, err = c.AgentRun.Create().SetAgentName("x").SetTenantID(uuid.New()).Save(b)
			assert.ErrorIs(t, err, privacy.Deny, "a create may not name another tenant")
			created, err := c.AgentRun.Create().SetAgentName("x").Save(b)
			require.NoError(t, err)
			bv, _ := tenant.FromContext(b)
			assert.Equal(t, bv.TenantID, created.TenantID, "creates take the viewer's tenant")
		})

		t.Run("no viewer", func(t *testing.T) {
			ctx := context.Background()
			_, err := s.Runs.Create(ctx, newRun(0))
			assert.ErrorIs(t, err, derrors.Forbidden)
			_, _, err = s.Runs.List(ctx, RunFilter{})
			assert.ErrorIs(t, err, derrors.Forbidden)
			_, err = s.Usage.Summary(ctx, Window{}, "day")
			assert.ErrorIs(t, err, derrors.Forbidden)
			_, err = s.Health.Latest(ctx)
			assert.ErrorIs(t, err, derrors.Forbidden)
			_, err = s.Health.Record(ctx, NewHealth{Component: "db", Status: "up"})
			assert.ErrorIs(t, err, derrors.Forbidden)
			noTenant := tenant.NewContext(ctx, tenant.Viewer{Role: "anon"})
			_, err = s.Client().AgentRun.Query().Count(noTenant)
			assert.ErrorIs(t, err, privacy.Deny, "a viewer without a tenant sees nothing")
		})
	})
}

func TestHealthIsGlobalAndGuarded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		user, _ := asTenant(t)
		sys := tenant.SystemContext(context.Background())
		svc := tenant.NewContext(context.Background(), tenant.Viewer{TenantID: uuid.New(), Role: tenant.RoleServiceRole})
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, c := range []struct {
			ctx       context.Context
			component string
			status    string
		}{
			{sys, "db", "up"}, {sys, "db", "degraded"}, {svc, "redis", "down"}, {svc, "redis", "up"},
		} {
			at := t0.Add(time.Duration(i) * time.Minute)
			_, err := s.Health.Record(c.ctx, NewHealth{Component: c.component, Status: c.status, LatencyMs: ptr(int64(i)), CheckedAt: &at})
			require.NoError(t, err)
		}
		_, err := s.Health.Record(user, NewHealth{Component: "db", Status: "up"})
		require.ErrorIs(t, err, derrors.Forbidden, "only the system and service_role record health")
		_, err = s.Health.Record(svc, NewHealth{Component: "db", Status: "sideways"})
		require.ErrorIs(t, err, derrors.InvalidArgument)

		latest, err := s.Health.Latest(user)
		require.NoError(t, err)
		require.Len(t, latest, 2)
		assert.Equal(t, "db", latest[0].Component)
		assert.Equal(t, "degraded", string(latest[0].Status))
		assert.Equal(t, "redis", latest[1].Component)
		assert.Equal(t, "up", string(latest[1].Status))

		hist, err := s.Health.History(user, "db", Window{From: t0, To: t0.Add(time.Hour)}, 0)
		require.NoError(t, err)
		require.Len(t, hist, 2)
		assert.Equal(t, "degraded", string(hist[0].Status), "newest first")

		_, err = s.Health.Prune(user, t0.Add(time.Hour))
		require.Error(t, err, "a tenant may not prune")
		n, err := s.Health.Prune(sys, t0.Add(time.Hour))
		require.NoError(t, err)
		assert.Equal(t, 2, n, "prune keeps each component's newest check")
		latest, err = s.Health.Latest(user)
		require.NoError(t, err)
		assert.Len(t, latest, 2)
	})
}
