package store

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/rollup"
)

// Rollups (SPEC 15) keep the figures of GET /v1/runs/stats and GET
// /v1/usage/summary per tenant, UTC hour and day, and grouping key, so
// that those reads cost the same whatever the number of raw rows.
//
// Writes. Every transaction that changes a summarised figure appends what
// it changed to run_rollup_deltas or usage_rollup_deltas, in the same
// transaction: insert-only rows that no two writers share, so writers on
// one tenant and hour never wait for each other (no hot row). A run
// contributes to the hour of its creation, under its status and its agent
// name: one run, its duration (startedAt to endedAt, when it has both) and
// its tool calls. A usage row contributes to the hour it was recorded,
// under its model and its run's agent name ("" without a run).
//
// Folding. Fold, run every second or so by one `serve` instance at a time
// (a PostgreSQL advisory lock), moves deltas into run_rollups and
// usage_rollups: one row per tenant, grain (hour or day), bucket, kind
// (status/agentName, model/agentName) and key. Reads add the rollup rows of
// the window and the deltas not folded yet in one statement, so a read
// never sees a delta twice or not at all.
//
// Windows. A read covers whole hours; it takes whole days from day rows and
// the ragged hours at either end from hour rows, so a 30-day window reads
// about 30 + 46 rows per key.
//
// Distinct runs of usage. A run is counted in the hour of its earliest
// usage row (per model when grouping by model): usage_run_marks remembers
// that hour, so the counts of hours add up exactly to days and windows.
// A window's runs are the runs whose first usage falls in it.
type Rollups struct{ s *Store }

// runKey is the bucket of a run delta: tenant, creation hour, status and
// agent name.
type runKey struct {
	tenant uuid.UUID
	hour   time.Time
	status string
	agent  string
}

// runFigures are the summed figures of runs.
type runFigures struct {
	runs, durCount, durSumUS, toolCalls, failed int64
	hist                                        rollup.Histogram
	exact                                       *[3]float64 // Verify's exact p50, p95, p99 in microseconds
}

func (f *runFigures) add(o runFigures) {
	f.runs += o.runs
	f.durCount += o.durCount
	f.durSumUS += o.durSumUS
	f.toolCalls += o.toolCalls
	f.failed += o.failed
	if len(o.hist) > 0 {
		if f.hist == nil {
			f.hist = rollup.Histogram{}
		}
		f.hist.Merge(o.hist)
	}
}

func (f runFigures) zero() bool {
	return f.runs == 0 && f.durCount == 0 && f.durSumUS == 0 && f.toolCalls == 0 && f.failed == 0 && len(f.hist) == 0
}

// runDeltas collects the run deltas of one transaction by key.
type runDeltas map[runKey]*runFigures

func (d runDeltas) add(k runKey, f runFigures) {
	if cur := d[k]; cur != nil {
		cur.add(f)
		return
	}
	c := runFigures{}
	c.add(f)
	d[k] = &c
}

// runFacts is what one run contributes to the run rollups.
type runFacts struct {
	key       runKey
	durUS     *int64
	toolCalls int64
	failed    int64
}

// factsOf returns what run contributes, given its tool calls and how many
// of them failed.
func factsOf(run *ent.AgentRun, toolCalls, failed int64) runFacts {
	f := runFacts{
		key:       runKey{tenant: run.TenantID, hour: rollup.Hour(run.CreatedAt), status: string(run.Status), agent: run.AgentName},
		toolCalls: toolCalls, failed: failed,
	}
	if run.StartedAt != nil && run.EndedAt != nil {
		us := run.EndedAt.Sub(*run.StartedAt).Microseconds()
		f.durUS = &us
	}
	return f
}

