package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/internal/derrors"
)

// ExportPageSize is how many runs Export reads, writes and checkpoints at
// a time. Memory holds one page of runs and one step or tool call.
const ExportPageSize = 200

// ExportSink receives the runs of Export, oldest first: for each run, Run,
// then its steps by seq, then its tool calls by creation, then EndRun; and
// after each page, EndPage with the cursor that resumes after it.
type ExportSink interface {
	Run(*ent.AgentRun) error
	Step(*ent.AgentStep) error
	ToolCall(*ent.ToolCall) error
	EndRun() error
	EndPage(cursor string) error
}

// Export streams the viewer's tenant's runs created in w (the whole
// history for a zero window), oldest first by (createdAt, id), after the
// cursor a previous EndPage gave ("" from the start), into sink. It reads
// one page of runs per transaction and streams their steps and tool calls
// row by row, so memory does not grow with the export.
func (r *Runs) Export(ctx context.Context, w Window, after string, sink ExportSink) (err error) {
	defer derrors.Wrap(&err, "Runs.Export")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return err
	}
	var pos *cursor
	if after != "" {
		if pos, err = parseCursor(after); err != nil {
			return err
		}
	}
	for {
		n, last, err := r.exportPage(ctx, tenantID, w, pos, sink)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		pos = &last
		if err := sink.EndPage(encodeCursor(last)); err != nil {
			return err
		}
		if n < ExportPageSize {
			return nil
		}
	}
}

// parseCursor reads a cursor of encodeCursor.
func parseCursor(s string) (*cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err != nil || json.Unmarshal(b, &c) != nil || c.T.IsZero() {
		return nil, derrors.Field("cursor", "is not a cursor this service returned")
	}
	return &c, nil
}

