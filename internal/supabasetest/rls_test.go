package supabasetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/privacy"
	"github.com/agentstore/agentstore/internal/dbmigrate"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
	"github.com/agentstore/agentstore/migrations"
)

// tenantTables are the tables whose rows belong to a tenant.
var tenantTables = []string{"agent_runs", "agent_steps", "tool_calls", "audit_logs", "usage_metrics", "idempotency_keys"}

// appRoleRecipe is the production recipe of the service's role for
// DB_TENANT_RLS=on (role name %[1]s, schema %[2]s), run as postgres after
// `agentstore migrate apply`: a login role that is neither the owner nor
// BYPASSRLS, with DML on the tables and read-only access to the revisions
// table (`serve` checks for pending migrations).
const appRoleRecipe = `
CREATE ROLE %[1]s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
GRANT USAGE ON SCHEMA %[2]s TO %[1]s;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %[2]s TO %[1]s;
REVOKE INSERT, UPDATE, DELETE ON %[2]s.atlas_schema_revisions FROM %[1]s;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA %[2]s GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %[1]s;
`

// rlsEnv is a migrated Supabase database with two tenants' rows and the
// service's own role.
type rlsEnv struct {
	c        *Cluster
	db       string
	owner    *sql.DB // role postgres: owner of the tables, BYPASSRLS
	role     string  // the service's role
	a, b     uuid.UUID
	runs     map[uuid.UUID][]uuid.UUID // run ids by tenant
	expected map[uuid.UUID]int         // rows per tenant in each tenant table, idempotency_keys aside
}

func newRLSEnv(t *testing.T) *rlsEnv {
	t.Helper()
	c := cluster(t, 15)
	name := c.NewDatabase(t, Modes[0], false)
	e := &rlsEnv{c: c, db: name, owner: c.Open(t, "postgres", name), role: "agentstore_app_" + name,
		a: uuid.New(), b: uuid.New(), runs: map[uuid.UUID][]uuid.UUID{}, expected: map[uuid.UUID]int{}}
	migrate(t, e.owner)
	_, err := e.owner.Exec(fmt.Sprintf(appRoleRecipe, e.role, schemaName))
	require.NoError(t, err)
	t.Cleanup(func() {
		admin := c.Open(t, "supabase_admin", "postgres")
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		_, _ = admin.Exec("DROP ROLE IF EXISTS " + e.role)
	})
	now := time.Now().UTC()
	for tenantID, n := range map[uuid.UUID]int{e.a: 3, e.b: 2} {
		e.expected[tenantID] = n
		for i := range n {
			run := uuid.New()
			e.runs[tenantID] = append(e.runs[tenantID], run)
			e.exec(t, `INSERT INTO agentstore.agent_runs (id, tenant_id, created_at, updated_at, agent_name, status)
				VALUES ($1, $2, $3, $3, 'agent', 'queued')`, run, tenantID, now.Add(time.Duration(i)*time.Second))
			e.exec(t, `INSERT INTO agentstore.agent_steps (id, tenant_id, created_at, seq, type, status, run_id)
				VALUES ($1, $2, $3, 1, 'llm', 'succeeded', $4)`, uuid.New(), tenantID, now, run)
			e.exec(t, `INSERT INTO agentstore.tool_calls (id, tenant_id, created_at, tool_name, status, run_id)
				VALUES ($1, $2, $3, 'search', 'succeeded', $4)`, uuid.New(), tenantID, now, run)
			e.exec(t, `INSERT INTO agentstore.audit_logs (id, tenant_id, created_at, actor_role, action, resource_type, resource_id)
				VALUES ($1, $2, $3, 'authenticated', 'run.create', 'run', $4)`, uuid.New(), tenantID, now, run.String())
			e.exec(t, `INSERT INTO agentstore.usage_metrics (id, tenant_id, model, recorded_at, run_id)
				VALUES ($1, $2, 'gpt', $3, $4)`, uuid.New(), tenantID, now, run)
		}
		// One fresh and one expired idempotency key per tenant.
		for i, created := range []time.Time{now, now.Add(-48 * time.Hour)} {
			e.exec(t, `INSERT INTO agentstore.idempotency_keys (id, tenant_id, created_at, scope, key, request_hash, status_code, response)
				VALUES ($1, $2, $3, 'runs.create', $4, 'h', 201, '\x7b7d')`, uuid.New(), tenantID, created, fmt.Sprint("k", i))
		}
	}
	for _, comp := range []string{"database", "redis"} {
		e.exec(t, `INSERT INTO agentstore.system_health (id, component, status, checked_at) VALUES ($1, $2, 'up', $3)`, uuid.New(), comp, now)
	}
	return e
}

