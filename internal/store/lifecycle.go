package store

import (
	"context"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/runremoval"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/derrors"
)

// Deleting runs is one routine for the three ways a run goes: DELETE
// /v1/runs/{id} (Runs.Delete), retention (Retention) and the erasure of
// an end user (Erasures). It removes the runs' tool calls and steps,
// unlinks their usage rows (billing outlives runs: run_id becomes null),
// and deletes the runs; their child runs lose their parent (the foreign
// key sets parent_run_id null). Audit rows stay, append-only.

// Removed counts the rows a deletion removed or unlinked.
type Removed struct {
	// Runs, Steps and ToolCalls were deleted.
	Runs, Steps, ToolCalls int64
	// UsageUnlinked are usage rows kept with their run id cleared.
	UsageUnlinked int64
}

// Add adds o to r.
func (r *Removed) Add(o Removed) {
	r.Runs += o.Runs
	r.Steps += o.Steps
	r.ToolCalls += o.ToolCalls
	r.UsageUnlinked += o.UsageUnlinked
}

// Rows is the number of rows deleted (usage rows are kept, not counted).
func (r Removed) Rows() int64 { return r.Runs + r.Steps + r.ToolCalls }

// deleteRuns deletes the runs ids of tenantID inside tx, with their steps
// and tool calls, and unlinks their usage rows.
func deleteRuns(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, ids []uuid.UUID) (Removed, error) {
	var out Removed
	if len(ids) == 0 {
		return out, nil
	}
	n, err := tx.ToolCall.Delete().Where(toolcall.TenantID(tenantID), toolcall.RunIDIn(ids...)).Exec(ctx)
	if err != nil {
		return out, err
	}
	out.ToolCalls = int64(n)
	if n, err = tx.AgentStep.Delete().Where(agentstep.TenantID(tenantID), agentstep.RunIDIn(ids...)).Exec(ctx); err != nil {
		return out, err
	}
	out.Steps = int64(n)
	if n, err = tx.UsageMetric.Update().Where(usagemetric.TenantID(tenantID), usagemetric.RunIDIn(ids...)).ClearRunID().Save(ctx); err != nil {
		return out, err
	}
	out.UsageUnlinked = int64(n)
	if n, err = tx.AgentRun.Delete().Where(agentrun.TenantID(tenantID), agentrun.IDIn(ids...)).Exec(ctx); err != nil {
		return out, err
	}
	out.Runs = int64(n)
	return out, nil
}

// Delete deletes the tenant's run id with its steps and tool calls; its
// usage rows stay with runId null, its child runs lose their parent. The
// audit row "run.delete" is written in the same transaction. Another
// tenant's run is NotFound.
func (r *Runs) Delete(ctx context.Context, id uuid.UUID) (_ Removed, err error) {
	defer derrors.Wrap(&err, "Runs.Delete(%s)", id)
	var removed Removed
	err = r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		run, err := r.lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		// Rollups (SPEC 15): a DELETE is a correction, so the run leaves the
		// rollups in this transaction, counted while its tool calls and
		// usage links still exist. Retention and erasure do not come
		// through here: they keep the rollups and record what they removed
		// in run_removals instead.
		if err := r.s.Rollups.SubtractRun(ctx, tx, run.ID); err != nil {
			return err
		}
		if removed, err = deleteRuns(ctx, tx, run.TenantID, []uuid.UUID{run.ID}); err != nil {
			return err
		}
		return r.s.Audit.write(ctx, tx, auditEntry{
			action: "run.delete", resourceType: "run", resourceID: run.ID,
			changes: map[string]any{
				"agentName": run.AgentName, "status": run.Status, "steps": removed.Steps,
				"toolCalls": removed.ToolCalls, "usageUnlinked": removed.UsageUnlinked,
			},
		})
	})
	if err != nil {
		return Removed{}, err
	}
	return removed, nil
}

// Removal reasons, the reason column of run_removals.
const (
	ReasonRetention = "retention"
	ReasonErasure   = "erasure"
)

// removalKey groups removed runs the way the hourly rollups group them.
type removalKey struct {
	hour      time.Time
	agentName string
	status    string
}

// removalTotals is what run_removals adds up for one removalKey.
type removalTotals struct {
	runs, timedRuns, steps, toolCalls, failedToolCalls int64
	durationMs                                         float64
	usageRows, inputTokens, outputTokens, totalTokens  int64
	costUSD                                            float64
}

