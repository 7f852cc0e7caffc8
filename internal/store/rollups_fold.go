package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/rollup"
	"github.com/agentstore/agentstore/internal/tenant"
)

// foldLockKey is the PostgreSQL advisory lock (transaction-scoped, so a
// transaction-mode pooler is safe) that one folder or rebuild at a time
// holds while it writes rollup rows.
const foldLockKey = 0x726f6c6c // "roll"

// foldBatch bounds the deltas of each kind one fold transaction moves.
const foldBatch = 2000

// Grains and kinds of the rollup rows.
const (
	grainHour = "hour"
	grainDay  = "day"

	kindStatus    = "status"
	kindAgentName = "agentName"
	kindModel     = "model"
)

// rollupKey names one rollup row.
type rollupKey struct {
	tenant uuid.UUID
	grain  string
	bucket time.Time
	kind   string
	key    string
}

// RunFolder folds deltas every interval until ctx ends; its caller owns
// it and stops it by cancelling ctx. Errors are logged and retried on the
// next tick.
func (rl *Rollups) RunFolder(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := rl.Fold(ctx)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("folding rollup deltas", "err", err)
				}
				break
			}
			if n < foldBatch {
				break
			}
		}
	}
}

// Fold moves a batch of pending deltas of every tenant into the rollup rows
// (their hour and their day), in one transaction, and returns how many
// deltas it moved. Folding never changes what a read returns.
func (rl *Rollups) Fold(ctx context.Context) (n int, err error) {
	defer derrors.Wrap(&err, "Rollups.Fold")
	ctx = tenant.SystemContext(ctx)
	err = rl.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		if err := rl.lock(ctx, tx); err != nil {
			return err
		}
		nr, err := rl.foldRuns(ctx, tx)
		if err != nil {
			return err
		}
		nu, err := rl.foldUsage(ctx, tx)
		n = nr + nu
		return err
	})
	return n, err
}

// lock takes the fold lock inside tx (PostgreSQL; SQLite transactions take
// turns anyway).
func (rl *Rollups) lock(ctx context.Context, tx *ent.Tx) error {
	if rl.s.dialect != dialect.Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", foldLockKey)
	return err
}

const runFigureCols = "runs, duration_count, duration_sum_us, tool_calls, failed_tool_calls, histogram"

func scanRunFigures(f *runFigures, hist *[]byte) []any {
	return []any{&f.runs, &f.durCount, &f.durSumUS, &f.toolCalls, &f.failed, hist}
}

