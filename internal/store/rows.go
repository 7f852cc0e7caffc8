package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/internal/derrors"
)

// The rows of a write to a run (the run itself when the write creates it,
// its steps, its tool calls and the audit row that records the write) are
// built in this file and nowhere else: ids and timestamps assigned, steps
// numbered, every value checked by the generated ent validators, tool calls
// checked to name steps of their run. The writers then only write them:
// insertRunPostgres in one statement, insertRows with ent's builders.

// MaxItems is the most steps, and the most tool calls, one write to a run
// may carry (SPEC 13); more is an InvalidArgument naming the list.
const MaxItems = 1000

// checkItems refuses a list of more than MaxItems items.
func checkItems(list string, n int) error {
	if n > MaxItems {
		return derrors.Field(list, "may hold at most %d items in one request; this one holds %d", MaxItems, n)
	}
	return nil
}

// runRows are the rows of one write to a run, ready to be written.
type runRows struct {
	run   *ent.AgentRun // nil when the write appends to a stored run
	steps []*ent.AgentStep
	calls []*ent.ToolCall
	audit *ent.AuditLog
}

// rowBuilder builds the rows of one write to the run runID of tenantID.
// Every row it builds gets the same creation time. Validation errors are
// collected so that one answer names every bad field; a seq that breaks
// the numbering is a Conflict and ends the build at once.
type rowBuilder struct {
	tenantID uuid.UUID
	runID    uuid.UUID
	created  time.Time
	rows     runRows
	errs     []derrors.Detail
}

func newRowBuilder(tenantID, runID uuid.UUID) *rowBuilder {
	return &rowBuilder{tenantID: tenantID, runID: runID, created: now()}
}

// check records err, when there is one, as the refusal of a generated
// validator of table.column, a fault of the run's field or, when list is
// not empty, of item i of list ("steps" or "toolCalls"). The field's path
// is only formatted for a fault.
func (b *rowBuilder) check(table, list string, i int, column string, err error) {
	if err == nil {
		return
	}
	field := jsonName(column)
	if list != "" {
		field = fmt.Sprintf("%s[%d].%s", list, i, field)
	}
	b.errs = append(b.errs, derrors.Detail{Field: field, Message: refusal(table, column, err)})
}

// newRunRows builds the rows of the run in describes: the run, its steps
// numbered from 1, its tool calls, which may name only those steps, and
// its "run.create" audit row.
func newRunRows(ctx context.Context, in NewRun) (*runRows, error) {
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkItems("steps", len(in.Steps)); err != nil {
		return nil, err
	}
	if err := checkItems("toolCalls", len(in.ToolCalls)); err != nil {
		return nil, err
	}
	status := agentrun.StatusQueued
	if in.Status != "" {
		status = agentrun.Status(in.Status)
		if status != agentrun.StatusQueued && status != agentrun.StatusRunning {
			return nil, derrors.Field("status", "a new run is %q or %q", StatusQueued, StatusRunning)
		}
	}
	b := newRowBuilder(tenantID, newID(in.ID))
	startedAt := utc(in.StartedAt)
	if status == agentrun.StatusRunning && startedAt == nil {
		t := b.created
		startedAt = &t
	}
	run := &ent.AgentRun{
		ID: b.runID, TenantID: tenantID, CreatedAt: b.created, UpdatedAt: b.created,
		AgentName: in.AgentName, Status: status, Input: in.Input, Metadata: in.Metadata,
		Model: in.Model, UserID: in.UserID, ParentRunID: in.ParentRunID, StartedAt: startedAt,
	}
	b.check(agentrun.Table, "", 0, agentrun.FieldAgentName, agentrun.AgentNameValidator(run.AgentName))
	if run.Model != nil {
		b.check(agentrun.Table, "", 0, agentrun.FieldModel, agentrun.ModelValidator(*run.Model))
	}
	b.rows.run = run
	steps, err := b.addSteps(in.Steps, 0, nil)
	if err != nil {
		return nil, err
	}
	ofRun := make(map[uuid.UUID]bool, len(steps))
	for _, st := range steps {
		ofRun[st.ID] = true
	}
	b.addToolCalls(in.ToolCalls, ofRun)
	run.Edges.Steps, run.Edges.ToolCalls = b.rows.steps, b.rows.calls
	err = b.addAudit(ctx, "run.create", map[string]any{
		"agentName": run.AgentName, "status": run.Status, "steps": len(b.rows.steps), "toolCalls": len(b.rows.calls),
	})
	if err != nil {
		return nil, err
	}
	return b.done()
}