// recordRemovals adds the runs ids of tenantID, about to be deleted by
// reason inside tx, to run_removals: per UTC hour of creation, agent and
// status, how many runs, their summed duration, steps, tool calls (failed
// ones apart) and the usage rows that lose their run.
func recordRemovals(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, ids []uuid.UUID, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	runs, err := tx.AgentRun.Query().
		Where(agentrun.TenantID(tenantID), agentrun.IDIn(ids...)).
		Select(agentrun.FieldID, agentrun.FieldCreatedAt, agentrun.FieldAgentName, agentrun.FieldStatus,
			agentrun.FieldStartedAt, agentrun.FieldEndedAt).
		All(ctx)
	if err != nil {
		return err
	}
	var steps []struct {
		RunID uuid.UUID `sql:"run_id"`
		N     int64     `sql:"n"`
	}
	err = tx.AgentStep.Query().Where(agentstep.TenantID(tenantID), agentstep.RunIDIn(ids...)).
		GroupBy(agentstep.FieldRunID).Aggregate(ent.As(ent.Count(), "n")).Scan(ctx, &steps)
	if err != nil {
		return err
	}
	var calls []struct {
		RunID  uuid.UUID `sql:"run_id"`
		N      int64     `sql:"n"`
		Failed int64     `sql:"failed"`
	}
	err = tx.ToolCall.Query().Where(toolcall.TenantID(tenantID), toolcall.RunIDIn(ids...)).
		Modify(func(s *entsql.Selector) {
			s.Select(
				as(s.C(toolcall.FieldRunID), "run_id"),
				as("COUNT(*)", "n"),
				as("SUM(CASE WHEN "+s.C(toolcall.FieldStatus)+" = 'failed' THEN 1 ELSE 0 END)", "failed"),
			).GroupBy(s.C(toolcall.FieldRunID))
		}).Scan(ctx, &calls)
	if err != nil {
		return err
	}
	var usage []struct {
		RunID  uuid.UUID `sql:"run_id"`
		N      int64     `sql:"n"`
		Input  int64     `sql:"input"`
		Output int64     `sql:"output"`
		Total  int64     `sql:"total"`
		Cost   float64   `sql:"cost"`
	}
	err = tx.UsageMetric.Query().Where(usagemetric.TenantID(tenantID), usagemetric.RunIDIn(ids...)).
		Modify(func(s *entsql.Selector) {
			s.Select(
				as(s.C(usagemetric.FieldRunID), "run_id"),
				as("COUNT(*)", "n"),
				as("SUM("+s.C(usagemetric.FieldInputTokens)+")", "input"),
				as("SUM("+s.C(usagemetric.FieldOutputTokens)+")", "output"),
				as("SUM("+s.C(usagemetric.FieldTotalTokens)+")", "total"),
				as("SUM("+s.C(usagemetric.FieldCostUsd)+")", "cost"),
			).GroupBy(s.C(usagemetric.FieldRunID))
		}).Scan(ctx, &usage)
	if err != nil {
		return err
	}
	keyOf := make(map[uuid.UUID]removalKey, len(runs))
	totals := map[removalKey]*removalTotals{}
	var order []removalKey
	for _, run := range runs {
		k := removalKey{hour: run.CreatedAt.UTC().Truncate(time.Hour), agentName: run.AgentName, status: string(run.Status)}
		keyOf[run.ID] = k
		t := totals[k]
		if t == nil {
			t = &removalTotals{}
			totals[k] = t
			order = append(order, k)
		}
		t.runs++
		if run.StartedAt != nil && run.EndedAt != nil {
			t.timedRuns++
			t.durationMs += float64(run.EndedAt.Sub(*run.StartedAt).Microseconds()) / 1000
		}
	}
	for _, s := range steps {
		if k, ok := keyOf[s.RunID]; ok {
			totals[k].steps += s.N
		}
	}
	for _, c := range calls {
		if k, ok := keyOf[c.RunID]; ok {
			totals[k].toolCalls += c.N
			totals[k].failedToolCalls += c.Failed
		}
	}
	for _, u := range usage {
		if k, ok := keyOf[u.RunID]; ok {
			t := totals[k]
			t.usageRows += u.N
			t.inputTokens += u.Input
			t.outputTokens += u.Output
			t.totalTokens += u.Total
			t.costUSD += u.Cost
		}
	}
	for _, k := range order {
		t := totals[k]
		err := tx.RunRemoval.Create().
			SetTenantID(tenantID).SetHour(k.hour).SetAgentName(k.agentName).SetStatus(k.status).
			SetReason(runremoval.Reason(reason)).
			SetRuns(t.runs).SetTimedRuns(t.timedRuns).SetDurationMsSum(t.durationMs).
			SetSteps(t.steps).SetToolCalls(t.toolCalls).SetFailedToolCalls(t.failedToolCalls).
			SetUsageRows(t.usageRows).SetInputTokens(t.inputTokens).SetOutputTokens(t.outputTokens).
			SetTotalTokens(t.totalTokens).SetCostUsd(t.costUSD).
			OnConflictColumns(runremoval.FieldTenantID, runremoval.FieldHour, runremoval.FieldAgentName,
				runremoval.FieldStatus, runremoval.FieldReason).
			Update(func(u *ent.RunRemovalUpsert) {
				u.AddRuns(t.runs).AddTimedRuns(t.timedRuns).AddDurationMsSum(t.durationMs).
					AddSteps(t.steps).AddToolCalls(t.toolCalls).AddFailedToolCalls(t.failedToolCalls).
					AddUsageRows(t.usageRows).AddInputTokens(t.inputTokens).AddOutputTokens(t.outputTokens).
					AddTotalTokens(t.totalTokens).AddCostUsd(t.costUSD).UpdateUpdatedAt()
			}).
			Exec(ctx)
		if err != nil {
			return err
		}
	}
	return nil
}

