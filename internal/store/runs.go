package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/internal/derrors"
)

// Run statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// transitions lists, for each run status, the statuses it may move to.
// Terminal statuses have none.
var transitions = map[agentrun.Status][]agentrun.Status{
	agentrun.StatusQueued:  {agentrun.StatusRunning, agentrun.StatusCancelled},
	agentrun.StatusRunning: {agentrun.StatusSucceeded, agentrun.StatusFailed, agentrun.StatusCancelled},
}

// IsTerminal reports whether a run in status st can no longer change.
func IsTerminal(st agentrun.Status) bool { return len(transitions[st]) == 0 }

func canMove(from, to agentrun.Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Runs holds agent runs with their steps and tool calls.
type Runs struct{ s *Store }

// NewRun is a run to create, with the steps and tool calls written in the
// same transaction.
type NewRun struct {
	ID          *uuid.UUID
	AgentName   string
	Status      string // "queued" (default) or "running"
	Input       json.RawMessage
	Metadata    json.RawMessage
	Model       *string
	UserID      *uuid.UUID
	ParentRunID *uuid.UUID
	StartedAt   *time.Time
	Steps       []NewStep
	ToolCalls   []NewToolCall
}

// NewStep is a step to append. Seq is assigned when nil.
type NewStep struct {
	ID        *uuid.UUID
	Seq       *int
	Type      string
	Name      *string
	Status    string // default "succeeded"
	Input     json.RawMessage
	Output    json.RawMessage
	Error     *string
	StartedAt *time.Time
	EndedAt   *time.Time
}

// NewToolCall is a tool call to record. StepID, when set, must name a step
// of the same run.
type NewToolCall struct {
	ID         *uuid.UUID
	StepID     *uuid.UUID
	ToolName   string
	Arguments  json.RawMessage
	Result     json.RawMessage
	Status     string // "succeeded" or "failed"
	Error      *string
	DurationMs *int64
	StartedAt  *time.Time
	EndedAt    *time.Time
}

// RunPatch is a change to a run; nil fields are left alone.
type RunPatch struct {
	Status   *string
	Output   json.RawMessage
	Error    *string
	Metadata json.RawMessage
	EndedAt  *time.Time
}

// Create writes a run, its steps, its tool calls and its audit row in one
// transaction: all of them or none.
func (r *Runs) Create(ctx context.Context, in NewRun) (*ent.AgentRun, error) {
	if _, err := viewerTenant(ctx); err != nil {
		return nil, err
	}
	var run *ent.AgentRun
	err := r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		var err error
		run, err = r.CreateTx(ctx, tx, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// CreateTx is Create inside the caller's transaction tx, for callers that
// write more in the same transaction, such as an idempotency record.
func (r *Runs) CreateTx(ctx context.Context, tx *ent.Tx, in NewRun) (*ent.AgentRun, error) {
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	status := agentrun.StatusQueued
	if in.Status != "" {
		status = agentrun.Status(in.Status)
		if status != agentrun.StatusQueued && status != agentrun.StatusRunning {
			return nil, derrors.Field("status", "a new run is %q or %q", StatusQueued, StatusRunning)
		}
	}
	startedAt := in.StartedAt
	if status == agentrun.StatusRunning && startedAt == nil {
		t := now()
		startedAt = &t
	}
	if in.ParentRunID != nil {
		ok, err := tx.AgentRun.Query().Where(agentrun.ID(*in.ParentRunID), agentrun.TenantID(tenantID)).Exist(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, derrors.Field("parentRunId", "no such run")
		}
	}
	if r.s.dialect == dialect.Postgres {
		run, err := newRunRows(tenantID, in, status, startedAt)
		if err != nil {
			return nil, err
		}
		if err := r.insertRunPostgres(ctx, tx, run); err != nil {
			return nil, err
		}
		return run, nil
	}
	created := now()
	c := tx.AgentRun.Create().
		SetCreatedAt(created).
		SetUpdatedAt(created).
		SetAgentName(in.AgentName).
		SetStatus(status).
		SetNillableModel(in.Model).
		SetNillableUserID(in.UserID).
		SetNillableParentRunID(in.ParentRunID).
		SetNillableStartedAt(utc(startedAt))
	if in.ID != nil {
		c.SetID(*in.ID)
	}
	if in.Input != nil {
		c.SetInput(in.Input)
	}
	if in.Metadata != nil {
		c.SetMetadata(in.Metadata)
	}
	run, err := c.Save(ctx)
	if err != nil {
		return nil, err
	}
	steps, err := r.insertSteps(ctx, tx, run, 0, in.Steps, "steps")
	if err != nil {
		return nil, err
	}
	run.Edges.Steps = steps
	calls, err := r.insertToolCalls(ctx, tx, run, in.ToolCalls, steps, "toolCalls")
	if err != nil {
		return nil, err
	}
	run.Edges.ToolCalls = calls
	err = r.s.Audit.write(ctx, tx, auditEntry{
		action: "run.create", resourceType: "run", resourceID: run.ID,
		changes: map[string]any{"agentName": run.AgentName, "status": run.Status, "steps": len(steps), "toolCalls": len(calls)},
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// insertSteps writes in as the steps of run that follow seq maxSeq. Steps
// without a seq get the next free ones; an explicit seq must be the next.
func (r *Runs) insertSteps(ctx context.Context, tx *ent.Tx, run *ent.AgentRun, maxSeq int, in []NewStep, field string) ([]*ent.AgentStep, error) {
	if len(in) == 0 {
		return nil, nil
	}
	builders := make([]*ent.AgentStepCreate, len(in))
	next := maxSeq
	for i, st := range in {
		next++
		if st.Seq != nil && *st.Seq != next {
			return nil, &derrors.Error{
				Category: derrors.Conflict,
				Message:  fmt.Sprintf("%s[%d].seq: %d would leave a gap or reuse a number; the next seq of this run is %d", field, i, *st.Seq, next),
				Details:  []derrors.Detail{{Field: fmt.Sprintf("%s[%d].seq", field, i), Message: fmt.Sprintf("expected %d", next)}},
			}
		}
		b := tx.AgentStep.Create().
			SetRunID(run.ID).
			SetSeq(next).
			SetType(st.Type).
			SetNillableName(st.Name).
			SetNillableError(st.Error).
			SetNillableStartedAt(utc(st.StartedAt)).
			SetNillableEndedAt(utc(st.EndedAt))
		if st.ID != nil {
			b.SetID(*st.ID)
		}
		if st.Status != "" {
			b.SetStatus(agentstep.Status(st.Status))
		}
		if st.Input != nil {
			b.SetInput(st.Input)
		}
		if st.Output != nil {
			b.SetOutput(st.Output)
		}
		builders[i] = b
	}
	steps, err := tx.AgentStep.CreateBulk(builders...).Save(ctx)
	if err != nil {
		return nil, withField(err, field)
	}
	return steps, nil
}

// insertToolCalls writes in as tool calls of run. A StepID must name one of
// known (the steps written in the same call) or an existing step of run.
func (r *Runs) insertToolCalls(ctx context.Context, tx *ent.Tx, run *ent.AgentRun, in []NewToolCall, known []*ent.AgentStep, field string) ([]*ent.ToolCall, error) {
	if len(in) == 0 {
		return nil, nil
	}
	ofRun := make(map[uuid.UUID]bool, len(known))
	for _, st := range known {
		ofRun[st.ID] = true
	}
	var lookup []uuid.UUID
	for _, tc := range in {
		if tc.StepID != nil && !ofRun[*tc.StepID] {
			lookup = append(lookup, *tc.StepID)
		}
	}
	if len(lookup) > 0 {
		ids, err := tx.AgentStep.Query().
			Where(agentstep.RunID(run.ID), agentstep.TenantID(run.TenantID), agentstep.IDIn(lookup...)).
			IDs(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			ofRun[id] = true
		}
	}
	builders := make([]*ent.ToolCallCreate, len(in))
	for i, tc := range in {
		if tc.StepID != nil && !ofRun[*tc.StepID] {
			return nil, derrors.Field(fmt.Sprintf("%s[%d].stepId", field, i), "is not a step of this run")
		}
		b := tx.ToolCall.Create().
			SetRunID(run.ID).
			SetNillableStepID(tc.StepID).
			SetToolName(tc.ToolName).
			SetStatus(toolcall.Status(tc.Status)).
			SetNillableError(tc.Error).
			SetNillableDurationMs(tc.DurationMs).
			SetNillableStartedAt(utc(tc.StartedAt)).
			SetNillableEndedAt(utc(tc.EndedAt))
		if tc.ID != nil {
			b.SetID(*tc.ID)
		}
		if tc.Arguments != nil {
			b.SetArguments(tc.Arguments)
		}
		if tc.Result != nil {
			b.SetResult(tc.Result)
		}
		builders[i] = b
	}
	calls, err := tx.ToolCall.CreateBulk(builders...).Save(ctx)
	if err != nil {
		return nil, withField(err, field)
	}
	return calls, nil
}

// Include says which edges Get loads with the run.
type Include struct {
	Steps     bool
	ToolCalls bool
}

// Get returns the run with id, with the edges inc asks for: steps by seq,
// tool calls by creation time.
func (r *Runs) Get(ctx context.Context, id uuid.UUID, inc Include) (*ent.AgentRun, error) {
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	q := r.s.client.AgentRun.Query().Where(agentrun.ID(id), agentrun.TenantID(tenantID))
	if inc.Steps {
		q.WithSteps(func(q *ent.AgentStepQuery) { q.Order(agentstep.BySeq()) })
	}
	if inc.ToolCalls {
		q.WithToolCalls(func(q *ent.ToolCallQuery) { q.Order(toolcall.ByCreatedAt(), toolcall.ByID()) })
	}
	run, err := q.Only(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return run, nil
}

// RunFilter selects runs; zero fields do not filter.
type RunFilter struct {
	Status        string
	AgentName     string
	CreatedAfter  time.Time
	CreatedBefore time.Time
	Page          Page
}

// List returns one page of the tenant's runs, newest first, and the cursor
// of the next page ("" on the last).
func (r *Runs) List(ctx context.Context, f RunFilter) (_ []*ent.AgentRun, next string, err error) {
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, "", err
	}
	limit, after, err := f.Page.parse()
	if err != nil {
		return nil, "", err
	}
	q := r.s.client.AgentRun.Query().Where(agentrun.TenantID(tenantID))
	if f.Status != "" {
		st := agentrun.Status(f.Status)
		if err := agentrun.StatusValidator(st); err != nil {
			return nil, "", derrors.Field("status", "must be one of queued, running, succeeded, failed, cancelled")
		}
		q.Where(agentrun.StatusEQ(st))
	}
	if f.AgentName != "" {
		q.Where(agentrun.AgentName(f.AgentName))
	}
	if !f.CreatedAfter.IsZero() {
		q.Where(agentrun.CreatedAtGT(f.CreatedAfter))
	}
	if !f.CreatedBefore.IsZero() {
		q.Where(agentrun.CreatedAtLT(f.CreatedBefore))
	}
	if after != nil {
		q.Where(agentrun.Or(
			agentrun.CreatedAtLT(after.T),
			agentrun.And(agentrun.CreatedAt(after.T), agentrun.IDLT(after.ID)),
		))
	}
	runs, err := q.Order(agentrun.ByCreatedAt(descending()), agentrun.ByID(descending())).Limit(limit + 1).All(ctx)
	if err != nil {
		return nil, "", translate(err)
	}
	if len(runs) > limit {
		runs = runs[:limit]
		last := runs[limit-1]
		next = encodeCursor(cursor{T: last.CreatedAt, ID: last.ID})
	}
	return runs, next, nil
}

// lockRun reads the tenant's run id inside tx, locking its row on
// PostgreSQL so that concurrent writers to one run take turns. (SQLite
// transactions start with BEGIN IMMEDIATE and so already take turns.)
func (r *Runs) lockRun(ctx context.Context, tx *ent.Tx, id uuid.UUID) (*ent.AgentRun, error) {
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	q := tx.AgentRun.Query().Where(agentrun.ID(id), agentrun.TenantID(tenantID))
	if r.s.dialect == dialect.Postgres {
		q.ForUpdate()
	}
	return q.Only(ctx)
}

// Update applies p to the run with id, enforcing the status machine:
// queued → running → succeeded | failed | cancelled, and queued →
// cancelled. Any other move, and any change to a finished run, is a
// Conflict. Reaching a terminal status sets endedAt when p does not.
func (r *Runs) Update(ctx context.Context, id uuid.UUID, p RunPatch) (*ent.AgentRun, error) {
	var run *ent.AgentRun
	err := r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		cur, err := r.lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		if IsTerminal(cur.Status) {
			return derrors.New(derrors.Conflict, "run is %s and can no longer change", cur.Status)
		}
		u := tx.AgentRun.UpdateOne(cur).Where(agentrun.TenantID(cur.TenantID))
		changes := map[string]any{}
		if p.Status != nil && agentrun.Status(*p.Status) != cur.Status {
			to := agentrun.Status(*p.Status)
			if err := agentrun.StatusValidator(to); err != nil {
				return derrors.Field("status", "must be one of queued, running, succeeded, failed, cancelled")
			}
			if !canMove(cur.Status, to) {
				return derrors.New(derrors.Conflict, "a run cannot move from %s to %s", cur.Status, to)
			}
			u.SetStatus(to)
			changes["status"] = map[string]any{"from": cur.Status, "to": to}
			if to == agentrun.StatusRunning && cur.StartedAt == nil {
				u.SetStartedAt(now())
			}
			if IsTerminal(to) && p.EndedAt == nil {
				u.SetEndedAt(now())
			}
		}
		if p.Output != nil {
			u.SetOutput(p.Output)
			changes["output"] = true
		}
		if p.Error != nil {
			u.SetError(*p.Error)
			changes["error"] = *p.Error
		}
		if p.Metadata != nil {
			u.SetMetadata(p.Metadata)
			changes["metadata"] = true
		}
		if p.EndedAt != nil {
			u.SetEndedAt(p.EndedAt.UTC())
			changes["endedAt"] = p.EndedAt.UTC()
		}
		if run, err = u.Save(ctx); err != nil {
			return err
		}
		return r.s.Audit.write(ctx, tx, auditEntry{action: "run.update", resourceType: "run", resourceID: id, changes: changes})
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// AppendSteps appends steps to the run with id. Steps without a seq get the
// next free numbers, gap-free even when writers race: the run's row lock
// makes them take turns. A step whose seq already exists is returned as it
// is when it is identical, and is a Conflict otherwise. A finished run
// takes no more steps.
func (r *Runs) AppendSteps(ctx context.Context, id uuid.UUID, in []NewStep) ([]*ent.AgentStep, error) {
	if len(in) == 0 {
		return nil, derrors.Field("steps", "must not be empty")
	}
	var out []*ent.AgentStep
	err := r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		out = nil
		run, err := r.lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		if IsTerminal(run.Status) {
			return derrors.New(derrors.Conflict, "run is %s and takes no more steps", run.Status)
		}
		maxSeq, err := r.maxSeq(ctx, tx, id)
		if err != nil {
			return err
		}
		// Steps that repeat an existing seq are replays: identical ones are
		// answered with the stored step, different ones are conflicts.
		var fresh []NewStep
		replayed := map[int]*ent.AgentStep{}
		var seqs []int
		for _, st := range in {
			if st.Seq != nil && *st.Seq <= maxSeq {
				seqs = append(seqs, *st.Seq)
			}
		}
		if len(seqs) > 0 {
			existing, err := tx.AgentStep.Query().Where(agentstep.RunID(id), agentstep.SeqIn(seqs...)).All(ctx)
			if err != nil {
				return err
			}
			for _, st := range existing {
				replayed[st.Seq] = st
			}
		}
		for i, st := range in {
			if st.Seq != nil && *st.Seq <= maxSeq {
				old := replayed[*st.Seq]
				if old == nil || !sameStep(old, st) {
					return &derrors.Error{
						Category: derrors.Conflict,
						Message:  fmt.Sprintf("steps[%d].seq: step %d exists with different content", i, *st.Seq),
						Details:  []derrors.Detail{{Field: fmt.Sprintf("steps[%d].seq", i), Message: "exists with different content"}},
					}
				}
				continue
			}
			fresh = append(fresh, st)
		}
		steps, err := r.insertSteps(ctx, tx, run, maxSeq, fresh, "steps")
		if err != nil {
			return err
		}
		// Answer in the order asked, replays included.
		k := 0
		for _, st := range in {
			if st.Seq != nil && *st.Seq <= maxSeq {
				out = append(out, replayed[*st.Seq])
				continue
			}
			out = append(out, steps[k])
			k++
		}
		if len(steps) == 0 {
			return nil
		}
		return r.s.Audit.write(ctx, tx, auditEntry{
			action: "step.append", resourceType: "run", resourceID: id,
			changes: map[string]any{"firstSeq": steps[0].Seq, "lastSeq": steps[len(steps)-1].Seq},
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Runs) maxSeq(ctx context.Context, tx *ent.Tx, runID uuid.UUID) (int, error) {
	last, err := tx.AgentStep.Query().Where(agentstep.RunID(runID)).
		Order(agentstep.BySeq(descending())).Select(agentstep.FieldSeq).First(ctx)
	if ent.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return last.Seq, nil
}

// sameStep reports whether in describes the stored step st.
func sameStep(st *ent.AgentStep, in NewStep) bool {
	status := in.Status
	if status == "" {
		status = string(agentstep.DefaultStatus)
	}
	return st.Type == in.Type && string(st.Status) == status &&
		eqPtr(st.Name, in.Name) && eqPtr(st.Error, in.Error) &&
		sameJSON(st.Input, in.Input) && sameJSON(st.Output, in.Output) &&
		(in.ID == nil || *in.ID == st.ID)
}

func eqPtr[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// sameJSON compares two JSON documents by value, as jsonb would.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// ListSteps returns the run's steps by seq.
func (r *Runs) ListSteps(ctx context.Context, runID uuid.UUID) ([]*ent.AgentStep, error) {
	run, err := r.Get(ctx, runID, Include{Steps: true})
	if err != nil {
		return nil, err
	}
	return run.Edges.Steps, nil
}

// AppendToolCalls records tool calls of the run with id. A finished run
// takes no more.
func (r *Runs) AppendToolCalls(ctx context.Context, id uuid.UUID, in []NewToolCall) ([]*ent.ToolCall, error) {
	if len(in) == 0 {
		return nil, derrors.Field("toolCalls", "must not be empty")
	}
	var out []*ent.ToolCall
	err := r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		run, err := r.lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		if IsTerminal(run.Status) {
			return derrors.New(derrors.Conflict, "run is %s and takes no more tool calls", run.Status)
		}
		if out, err = r.insertToolCalls(ctx, tx, run, in, nil, "toolCalls"); err != nil {
			return err
		}
		return r.s.Audit.write(ctx, tx, auditEntry{
			action: "toolcall.record", resourceType: "run", resourceID: id,
			changes: map[string]any{"toolCalls": len(out)},
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListToolCalls returns the run's tool calls by creation time.
func (r *Runs) ListToolCalls(ctx context.Context, runID uuid.UUID) ([]*ent.ToolCall, error) {
	run, err := r.Get(ctx, runID, Include{ToolCalls: true})
	if err != nil {
		return nil, err
	}
	return run.Edges.ToolCalls, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// withField names the request field a validation error of a bulk insert
// came from.
func withField(err error, field string) error {
	var verr *ent.ValidationError
	if ent.IsValidationError(err) && errors.As(err, &verr) {
		return &derrors.Error{
			Category: derrors.InvalidArgument,
			Message:  fmt.Sprintf("%s: %s", field, err),
			Details:  []derrors.Detail{{Field: field + "." + verr.Name, Message: verr.Unwrap().Error()}},
			Cause:    err,
		}
	}
	return err
}
