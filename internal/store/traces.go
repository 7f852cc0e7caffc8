package store

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/auditlog"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/otlp"
)

// Traces writes OpenTelemetry traces, mapped by package otlp, as runs,
// steps, tool calls and usage records.
//
// Identity. A trace is one run, whose id is derived from the tenant and
// the trace id (traceRunID); every other row's id is derived from the
// tenant, the trace id and the span id (spanRowID). Writing a span again,
// in the same request or a later one, finds its row and writes nothing:
// re-exported spans are not duplicated.
//
// Placement. The root span (the one without a parent) describes the trace's
// run: its agent name (an agent span's, else the span name), start, end,
// status and error. Until the root arrives, the run is a placeholder,
// "running". When the root is not an agent span, an agent span directly
// under it names the run instead. Every other agent span is a child run
// (parentRunId) of the run its parent is in; every other span is a step,
// a tool call, or an LLM step with a usage record, of the run its parent
// is in. A span whose parent is neither in the request nor stored goes to
// the trace's run, and stays there when its parent arrives later: only
// the nesting known when a span is written places it.
//
// Order. Steps are numbered, gap-free as always, in order of their start
// (then span id) within a request. A request whose steps start before a
// step already stored for their run renumbers that run's steps by start
// time, so that seq always follows the start time; seq is therefore stable
// only once a trace's spans have all arrived, and the seq of a realtime
// step.appended event is the one the step had when it was written.
type Traces struct{ s *Store }

// traceNamespace is the UUIDv5 namespace of the ids derived from traces.
var traceNamespace = uuid.MustParse("5f0c7d9e-3b1a-4c57-9e0b-6a2f8d4c1e73")

// traceRunID is the id of the run of trace traceID of tenant.
func traceRunID(tenant uuid.UUID, traceID string) uuid.UUID {
	return uuid.NewSHA1(traceNamespace, []byte(tenant.String()+"/"+traceID))
}

// spanRowID is the id of the step, tool call or child run of a span.
func spanRowID(tenant uuid.UUID, traceID, spanID string) uuid.UUID {
	return uuid.NewSHA1(traceNamespace, []byte(tenant.String()+"/"+traceID+"/"+spanID))
}

// usageRowID is the id of the usage record of an LLM span.
func usageRowID(tenant uuid.UUID, traceID, spanID string) uuid.UUID {
	return uuid.NewSHA1(traceNamespace, []byte(tenant.String()+"/"+traceID+"/"+spanID+"/usage"))
}

// TraceWrite is what Write wrote, for the realtime events.
type TraceWrite struct {
	// CreatedRuns are the runs created (trace runs and child runs).
	CreatedRuns []*ent.AgentRun
	// UpdatedRuns are the trace runs a root span filled in or renamed.
	UpdatedRuns []*ent.AgentRun
	Steps       []*ent.AgentStep
	ToolCalls   []*ent.ToolCall
	// Usage counts the usage records written.
	Usage int
	// Duplicates counts the spans that were stored already.
	Duplicates int
}

// traceMeta is the metadata of a trace's run.
type traceMeta struct {
	TraceID     string `json:"traceId"`
	RootSpanID  string `json:"rootSpanId,omitempty"`
	ServiceName string `json:"serviceName,omitempty"`
	// RootIsAgent says the root span is an agent span.
	RootIsAgent bool `json:"rootIsAgent,omitempty"`
	// NamedBy is the span that named the run: the root, or the agent span
	// under a root that is not one.
	NamedBy string `json:"namedBy,omitempty"`
}

// childMeta is the metadata of a child run.
type childMeta struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	ServiceName  string `json:"serviceName,omitempty"`
}

// placement is where a span's row is, or goes.
type placement struct {
	kind  otlp.Target // TargetRun for the trace's run or a child run
	runID uuid.UUID   // the run the row belongs to (for a run: the run itself)
}

// traceState is what one Write knows about one trace.
type traceState struct {
	id      string
	runID   uuid.UUID
	run     *ent.AgentRun
	meta    traceMeta
	spans   []*otlp.Span // new spans of the request, in order
	byID    map[string]*otlp.Span
	created bool
	// prefilled is the root span the new run was inserted with.
	prefilled string
	renamed   bool
	filled    bool
	minStart  time.Time
	// before is the run as stored before the request, nil when the
	// request created it.
	before *ent.AgentRun
}