// addFacts adds sign (+1 or -1) times f to d.
func (d runDeltas) addFacts(f runFacts, sign int64) {
	fig := runFigures{runs: sign, toolCalls: sign * f.toolCalls, failed: sign * f.failed}
	if f.durUS != nil {
		fig.durCount, fig.durSumUS = sign, sign**f.durUS
		fig.hist = rollup.Histogram{}
		fig.hist.Add(*f.durUS, sign)
	}
	d.add(f.key, fig)
}

// write inserts the non-zero deltas of d inside tx.
func (d runDeltas) write(ctx context.Context, tx *ent.Tx) error {
	keys := make([]runKey, 0, len(d))
	for k, f := range d {
		if !f.zero() {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Slice(keys, func(i, j int) bool { return lessRunKey(keys[i], keys[j]) })
	builders := make([]*ent.RunRollupDeltaCreate, len(keys))
	for i, k := range keys {
		f := d[k]
		builders[i] = tx.RunRollupDelta.Create().
			SetTenantID(k.tenant).SetHour(k.hour).SetStatus(k.status).SetAgentName(k.agent).
			SetRuns(f.runs).SetDurationCount(f.durCount).SetDurationSumUs(f.durSumUS).
			SetToolCalls(f.toolCalls).SetFailedToolCalls(f.failed).SetHistogram(f.hist.Encode())
	}
	return tx.RunRollupDelta.CreateBulk(builders...).Exec(ctx)
}

func lessRunKey(a, b runKey) bool {
	if !a.hour.Equal(b.hour) {
		return a.hour.Before(b.hour)
	}
	if a.status != b.status {
		return a.status < b.status
	}
	return a.agent < b.agent
}

// toolCallCounts returns how many tool calls the run has and how many of
// them failed.
func toolCallCounts(ctx context.Context, tx *ent.Tx, runID uuid.UUID) (total, failed int64, err error) {
	var rows []struct {
		Status toolcall.Status `json:"status"`
		Count  int64           `json:"count"`
	}
	err = tx.ToolCall.Query().Where(toolcall.RunID(runID)).
		GroupBy(toolcall.FieldStatus).Aggregate(ent.Count()).Scan(ctx, &rows)
	for _, r := range rows {
		total += r.Count
		if r.Status == toolcall.StatusFailed {
			failed += r.Count
		}
	}
	return total, failed, err
}

// runChanged records, inside tx, that a run changed from before to after
// (both as stored, with the same tool calls). Only a change of status
// moves the run's tool calls to another key, so only then are they
// counted.
func (rl *Rollups) runChanged(ctx context.Context, tx *ent.Tx, before, after *ent.AgentRun) error {
	var total, failed int64
	if before.Status != after.Status {
		var err error
		if total, failed, err = toolCallCounts(ctx, tx, before.ID); err != nil {
			return err
		}
	}
	d := runDeltas{}
	d.addFacts(factsOf(before, total, failed), -1)
	d.addFacts(factsOf(after, total, failed), +1)
	return d.write(ctx, tx)
}

// SubtractRun takes the run with id out of the rollups inside tx, for the
// single-run DELETE (SPEC 16: a correction, unlike retention): its run,
// duration and tool calls leave the run statistics, and its usage rows,
// which keep their row with runId null, move from the run's agent name to
// "" and stop counting as a run. Call it in the deleting transaction,
// before the rows are deleted.
func (rl *Rollups) SubtractRun(ctx context.Context, tx *ent.Tx, id uuid.UUID) (err error) {
	defer derrors.Wrap(&err, "Rollups.SubtractRun(%s)", id)
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return err
	}
	run, err := tx.AgentRun.Query().Where(agentrun.ID(id), agentrun.TenantID(tenantID)).Only(ctx)
	if err != nil {
		return translate(err)
	}
	total, failed, err := toolCallCounts(ctx, tx, id)
	if err != nil {
		return err
	}
	d := runDeltas{}
	d.addFacts(factsOf(run, total, failed), -1)
	if err := d.write(ctx, tx); err != nil {
		return err
	}
	usage, err := tx.UsageMetric.Query().Where(usagemetric.RunID(id), usagemetric.TenantID(tenantID)).All(ctx)
	if err != nil {
		return err
	}
	u := usageDeltas{}
	for _, m := range usage {
		f := usageFiguresOf(m)
		u.add(usageKey{tenant: tenantID, hour: rollup.Hour(m.RecordedAt), model: m.Model, agent: run.AgentName}, f.neg())
		u.add(usageKey{tenant: tenantID, hour: rollup.Hour(m.RecordedAt), model: m.Model, agent: ""}, f)
	}
	marks, err := rl.deleteMarks(ctx, tx, tenantID, id)
	if err != nil {
		return err
	}
	for _, mk := range marks {
		k := usageKey{tenant: tenantID, hour: mk.hour, agent: run.AgentName}
		if mk.model == "" {
			u.add(k, usageFigures{runs: -1})
		} else {
			k.model = mk.model
			u.add(k, usageFigures{modelRuns: -1})
		}
	}
	return u.write(ctx, tx)
}

// usageKey is the bucket of a usage delta: tenant, recording hour, model
// and the agent name of the run ("" without one).
type usageKey struct {
	tenant uuid.UUID
	hour   time.Time
	model  string
	agent  string
}

// usageFigures are the summed figures of usage. runs counts runs first
// seen in the bucket (by agent name and by day), modelRuns runs first
// seen with the model.
type usageFigures struct {
	in, out, cached, total, costMicros, runs, modelRuns, records int64
}

func (f *usageFigures) add(o usageFigures) {
	f.in += o.in
	f.out += o.out
	f.cached += o.cached
	f.total += o.total
	f.costMicros += o.costMicros
	f.runs += o.runs
	f.modelRuns += o.modelRuns
	f.records += o.records
}

func (f usageFigures) neg() usageFigures {
	return usageFigures{-f.in, -f.out, -f.cached, -f.total, -f.costMicros, -f.runs, -f.modelRuns, -f.records}
}

func usageFiguresOf(m *ent.UsageMetric) usageFigures {
	return usageFigures{
		in: m.InputTokens, out: m.OutputTokens, cached: m.CachedInputTokens, total: m.TotalTokens,
		costMicros: rollup.CostMicros(m.CostUsd), records: 1,
	}
}

// usageDeltas collects the usage deltas of one transaction by key.
type usageDeltas map[usageKey]*usageFigures

func (d usageDeltas) add(k usageKey, f usageFigures) {
	if cur := d[k]; cur != nil {
		cur.add(f)
		return
	}
	d[k] = &f
}

// write inserts the non-zero deltas of d inside tx.
func (d usageDeltas) write(ctx context.Context, tx *ent.Tx) error {
	keys := make([]usageKey, 0, len(d))
	for k, f := range d {
		if *f != (usageFigures{}) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if !a.hour.Equal(b.hour) {
			return a.hour.Before(b.hour)
		}
		if a.model != b.model {
			return a.model < b.model
		}
		return a.agent < b.agent
	})
	builders := make([]*ent.UsageRollupDeltaCreate, len(keys))
	for i, k := range keys {
		f := d[k]
		builders[i] = tx.UsageRollupDelta.Create().
			SetTenantID(k.tenant).SetHour(k.hour).SetModel(k.model).SetAgentName(k.agent).
			SetInputTokens(f.in).SetOutputTokens(f.out).SetCachedInputTokens(f.cached).SetTotalTokens(f.total).
			SetCostMicros(f.costMicros).SetRuns(f.runs).SetModelRuns(f.modelRuns).SetRecords(f.records)
	}
	return tx.UsageRollupDelta.CreateBulk(builders...).Exec(ctx)
}

