package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/tenant"
)

// recorder is an ent driver that remembers the queries it ran.
type recorder struct {
	dialect.Driver
	mu      sync.Mutex
	queries []recorded
}

type recorded struct {
	sql  string
	args []any
}

func (r *recorder) Query(ctx context.Context, query string, args, v any) error {
	r.mu.Lock()
	a, _ := args.([]any)
	r.queries = append(r.queries, recorded{query, a})
	r.mu.Unlock()
	return r.Driver.Query(ctx, query, args, v)
}

func (r *recorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queries
	r.queries = nil
	return q
}

// TestQueriesUseCompositeIndexes fills 100k runs and 100k usage rows over
// 50 tenants, then EXPLAINs the very SQL the store sends for the list and
// aggregate queries. The aggregates (run stats, usage summary) must read
// only the rollup tables.
func TestQueriesUseCompositeIndexes(t *testing.T) {
	t.Parallel()
	db, err := OpenPostgres(context.Background(), dbtest.Postgres(t), 4)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	rec := &recorder{Driver: entsql.OpenDB(dialect.Postgres, db)}
	s := newStore(rec, db, dialect.Postgres, dbtest.Schema, nil)

	_, err = db.Exec(`
INSERT INTO agentstore.agent_runs (id, tenant_id, agent_name, status, created_at, updated_at, started_at, ended_at)
SELECT gen_random_uuid(), md5('t' || (i % 50))::uuid, 'agent-' || (i % 7),
       (ARRAY['queued','running','succeeded','failed','cancelled'])[1 + i % 5],
       now() - i * interval '1 second', now(), now() - i * interval '1 second', now()
FROM generate_series(1, 100000) i;
INSERT INTO agentstore.usage_metrics (id, tenant_id, model, input_tokens, output_tokens, total_tokens, cost_usd, recorded_at)
SELECT gen_random_uuid(), md5('t' || (i % 50))::uuid, 'model-' || (i % 3), i % 100, i % 10, i % 110, 0.001, now() - i * interval '1 second'
FROM generate_series(1, 100000) i;
ANALYZE agentstore.agent_runs; ANALYZE agentstore.usage_metrics;`)
	require.NoError(t, err)

	var tenantID uuid.UUID
	require.NoError(t, db.QueryRow(`SELECT md5('t7')::uuid`).Scan(&tenantID))
	ctx := tenant.NewContext(context.Background(), tenant.Viewer{TenantID: tenantID, Role: "authenticated"})
	day := Window{From: time.Now().Add(-24 * time.Hour), To: time.Now()}
	month := Window{From: time.Now().Add(-30 * 24 * time.Hour), To: time.Now()}
	// The rollups of those rows, as `rollups rebuild` writes them.
	_, err = s.Rollups.Rebuild(context.Background(), RebuildOptions{})
	require.NoError(t, err)
	_, err = db.Exec(`ANALYZE agentstore.run_rollups; ANALYZE agentstore.usage_rollups`)
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		call  func() error
		index string
	}{
		{"list by tenant", func() error { _, _, err := s.Runs.List(ctx, RunFilter{}); return err }, "agentrun_tenant_id_created_at"},
		{"list by tenant and status", func() error {
			_, _, err := s.Runs.List(ctx, RunFilter{Status: "failed"})
			return err
		}, "agentrun_tenant_id_status_created_at"},
		{"list by tenant and agent", func() error {
			_, _, err := s.Runs.List(ctx, RunFilter{AgentName: "agent-3"})
			return err
		}, "agentrun_tenant_id_agent_name_created_at"},
		// The two aggregates read the rollups (SPEC 15), never the raw tables.
		{"usage summary", func() error { _, err := s.Usage.Summary(ctx, day, "model"); return err }, "usagerollup_tenant_id_grain_bucket_start_kind_key"},
		{"run stats", func() error { _, err := s.Runs.Stats(ctx, day, "status"); return err }, "runrollup_tenant_id_grain_bucket_start_kind_key"},
		{"usage summary over 30 days", func() error { _, err := s.Usage.Summary(ctx, month, "day"); return err }, "usagerollupdelta_tenant_id_hour"},
		{"run stats over 30 days", func() error { _, err := s.Runs.Stats(ctx, month, "agentName"); return err }, "runrollupdelta_tenant_id_hour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.take()
			require.NoError(t, tc.call())
			qs := rec.take()
			require.NotEmpty(t, qs)
			var plan strings.Builder
			rows, err := db.Query("EXPLAIN "+qs[0].sql, qs[0].args...)
			require.NoError(t, err)
			for rows.Next() {
				var line string
				require.NoError(t, rows.Scan(&line))
				plan.WriteString(line + "\n")
			}
			require.NoError(t, rows.Err())
			require.Contains(t, plan.String(), tc.index, "query:\n%s\nplan:\n%s", qs[0].sql, plan.String())
			require.NotContains(t, plan.String(), "Seq Scan", "plan:\n%s", plan.String())
			if strings.Contains(tc.index, "rollup") {
				for _, raw := range []string{"agent_runs", "tool_calls", "usage_metrics", "agent_steps"} {
					require.NotContains(t, plan.String(), " on "+raw, "plan:\n%s", plan.String())
				}
			}
		})
	}
}