func (e *rlsEnv) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	_, err := e.owner.Exec(query, args...)
	require.NoError(t, err)
}

// openApp opens a pool of at most maxConns connections as the service's
// role, the way the server does, through url when given.
func (e *rlsEnv) openApp(t *testing.T, url string, maxConns int) *sql.DB {
	t.Helper()
	if url == "" {
		url = e.c.URL(e.role, e.db)
	}
	db, err := store.OpenPostgres(context.Background(), url, maxConns)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func viewer(id uuid.UUID) context.Context {
	return tenant.NewContext(context.Background(), tenant.Viewer{TenantID: id, Role: "authenticated"})
}

// unfiltered skips the ent privacy layer: the query then has no tenant
// predicate at all, as a buggy one would.
func unfiltered(ctx context.Context) context.Context {
	return privacy.DecisionContext(ctx, privacy.Allow)
}

// tenantsIn returns the tenant of every row of table seen through q.
func tenantsIn(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, table string) ([]uuid.UUID, error) {
	rows, err := q.QueryContext(ctx, "SELECT tenant_id FROM "+qualified(table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// only asserts that ids are n times want.
func only(t *testing.T, want uuid.UUID, n int, ids []uuid.UUID, what string) {
	t.Helper()
	assert.Len(t, ids, n, what)
	for _, id := range ids {
		assert.Equal(t, want, id, what)
	}
}

// TestTenantRLS checks the row-level security of DB_TENANT_RLS=on as the
// service's own role: a query without tenant predicate sees and changes
// only the viewer's tenant rows, inside and outside transactions; rows of
// another tenant cannot be written; system_health is shared; the system
// viewer sees no tenant rows but prunes expired idempotency keys.
func TestTenantRLS(t *testing.T) {
	t.Parallel()
	e := newRLSEnv(t)
	ctx := context.Background()
	app := e.openApp(t, "", 4)
	st := store.New(app, dialect.Postgres, schemaName, nil, store.WithTenantRLS(true))

	t.Run("catalog", func(t *testing.T) {
		got := lines(t, e.owner, `SELECT c.relname || ' ' || c.relrowsecurity || ' ' || c.relforcerowsecurity
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> 'atlas_schema_revisions' ORDER BY 1`, schemaName)
		assert.Equal(t, []string{"agent_runs true true", "agent_steps true true", "audit_logs true true", "erasures true true",
			"idempotency_keys true true", "run_removals true true", "run_rollup_deltas true true", "run_rollups true true", "system_health true true",
			"tool_calls true true", "usage_metrics true true", "usage_rollup_deltas true true", "usage_rollups true true",
			"usage_run_marks true true"}, got)
		var super, bypass bool
		require.NoError(t, app.QueryRow("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&super, &bypass))
		require.False(t, super || bypass, "the service's role must not bypass RLS")
	})

	t.Run("the service's writes work under RLS", func(t *testing.T) {
		ctx := viewer(uuid.New()) // a tenant of its own: the subtests below count a's and b's rows
		run, err := st.Runs.Create(ctx, store.NewRun{AgentName: "rls", Status: "running",
			Steps: []store.NewStep{{Type: "llm"}}, ToolCalls: []store.NewToolCall{{ToolName: "t", Status: "succeeded"}}})
		require.NoError(t, err)
		_, err = st.Runs.AppendSteps(ctx, run.ID, []store.NewStep{{Type: "tool"}})
		require.NoError(t, err)
		_, err = st.Runs.Update(ctx, run.ID, store.RunPatch{Status: ptr("succeeded")})
		require.NoError(t, err)
		got, err := st.Runs.Get(ctx, run.ID, store.Include{Steps: true, ToolCalls: true})
		require.NoError(t, err)
		assert.Len(t, got.Edges.Steps, 2)
		assert.Len(t, got.Edges.ToolCalls, 1)
		_, err = st.Runs.Get(viewer(e.b), run.ID, store.Include{})
		require.Error(t, err, "the other tenant cannot see it")
	})

	t.Run("forgotten predicate in a transaction", func(t *testing.T) {
		for _, id := range []uuid.UUID{e.a, e.b} {
			err := st.WithTx(viewer(id), func(ctx context.Context, tx *ent.Tx) error {
				for _, table := range tenantTables {
					ids, err := tenantsIn(ctx, tx, table)
					if err != nil {
						return err
					}
					n := e.expected[id]
					if table == "idempotency_keys" {
						n = 2
					}
					only(t, id, n, ids, table)
				}
				return nil
			})
			require.NoError(t, err)
		}
	})

	t.Run("forgotten predicate outside a transaction", func(t *testing.T) {
		ctx := unfiltered(viewer(e.a))
		runs, err := st.Client().AgentRun.Query().All(ctx)
		require.NoError(t, err)
		require.Len(t, runs, e.expected[e.a])
		for _, r := range runs {
			assert.Equal(t, e.a, r.TenantID)
		}
		byTable := counts{
			"agent_steps":      st.Client().AgentStep.Query().Count,
			"tool_calls":       st.Client().ToolCall.Query().Count,
			"audit_logs":       st.Client().AuditLog.Query().Count,
			"usage_metrics":    st.Client().UsageMetric.Query().Count,
			"idempotency_keys": st.Client().IdempotencyKey.Query().Count,
		}
		for what, count := range byTable.withCtx(ctx) {
			n, err := count()
			require.NoError(t, err, what)
			want := e.expected[e.a]
			if what == "idempotency_keys" {
				want = 2
			}
			assert.Equal(t, want, n, what)
		}
		// An update without predicate changes only the viewer's rows.
		n, err := st.Client().AgentRun.Update().SetModel("rls-update").Save(ctx)
		require.NoError(t, err)
		assert.Equal(t, e.expected[e.a], n)
		assert.Equal(t, []string{fmt.Sprintf("%s %d", e.a, e.expected[e.a])},
			lines(t, e.owner, "SELECT tenant_id || ' ' || count(*) FROM agentstore.agent_runs WHERE model = 'rls-update' GROUP BY tenant_id"))
	})

	t.Run("repositories", func(t *testing.T) {
		runs, _, err := st.Runs.List(viewer(e.a), store.RunFilter{})
		require.NoError(t, err)
		assert.Len(t, runs, e.expected[e.a])
		_, err = st.Runs.Get(viewer(e.a), e.runs[e.b][0], store.Include{})
		assert.True(t, errors.Is(err, derrors.NotFound), "another tenant's run: %v", err)
		run, err := st.Runs.Get(viewer(e.b), e.runs[e.b][0], store.Include{Steps: true, ToolCalls: true})
		require.NoError(t, err)
		assert.Len(t, run.Edges.Steps, 1)
		assert.Len(t, run.Edges.ToolCalls, 1)
	})

	t.Run("writes are checked", func(t *testing.T) {
		insert := func(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO agentstore.agent_runs (id, tenant_id, created_at, updated_at, agent_name, status)
				VALUES ($1, $2, now(), now(), 'rls', 'queued')`, uuid.New(), tenantID)
			return err
		}
		require.NoError(t, st.WithTx(viewer(e.a), func(ctx context.Context, tx *ent.Tx) error { return insert(ctx, tx, e.a) }))
		err := st.WithTx(viewer(e.a), func(ctx context.Context, tx *ent.Tx) error { return insert(ctx, tx, e.b) })
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "insert for another tenant: %v", err)
		assert.Equal(t, "42501", pgErr.Code, err.Error())
		err = st.WithTx(tenant.SystemContext(ctx), func(ctx context.Context, tx *ent.Tx) error { return insert(ctx, tx, e.a) })
		require.True(t, errors.As(err, &pgErr), "insert without tenant: %v", err)
		assert.Equal(t, "42501", pgErr.Code, err.Error())
		e.exec(t, "DELETE FROM agentstore.agent_runs WHERE agent_name = 'rls'")
	})

	t.Run("system viewer", func(t *testing.T) {
		sys := tenant.SystemContext(ctx)
		n, err := st.Client().AgentRun.Query().Count(unfiltered(sys))
		require.NoError(t, err)
		assert.Zero(t, n, "the system viewer sees no tenant rows under RLS")
		for _, v := range []context.Context{sys, viewer(e.a)} {
			latest, err := st.Health.Latest(v)
			require.NoError(t, err)
			assert.Len(t, latest, 2, "system_health is readable by everyone")
		}
		_, err = st.Health.Record(sys, store.NewHealth{Component: "rls", Status: "up"})
		require.NoError(t, err, "system_health is writable")
		pruned, err := st.PruneIdempotencyKeys(sys)
		require.NoError(t, err)
		assert.Equal(t, 2, pruned, "the expired key of each tenant")
		assert.Equal(t, []string{"2"}, lines(t, e.owner, "SELECT count(*)::text FROM agentstore.idempotency_keys"))
	})

	t.Run("without WithTenantRLS the role sees nothing", func(t *testing.T) {
		off := store.New(app, dialect.Postgres, schemaName, nil)
		n, err := off.Client().AgentRun.Query().Count(unfiltered(viewer(e.a)))
		require.NoError(t, err)
		assert.Zero(t, n, "fails closed")
	})

	t.Run("retention and erasure under RLS", func(t *testing.T) {
		// A third tenant with a run two days old: the system viewer finds
		// it (runs older than one day), and deletes it as that tenant.
		c, old := uuid.New(), uuid.New()
		e.exec(t, `INSERT INTO agentstore.agent_runs (id, tenant_id, created_at, updated_at, agent_name, status)
			VALUES ($1, $2, now() - interval '2 days', now(), 'old', 'succeeded')`, old, c)
		e.exec(t, `INSERT INTO agentstore.agent_steps (id, tenant_id, created_at, seq, type, status, run_id)
			VALUES ($1, $2, now(), 1, 'llm', 'succeeded', $3)`, uuid.New(), c, old)
		sys := tenant.SystemContext(ctx)
		found, err := st.Retention.Tenants(sys, time.Now().Add(-24*time.Hour))
		require.NoError(t, err)
		require.Len(t, found, 1, "only the tenant with runs older than a day; a's and b's are fresh")
		assert.Equal(t, c, found[0].TenantID)
		fresh, err := st.Retention.Tenants(sys, time.Now())
		require.NoError(t, err)
		assert.Len(t, fresh, 1, "the system sees no run younger than a day")
		removed, err := st.Retention.DeleteBefore(store.ForTenant(ctx, c), time.Now().Add(-24*time.Hour), 10)
		require.NoError(t, err)
		assert.Equal(t, store.Removed{Runs: 1, Steps: 1}, removed)
		assert.Equal(t, []string{"1"}, lines(t, e.owner, "SELECT count(*)::text FROM agentstore.run_removals WHERE tenant_id = $1", c))

		job, err := st.Erasures.Create(viewer(e.a), uuid.New())
		require.NoError(t, err)
		queue, err := st.Erasures.Unfinished(sys, 10)
		require.NoError(t, err)
		require.Len(t, queue, 1, "the system finds unfinished erasures of every tenant")
		_, err = st.Erasures.Get(viewer(e.b), job.ID)
		assert.True(t, errors.Is(err, derrors.NotFound), "another tenant's erasure: %v", err)
		n, err := st.Client().Erasure.Query().Count(unfiltered(viewer(e.b)))
		require.NoError(t, err)
		assert.Zero(t, n, "a forgotten predicate sees no other tenant's erasure")
		done, err := st.Erasures.Work(store.WorkContext(ctx, queue[0]), job.ID, 10)
		require.NoError(t, err)
		assert.Equal(t, store.ErasureDone, string(done.Status))
		queue, err = st.Erasures.Unfinished(sys, 10)
		require.NoError(t, err)
		assert.Empty(t, queue, "finished erasures are not the system's to see")
	})

	t.Run("migrate status as the service role", func(t *testing.T) {
		dir, err := dbmigrate.Dir(migrations.FS)
		require.NoError(t, err)
		rep, err := dbmigrate.Status(ctx, app, schemaName, dir)
		require.NoError(t, err)
		assert.Empty(t, rep.Pending)
	})
}

// counts maps names to count functions that take a context.
type counts map[string]func(context.Context) (int, error)

// withCtx binds every function to ctx.
func (c counts) withCtx(ctx context.Context) map[string]func() (int, error) {
	out := make(map[string]func() (int, error), len(c))
	for k, f := range c {
		out[k] = func() (int, error) { return f(ctx) }
	}
	return out
}

// TestTenantRLSNothingCarriesOver checks that the tenant setting of one
// transaction is gone for the next one on the same pooled connection: with
// a pool of one connection, and through pgbouncer in transaction mode with
// one server connection shared by two client pools.
func TestTenantRLSNothingCarriesOver(t *testing.T) {
	t.Parallel()
	e := newRLSEnv(t)

	// state returns app.tenant_id, the agent_runs visible and the backend
	// of a statement outside any transaction.
	state := func(t *testing.T, db *sql.DB) (setting string, visible int, pid int) {
		t.Helper()
		require.NoError(t, db.QueryRow(`SELECT coalesce(current_setting('app.tenant_id', true), ''),
			(SELECT count(*) FROM agentstore.agent_runs), pg_backend_pid()`).Scan(&setting, &visible, &pid))
		return
	}
	seen := func(st *store.Store, id uuid.UUID) (ids []uuid.UUID, pid int, err error) {
		err = st.WithTx(viewer(id), func(ctx context.Context, tx *ent.Tx) error {
			rows, err := tx.QueryContext(ctx, "SELECT pg_backend_pid()")
			if err != nil {
				return err
			}
			for rows.Next() {
				if err := rows.Scan(&pid); err != nil {
					rows.Close()
					return err
				}
			}
			rows.Close()
			ids, err = tenantsIn(ctx, tx, "agent_runs")
			return err
		})
		return
	}

	t.Run("pool of one connection", func(t *testing.T) {
		db := e.openApp(t, "", 1)
		st := store.New(db, dialect.Postgres, schemaName, nil, store.WithTenantRLS(true))
		setting, visible, pid0 := state(t, db)
		require.Equal(t, "", setting)
		require.Zero(t, visible)

		ids, pid, err := seen(st, e.a)
		require.NoError(t, err)
		only(t, e.a, e.expected[e.a], ids, "tenant A")
		require.Equal(t, pid0, pid, "one connection")
		setting, visible, pid = state(t, db)
		assert.Equal(t, "", setting, "after a committed transaction")
		assert.Zero(t, visible)
		assert.Equal(t, pid0, pid)

		boom := errors.New("boom")
		err = st.WithTx(viewer(e.a), func(ctx context.Context, tx *ent.Tx) error { return boom })
		require.ErrorIs(t, err, boom)
		setting, visible, _ = state(t, db)
		assert.Equal(t, "", setting, "after a rolled back transaction")
		assert.Zero(t, visible)

		runs, _, err := st.Runs.List(viewer(e.a), store.RunFilter{})
		require.NoError(t, err)
		assert.Len(t, runs, e.expected[e.a])
		setting, visible, _ = state(t, db)
		assert.Equal(t, "", setting, "after a read outside WithTx")
		assert.Zero(t, visible)

		ids, pid, err = seen(st, e.b)
		require.NoError(t, err)
		only(t, e.b, e.expected[e.b], ids, "tenant B right after tenant A")
		assert.Equal(t, pid0, pid)
	})

	t.Run("pgbouncer transaction mode", func(t *testing.T) {
		url := e.c.PgBouncer(t, e.role, e.db)
		db1, db2 := e.openApp(t, url, 2), e.openApp(t, url, 2)
		st1 := store.New(db1, dialect.Postgres, schemaName, nil, store.WithTenantRLS(true))
		st2 := store.New(db2, dialect.Postgres, schemaName, nil, store.WithTenantRLS(true))

		ids, pid0, err := seen(st1, e.a)
		require.NoError(t, err)
		only(t, e.a, e.expected[e.a], ids, "tenant A")
		setting, visible, pid := state(t, db2)
		assert.Equal(t, pid0, pid, "pgbouncer has one server connection")
		assert.Equal(t, "", setting, "another client after tenant A's transaction")
		assert.Zero(t, visible)

		// Both clients alternate on the one server connection.
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, c := range []struct {
			st *store.Store
			id uuid.UUID
		}{{st1, e.a}, {st2, e.b}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 40 {
					ids, _, err := seen(c.st, c.id)
					if err != nil {
						errs <- err
						return
					}
					for _, id := range ids {
						if id != c.id {
							errs <- fmt.Errorf("tenant %s saw a row of %s", c.id, id)
							return
						}
					}
					if len(ids) != e.expected[c.id] {
						errs <- fmt.Errorf("tenant %s saw %d rows, want %d", c.id, len(ids), e.expected[c.id])
						return
					}
					runs, _, err := c.st.Runs.List(viewer(c.id), store.RunFilter{})
					if err != nil {
						errs <- err
						return
					}
					if len(runs) != e.expected[c.id] {
						errs <- fmt.Errorf("tenant %s listed %d runs, want %d", c.id, len(runs), e.expected[c.id])
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		setting, visible, _ = state(t, db1)
		assert.Equal(t, "", setting)
		assert.Zero(t, visible)
	})
}

func ptr[T any](v T) *T { return &v }