// as is entsql.As, short for the aggregates above.
func as(expr, name string) string { return entsql.As(expr, name) }

// RunRemoval is one row of run_removals: the totals of the runs removed by
// Reason that were created in Hour by AgentName with Status.
type RunRemoval struct {
	Hour              time.Time
	AgentName, Status string
	Reason            string
	Runs, TimedRuns   int64
	DurationMsSum     float64
	Steps, ToolCalls  int64
	FailedToolCalls   int64
	UsageRows         int64
	InputTokens       int64
	OutputTokens      int64
	TotalTokens       int64
	CostUSD           float64
	UpdatedAt         time.Time
}

// Removals returns the tenant's run_removals rows of the hours in w, by
// hour, agent, status and reason: what a rollup verifier subtracts.
func (s *Store) Removals(ctx context.Context, w Window) (_ []RunRemoval, err error) {
	defer derrors.Wrap(&err, "Store.Removals")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	q := s.client.RunRemoval.Query().Where(runremoval.TenantID(tenantID))
	if !w.From.IsZero() {
		q.Where(runremoval.HourGTE(w.From))
	}
	if !w.To.IsZero() {
		q.Where(runremoval.HourLT(w.To))
	}
	rows, err := q.Order(runremoval.ByHour(), runremoval.ByAgentName(), runremoval.ByStatus(), runremoval.ByReason()).All(ctx)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]RunRemoval, len(rows))
	for i, r := range rows {
		out[i] = RunRemoval{
			Hour: r.Hour.UTC(), AgentName: r.AgentName, Status: r.Status, Reason: string(r.Reason),
			Runs: r.Runs, TimedRuns: r.TimedRuns, DurationMsSum: r.DurationMsSum,
			Steps: r.Steps, ToolCalls: r.ToolCalls, FailedToolCalls: r.FailedToolCalls,
			UsageRows: r.UsageRows, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens,
			TotalTokens: r.TotalTokens, CostUSD: r.CostUsd, UpdatedAt: r.UpdatedAt.UTC(),
		}
	}
	return out, nil
}

// lockForDelete makes q lock the rows it selects on PostgreSQL, skipping
// rows another transaction holds (a writer appending to an old run, or
// another deleter): they are taken by a later batch. SQLite transactions
// already take turns.
func (s *Store) lockForDelete(q *ent.AgentRunQuery) *ent.AgentRunQuery {
	if s.dialect == dialect.Postgres {
		return q.ForUpdate(entsql.WithLockAction(entsql.SkipLocked))
	}
	return q
}
