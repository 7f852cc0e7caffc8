package lifecycle

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

var backends = []struct {
	name string
	open func(t *testing.T) *store.Store
}{
	{"postgres", func(t *testing.T) *store.Store {
		db, err := store.OpenPostgres(context.Background(), dbtest.Postgres(t), 10)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return store.New(db, dialect.Postgres, dbtest.Schema, nil)
	}},
	{"sqlite", func(t *testing.T) *store.Store {
		db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "lc.db"))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return store.New(db, dialect.SQLite, "", nil)
	}},
}

func forEachBackend(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

func viewer(id uuid.UUID) context.Context {
	return tenant.NewContext(context.Background(), tenant.Viewer{TenantID: id, UserID: uuid.NewString(), Role: "authenticated"})
}

// oldRun creates a run with one step and one tool call for the tenant of
// ctx, created age ago.
func oldRun(t *testing.T, st *store.Store, ctx context.Context, age time.Duration, user *uuid.UUID) uuid.UUID {
	t.Helper()
	run, err := st.Runs.Create(ctx, store.NewRun{AgentName: "a", UserID: user,
		Steps: []store.NewStep{{Type: "llm"}}, ToolCalls: []store.NewToolCall{{ToolName: "t", Status: "succeeded"}}})
	require.NoError(t, err)
	_, err = st.Usage.Record(ctx, store.NewUsage{RunID: &run.ID, Model: "m", InputTokens: 1})
	require.NoError(t, err)
	at := time.Now().UTC().Add(-age)
	err = st.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		for _, q := range []struct{ table, col string }{{"agent_runs", "id"}, {"agent_steps", "run_id"}, {"tool_calls", "run_id"}} {
			table, p := `"`+q.table+`"`, []string{"?", "?"}
			if st.Dialect() == dialect.Postgres {
				table, p = `"`+dbtest.Schema+`".`+table, []string{"$1", "$2"}
			}
			if _, err := tx.ExecContext(ctx, "UPDATE "+table+" SET created_at = "+p[0]+" WHERE "+q.col+" = "+p[1], at, run.ID); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	return run.ID
}

func runCount(t *testing.T, st *store.Store, ctx context.Context) int {
	t.Helper()
	n := 0
	page := store.Page{Limit: store.MaxPageSize}
	for {
		runs, next, err := st.Runs.List(ctx, store.RunFilter{Page: page})
		require.NoError(t, err)
		n += len(runs)
		if next == "" {
			return n
		}
		page.Cursor = next
	}
}

func TestRetentionPass(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		a, b, c := uuid.New(), uuid.New(), uuid.New()
		day := 24 * time.Hour
		for range 3 {
			oldRun(t, st, viewer(a), 10*day, nil) // A keeps 7 days: expired
		}
		oldRun(t, st, viewer(a), 2*day, nil)
		oldRun(t, st, viewer(b), 400*day, nil) // B keeps forever
		for range 2 {
			oldRun(t, st, viewer(c), 40*day, nil) // C keeps the default 30 days
		}
		oldRun(t, st, viewer(c), 20*day, nil)

		reg := prometheus.NewRegistry()
		m := NewMetrics(reg)
		r := NewRetention(st, RetentionConfig{Days: 30, TenantOverrides: map[uuid.UUID]int{a: 7, b: 0},
			Pace: Pace{BatchRuns: 2, MaxRowsPerSecond: -1}}, nil, m)

		dry, err := r.Pass(context.Background(), true)
		require.NoError(t, err)
		assert.True(t, dry.DryRun)
		assert.Equal(t, store.Removed{Runs: 5, Steps: 5, ToolCalls: 5, UsageUnlinked: 5}, dry.Removed)
		assert.Len(t, dry.Tenants, 2)
		assert.InDelta(t, (10 * day).Seconds(), testutil.ToFloat64(m.lag), 60, "the oldest expired run, C's, is 10 days past its cut-off (A's only 3)")
		assert.Equal(t, 4, runCount(t, st, viewer(a)), "a dry run deletes nothing")

		// Another instance holds the lock: the pass is skipped.
		lock, err := st.TryLock(context.Background(), retentionLock)
		require.NoError(t, err)
		require.NotNil(t, lock)
		skipped, err := r.Pass(context.Background(), false)
		require.NoError(t, err)
		assert.True(t, skipped.Skipped)
		lock.Release()

		rep, err := r.Pass(context.Background(), false)
		require.NoError(t, err)
		assert.Equal(t, dry.Removed, rep.Removed, "the pass deleted what the dry run counted")
		assert.Equal(t, []int{1, 1, 1}, []int{runCount(t, st, viewer(a)), runCount(t, st, viewer(b)), runCount(t, st, viewer(c))})
		assert.Zero(t, testutil.ToFloat64(m.lag), "nothing is past its cut-off")
		assert.Equal(t, 5.0, testutil.ToFloat64(m.rows.WithLabelValues("retention", "agent_runs")))
		assert.Equal(t, 5.0, testutil.ToFloat64(m.rows.WithLabelValues("retention", "tool_calls")))

		again, err := r.Pass(context.Background(), false)
		require.NoError(t, err)
		assert.Empty(t, again.Tenants)

		off, err := NewRetention(st, RetentionConfig{Days: 0, TenantOverrides: map[uuid.UUID]int{b: 0}}, nil, m).Pass(context.Background(), false)
		require.NoError(t, err)
		assert.Empty(t, off.Tenants, "RETENTION_DAYS=0 keeps everything")
		assert.Equal(t, 1, runCount(t, st, viewer(b)))
	})
}

