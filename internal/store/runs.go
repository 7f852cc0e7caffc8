package store

import (
	"bytes"
	"context"
	"encoding/json"
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
func (r *Runs) Create(ctx context.Context, in NewRun) (_ *ent.AgentRun, err error) {
	defer derrors.Wrap(&err, "Runs.Create")
	var run *ent.AgentRun
	err = r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		var err error
		run, err = r.create(ctx, tx, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// createRunScope is the scope of CreateIdempotent's keys. It names the
// HTTP route because keys stored under it must keep answering retries.
const createRunScope = "POST /v1/runs"

// CreateIdempotent is Create for a request that carries an idempotency key:
// the run is created at most once per tenant and key. render turns the
// created run into the response, inside the transaction that creates the
// run and stores the response, so both land or neither; it may run more
// than once when the transaction is retried, the last time being the one
// that counts. A later call with the same key and the same requestHash
// gets the stored response back, and a nil run, without creating anything;
// one with another hash is a Conflict. Otherwise run is the created run.
func (r *Runs) CreateIdempotent(ctx context.Context, in NewRun, key, requestHash string,
	render func(*ent.AgentRun) (Response, error)) (resp Response, run *ent.AgentRun, err error) {
	defer derrors.Wrap(&err, "Runs.CreateIdempotent")
	var created *ent.AgentRun
	resp, replayed, err := r.s.idempotent(ctx, createRunScope, key, requestHash,
		func(ctx context.Context, tx *ent.Tx) (Response, error) {
			var err error
			if created, err = r.create(ctx, tx, in); err != nil {
				return Response{}, err
			}
			return render(created)
		})
	if err != nil {
		return Response{}, nil, err
	}
	if replayed {
		return resp, nil, nil
	}
	return resp, created, nil
}

// create is Create inside tx: it builds the rows of in, checks that the
// parent run is the tenant's, and writes the rows the backend's way.
func (r *Runs) create(ctx context.Context, tx *ent.Tx, in NewRun) (*ent.AgentRun, error) {
	rows, err := newRunRows(ctx, in)
	if err != nil {
		return nil, err
	}
	run := rows.run
	if run.ParentRunID != nil {
		ok, err := tx.AgentRun.Query().Where(agentrun.ID(*run.ParentRunID), agentrun.TenantID(run.TenantID)).Exist(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, derrors.Field("parentRunId", "no such run")
		}
	}
	if r.s.dialect == dialect.Postgres {
		err = r.insertRunPostgres(ctx, tx, rows)
	} else {
		err = insertRows(ctx, tx, rows)
	}
	if err != nil {
		return nil, err
	}
	return run, nil
}

// stepsOfRun returns which of ids name steps of run.
func stepsOfRun(ctx context.Context, tx *ent.Tx, run *ent.AgentRun, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	ofRun := make(map[uuid.UUID]bool, len(ids))
	if len(ids) == 0 {
		return ofRun, nil
	}
	found, err := tx.AgentStep.Query().
		Where(agentstep.RunID(run.ID), agentstep.TenantID(run.TenantID), agentstep.IDIn(ids...)).
		IDs(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range found {
		ofRun[id] = true
	}
	return ofRun, nil
}

// Include says which edges Get loads with the run.
type Include struct {
	Steps     bool
	ToolCalls bool
}

// Get returns the run with id, with the edges inc asks for: steps by seq,
// tool calls by creation time.
func (r *Runs) Get(ctx context.Context, id uuid.UUID, inc Include) (_ *ent.AgentRun, err error) {
	defer derrors.Wrap(&err, "Runs.Get(%s)", id)
	return r.get(ctx, id, inc)
}

func (r *Runs) get(ctx context.Context, id uuid.UUID, inc Include) (*ent.AgentRun, error) {
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
	// ParentRunID, when set, selects the child runs of that run.
	ParentRunID *uuid.UUID
	Page        Page
}

// List returns one page of the tenant's runs, newest first, and the cursor
// of the next page ("" on the last).
func (r *Runs) List(ctx context.Context, f RunFilter) (_ []*ent.AgentRun, next string, err error) {
	defer derrors.Wrap(&err, "Runs.List")
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
	if f.ParentRunID != nil {
		q.Where(agentrun.ParentRunID(*f.ParentRunID))
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
func (r *Runs) Update(ctx context.Context, id uuid.UUID, p RunPatch) (_ *ent.AgentRun, err error) {
	defer derrors.Wrap(&err, "Runs.Update(%s)", id)
	var run *ent.AgentRun
	err = r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
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
			// To the microsecond, as every stored timestamp: SQLite would
			// keep nanoseconds that PostgreSQL drops.
			u.SetEndedAt(*utc(p.EndedAt))
			changes["endedAt"] = *utc(p.EndedAt)
		}
		if run, err = u.Save(ctx); err != nil {
			return err
		}
		if err := r.s.Rollups.runChanged(ctx, tx, cur, run); err != nil {
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
func (r *Runs) AppendSteps(ctx context.Context, id uuid.UUID, in []NewStep) (_ []*ent.AgentStep, err error) {
	defer derrors.Wrap(&err, "Runs.AppendSteps(%s)", id)
	if len(in) == 0 {
		return nil, derrors.Field("steps", "must not be empty")
	}
	if err := checkItems("steps", len(in)); err != nil {
		return nil, err
	}
	var out []*ent.AgentStep
	err = r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		run, err := r.lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		if IsTerminal(run.Status) {
			return derrors.New(derrors.Conflict, "run is %s and takes no more steps", run.Status)
		}
		last, err := r.maxSeq(ctx, tx, id)
		if err != nil {
			return err
		}
		// Steps that name a stored seq are replays, answered with the
		// stored step when they describe it.
		var seqs []int
		for _, st := range in {
			if st.Seq != nil && *st.Seq >= 1 && *st.Seq <= last {
				seqs = append(seqs, *st.Seq)
			}
		}
		stored := map[int]*ent.AgentStep{}
		if len(seqs) > 0 {
			existing, err := tx.AgentStep.Query().Where(agentstep.RunID(id), agentstep.SeqIn(seqs...)).All(ctx)
			if err != nil {
				return err
			}
			for _, st := range existing {
				stored[st.Seq] = st
			}
		}
		b := appendTo(run)
		if out, err = b.addSteps(in, last, stored); err != nil {
			return err
		}
		fresh := b.rows.steps
		if len(fresh) == 0 {
			return nil
		}
		err = b.addAudit(ctx, "step.append", map[string]any{"firstSeq": fresh[0].Seq, "lastSeq": fresh[len(fresh)-1].Seq})
		if err != nil {
			return err
		}
		rows, err := b.done()
		if err != nil {
			return err
		}
		return insertRows(ctx, tx, rows)
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
func (r *Runs) ListSteps(ctx context.Context, runID uuid.UUID) (_ []*ent.AgentStep, err error) {
	defer derrors.Wrap(&err, "Runs.ListSteps(%s)", runID)
	run, err := r.get(ctx, runID, Include{Steps: true})
	if err != nil {
		return nil, err
	}
	return run.Edges.Steps, nil
}

// MaxStepPage is the most steps one page of ListStepsPage holds: a page
// is cheap (a range of the (run_id, seq) index), and large runs are read
// in few requests.
const MaxStepPage = 5000

// ListStepsPage returns at most limit of the run's steps by seq, after
// the opaque cursor of a previous page ("" for the first), and the cursor
// of the next page ("" once there are no more steps yet).
func (r *Runs) ListStepsPage(ctx context.Context, runID uuid.UUID, limit int, cursor string) (_ []*ent.AgentStep, next string, err error) {
	defer derrors.Wrap(&err, "Runs.ListStepsPage(%s)", runID)
	if limit < 1 || limit > MaxStepPage {
		return nil, "", derrors.Field("limit", "must be between 1 and %d", MaxStepPage)
	}
	after := 0
	if cursor != "" {
		n, ok := decodeSeqCursor(cursor)
		if !ok {
			return nil, "", derrors.Field("cursor", "is not a cursor this service returned")
		}
		after = n
	}
	run, err := r.get(ctx, runID, Include{})
	if err != nil {
		return nil, "", err
	}
	steps, err := r.s.client.AgentStep.Query().
		Where(agentstep.RunID(run.ID), agentstep.TenantID(run.TenantID), agentstep.SeqGT(after)).
		Order(agentstep.BySeq()).Limit(limit + 1).All(ctx)
	if err != nil {
		return nil, "", translate(err)
	}
	if len(steps) > limit {
		steps = steps[:limit]
		next = encodeSeqCursor(steps[limit-1].Seq)
	}
	return steps, next, nil
}

// AppendToolCalls records tool calls of the run with id. A finished run
// takes no more.
func (r *Runs) AppendToolCalls(ctx context.Context, id uuid.UUID, in []NewToolCall) (_ []*ent.ToolCall, err error) {
	defer derrors.Wrap(&err, "Runs.AppendToolCalls(%s)", id)
	if len(in) == 0 {
		return nil, derrors.Field("toolCalls", "must not be empty")
	}
	if err := checkItems("toolCalls", len(in)); err != nil {
		return nil, err
	}
	var out []*ent.ToolCall
	err = r.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		run, err := r.lockRun(ctx, tx, id)
		if err != nil {
			return err
		}
		if IsTerminal(run.Status) {
			return derrors.New(derrors.Conflict, "run is %s and takes no more tool calls", run.Status)
		}
		var named []uuid.UUID
		for _, tc := range in {
			if tc.StepID != nil {
				named = append(named, *tc.StepID)
			}
		}
		ofRun, err := stepsOfRun(ctx, tx, run, named)
		if err != nil {
			return err
		}
		b := appendTo(run)
		b.addToolCalls(in, ofRun)
		if err := b.addAudit(ctx, "toolcall.record", map[string]any{"toolCalls": len(in)}); err != nil {
			return err
		}
		rows, err := b.done()
		if err != nil {
			return err
		}
		out = rows.calls
		return insertRows(ctx, tx, rows)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListToolCalls returns the run's tool calls by creation time.
func (r *Runs) ListToolCalls(ctx context.Context, runID uuid.UUID) (_ []*ent.ToolCall, err error) {
	defer derrors.Wrap(&err, "Runs.ListToolCalls(%s)", runID)
	run, err := r.get(ctx, runID, Include{ToolCalls: true})
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