// usageRecorded records, inside tx, the new usage row m of a run of agent
// agent (nil without a run).
func (rl *Rollups) usageRecorded(ctx context.Context, tx *ent.Tx, m *ent.UsageMetric, agent *string) error {
	name := ""
	if agent != nil {
		name = *agent
	}
	d := usageDeltas{}
	if err := rl.addUsage(ctx, tx, d, []*ent.UsageMetric{m}, func(*ent.UsageMetric) string { return name }); err != nil {
		return err
	}
	return d.write(ctx, tx)
}

// addUsage adds to d, inside tx, the new usage rows ms, each of the run
// whose agent name is agentOf(m) ("" without a run): their figures, and
// for each run (and each run and model) first seen with them, or seen in
// an earlier hour than marked, the run in the hour of its earliest row,
// moved from the hour marked before. It marks each run and model once,
// in order of run id and model, so that concurrent writers take turns.
func (rl *Rollups) addUsage(ctx context.Context, tx *ent.Tx, d usageDeltas, ms []*ent.UsageMetric, agentOf func(*ent.UsageMetric) string) error {
	type markKey struct {
		run   uuid.UUID
		model string
	}
	first := map[markKey]*ent.UsageMetric{}
	var keys []markKey
	for _, m := range ms {
		d.add(usageKey{tenant: m.TenantID, hour: rollup.Hour(m.RecordedAt), model: m.Model, agent: agentOf(m)}, usageFiguresOf(m))
		if m.RunID == nil {
			continue
		}
		for _, model := range []string{"", m.Model} {
			k := markKey{*m.RunID, model}
			cur, ok := first[k]
			if !ok {
				keys = append(keys, k)
			}
			if !ok || rollup.Hour(m.RecordedAt).Before(rollup.Hour(cur.RecordedAt)) {
				first[k] = m
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if c := strings.Compare(keys[i].run.String(), keys[j].run.String()); c != 0 {
			return c < 0
		}
		return keys[i].model < keys[j].model
	})
	for _, mk := range keys {
		m := first[mk]
		hour := rollup.Hour(m.RecordedAt)
		prev, err := rl.mark(ctx, tx, m.TenantID, mk.run, mk.model, hour)
		if err != nil {
			return err
		}
		if prev != nil && !hour.Before(*prev) {
			continue // counted already, in an hour no later than this one
		}
		one, minus := usageFigures{runs: 1}, usageFigures{runs: -1}
		if mk.model != "" {
			one, minus = usageFigures{modelRuns: 1}, usageFigures{modelRuns: -1}
		}
		k := usageKey{tenant: m.TenantID, hour: hour, model: m.Model, agent: agentOf(m)}
		d.add(k, one)
		if prev != nil { // the run moves to this earlier hour
			d.add(usageKey{tenant: k.tenant, hour: *prev, model: m.Model, agent: k.agent}, minus)
		}
	}
	return nil
}

// moveUsage moves, in d, the usage figures of run runID as stored (its
// rows and its first-usage marks) from agent name from to agent name to:
// for a run renamed inside tx, before its new usage is added.
func (rl *Rollups) moveUsage(ctx context.Context, tx *ent.Tx, d usageDeltas, tenantID, runID uuid.UUID, from, to string) error {
	usage, err := tx.UsageMetric.Query().Where(usagemetric.RunID(runID), usagemetric.TenantID(tenantID)).All(ctx)
	if err != nil {
		return err
	}
	for _, m := range usage {
		f := usageFiguresOf(m)
		d.add(usageKey{tenant: tenantID, hour: rollup.Hour(m.RecordedAt), model: m.Model, agent: from}, f.neg())
		d.add(usageKey{tenant: tenantID, hour: rollup.Hour(m.RecordedAt), model: m.Model, agent: to}, f)
	}
	marks, err := rl.marks(ctx, tx, tenantID, runID)
	if err != nil {
		return err
	}
	for _, mk := range marks {
		f := usageFigures{runs: 1}
		if mk.model != "" {
			f = usageFigures{modelRuns: 1}
		}
		d.add(usageKey{tenant: tenantID, hour: mk.hour, model: mk.model, agent: from}, f.neg())
		d.add(usageKey{tenant: tenantID, hour: mk.hour, model: mk.model, agent: to}, f)
	}
	return nil
}

// mark makes hour the hour of the first usage of run (with model, or of
// any model when model is "") unless an earlier one is marked, and
// returns the hour marked before, nil when there was none. Concurrent
// writers take turns on the mark's unique key.
func (rl *Rollups) mark(ctx context.Context, tx *ent.Tx, tenantID, runID uuid.UUID, model string, hour time.Time) (*time.Time, error) {
	t := rl.s.table("usage_run_marks")
	res, err := tx.ExecContext(ctx, rl.s.q(`INSERT INTO `+t+` (tenant_id, run_id, model, hour) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, run_id, model) DO NOTHING`), tenantID, runID, model, hour)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, rl.s.q(`SELECT hour FROM `+t+` WHERE tenant_id = $1 AND run_id = $2 AND model = $3`+rl.s.forUpdate()),
		tenantID, runID, model)
	if err != nil {
		return nil, err
	}
	var prev time.Time
	found := false
	for rows.Next() {
		if err := rows.Scan(&prev); err != nil {
			rows.Close()
			return nil, err
		}
		found = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, derrors.New(derrors.Unavailable, "usage mark vanished; retry")
	}
	prev = prev.UTC()
	if hour.Before(prev) {
		if _, err := tx.ExecContext(ctx, rl.s.q(`UPDATE `+t+` SET hour = $4 WHERE tenant_id = $1 AND run_id = $2 AND model = $3`),
			tenantID, runID, model, hour); err != nil {
			return nil, err
		}
	}
	return &prev, nil
}