// Write stores spans, all in one transaction: everything or nothing.
// Without withUsage, LLM spans are steps without their usage records (the
// caller may not record usage).
func (t *Traces) Write(ctx context.Context, spans []otlp.Span, withUsage bool) (_ *TraceWrite, err error) {
	defer derrors.Wrap(&err, "Traces.Write")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	var out *TraceWrite
	err = t.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		var err error
		out, err = t.write(ctx, tx, tenantID, spans, withUsage)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *Traces) write(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, spans []otlp.Span, withUsage bool) (*TraceWrite, error) {
	out := &TraceWrite{}
	// Group the spans by trace, dropping repeats within the request.
	traces := map[string]*traceState{}
	var order []*traceState
	for i := range spans {
		s := &spans[i]
		tr := traces[s.TraceID]
		if tr == nil {
			tr = &traceState{id: s.TraceID, runID: traceRunID(tenantID, s.TraceID), byID: map[string]*otlp.Span{}, minStart: s.Start}
			traces[s.TraceID] = tr
			order = append(order, tr)
		}
		if tr.byID[s.SpanID] != nil {
			out.Duplicates++
			continue
		}
		tr.byID[s.SpanID] = s
		tr.spans = append(tr.spans, s)
		if s.Start.Before(tr.minStart) {
			tr.minStart = s.Start
		}
	}
	// Lock order: by run id, so that two requests never wait on each other
	// in a cycle.
	sort.Slice(order, func(i, j int) bool { return order[i].runID.String() < order[j].runID.String() })
	created := now()

	// 1. Every trace's run exists and is locked. A new one is inserted as
	// its root span describes it when the root is in the request (the
	// common case: one request per trace, no update to follow), else as a
	// placeholder.
	placeholders := make([]*ent.AgentRunCreate, 0, len(order))
	runIDs := make([]uuid.UUID, 0, len(order))
	for _, tr := range order {
		draft := &traceState{id: tr.id, runID: tr.runID, byID: tr.byID, meta: traceMeta{TraceID: tr.id, ServiceName: tr.spans[0].ServiceName},
			run: &ent.AgentRun{AgentName: "trace " + tr.id, Status: agentrun.StatusRunning, StartedAt: timePtr(utcTime(tr.minStart))}}
		for _, s := range tr.spans {
			if s.ParentSpanID == "" {
				t.fillRun(draft, s)
				tr.prefilled = s.SpanID
			}
		}
		if tr.prefilled != "" && !draft.meta.RootIsAgent {
			for _, s := range tr.spans {
				if s.Target == otlp.TargetRun && s.ParentSpanID == tr.prefilled {
					t.nameRun(draft, s)
					break
				}
			}
		}
		r := draft.run
		meta, _ := json.Marshal(draft.meta)
		c := tx.AgentRun.Create().
			SetID(tr.runID).SetTenantID(tenantID).SetCreatedAt(created).SetUpdatedAt(created).
			SetAgentName(r.AgentName).SetStatus(r.Status).SetMetadata(meta).
			SetNillableStartedAt(r.StartedAt).SetNillableEndedAt(r.EndedAt).SetNillableError(r.Error).
			SetNillableModel(r.Model).SetNillableUserID(r.UserID)
		if r.Input != nil {
			c.SetInput(r.Input)
		}
		if r.Output != nil {
			c.SetOutput(r.Output)
		}
		placeholders = append(placeholders, c)
		runIDs = append(runIDs, tr.runID)
	}
	if err := tx.AgentRun.CreateBulk(placeholders...).OnConflict(entsql.ConflictColumns(agentrun.FieldID)).DoNothing().Exec(ctx); err != nil {
		return nil, err
	}
	q := tx.AgentRun.Query().Where(agentrun.IDIn(runIDs...), agentrun.TenantID(tenantID)).Order(agentrun.ByID())
	if t.s.dialect == dialect.Postgres {
		q.ForUpdate()
	}
	runs, err := q.All(ctx)
	if err != nil {
		return nil, err
	}
	if len(runs) != len(order) {
		return nil, derrors.New(derrors.Conflict, "a trace's run id is taken")
	}
	for i, tr := range order {
		tr.run = runs[i]
		_ = json.Unmarshal(tr.run.Metadata, &tr.meta)
		tr.created = tr.run.CreatedAt.Equal(created)
		if !tr.created {
			tr.prefilled = ""
			before := *tr.run
			tr.before = &before
		}
	}

	// 2. What is stored already: the spans of the request (duplicates)
	// and the parents they name that are not in the request.
	var lookup []uuid.UUID
	for _, tr := range order {
		if tr.created {
			continue // nothing of a trace whose run is new can be stored
		}
		for _, s := range tr.spans {
			lookup = append(lookup, spanRowID(tenantID, tr.id, s.SpanID))
			if p := s.ParentSpanID; p != "" && tr.byID[p] == nil {
				lookup = append(lookup, spanRowID(tenantID, tr.id, p))
			}
		}
	}
	stored, err := t.storedPlacements(ctx, tx, tenantID, lookup)
	if err != nil {
		return nil, err
	}

	// 3. Place every new span, then build its rows.
	b := &traceRows{tenantID: tenantID, created: created, withUsage: withUsage, newRuns: map[uuid.UUID]bool{},
		nextSeq: map[uuid.UUID]int{}, minStart: map[uuid.UUID]time.Time{}}
	for _, tr := range order {
		if tr.created {
			b.newRuns[tr.runID] = true
		}
	}
	for _, tr := range order {
		placed := map[string]placement{}
		var place func(s *otlp.Span) placement
		place = func(s *otlp.Span) placement {
			if p, ok := placed[s.SpanID]; ok {
				return p
			}
			var p placement
			switch {
			case s.ParentSpanID == "":
				p = placement{kind: otlp.TargetRun, runID: tr.runID}
			case s.Target == otlp.TargetRun:
				p = placement{kind: otlp.TargetRun, runID: spanRowID(tenantID, tr.id, s.SpanID)}
			default:
				p = placement{kind: s.Target, runID: t.parentRun(tr, s, place, stored, tenantID)}
			}
			placed[s.SpanID] = p
			return p
		}
		for _, s := range tr.spans {
			rowID := spanRowID(tenantID, tr.id, s.SpanID)
			if s.ParentSpanID == "" {
				if tr.prefilled == s.SpanID {
					continue // written with the run
				}
				if tr.meta.RootSpanID == s.SpanID {
					out.Duplicates++
					continue
				}
			} else if _, ok := stored[rowID]; ok {
				out.Duplicates++
				continue
			}
			p := place(s)
			switch {
			case s.ParentSpanID == "":
				t.fillRun(tr, s)
			case s.Target == otlp.TargetRun:
				parent := t.parentRun(tr, s, place, stored, tenantID)
				b.addChildRun(tr, s, rowID, parent)
				if t.namesRun(tr, s, stored, tenantID) {
					t.nameRun(tr, s)
				}
			case s.Target == otlp.TargetToolCall:
				b.addToolCall(tr, s, rowID, p.runID, t.stepOf(tr, s, p.runID, place, stored, tenantID))
			default:
				b.addStep(tr, s, rowID, p.runID)
			}
		}
	}

	// An agent span stored before its root, when the root is not an agent
	// span, names the trace's run once the root arrives.
	for _, tr := range order {
		if !tr.filled || tr.meta.RootIsAgent || tr.meta.NamedBy != tr.meta.RootSpanID {
			continue
		}
		children, err := tx.AgentRun.Query().Where(agentrun.ParentRunID(tr.runID), agentrun.TenantID(tenantID)).
			Order(agentrun.ByStartedAt(), agentrun.ByID()).All(ctx)
		if err != nil {
			return nil, err
		}
		for _, c := range children {
			var m childMeta
			if json.Unmarshal(c.Metadata, &m) == nil && m.ParentSpanID == tr.meta.RootSpanID {
				agent := &otlp.Span{SpanID: m.SpanID, AgentName: c.AgentName}
				if c.Model != nil {
					agent.Model = *c.Model
				}
				t.nameRun(tr, agent)
				break
			}
		}
	}

	// 4. Number the new steps after each run's last, in start order.
	if err := t.number(ctx, tx, b); err != nil {
		return nil, err
	}
	// 5. Write: the trace runs' changes, the audit rows (one per trace
	// written to), then the new rows.
	var audits []*ent.AuditLog
	for _, tr := range order {
		if tr.filled || tr.renamed {
			if err := t.saveRun(ctx, tx, tr); err != nil {
				return nil, err
			}
		}
		n := b.perRun[tr.runID]
		if !tr.created && !tr.filled && !tr.renamed && n == (rowCounts{}) {
			continue
		}
		a, err := auditRow(ctx, created, auditEntry{action: "trace.ingest", resourceType: "run", resourceID: tr.runID,
			changes: map[string]any{"traceId": tr.id, "created": tr.created, "filled": tr.filled || tr.prefilled != "", "steps": n.steps,
				"toolCalls": n.calls, "usage": n.usage, "childRuns": n.children}})
		if err != nil {
			return nil, err
		}
		audits = append(audits, a)
		if tr.created {
			out.CreatedRuns = append(out.CreatedRuns, tr.run)
		} else if tr.filled || tr.renamed {
			out.UpdatedRuns = append(out.UpdatedRuns, tr.run)
		}
	}
	if err := t.account(ctx, tx, order, b); err != nil {
		return nil, err
	}
	if err := b.insertChildRuns(ctx, tx); err != nil {
		return nil, err
	}
	if t.s.dialect == dialect.Postgres {
		err = t.insertPostgres(ctx, tx, b, audits)
	} else {
		err = b.insert(ctx, tx, audits)
	}
	if err != nil {
		return nil, err
	}
	for _, runID := range b.renumber {
		if err := t.renumber(ctx, tx, runID); err != nil {
			return nil, err
		}
	}
	out.CreatedRuns = append(out.CreatedRuns, b.children...)
	out.Steps, out.ToolCalls, out.Usage = b.steps, b.calls, len(b.usage)
	return out, nil
}