// exportPage writes the page of runs after pos to sink, in one read-only
// transaction, and returns how many runs it wrote and the last one's
// position.
func (r *Runs) exportPage(ctx context.Context, tenantID uuid.UUID, w Window, pos *cursor, sink ExportSink) (int, cursor, error) {
	tx, err := r.s.client.Tx(ctx)
	if err != nil {
		return 0, cursor{}, translate(err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	q := tx.AgentRun.Query().Where(agentrun.TenantID(tenantID))
	if !w.From.IsZero() {
		q.Where(agentrun.CreatedAtGTE(w.From))
	}
	if !w.To.IsZero() {
		q.Where(agentrun.CreatedAtLT(w.To))
	}
	if pos != nil {
		// created_at >= T bounds the index range scan; the OR alone would
		// make every page scan the tenant's runs from its first.
		q.Where(agentrun.CreatedAtGTE(pos.T), agentrun.Or(
			agentrun.CreatedAtGT(pos.T),
			agentrun.IDGT(pos.ID),
		))
	}
	runs, err := q.Order(agentrun.ByCreatedAt(), agentrun.ByID()).Limit(ExportPageSize).All(ctx)
	if err != nil || len(runs) == 0 {
		return 0, cursor{}, translate(err)
	}
	query, args := r.childrenSQL(tenantID, runs)
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, cursor{}, translate(err)
	}
	defer rows.Close()
	// i is the next run to start; open is whether runs[i-1] is started
	// and not ended. Runs without children are written whole on the way.
	i, open := 0, false
	advanceTo := func(id uuid.UUID) error {
		if open && runs[i-1].ID == id {
			return nil
		}
		if open {
			open = false
			if err := sink.EndRun(); err != nil {
				return err
			}
		}
		for i < len(runs) {
			run := runs[i]
			i++
			if err := sink.Run(run); err != nil {
				return err
			}
			if run.ID == id {
				open = true
				return nil
			}
			if err := sink.EndRun(); err != nil {
				return err
			}
		}
		return fmt.Errorf("export: a child of run %s out of order", id)
	}
	var c child
	for rows.Next() {
		if err := rows.Scan(c.dest()...); err != nil {
			return 0, cursor{}, translate(err)
		}
		if err := advanceTo(c.runID); err != nil {
			return 0, cursor{}, err
		}
		if c.kind == 0 {
			err = sink.Step(c.step())
		} else {
			err = sink.ToolCall(c.toolCall())
		}
		if err != nil {
			return 0, cursor{}, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, cursor{}, translate(err)
	}
	if open {
		if err := sink.EndRun(); err != nil {
			return 0, cursor{}, err
		}
	}
	for ; i < len(runs); i++ {
		if err := sink.Run(runs[i]); err != nil {
			return 0, cursor{}, err
		}
		if err := sink.EndRun(); err != nil {
			return 0, cursor{}, err
		}
	}
	last := runs[len(runs)-1]
	return len(runs), cursor{T: last.CreatedAt, ID: last.ID}, nil
}

// childrenSQL is the query of the steps and tool calls of runs, in the
// order of the runs (createdAt, id), steps by seq before tool calls by
// creation. The two tables share one column list: kind 0 is a step, 1 a
// tool call; a column the other table lacks is NULL.
func (r *Runs) childrenSQL(tenantID uuid.UUID, runs []*ent.AgentRun) (string, []any) {
	pg := r.s.dialect == dialect.Postgres
	table := func(name string) string {
		if pg {
			return `"` + r.s.pgSchema + `"."` + name + `"`
		}
		return `"` + name + `"`
	}
	var args []any
	param := func(v any) string {
		args = append(args, v)
		if pg {
			return fmt.Sprintf("$%d", len(args))
		}
		return fmt.Sprintf("?%d", len(args)) // numbered: each is used twice
	}
	ids := make([]string, len(runs))
	for i, run := range runs {
		ids[i] = param(run.ID)
	}
	in := strings.Join(ids, ", ")
	t := param(tenantID)
	q := `SELECT 0 AS kind, r.created_at AS rc, s.run_id AS run_id, s.id AS id, s.seq AS seq, NULL AS step_id,
  s.type AS name, s.name AS step_name, s.status AS status, s.input AS a, s.output AS b, s.error AS error,
  NULL AS duration_ms, s.started_at AS started_at, s.ended_at AS ended_at, s.created_at AS created_at
FROM ` + table(agentstep.Table) + ` s JOIN ` + table(agentrun.Table) + ` r ON r.id = s.run_id
WHERE s.tenant_id = ` + t + ` AND s.run_id IN (` + in + `)
UNION ALL
SELECT 1, r.created_at, c.run_id, c.id, NULL, c.step_id, c.tool_name, NULL,
  c.status, c.arguments, c.result, c.error, c.duration_ms, c.started_at, c.ended_at, c.created_at
FROM ` + table(toolcall.Table) + ` c JOIN ` + table(agentrun.Table) + ` r ON r.id = c.run_id
WHERE c.tenant_id = ` + t + ` AND c.run_id IN (` + in + `)
ORDER BY rc, run_id, kind, seq, created_at, id`
	return q, args
}

// child is one row of childrenSQL.
type child struct {
	kind                         int
	rc                           anyTime
	runID, id                    uuid.UUID
	seq, durationMs              sql.NullInt64
	stepID                       uuid.NullUUID
	name, status                 string
	stepName, errText            sql.NullString
	a, b                         []byte
	startedAt, endedAt, createdA anyTime
}

func (c *child) dest() []any {
	c.a, c.b = nil, nil
	return []any{&c.kind, &c.rc, &c.runID, &c.id, &c.seq, &c.stepID, &c.name, &c.stepName,
		&c.status, &c.a, &c.b, &c.errText, &c.durationMs, &c.startedAt, &c.endedAt, &c.createdA}
}

func (c *child) step() *ent.AgentStep {
	return &ent.AgentStep{
		ID: c.id, RunID: c.runID, Seq: int(c.seq.Int64), Type: c.name, Name: nullString(c.stepName),
		Status: agentstep.Status(c.status), Input: rawJSON(c.a), Output: rawJSON(c.b), Error: nullString(c.errText),
		StartedAt: c.startedAt.ptr(), EndedAt: c.endedAt.ptr(), CreatedAt: c.createdA.t,
	}
}

func (c *child) toolCall() *ent.ToolCall {
	tc := &ent.ToolCall{
		ID: c.id, RunID: c.runID, ToolName: c.name, Status: toolcall.Status(c.status),
		Arguments: rawJSON(c.a), Result: rawJSON(c.b), Error: nullString(c.errText),
		StartedAt: c.startedAt.ptr(), EndedAt: c.endedAt.ptr(), CreatedAt: c.createdA.t,
	}
	if c.stepID.Valid {
		id := c.stepID.UUID
		tc.StepID = &id
	}
	if c.durationMs.Valid {
		d := c.durationMs.Int64
		tc.DurationMs = &d
	}
	return tc
}

func nullString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

// rawJSON copies a scanned JSON column (nil for NULL).
func rawJSON(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return json.RawMessage(append([]byte(nil), b...))
}

// anyTime scans a timestamp as either driver returns it in a UNION: a
// time.Time, or SQLite's text.
type anyTime struct {
	t     time.Time
	valid bool
}

// sqliteTimeLayouts are the text forms of timestamps in the SQLite file.
var sqliteTimeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999",
}

// Scan implements sql.Scanner.
func (a *anyTime) Scan(v any) error {
	a.valid = v != nil
	switch x := v.(type) {
	case nil:
		a.t = time.Time{}
		return nil
	case time.Time:
		a.t = x.UTC()
		return nil
	case []byte:
		v = string(x)
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("timestamp of type %T", v)
	}
	for _, layout := range sqliteTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			a.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("timestamp %q", s)
}

func (a anyTime) ptr() *time.Time {
	if !a.valid {
		return nil
	}
	t := a.t
	return &t
}
