package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Retention deletes runs created before a tenant's cut-off, in batches,
// keeping usage rows (unlinked), audit rows and rollups, and recording what
// it removed in run_removals. The schedule, the pacing and the cut-offs
// are internal/lifecycle's; this is the database side.
type Retention struct{ s *Store }

// TenantRuns is a tenant that has runs created before some time, and the
// creation time of its oldest run.
type TenantRuns struct {
	TenantID uuid.UUID
	Oldest   time.Time
}

// Tenants returns, for the system viewer, the tenants that have runs
// created before t, with their oldest run. Under DB_TENANT_RLS the system
// sees runs older than one day only (the shortest retention), which is
// all this needs.
func (r *Retention) Tenants(ctx context.Context, before time.Time) (_ []TenantRuns, err error) {
	defer derrors.Wrap(&err, "Retention.Tenants")
	if v, _ := tenant.FromContext(ctx); !v.System {
		return nil, derrors.New(derrors.Forbidden, "only the system lists tenants")
	}
	var ids []uuid.UUID
	err = r.s.client.AgentRun.Query().Where(agentrun.CreatedAtLT(before)).
		GroupBy(agentrun.FieldTenantID).Scan(ctx, &ids)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]TenantRuns, 0, len(ids))
	for _, id := range ids {
		oldest, ok, err := r.Oldest(ForTenant(ctx, id))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, TenantRuns{TenantID: id, Oldest: oldest})
		}
	}
	return out, nil
}

// ForTenant returns a copy of ctx whose viewer is the system's work for
// one tenant: confined to tenantID like a request of that tenant, recorded
// in audit rows with the role "system".
func ForTenant(ctx context.Context, tenantID uuid.UUID) context.Context {
	return tenant.NewContext(ctx, tenant.Viewer{TenantID: tenantID, Role: "system"})
}

// Oldest returns the creation time of the viewer's tenant's oldest run,
// and false when it has none.
func (r *Retention) Oldest(ctx context.Context) (_ time.Time, _ bool, err error) {
	defer derrors.Wrap(&err, "Retention.Oldest")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	run, err := r.s.client.AgentRun.Query().Where(agentrun.TenantID(tenantID)).
		Order(agentrun.ByCreatedAt()).Select(agentrun.FieldCreatedAt).First(ctx)
	if ent.IsNotFound(err) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, translate(err)
	}
	return run.CreatedAt.UTC(), true, nil
}

// Count counts what DeleteBefore would remove of the viewer's tenant: the
// runs created before cutoff, their steps and tool calls, and the usage
// rows it would unlink. It is the dry run.
func (r *Retention) Count(ctx context.Context, cutoff time.Time) (_ Removed, err error) {
	defer derrors.Wrap(&err, "Retention.Count")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return Removed{}, err
	}
	c := r.s.client
	runs := c.AgentRun.Query().Where(agentrun.TenantID(tenantID), agentrun.CreatedAtLT(cutoff))
	var out Removed
	n, err := runs.Clone().Count(ctx)
	if err != nil {
		return out, translate(err)
	}
	out.Runs = int64(n)
	if n, err = c.AgentStep.Query().Where(agentstep.TenantID(tenantID),
		agentstep.HasRunWith(agentrun.CreatedAtLT(cutoff))).Count(ctx); err != nil {
		return out, translate(err)
	}
	out.Steps = int64(n)
	if n, err = c.ToolCall.Query().Where(toolcall.TenantID(tenantID),
		toolcall.HasRunWith(agentrun.CreatedAtLT(cutoff))).Count(ctx); err != nil {
		return out, translate(err)
	}
	out.ToolCalls = int64(n)
	if n, err = c.UsageMetric.Query().Where(usagemetric.TenantID(tenantID),
		usagemetric.HasRunWith(agentrun.CreatedAtLT(cutoff))).Count(ctx); err != nil {
		return out, translate(err)
	}
	out.UsageUnlinked = int64(n)
	return out, nil
}

