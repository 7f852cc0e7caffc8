package store

import (
	"context"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/erasure"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Erasure statuses.
const (
	ErasurePending = "pending"
	ErasureRunning = "running"
	ErasureDone    = "done"
	ErasureFailed  = "failed"
)

// Erasures holds the durable jobs that erase an end user's runs, with
// their steps and tool calls, from a tenant. A job is worked in batches,
// each one transaction that deletes runs and adds to the job's counts, so
// a job interrupted at any point resumes where it stopped with exact
// counts. Usage rows stay (unlinked), audit rows stay, and so do rollups;
// what was removed is recorded in run_removals.
type Erasures struct{ s *Store }

// Create records a pending erasure of the end user userID in the viewer's
// tenant, with its audit row "erasure.create". The job remembers the
// viewer and the request, which the audit row of its completion names.
func (e *Erasures) Create(ctx context.Context, userID uuid.UUID) (_ *ent.Erasure, err error) {
	defer derrors.Wrap(&err, "Erasures.Create")
	if _, err := viewerTenant(ctx); err != nil {
		return nil, err
	}
	v, _ := tenant.FromContext(ctx)
	ri := requestInfoFrom(ctx)
	var job *ent.Erasure
	err = e.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		var err error
		job, err = tx.Erasure.Create().
			SetUserID(userID).
			SetNillableActorID(nonEmpty(v.UserID)).
			SetActorRole(v.Role).
			SetNillableRequestID(nonEmpty(ri.RequestID)).
			Save(ctx)
		if err != nil {
			return err
		}
		return e.s.Audit.write(ctx, tx, auditEntry{
			action: "erasure.create", resourceType: "erasure", resourceID: job.ID,
			changes: map[string]any{"userId": userID},
		})
	})
	if err != nil {
		return nil, err
	}
	return job, nil
}

// Get returns the viewer's tenant's erasure id.
func (e *Erasures) Get(ctx context.Context, id uuid.UUID) (_ *ent.Erasure, err error) {
	defer derrors.Wrap(&err, "Erasures.Get(%s)", id)
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	job, err := e.s.client.Erasure.Query().Where(erasure.ID(id), erasure.TenantID(tenantID)).Only(ctx)
	return job, translate(err)
}

// Unfinished returns, for the system viewer, at most limit pending or
// running erasures of every tenant, oldest first: the worker's queue.
func (e *Erasures) Unfinished(ctx context.Context, limit int) (_ []*ent.Erasure, err error) {
	defer derrors.Wrap(&err, "Erasures.Unfinished")
	if v, _ := tenant.FromContext(ctx); !v.System {
		return nil, derrors.New(derrors.Forbidden, "only the system lists every tenant's erasures")
	}
	jobs, err := e.s.client.Erasure.Query().
		Where(erasure.StatusIn(erasure.StatusPending, erasure.StatusRunning)).
		Order(erasure.ByCreatedAt(), erasure.ByID()).Limit(limit).All(ctx)
	return jobs, translate(err)
}

// WorkContext returns a copy of ctx acting for job: in its tenant, as the
// viewer that asked for it, with its request id, so that the audit row of
// its completion names who asked.
func WorkContext(ctx context.Context, job *ent.Erasure) context.Context {
	v := tenant.Viewer{TenantID: job.TenantID, Role: job.ActorRole}
	if job.ActorID != nil {
		v.UserID = *job.ActorID
	}
	ctx = tenant.NewContext(ctx, v)
	if job.RequestID != nil {
		ctx = WithRequestInfo(ctx, RequestInfo{RequestID: *job.RequestID})
	}
	return ctx
}

// Work does one step of the erasure id, in the tenant of the viewer (see
// WorkContext), in one transaction: it deletes at most limit runs of the
// user, with their steps and tool calls, records them in run_removals and
// adds them to the job's counts. When none is left, it checks that no run
// of the user remains and marks the job done, with the audit row
// "user.erase". It returns the job as it left it; a job that is already
// finished is returned unchanged.
func (e *Erasures) Work(ctx context.Context, id uuid.UUID, limit int) (_ *ent.Erasure, err error) {
	defer derrors.Wrap(&err, "Erasures.Work(%s)", id)
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	var job *ent.Erasure
	err = e.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		q := tx.Erasure.Query().Where(erasure.ID(id), erasure.TenantID(tenantID))
		if e.s.dialect == dialect.Postgres {
			q.ForUpdate() // workers of several instances take turns on one job
		}
		var err error
		if job, err = q.Only(ctx); err != nil {
			return err
		}
		if job.Status == erasure.StatusDone || job.Status == erasure.StatusFailed {
			return nil
		}
		runs := tx.AgentRun.Query().Where(agentrun.TenantID(tenantID), agentrun.UserID(job.UserID))
		ids, err := e.s.lockForDelete(runs.Clone().Order(agentrun.ByCreatedAt(), agentrun.ByID()).Limit(limit)).IDs(ctx)
		if err != nil {
			return err
		}
		u := tx.Erasure.UpdateOne(job).Where(erasure.TenantID(tenantID)).
			SetStatus(erasure.StatusRunning).SetAttempts(0).ClearError()
		if len(ids) > 0 {
			if err := recordRemovals(ctx, tx, tenantID, ids, ReasonErasure); err != nil {
				return err
			}
			removed, err := deleteRuns(ctx, tx, tenantID, ids)
			if err != nil {
				return err
			}
			job, err = u.AddRuns(removed.Runs).AddSteps(removed.Steps).AddToolCalls(removed.ToolCalls).Save(ctx)
			return err
		}
		// Nothing left to take: verify, without skipping locked rows, that
		// nothing of the user remains before reporting done. A run locked
		// by a writer is taken by the next step.
		left, err := runs.Count(ctx)
		if err != nil || left > 0 {
			if err == nil {
				job, err = u.Save(ctx)
			}
			return err
		}
		if job, err = u.SetStatus(erasure.StatusDone).SetFinishedAt(now()).Save(ctx); err != nil {
			return err
		}
		return e.s.Audit.write(ctx, tx, auditEntry{
			action: "user.erase", resourceType: "user", resourceID: job.UserID,
			changes: map[string]any{
				"erasureId": job.ID, "runs": job.Runs, "steps": job.Steps, "toolCalls": job.ToolCalls,
			},
		})
	})
	if err != nil {
		return nil, err
	}
	return job, nil
}

// Failed records that a step of the erasure id failed with cause, in the
// tenant of the viewer. After maxAttempts failures in a row the job is
// failed for good (its counts say what was removed before); until then it
// stays running and is tried again. It returns the job.
func (e *Erasures) Failed(ctx context.Context, id uuid.UUID, cause string, maxAttempts int) (_ *ent.Erasure, err error) {
	defer derrors.Wrap(&err, "Erasures.Failed(%s)", id)
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	var job *ent.Erasure
	err = e.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		var err error
		if job, err = tx.Erasure.Query().Where(erasure.ID(id), erasure.TenantID(tenantID)).Only(ctx); err != nil {
			return err
		}
		if job.Status == erasure.StatusDone || job.Status == erasure.StatusFailed {
			return nil
		}
		u := tx.Erasure.UpdateOne(job).Where(erasure.TenantID(tenantID)).AddAttempts(1).SetError(cause)
		if job.Attempts+1 >= maxAttempts {
			u.SetStatus(erasure.StatusFailed).SetFinishedAt(now())
		}
		job, err = u.Save(ctx)
		return err
	})
	return job, err
}