type mark struct {
	model string
	hour  time.Time
}

// deleteMarks deletes the marks of run and returns them.
func (rl *Rollups) deleteMarks(ctx context.Context, tx *ent.Tx, tenantID, runID uuid.UUID) ([]mark, error) {
	out, err := rl.marks(ctx, tx, tenantID, runID)
	if err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, rl.s.q(`DELETE FROM `+rl.s.table("usage_run_marks")+` WHERE tenant_id = $1 AND run_id = $2`), tenantID, runID)
	return out, err
}

// marks returns the first-usage marks of run.
func (rl *Rollups) marks(ctx context.Context, tx *ent.Tx, tenantID, runID uuid.UUID) ([]mark, error) {
	t := rl.s.table("usage_run_marks")
	rows, err := tx.QueryContext(ctx, rl.s.q(`SELECT model, hour FROM `+t+` WHERE tenant_id = $1 AND run_id = $2`), tenantID, runID)
	if err != nil {
		return nil, err
	}
	var out []mark
	for rows.Next() {
		var m mark
		if err := rows.Scan(&m.model, &m.hour); err != nil {
			rows.Close()
			return nil, err
		}
		m.hour = m.hour.UTC()
		out = append(out, m)
	}
	rows.Close()
	return out, rows.Err()
}

// table is the name of table in the store's schema, quoted.
func (s *Store) table(name string) string {
	if s.pgSchema == "" {
		return `"` + name + `"`
	}
	return `"` + s.pgSchema + `"."` + name + `"`
}

var pgParam = regexp.MustCompile(`\$([0-9]+)`)

// q turns a statement written with PostgreSQL's $n parameters into the
// backend's: SQLite's ?n.
func (s *Store) q(query string) string {
	if s.dialect == dialect.Postgres {
		return query
	}
	return pgParam.ReplaceAllString(query, "?$1")
}

// forUpdate is " FOR UPDATE" on PostgreSQL; SQLite transactions already
// take turns.
func (s *Store) forUpdate() string {
	if s.dialect == dialect.Postgres {
		return " FOR UPDATE"
	}
	return ""
}