// DeleteBefore deletes at most limit of the viewer's tenant's runs created
// before cutoff, oldest first, with their steps and tool calls, in one
// transaction that also records them in run_removals and writes the audit
// row "retention.delete". Runs another transaction holds are left for a
// later batch. It returns what it removed; zero runs means none is left.
func (r *Retention) DeleteBefore(ctx context.Context, cutoff time.Time, limit int) (_ Removed, err error) {
	defer derrors.Wrap(&err, "Retention.DeleteBefore")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return Removed{}, err
	}
	var removed Removed
	err = r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		q := tx.AgentRun.Query().Where(agentrun.TenantID(tenantID), agentrun.CreatedAtLT(cutoff)).
			Order(agentrun.ByCreatedAt(), agentrun.ByID()).Limit(limit)
		ids, err := r.s.lockForDelete(q).IDs(ctx)
		if err != nil || len(ids) == 0 {
			return err
		}
		if err := recordRemovals(ctx, tx, tenantID, ids, ReasonRetention); err != nil {
			return err
		}
		if removed, err = deleteRuns(ctx, tx, tenantID, ids); err != nil {
			return err
		}
		return r.s.Audit.write(ctx, tx, auditEntry{
			action: "retention.delete", resourceType: "tenant", resourceID: tenantID,
			changes: map[string]any{
				"cutoff": cutoff.UTC(), "runs": removed.Runs, "steps": removed.Steps,
				"toolCalls": removed.ToolCalls, "usageUnlinked": removed.UsageUnlinked,
			},
		})
	})
	if err != nil {
		return Removed{}, err
	}
	return removed, nil
}

// Lock is a lock that excludes the holders of the same name in every
// process on PostgreSQL, in this process on SQLite. Release it when done.
type Lock struct {
	tx      *ent.Tx // PostgreSQL: the transaction that holds the advisory lock
	release func()  // SQLite
	once    sync.Once
}

// sqliteLocks are the locks of TryLock on SQLite, where one process owns
// the database file.
var sqliteLocks sync.Map // name → *sync.Mutex

// TryLock takes the lock name if nobody holds it, and returns nil when
// someone does. On PostgreSQL it is a transaction-level advisory lock held
// by a transaction kept open (idle, holding no snapshot) until Release, so
// it works through a transaction-mode pooler and dies with the process or
// its connection.
func (s *Store) TryLock(ctx context.Context, name string) (_ *Lock, err error) {
	defer derrors.Wrap(&err, "Store.TryLock(%s)", name)
	if s.dialect != dialect.Postgres {
		m, _ := sqliteLocks.LoadOrStore(name, &sync.Mutex{})
		mu := m.(*sync.Mutex)
		if !mu.TryLock() {
			return nil, nil
		}
		return &Lock{release: mu.Unlock}, nil
	}
	tx, err := s.client.Tx(tenant.SystemContext(ctx))
	if err != nil {
		return nil, translate(err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT pg_try_advisory_xact_lock(hashtext($1))", s.pgSchema+":"+name)
	if err != nil {
		_ = tx.Rollback()
		return nil, translate(err)
	}
	var got bool
	for rows.Next() {
		err = rows.Scan(&got)
	}
	err = errors.Join(err, rows.Close(), rows.Err())
	if err != nil || !got {
		_ = tx.Rollback()
		return nil, translate(err)
	}
	return &Lock{tx: tx}, nil
}

// Check reports an error when the lock may have been lost: its connection
// is gone, so another process may hold it now.
func (l *Lock) Check(ctx context.Context) error {
	if l.tx == nil {
		return nil
	}
	rows, err := l.tx.QueryContext(ctx, "SELECT 1")
	if err != nil {
		return translate(err)
	}
	return translate(rows.Close())
}

// Release gives the lock up; later calls do nothing.
func (l *Lock) Release() {
	l.once.Do(func() {
		if l.tx != nil {
			_ = l.tx.Rollback()
		}
		if l.release != nil {
			l.release()
		}
	})
}