// account keeps the rollups exact for what the write changes, inside tx
// and before the new rows are inserted (so that what is stored is the
// "before"): every run it touches (a trace run it creates, fills in or
// renames, a child run, a run given tool calls) leaves the run rollups as
// it was stored, with its tool calls then, and enters them as it is now,
// with its new tool calls too; a run whose agent name changed moves its
// stored usage and first-usage marks to the new name; and the new usage
// rows are recorded under their run's agent name as it is now. A usage
// row stored already (its run was deleted, then the trace sent again) is
// dropped from the write: it is neither inserted nor counted.
func (t *Traces) account(ctx context.Context, tx *ent.Tx, order []*traceState, b *traceRows) error {
	before := map[uuid.UUID]*ent.AgentRun{} // runs stored before the write
	after := map[uuid.UUID]*ent.AgentRun{}  // every run the write knows, as it is now
	touched := map[uuid.UUID]bool{}
	for _, tr := range order {
		after[tr.runID] = tr.run
		if tr.before != nil {
			before[tr.runID] = tr.before
		}
		if tr.created || tr.filled || tr.renamed {
			touched[tr.runID] = true
		}
	}
	for _, c := range b.children {
		after[c.ID], touched[c.ID] = c, true
	}
	type counts struct{ total, failed int64 }
	added := map[uuid.UUID]*counts{}
	for _, c := range b.calls {
		n := added[c.RunID]
		if n == nil {
			n = &counts{}
			added[c.RunID] = n
		}
		n.total++
		if c.Status == toolcall.StatusFailed {
			n.failed++
		}
		touched[c.RunID] = true
	}
	// The stored runs that are not trace runs (child runs of an earlier
	// request) and get tool calls or usage: locked, as the trace runs are.
	var others []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for id := range touched {
		if after[id] == nil && !seen[id] {
			seen[id] = true
			others = append(others, id)
		}
	}
	for _, u := range b.usage {
		if after[*u.RunID] == nil && !seen[*u.RunID] {
			seen[*u.RunID] = true
			others = append(others, *u.RunID)
		}
	}
	sort.Slice(others, func(i, j int) bool { return others[i].String() < others[j].String() })
	for _, part := range chunks(others, 1000) {
		q := tx.AgentRun.Query().Where(agentrun.IDIn(part...), agentrun.TenantID(b.tenantID)).Order(agentrun.ByID())
		if t.s.dialect == dialect.Postgres {
			q.ForUpdate()
		}
		runs, err := q.All(ctx)
		if err != nil {
			return err
		}
		for _, r := range runs {
			before[r.ID], after[r.ID] = r, r
		}
	}
	// The tool calls of the touched stored runs, before the write.
	stored := map[uuid.UUID]*counts{}
	var ids []uuid.UUID
	for id := range touched {
		if before[id] != nil {
			ids = append(ids, id)
		}
	}
	for _, part := range chunks(ids, 1000) {
		var rows []struct {
			RunID  uuid.UUID       `json:"run_id"`
			Status toolcall.Status `json:"status"`
			Count  int64           `json:"count"`
		}
		err := tx.ToolCall.Query().Where(toolcall.RunIDIn(part...), toolcall.TenantID(b.tenantID)).
			GroupBy(toolcall.FieldRunID, toolcall.FieldStatus).Aggregate(ent.Count()).Scan(ctx, &rows)
		if err != nil {
			return err
		}
		for _, r := range rows {
			n := stored[r.RunID]
			if n == nil {
				n = &counts{}
				stored[r.RunID] = n
			}
			n.total += r.Count
			if r.Status == toolcall.StatusFailed {
				n.failed += r.Count
			}
		}
	}
	d := runDeltas{}
	u := usageDeltas{}
	for id := range touched {
		now := after[id]
		if now == nil {
			return derrors.New(derrors.Unavailable, "a trace's run vanished; retry")
		}
		var had, add counts
		if n := stored[id]; n != nil {
			had = *n
		}
		if n := added[id]; n != nil {
			add = *n
		}
		if was := before[id]; was != nil {
			d.addFacts(factsOf(was, had.total, had.failed), -1)
			if was.AgentName != now.AgentName {
				if err := t.s.Rollups.moveUsage(ctx, tx, u, b.tenantID, id, was.AgentName, now.AgentName); err != nil {
					return err
				}
			}
		}
		d.addFacts(factsOf(now, had.total+add.total, had.failed+add.failed), +1)
	}
	if err := d.write(ctx, tx); err != nil {
		return err
	}
	if len(b.usage) > 0 {
		usageIDs := make([]uuid.UUID, len(b.usage))
		for i, m := range b.usage {
			if after[*m.RunID] == nil {
				return derrors.New(derrors.Unavailable, "a trace's run vanished; retry")
			}
			usageIDs[i] = m.ID
		}
		taken := map[uuid.UUID]bool{}
		for _, part := range chunks(usageIDs, 1000) {
			got, err := tx.UsageMetric.Query().Where(usagemetric.IDIn(part...), usagemetric.TenantID(b.tenantID)).IDs(ctx)
			if err != nil {
				return err
			}
			for _, id := range got {
				taken[id] = true
			}
		}
		if len(taken) > 0 {
			kept := b.usage[:0]
			for _, m := range b.usage {
				if !taken[m.ID] {
					kept = append(kept, m)
				}
			}
			b.usage = kept
		}
		err := t.s.Rollups.addUsage(ctx, tx, u, b.usage, func(m *ent.UsageMetric) string { return after[*m.RunID].AgentName })
		if err != nil {
			return err
		}
	}
	return u.write(ctx, tx)
}