func (rl *Rollups) foldRuns(ctx context.Context, tx *ent.Tx) (int, error) {
	rows, err := tx.QueryContext(ctx, rl.s.q(`SELECT id, tenant_id, hour, status, agent_name, `+runFigureCols+
		` FROM `+rl.s.table("run_rollup_deltas")+` ORDER BY id LIMIT $1`), foldBatch)
	if err != nil {
		return 0, err
	}
	var ids []int64
	add := map[rollupKey]*runFigures{}
	for rows.Next() {
		var id int64
		var k runKey
		var f runFigures
		var hist []byte
		if err := rows.Scan(append([]any{&id, &k.tenant, &k.hour, &k.status, &k.agent}, scanRunFigures(&f, &hist)...)...); err != nil {
			rows.Close()
			return 0, err
		}
		if err := decodeHist(&f, hist); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
		for _, rk := range runTargets(k) {
			if add[rk] == nil {
				add[rk] = &runFigures{}
			}
			add[rk].add(f)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return 0, err
	}
	if err := rl.addRunRows(ctx, tx, add); err != nil {
		return 0, err
	}
	return len(ids), rl.deleteDeltas(ctx, tx, "run_rollup_deltas", ids)
}

// runTargets are the rollup rows a run delta of k changes.
func runTargets(k runKey) []rollupKey {
	h, d := k.hour.UTC(), rollup.Day(k.hour)
	return []rollupKey{
		{k.tenant, grainHour, h, kindStatus, k.status},
		{k.tenant, grainHour, h, kindAgentName, k.agent},
		{k.tenant, grainDay, d, kindStatus, k.status},
		{k.tenant, grainDay, d, kindAgentName, k.agent},
	}
}

func decodeHist(f *runFigures, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if f.hist == nil {
		f.hist = rollup.Histogram{}
	}
	return rollup.DecodeInto(f.hist, p)
}

// addRunRows adds add to the run rollup rows, creating missing ones. The
// caller holds the fold lock, so nobody else writes these rows.
func (rl *Rollups) addRunRows(ctx context.Context, tx *ent.Tx, add map[rollupKey]*runFigures) error {
	keys := make([]rollupKey, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	cur := map[rollupKey]*runFigures{}
	err := rl.loadRows(ctx, tx, "run_rollups", runFigureCols, keys, func() ([]any, func(rollupKey) error) {
		f := &runFigures{}
		var hist []byte
		return scanRunFigures(f, &hist), func(k rollupKey) error {
			cur[k] = f
			return decodeHist(f, hist)
		}
	})
	if err != nil {
		return err
	}
	vals := make([][]any, 0, len(keys))
	for _, k := range keys {
		f := cur[k]
		if f == nil {
			f = &runFigures{}
		}
		f.add(*add[k])
		vals = append(vals, []any{f.runs, f.durCount, f.durSumUS, f.toolCalls, f.failed, f.hist.Encode()})
	}
	return rl.upsertRows(ctx, tx, "run_rollups", runFigureCols, keys, vals)
}

// loadRows reads the rows of table named by keys: for each, next gives
// the destinations of cols and a function that takes the row's key once
// they are scanned.
func (rl *Rollups) loadRows(ctx context.Context, tx *ent.Tx, table, cols string, keys []rollupKey,
	next func() (dest []any, done func(rollupKey) error)) error {
	type tb struct {
		tenant uuid.UUID
		grain  string
	}
	buckets := map[tb]map[time.Time]bool{}
	for _, k := range keys {
		g := tb{k.tenant, k.grain}
		if buckets[g] == nil {
			buckets[g] = map[time.Time]bool{}
		}
		buckets[g][k.bucket] = true
	}
	for g, set := range buckets {
		args := []any{g.tenant, g.grain}
		ph := make([]string, 0, len(set))
		for b := range set {
			args = append(args, b)
			ph = append(ph, fmt.Sprintf("$%d", len(args)))
		}
		rows, err := tx.QueryContext(ctx, rl.s.q(`SELECT bucket_start, kind, key, `+cols+` FROM `+rl.s.table(table)+
			` WHERE tenant_id = $1 AND grain = $2 AND bucket_start IN (`+strings.Join(ph, ", ")+`)`), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			k := rollupKey{tenant: g.tenant, grain: g.grain}
			dest, done := next()
			if err := rows.Scan(append([]any{&k.bucket, &k.kind, &k.key}, dest...)...); err != nil {
				rows.Close()
				return err
			}
			k.bucket = k.bucket.UTC()
			if err := done(k); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// upsertRows writes the rows of keys with the values vals of cols,
// replacing the figures of rows that exist.
func (rl *Rollups) upsertRows(ctx context.Context, tx *ent.Tx, table, cols string, keys []rollupKey, vals [][]any) error {
	names := strings.Split(cols, ", ")
	set := make([]string, len(names))
	for i, c := range names {
		set[i] = c + " = excluded." + c
	}
	const perStmt = 200
	for lo := 0; lo < len(keys); lo += perStmt {
		hi := min(lo+perStmt, len(keys))
		var args []any
		var tuples []string
		for i := lo; i < hi; i++ {
			k := keys[i]
			row := append([]any{k.tenant, k.grain, k.bucket, k.kind, k.key}, vals[i]...)
			ph := make([]string, len(row))
			for j := range row {
				args = append(args, row[j])
				ph[j] = fmt.Sprintf("$%d", len(args))
			}
			tuples = append(tuples, "("+strings.Join(ph, ", ")+")")
		}
		_, err := tx.ExecContext(ctx, rl.s.q(`INSERT INTO `+rl.s.table(table)+` (tenant_id, grain, bucket_start, kind, key, `+cols+`)
VALUES `+strings.Join(tuples, ", ")+`
ON CONFLICT (tenant_id, grain, bucket_start, kind, key) DO UPDATE SET `+strings.Join(set, ", ")), args...)
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteDeltas deletes the deltas ids of table.
func (rl *Rollups) deleteDeltas(ctx context.Context, tx *ent.Tx, table string, ids []int64) error {
	const perStmt = 500
	for lo := 0; lo < len(ids); lo += perStmt {
		hi := min(lo+perStmt, len(ids))
		ph := make([]string, 0, hi-lo)
		args := make([]any, 0, hi-lo)
		for _, id := range ids[lo:hi] {
			args = append(args, id)
			ph = append(ph, fmt.Sprintf("$%d", len(args)))
		}
		if _, err := tx.ExecContext(ctx, rl.s.q(`DELETE FROM `+rl.s.table(table)+` WHERE id IN (`+strings.Join(ph, ", ")+`)`), args...); err != nil {
			return err
		}
	}
	return nil
}

const usageFigureCols = "input_tokens, output_tokens, cached_input_tokens, total_tokens, cost_micros, runs, records"

func scanUsageFigures(f *usageFigures) []any {
	return []any{&f.in, &f.out, &f.cached, &f.total, &f.costMicros, &f.runs, &f.records}
}

func (rl *Rollups) foldUsage(ctx context.Context, tx *ent.Tx) (int, error) {
	rows, err := tx.QueryContext(ctx, rl.s.q(`SELECT id, tenant_id, hour, model, agent_name, model_runs, `+usageFigureCols+
		` FROM `+rl.s.table("usage_rollup_deltas")+` ORDER BY id LIMIT $1`), foldBatch)
	if err != nil {
		return 0, err
	}
	var ids []int64
	add := map[rollupKey]*usageFigures{}
	for rows.Next() {
		var id int64
		var k usageKey
		var f usageFigures
		if err := rows.Scan(append([]any{&id, &k.tenant, &k.hour, &k.model, &k.agent, &f.modelRuns}, scanUsageFigures(&f)...)...); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
		addUsageTargets(add, k, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return 0, err
	}
	if err := rl.addUsageRows(ctx, tx, add); err != nil {
		return 0, err
	}
	return len(ids), rl.deleteDeltas(ctx, tx, "usage_rollup_deltas", ids)
}

// addUsageTargets adds a usage delta of k to the rollup rows it changes:
// by model (counting the runs first seen with the model) and by agent name
// (counting the runs first seen at all), for its hour and its day.
func addUsageTargets(add map[rollupKey]*usageFigures, k usageKey, f usageFigures) {
	byModel, byAgent := f, f
	byModel.runs, byModel.modelRuns = f.modelRuns, 0
	byAgent.modelRuns = 0
	h, d := k.hour.UTC(), rollup.Day(k.hour)
	for _, t := range []struct {
		k rollupKey
		f usageFigures
	}{
		{rollupKey{k.tenant, grainHour, h, kindModel, k.model}, byModel},
		{rollupKey{k.tenant, grainDay, d, kindModel, k.model}, byModel},
		{rollupKey{k.tenant, grainHour, h, kindAgentName, k.agent}, byAgent},
		{rollupKey{k.tenant, grainDay, d, kindAgentName, k.agent}, byAgent},
	} {
		if add[t.k] == nil {
			add[t.k] = &usageFigures{}
		}
		add[t.k].add(t.f)
	}
}

func (rl *Rollups) addUsageRows(ctx context.Context, tx *ent.Tx, add map[rollupKey]*usageFigures) error {
	keys := make([]rollupKey, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	cur := map[rollupKey]*usageFigures{}
	err := rl.loadRows(ctx, tx, "usage_rollups", usageFigureCols, keys, func() ([]any, func(rollupKey) error) {
		f := &usageFigures{}
		return scanUsageFigures(f), func(k rollupKey) error { cur[k] = f; return nil }
	})
	if err != nil {
		return err
	}
	vals := make([][]any, 0, len(keys))
	for _, k := range keys {
		f := cur[k]
		if f == nil {
			f = &usageFigures{}
		}
		f.add(*add[k])
		vals = append(vals, []any{f.in, f.out, f.cached, f.total, f.costMicros, f.runs, f.records})
	}
	return rl.upsertRows(ctx, tx, "usage_rollups", usageFigureCols, keys, vals)
}