func TestRetentionRunPassesSoonThenEveryInterval(t *testing.T) {
	st := backends[1].open(t)
	a := uuid.New()
	oldRun(t, st, viewer(a), 3*24*time.Hour, nil)
	r := NewRetention(st, RetentionConfig{Days: 1, Interval: 50 * time.Millisecond, FirstPass: time.Millisecond,
		Pace: Pace{MaxRowsPerSecond: -1}}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	require.Eventually(t, func() bool { return runCount(t, st, viewer(a)) == 0 }, 10*time.Second, 10*time.Millisecond, "the first pass")
	oldRun(t, st, viewer(a), 3*24*time.Hour, nil)
	require.Eventually(t, func() bool { return runCount(t, st, viewer(a)) == 0 }, 10*time.Second, 10*time.Millisecond, "a later pass")
	cancel()
	<-done
}

func TestEraserDrainsEveryTenantsJobs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		a, b := uuid.New(), uuid.New()
		user := uuid.New()
		for range 5 {
			oldRun(t, st, viewer(a), time.Hour, &user)
		}
		oldRun(t, st, viewer(b), time.Hour, &user)
		kept := oldRun(t, st, viewer(a), time.Hour, nil)
		jobA, err := st.Erasures.Create(viewer(a), user)
		require.NoError(t, err)
		jobB, err := st.Erasures.Create(viewer(b), user)
		require.NoError(t, err)

		reg := prometheus.NewRegistry()
		m := NewMetrics(reg)
		e := NewEraser(st, Pace{BatchRuns: 2, MaxRowsPerSecond: -1}, time.Hour, nil, m)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		for _, j := range []struct {
			ctx  context.Context
			id   uuid.UUID
			runs int64
		}{{viewer(a), jobA.ID, 5}, {viewer(b), jobB.ID, 1}} {
			require.Eventually(t, func() bool {
				got, err := st.Erasures.Get(j.ctx, j.id)
				return err == nil && string(got.Status) == store.ErasureDone
			}, 10*time.Second, 10*time.Millisecond)
			got, err := st.Erasures.Get(j.ctx, j.id)
			require.NoError(t, err)
			assert.Equal(t, []int64{j.runs, j.runs, j.runs}, []int64{got.Runs, got.Steps, got.ToolCalls})
		}
		assert.Equal(t, 6.0, testutil.ToFloat64(m.rows.WithLabelValues("erasure", "agent_runs")))
		_, err = st.Runs.Get(viewer(a), kept, store.Include{})
		require.NoError(t, err, "another user's run stays")

		// A job recorded while the worker waits is worked at once.
		oldRun(t, st, viewer(a), time.Hour, &user)
		late, err := st.Erasures.Create(viewer(a), user)
		require.NoError(t, err)
		e.Notify()
		require.Eventually(t, func() bool {
			got, err := st.Erasures.Get(viewer(a), late.ID)
			return err == nil && string(got.Status) == store.ErasureDone && got.Runs == 1
		}, 10*time.Second, 10*time.Millisecond)
		cancel()
		<-done
	})
}