// storedPlacements returns where the rows of ids are, for those stored:
// as child runs, steps or tool calls.
func (t *Traces) storedPlacements(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]placement, error) {
	out := map[uuid.UUID]placement{}
	for _, part := range chunks(ids, 1000) {
		runs, err := tx.AgentRun.Query().Where(agentrun.IDIn(part...), agentrun.TenantID(tenantID)).
			Select(agentrun.FieldID).All(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range runs {
			out[r.ID] = placement{kind: otlp.TargetRun, runID: r.ID}
		}
		steps, err := tx.AgentStep.Query().Where(agentstep.IDIn(part...), agentstep.TenantID(tenantID)).
			Select(agentstep.FieldID, agentstep.FieldRunID, agentstep.FieldType).All(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range steps {
			out[s.ID] = placement{kind: otlp.TargetStep, runID: s.RunID}
		}
		calls, err := tx.ToolCall.Query().Where(toolcall.IDIn(part...), toolcall.TenantID(tenantID)).
			Select(toolcall.FieldID, toolcall.FieldRunID).All(ctx)
		if err != nil {
			return nil, err
		}
		for _, c := range calls {
			out[c.ID] = placement{kind: otlp.TargetToolCall, runID: c.RunID}
		}
	}
	return out, nil
}

// parentRun is the run s belongs to: its parent's run, or the run its
// parent is when the parent is an agent span; the trace's run when the
// parent is unknown or the root.
func (t *Traces) parentRun(tr *traceState, s *otlp.Span, place func(*otlp.Span) placement,
	stored map[uuid.UUID]placement, tenantID uuid.UUID) uuid.UUID {
	pid := s.ParentSpanID
	if pid == tr.meta.RootSpanID {
		return tr.runID
	}
	if p := tr.byID[pid]; p != nil {
		return place(p).runID
	}
	if p, ok := stored[spanRowID(tenantID, tr.id, pid)]; ok {
		return p.runID
	}
	return tr.runID
}

// stepOf is the step a tool call belongs to: its parent, when that is a
// step of the same run.
func (t *Traces) stepOf(tr *traceState, s *otlp.Span, runID uuid.UUID, place func(*otlp.Span) placement,
	stored map[uuid.UUID]placement, tenantID uuid.UUID) *uuid.UUID {
	pid := s.ParentSpanID
	id := spanRowID(tenantID, tr.id, pid)
	if p := tr.byID[pid]; p != nil && p.ParentSpanID != "" {
		if pp := place(p); (pp.kind == otlp.TargetStep || pp.kind == otlp.TargetLLM) && pp.runID == runID {
			return &id
		}
		return nil
	}
	if p, ok := stored[id]; ok && p.kind == otlp.TargetStep && p.runID == runID {
		return &id
	}
	return nil
}

// namesRun reports whether the agent span s, a child of the root, names
// the trace's run: when the root is not an agent span and no earlier
// agent span named it.
func (t *Traces) namesRun(tr *traceState, s *otlp.Span, stored map[uuid.UUID]placement, tenantID uuid.UUID) bool {
	if tr.meta.NamedBy != "" && tr.meta.NamedBy != tr.meta.RootSpanID {
		return false // an agent span named it already
	}
	root := tr.byID[s.ParentSpanID]
	switch {
	case root != nil:
		return root.ParentSpanID == "" && root.Target != otlp.TargetRun
	case tr.meta.RootSpanID != "" && s.ParentSpanID == tr.meta.RootSpanID:
		return !tr.meta.RootIsAgent
	}
	return false
}

// fillRun describes the trace's run by its root span s.
func (t *Traces) fillRun(tr *traceState, s *otlp.Span) {
	r := tr.run
	tr.filled = true
	tr.meta.RootSpanID = s.SpanID
	tr.meta.RootIsAgent = s.Target == otlp.TargetRun
	if s.ServiceName != "" {
		tr.meta.ServiceName = s.ServiceName
	}
	if tr.meta.NamedBy == "" || tr.meta.NamedBy == s.SpanID || s.Target == otlp.TargetRun {
		r.AgentName = s.AgentName
		if r.AgentName == "" {
			r.AgentName = s.Name
		}
		tr.meta.NamedBy = s.SpanID
	}
	r.Status = agentrun.StatusSucceeded
	r.Error = nil
	if s.Failed {
		r.Status = agentrun.StatusFailed
		r.Error = &s.Error
	}
	r.StartedAt, r.EndedAt = timePtr(utcTime(s.Start)), timePtr(utcTime(s.End))
	if s.Model != "" {
		r.Model = &s.Model
	}
	if s.UserID != nil {
		r.UserID = s.UserID
	}
	if s.Input != nil {
		r.Input = s.Input
	}
	if s.Output != nil {
		r.Output = s.Output
	}
	r.Metadata, _ = json.Marshal(tr.meta)
}

// nameRun gives the trace's run the name of the agent span s under a root
// that is not an agent span.
func (t *Traces) nameRun(tr *traceState, s *otlp.Span) {
	tr.renamed = true
	tr.run.AgentName = s.AgentName
	tr.meta.NamedBy = s.SpanID
	if s.Model != "" && tr.run.Model == nil {
		tr.run.Model = &s.Model
	}
	tr.run.Metadata, _ = json.Marshal(tr.meta)
}

// saveRun writes the trace's run as fillRun and nameRun left it.
func (t *Traces) saveRun(ctx context.Context, tx *ent.Tx, tr *traceState) error {
	r := tr.run
	u := tx.AgentRun.UpdateOneID(r.ID).Where(agentrun.TenantID(r.TenantID)).
		SetAgentName(r.AgentName).SetStatus(r.Status).SetMetadata(r.Metadata).
		SetNillableStartedAt(r.StartedAt).SetNillableEndedAt(r.EndedAt).
		SetNillableModel(r.Model).SetNillableUserID(r.UserID)
	if r.Error != nil {
		u.SetError(*r.Error)
	} else {
		u.ClearError()
	}
	if r.Input != nil {
		u.SetInput(r.Input)
	}
	if r.Output != nil {
		u.SetOutput(r.Output)
	}
	saved, err := u.Save(ctx)
	if err != nil {
		return err
	}
	tr.run = saved
	return nil
}

// number gives each new step its seq: after the last stored step of its
// run, in order of start time then span id. A run whose stored steps
// include one that starts after a new step is renumbered once written.
func (t *Traces) number(ctx context.Context, tx *ent.Tx, b *traceRows) error {
	runs := make([]uuid.UUID, 0, len(b.minStart))
	for id := range b.minStart {
		if !b.newRuns[id] { // a run new in this request has no steps yet
			runs = append(runs, id)
		}
	}
	var last []struct {
		RunID uuid.UUID `json:"run_id"`
		Max   int       `json:"max"`
	}
	for _, part := range chunks(runs, 1000) {
		var got []struct {
			RunID uuid.UUID `json:"run_id"`
			Max   int       `json:"max"`
		}
		err := tx.AgentStep.Query().Where(agentstep.RunIDIn(part...), agentstep.TenantID(b.tenantID)).
			GroupBy(agentstep.FieldRunID).Aggregate(ent.Max(agentstep.FieldSeq)).Scan(ctx, &got)
		if err != nil {
			return err
		}
		last = append(last, got...)
	}
	for _, l := range last {
		b.nextSeq[l.RunID] = l.Max
		later, err := tx.AgentStep.Query().
			Where(agentstep.RunID(l.RunID), agentstep.StartedAtGT(b.minStart[l.RunID])).Exist(ctx)
		if err != nil {
			return err
		}
		if later {
			b.renumber = append(b.renumber, l.RunID)
		}
	}
	sort.SliceStable(b.steps, func(i, j int) bool {
		x, y := b.steps[i], b.steps[j]
		if !x.StartedAt.Equal(*y.StartedAt) {
			return x.StartedAt.Before(*y.StartedAt)
		}
		return b.spanOf[x.ID] < b.spanOf[y.ID]
	})
	for _, st := range b.steps {
		b.nextSeq[st.RunID]++
		st.Seq = b.nextSeq[st.RunID]
	}
	sort.Slice(b.renumber, func(i, j int) bool { return b.renumber[i].String() < b.renumber[j].String() })
	return nil
}

// renumber numbers the steps of run runID 1, 2, … by start time (steps
// without one last), keeping the order of equal starts: first every seq
// is negated, so that the second statement never meets a seq it assigns.
func (t *Traces) renumber(ctx context.Context, tx *ent.Tx, runID uuid.UUID) error {
	table := `"` + agentstep.Table + `"`
	if t.s.pgSchema != "" {
		table = `"` + t.s.pgSchema + `".` + table
	}
	p := func(n string) string {
		if t.s.dialect == dialect.Postgres {
			return "$" + n
		}
		return "?"
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET seq = -seq WHERE run_id = `+p("1"), runID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE `+table+` SET seq = r.rn FROM (
  SELECT id, row_number() OVER (ORDER BY started_at ASC NULLS LAST, seq DESC) AS rn FROM `+table+` WHERE run_id = `+p("1")+`
) AS r WHERE `+table+`.id = r.id`, runID)
	return err
}

// rowCounts counts the rows written to one trace's run.
type rowCounts struct{ steps, calls, usage, children int }

// traceRows are the rows of one Write.
type traceRows struct {
	tenantID  uuid.UUID
	created   time.Time
	withUsage bool
	// newRuns are the runs this request creates.
	newRuns  map[uuid.UUID]bool
	children []*ent.AgentRun
	steps    []*ent.AgentStep
	calls    []*ent.ToolCall
	usage    []*ent.UsageMetric
	spanOf   map[uuid.UUID]string
	// nextSeq is the last seq used per run; minStart the earliest start
	// of a new step per run.
	nextSeq  map[uuid.UUID]int
	minStart map[uuid.UUID]time.Time
	renumber []uuid.UUID
	perRun   map[uuid.UUID]rowCounts
}

func (b *traceRows) count(tr *traceState, f func(*rowCounts)) {
	if b.perRun == nil {
		b.perRun = map[uuid.UUID]rowCounts{}
	}
	c := b.perRun[tr.runID]
	f(&c)
	b.perRun[tr.runID] = c
}

func (b *traceRows) addChildRun(tr *traceState, s *otlp.Span, id, parent uuid.UUID) {
	meta, _ := json.Marshal(childMeta{TraceID: tr.id, SpanID: s.SpanID, ParentSpanID: s.ParentSpanID, ServiceName: s.ServiceName})
	r := &ent.AgentRun{
		ID: id, TenantID: b.tenantID, CreatedAt: b.created, UpdatedAt: b.created, AgentName: s.AgentName,
		Status: agentrun.StatusSucceeded, Input: s.Input, Output: s.Output, Metadata: meta,
		UserID: s.UserID, ParentRunID: &parent, StartedAt: timePtr(utcTime(s.Start)), EndedAt: timePtr(utcTime(s.End)),
	}
	if s.Failed {
		r.Status, r.Error = agentrun.StatusFailed, &s.Error
	}
	if s.Model != "" {
		r.Model = &s.Model
	}
	b.children = append(b.children, r)
	b.newRuns[id] = true
	b.count(tr, func(c *rowCounts) { c.children++ })
}

func (b *traceRows) addStep(tr *traceState, s *otlp.Span, id, runID uuid.UUID) {
	st := &ent.AgentStep{
		ID: id, TenantID: b.tenantID, CreatedAt: b.created, RunID: runID, Type: s.StepType, Name: &s.Name,
		Status: agentstep.StatusSucceeded, Input: s.Input, Output: s.Output,
		StartedAt: timePtr(utcTime(s.Start)), EndedAt: timePtr(utcTime(s.End)),
	}
	if s.Failed {
		st.Status, st.Error = agentstep.StatusFailed, &s.Error
	}
	b.steps = append(b.steps, st)
	if b.spanOf == nil {
		b.spanOf = map[uuid.UUID]string{}
	}
	b.spanOf[id] = s.SpanID
	if m, ok := b.minStart[runID]; !ok || st.StartedAt.Before(m) {
		b.minStart[runID] = *st.StartedAt
	}
	b.count(tr, func(c *rowCounts) { c.steps++ })
	if !b.withUsage || s.Target != otlp.TargetLLM || (s.Model == "" && s.InputTokens == 0 && s.OutputTokens == 0) {
		return
	}
	model := s.Model
	if model == "" {
		model = "unknown"
	}
	rid := runID
	b.usage = append(b.usage, &ent.UsageMetric{
		ID: usageRowID(b.tenantID, tr.id, s.SpanID), TenantID: b.tenantID, RunID: &rid, Model: model,
		InputTokens: s.InputTokens, OutputTokens: s.OutputTokens, TotalTokens: s.InputTokens + s.OutputTokens,
		RecordedAt: utcTime(s.End),
	})
	b.count(tr, func(c *rowCounts) { c.usage++ })
}

func (b *traceRows) addToolCall(tr *traceState, s *otlp.Span, id, runID uuid.UUID, stepID *uuid.UUID) {
	d := s.End.Sub(s.Start).Milliseconds()
	tc := &ent.ToolCall{
		ID: id, TenantID: b.tenantID, CreatedAt: b.created, RunID: runID, StepID: stepID, ToolName: s.ToolName,
		Arguments: s.Input, Result: s.Output, Status: toolcall.StatusSucceeded, DurationMs: &d,
		StartedAt: timePtr(utcTime(s.Start)), EndedAt: timePtr(utcTime(s.End)),
	}
	if s.Failed {
		tc.Status, tc.Error = toolcall.StatusFailed, &s.Error
	}
	b.calls = append(b.calls, tc)
	b.count(tr, func(c *rowCounts) { c.calls++ })
}

// insertChildRuns writes the child runs, parents before children.
func (b *traceRows) insertChildRuns(ctx context.Context, tx *ent.Tx) error {
	// A child run's parent may itself be a child run of this request.
	sort.SliceStable(b.children, func(i, j int) bool { return b.children[i].StartedAt.Before(*b.children[j].StartedAt) })
	for _, part := range chunks(b.children, 500) {
		builders := make([]*ent.AgentRunCreate, len(part))
		for i, r := range part {
			c := tx.AgentRun.Create().SetID(r.ID).SetTenantID(r.TenantID).SetCreatedAt(r.CreatedAt).
				SetUpdatedAt(r.UpdatedAt).SetAgentName(r.AgentName).SetStatus(r.Status).SetMetadata(r.Metadata).
				SetNillableError(r.Error).SetNillableModel(r.Model).SetNillableUserID(r.UserID).
				SetNillableParentRunID(r.ParentRunID).SetNillableStartedAt(r.StartedAt).SetNillableEndedAt(r.EndedAt)
			if r.Input != nil {
				c.SetInput(r.Input)
			}
			if r.Output != nil {
				c.SetOutput(r.Output)
			}
			builders[i] = c
		}
		if err := tx.AgentRun.CreateBulk(builders...).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// insert writes the steps, tool calls, usage records and audit rows with
// ent's builders, in statements of at most 500 rows.
func (b *traceRows) insert(ctx context.Context, tx *ent.Tx, audits []*ent.AuditLog) error {
	rows := &runRows{}
	for _, part := range chunks(b.steps, 500) {
		rows.steps = part
		if err := insertSteps(ctx, tx, rows); err != nil {
			return err
		}
	}
	rows.steps = nil
	for _, part := range chunks(b.calls, 500) {
		rows.calls = part
		if err := insertToolCalls(ctx, tx, rows); err != nil {
			return err
		}
	}
	for _, part := range chunks(b.usage, 500) {
		builders := make([]*ent.UsageMetricCreate, len(part))
		for i, u := range part {
			builders[i] = tx.UsageMetric.Create().SetID(u.ID).SetTenantID(u.TenantID).SetNillableRunID(u.RunID).
				SetModel(u.Model).SetInputTokens(u.InputTokens).SetOutputTokens(u.OutputTokens).
				SetTotalTokens(u.TotalTokens).SetRecordedAt(u.RecordedAt)
		}
		if err := tx.UsageMetric.CreateBulk(builders...).OnConflict(entsql.ConflictColumns(usagemetric.FieldID)).DoNothing().Exec(ctx); err != nil {
			return err
		}
	}
	return insertAudits(ctx, tx, audits)
}

// insertPostgres writes the steps, tool calls, usage records and audit
// rows in one statement of data-modifying CTEs over arrays, as
// insertRunPostgres does for a run: one round trip instead of four ent
// builders, which pass every row through the privacy policy (the rows
// were built with the viewer's tenant and validated values by
// construction). About 4x the throughput of the builders on a 100-span
// request.
func (t *Traces) insertPostgres(ctx context.Context, tx *ent.Tx, b *traceRows, audits []*ent.AuditLog) error {
	if len(b.steps)+len(b.calls)+len(b.usage)+len(audits) == 0 {
		return nil
	}
	n := len(b.steps)
	sID, sRun, sSeq, sType, sName, sStatus := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]int32, n), make([]string, n), make([]*string, n), make([]string, n)
	sIn, sOut, sErr, sStart, sEnd := make([]*string, n), make([]*string, n), make([]*string, n), make([]*time.Time, n), make([]*time.Time, n)
	for i, x := range b.steps {
		sID[i], sRun[i], sSeq[i], sType[i], sName[i], sStatus[i] = x.ID, x.RunID, int32(x.Seq), x.Type, x.Name, string(x.Status)
		sIn[i], sOut[i], sErr[i], sStart[i], sEnd[i] = jsonText(x.Input), jsonText(x.Output), x.Error, x.StartedAt, x.EndedAt
	}
	m := len(b.calls)
	cID, cRun, cStep, cName, cArgs, cRes := make([]uuid.UUID, m), make([]uuid.UUID, m), make([]*uuid.UUID, m), make([]string, m), make([]*string, m), make([]*string, m)
	cStatus, cErr, cDur, cStart, cEnd := make([]string, m), make([]*string, m), make([]*int64, m), make([]*time.Time, m), make([]*time.Time, m)
	for i, x := range b.calls {
		cID[i], cRun[i], cStep[i], cName[i], cArgs[i], cRes[i] = x.ID, x.RunID, x.StepID, x.ToolName, jsonText(x.Arguments), jsonText(x.Result)
		cStatus[i], cErr[i], cDur[i], cStart[i], cEnd[i] = string(x.Status), x.Error, x.DurationMs, x.StartedAt, x.EndedAt
	}
	k := len(b.usage)
	uID, uRun, uModel, uIn, uOut, uTotal, uAt := make([]uuid.UUID, k), make([]*uuid.UUID, k), make([]string, k), make([]int64, k), make([]int64, k), make([]int64, k), make([]time.Time, k)
	for i, x := range b.usage {
		uID[i], uRun[i], uModel[i], uIn[i], uOut[i], uTotal[i], uAt[i] = x.ID, x.RunID, x.Model, x.InputTokens, x.OutputTokens, x.TotalTokens, x.RecordedAt
	}
	a := len(audits)
	aID, aActor, aRole, aAction, aType, aRes := make([]uuid.UUID, a), make([]*string, a), make([]string, a), make([]string, a), make([]string, a), make([]string, a)
	aReq, aIP, aUA, aChanges := make([]*string, a), make([]*string, a), make([]*string, a), make([]*string, a)
	for i, x := range audits {
		aID[i], aActor[i], aRole[i], aAction[i], aType[i], aRes[i] = x.ID, x.ActorID, x.ActorRole, x.Action, x.ResourceType, x.ResourceID
		aReq[i], aIP[i], aUA[i], aChanges[i] = x.RequestID, x.IP, x.UserAgent, jsonText(x.Changes)
	}
	_, err := tx.ExecContext(ctx, t.insertSQL(), b.tenantID, b.created,
		sID, sRun, sSeq, sType, sName, sStatus, sIn, sOut, sErr, sStart, sEnd,
		cID, cRun, cStep, cName, cArgs, cRes, cStatus, cErr, cDur, cStart, cEnd,
		uID, uRun, uModel, uIn, uOut, uTotal, uAt,
		aID, aActor, aRole, aAction, aType, aRes, aReq, aIP, aUA, aChanges)
	return err
}

// insertSQL is the statement of insertPostgres, in the store's schema.
func (t *Traces) insertSQL() string {
	q := func(table string) string { return `"` + t.s.pgSchema + `"."` + table + `"` }
	return `WITH steps AS (
  INSERT INTO ` + q(agentstep.Table) + ` (id, tenant_id, created_at, run_id, seq, type, name, status, input, output, error, started_at, ended_at)
  SELECT u.id, $1, $2, u.run_id, u.seq, u.type, u.name, u.status, u.input::jsonb, u.output::jsonb, u.error, u.started_at, u.ended_at
  FROM unnest($3::uuid[], $4::uuid[], $5::int4[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[])
    AS u(id, run_id, seq, type, name, status, input, output, error, started_at, ended_at)
), calls AS (
  INSERT INTO ` + q(toolcall.Table) + ` (id, tenant_id, created_at, run_id, step_id, tool_name, arguments, result, status, error, duration_ms, started_at, ended_at)
  SELECT u.id, $1, $2, u.run_id, u.step_id, u.tool_name, u.arguments::jsonb, u.result::jsonb, u.status, u.error, u.duration_ms, u.started_at, u.ended_at
  FROM unnest($14::uuid[], $15::uuid[], $16::uuid[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::int8[], $23::timestamptz[], $24::timestamptz[])
    AS u(id, run_id, step_id, tool_name, arguments, result, status, error, duration_ms, started_at, ended_at)
), usage AS (
  INSERT INTO ` + q(usagemetric.Table) + ` (id, tenant_id, run_id, model, input_tokens, output_tokens, cached_input_tokens, total_tokens, cost_usd, recorded_at)
  SELECT u.id, $1, u.run_id, u.model, u.input_tokens, u.output_tokens, 0, u.total_tokens, 0, u.recorded_at
  FROM unnest($25::uuid[], $26::uuid[], $27::text[], $28::int8[], $29::int8[], $30::int8[], $31::timestamptz[])
    AS u(id, run_id, model, input_tokens, output_tokens, total_tokens, recorded_at)
  ON CONFLICT (id) DO NOTHING
)
INSERT INTO ` + q(auditlog.Table) + ` (id, tenant_id, created_at, actor_id, actor_role, action, resource_type, resource_id, request_id, ip, user_agent, changes)
SELECT u.id, $1, $2, u.actor_id, u.actor_role, u.action, u.resource_type, u.resource_id, u.request_id, u.ip, u.user_agent, u.changes::jsonb
FROM unnest($32::uuid[], $33::text[], $34::text[], $35::text[], $36::text[], $37::text[], $38::text[], $39::text[], $40::text[], $41::text[])
  AS u(id, actor_id, actor_role, action, resource_type, resource_id, request_id, ip, user_agent, changes)`
}

// insertAudits writes audit rows in one statement.
func insertAudits(ctx context.Context, tx *ent.Tx, rows []*ent.AuditLog) error {
	if len(rows) == 0 {
		return nil
	}
	builders := make([]*ent.AuditLogCreate, len(rows))
	for i, a := range rows {
		builders[i] = tx.AuditLog.Create().SetID(a.ID).SetTenantID(a.TenantID).SetCreatedAt(a.CreatedAt).
			SetNillableActorID(a.ActorID).SetActorRole(a.ActorRole).SetAction(a.Action).
			SetResourceType(a.ResourceType).SetResourceID(a.ResourceID).SetNillableRequestID(a.RequestID).
			SetNillableIP(a.IP).SetNillableUserAgent(a.UserAgent).SetChanges(a.Changes)
	}
	return tx.AuditLog.CreateBulk(builders...).Exec(ctx)
}

// utcTime is t in UTC, truncated to the microsecond the databases keep.
func utcTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func timePtr(t time.Time) *time.Time { return &t }
