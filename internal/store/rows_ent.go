package store

import (
	"context"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/toolcall"
)

// insertRows writes rows inside tx with ent's builders, one statement per
// table, through the schema's privacy policy. SQLite creates runs this way;
// both backends append steps and tool calls this way.
func insertRows(ctx context.Context, tx *ent.Tx, rows *runRows) error {
	if run := rows.run; run != nil {
		c := tx.AgentRun.Create().
			SetID(run.ID).
			SetTenantID(run.TenantID).
			SetCreatedAt(run.CreatedAt).
			SetUpdatedAt(run.UpdatedAt).
			SetAgentName(run.AgentName).
			SetStatus(run.Status).
			SetNillableModel(run.Model).
			SetNillableUserID(run.UserID).
			SetNillableParentRunID(run.ParentRunID).
			SetNillableStartedAt(run.StartedAt)
		if run.Input != nil {
			c.SetInput(run.Input)
		}
		if run.Metadata != nil {
			c.SetMetadata(run.Metadata)
		}
		if err := c.Exec(ctx); err != nil {
			return err
		}
	}
	if len(rows.steps) > 0 {
		builders := make([]*ent.AgentStepCreate, len(rows.steps))
		for i, st := range rows.steps {
			b := tx.AgentStep.Create().
				SetID(st.ID).
				SetTenantID(st.TenantID).
				SetCreatedAt(st.CreatedAt).
				SetRunID(st.RunID).
				SetSeq(st.Seq).
				SetType(st.Type).
				SetNillableName(st.Name).
				SetStatus(st.Status).
				SetNillableError(st.Error).
				SetNillableStartedAt(st.StartedAt).
				SetNillableEndedAt(st.EndedAt)
			if st.Input != nil {
				b.SetInput(st.Input)
			}
			if st.Output != nil {
				b.SetOutput(st.Output)
			}
			builders[i] = b
		}
		err := inChunks(len(builders), len(agentstep.Columns), func(lo, hi int) error {
			return tx.AgentStep.CreateBulk(builders[lo:hi]...).Exec(ctx)
		})
		if err != nil {
			return err
		}
	}
	if len(rows.calls) > 0 {
		builders := make([]*ent.ToolCallCreate, len(rows.calls))
		for i, tc := range rows.calls {
			b := tx.ToolCall.Create().
				SetID(tc.ID).
				SetTenantID(tc.TenantID).
				SetCreatedAt(tc.CreatedAt).
				SetRunID(tc.RunID).
				SetNillableStepID(tc.StepID).
				SetToolName(tc.ToolName).
				SetStatus(tc.Status).
				SetNillableError(tc.Error).
				SetNillableDurationMs(tc.DurationMs).
				SetNillableStartedAt(tc.StartedAt).
				SetNillableEndedAt(tc.EndedAt)
			if tc.Arguments != nil {
				b.SetArguments(tc.Arguments)
			}
			if tc.Result != nil {
				b.SetResult(tc.Result)
			}
			builders[i] = b
		}
		err := inChunks(len(builders), len(toolcall.Columns), func(lo, hi int) error {
			return tx.ToolCall.CreateBulk(builders[lo:hi]...).Exec(ctx)
		})
		if err != nil {
			return err
		}
	}
	return insertAudit(ctx, tx, rows.audit)
}

// maxParams is the most bind parameters one statement may carry on both
// backends: SQLite's SQLITE_MAX_VARIABLE_NUMBER (32766); PostgreSQL's
// extended protocol allows 65535.
const maxParams = 32766

// inChunks calls write with consecutive ranges [lo, hi) of n rows of cols
// columns each, every range small enough for one multi-row INSERT. A
// batch of MaxItems rows is one range; the chunks keep a larger one, or a
// wider table, within the limit.
func inChunks(n, cols int, write func(lo, hi int) error) error {
	size := max(maxParams/cols, 1)
	for lo := 0; lo < n; lo += size {
		if err := write(lo, min(lo+size, n)); err != nil {
			return err
		}
	}
	return nil
}

// insertAudit writes the audit row a inside tx.
func insertAudit(ctx context.Context, tx *ent.Tx, a *ent.AuditLog) error {
	return tx.AuditLog.Create().
		SetID(a.ID).
		SetTenantID(a.TenantID).
		SetCreatedAt(a.CreatedAt).
		SetNillableActorID(a.ActorID).
		SetActorRole(a.ActorRole).
		SetAction(a.Action).
		SetResourceType(a.ResourceType).
		SetResourceID(a.ResourceID).
		SetNillableRequestID(a.RequestID).
		SetNillableIP(a.IP).
		SetNillableUserAgent(a.UserAgent).
		SetChanges(a.Changes).
		Exec(ctx)
}