// addSteps builds in as steps of the run whose highest stored seq is last,
// and returns them in the order of in. A step whose seq is stored already
// is a replay: it is answered with stored[seq] when it describes that step
// and is a Conflict otherwise; it is not written again. Every other step
// takes the next free seq, gap-free; an explicit seq must be that one.
func (b *rowBuilder) addSteps(in []NewStep, last int, stored map[int]*ent.AgentStep) ([]*ent.AgentStep, error) {
	out := make([]*ent.AgentStep, len(in))
	next := last
	for i, s := range in {
		if s.Seq != nil && *s.Seq >= 1 && *s.Seq <= last {
			old := stored[*s.Seq]
			if old == nil || !sameStep(old, s) {
				f := fmt.Sprintf("steps[%d].seq", i)
				return nil, &derrors.Error{
					Category: derrors.Conflict,
					Message:  fmt.Sprintf("%s: step %d exists with different content", f, *s.Seq),
					Details:  []derrors.Detail{{Field: f, Message: "exists with different content"}},
				}
			}
			out[i] = old
			continue
		}
		next++
		if s.Seq != nil && *s.Seq != next {
			f := fmt.Sprintf("steps[%d].seq", i)
			return nil, &derrors.Error{
				Category: derrors.Conflict,
				Message:  fmt.Sprintf("%s: %d would leave a gap or reuse a number; the next seq of this run is %d", f, *s.Seq, next),
				Details:  []derrors.Detail{{Field: f, Message: fmt.Sprintf("expected %d", next)}},
			}
		}
		st := &ent.AgentStep{
			ID: newID(s.ID), TenantID: b.tenantID, CreatedAt: b.created, RunID: b.runID, Seq: next,
			Type: s.Type, Name: s.Name, Status: agentstep.Status(s.Status), Input: s.Input, Output: s.Output,
			Error: s.Error, StartedAt: utc(s.StartedAt), EndedAt: utc(s.EndedAt),
		}
		if st.Status == "" {
			st.Status = agentstep.DefaultStatus
		}
		b.check(agentstep.Table, "steps", i, agentstep.FieldSeq, agentstep.SeqValidator(st.Seq))
		b.check(agentstep.Table, "steps", i, agentstep.FieldType, agentstep.TypeValidator(st.Type))
		b.check(agentstep.Table, "steps", i, agentstep.FieldStatus, agentstep.StatusValidator(st.Status))
		if st.Name != nil {
			b.check(agentstep.Table, "steps", i, agentstep.FieldName, agentstep.NameValidator(*st.Name))
		}
		b.rows.steps = append(b.rows.steps, st)
		out[i] = st
	}
	return out, nil
}

// addToolCalls builds in as tool calls of the run. A StepID must be in
// ofRun, the steps known to belong to the run.
func (b *rowBuilder) addToolCalls(in []NewToolCall, ofRun map[uuid.UUID]bool) {
	for i, c := range in {
		tc := &ent.ToolCall{
			ID: newID(c.ID), TenantID: b.tenantID, CreatedAt: b.created, RunID: b.runID, StepID: c.StepID,
			ToolName: c.ToolName, Arguments: c.Arguments, Result: c.Result, Status: toolcall.Status(c.Status),
			Error: c.Error, DurationMs: c.DurationMs, StartedAt: utc(c.StartedAt), EndedAt: utc(c.EndedAt),
		}
		b.check(toolcall.Table, "toolCalls", i, toolcall.FieldToolName, toolcall.ToolNameValidator(tc.ToolName))
		b.check(toolcall.Table, "toolCalls", i, toolcall.FieldStatus, toolcall.StatusValidator(tc.Status))
		if tc.DurationMs != nil {
			b.check(toolcall.Table, "toolCalls", i, toolcall.FieldDurationMs, toolcall.DurationMsValidator(*tc.DurationMs))
		}
		if tc.StepID != nil && !ofRun[*tc.StepID] {
			b.errs = append(b.errs, derrors.Detail{Field: fmt.Sprintf("toolCalls[%d].stepId", i), Message: errNotAStepOfRun.Error()})
		}
		b.rows.calls = append(b.rows.calls, tc)
	}
}

var errNotAStepOfRun = errors.New("is not a step of this run")

// addAudit builds the audit row of the write: action on the run, with
// changes.
func (b *rowBuilder) addAudit(ctx context.Context, action string, changes any) error {
	row, err := auditRow(ctx, b.created, auditEntry{action: action, resourceType: "run", resourceID: b.runID, changes: changes})
	b.rows.audit = row
	return err
}

// done returns the rows, or one InvalidArgument error naming every field
// that failed validation.
func (b *rowBuilder) done() (*runRows, error) {
	if len(b.errs) > 0 {
		msgs := make([]string, len(b.errs))
		for i, d := range b.errs {
			msgs[i] = d.Field + ": " + d.Message
		}
		return nil, &derrors.Error{Category: derrors.InvalidArgument, Message: strings.Join(msgs, "; "), Details: b.errs}
	}
	return &b.rows, nil
}

// newID returns id, or a new time-ordered UUIDv7 when id is nil, as the
// schema's default would.
func newID(id *uuid.UUID) uuid.UUID {
	if id != nil {
		return *id
	}
	return uuid.Must(uuid.NewV7())
}
