package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/rollup"
	"github.com/agentstore/agentstore/internal/tenant"
)

// RebuildOptions select what Rebuild and Verify cover: one tenant or all,
// and the whole UTC days that hold [From, To) (zero ends: from the first
// to the last day that has rows).
type RebuildOptions struct {
	Tenant   *uuid.UUID
	From, To time.Time
	// Progress, when set, gets a line per day done.
	Progress io.Writer
}

// RebuildReport says what Rebuild did.
type RebuildReport struct {
	Tenants int
	Days    int
}

// Rebuild recomputes the rollups from the raw rows: the usage run marks
// of each tenant, then each (tenant, day) in a transaction of its own
// that replaces the day's rollup rows and pending deltas with figures
// aggregated in SQL. It is safe while the service writes: on PostgreSQL a
// day's transaction is REPEATABLE READ and holds the fold lock, so the
// rows it reads and the deltas it drops are exactly those of one snapshot
// (writes after it keep their deltas), and a conflict with the folder is
// retried. A day is done once its transaction commits: after a crash,
// run it again, from the first day not printed with --from if the rest
// is large.
func (rl *Rollups) Rebuild(ctx context.Context, opts RebuildOptions) (rep RebuildReport, err error) {
	defer derrors.Wrap(&err, "Rollups.Rebuild")
	err = rl.eachDay(ctx, opts, func(ctx context.Context, tenantID uuid.UUID) error {
		rep.Tenants++
		return rl.rebuildMarks(ctx, tenantID)
	}, func(ctx context.Context, tenantID uuid.UUID, day time.Time) error {
		err := rl.s.withSnapshotTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
			if err := rl.lock(ctx, tx); err != nil {
				return err
			}
			runs, usage, err := rl.rawDay(ctx, tx, tenantID, day, false)
			if err != nil {
				return err
			}
			for _, t := range []string{"run_rollups", "usage_rollups"} {
				if _, err := tx.ExecContext(ctx, rl.s.q(`DELETE FROM `+rl.s.table(t)+` WHERE tenant_id = $1
AND ((grain = 'hour' AND bucket_start >= $2 AND bucket_start < $3) OR (grain = 'day' AND bucket_start = $2))`),
					tenantID, day, day.AddDate(0, 0, 1)); err != nil {
					return err
				}
			}
			for _, t := range []string{"run_rollup_deltas", "usage_rollup_deltas"} {
				if _, err := tx.ExecContext(ctx, rl.s.q(`DELETE FROM `+rl.s.table(t)+` WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`),
					tenantID, day, day.AddDate(0, 0, 1)); err != nil {
					return err
				}
			}
			if err := rl.addRunRows(ctx, tx, runs); err != nil {
				return err
			}
			return rl.addUsageRows(ctx, tx, usage)
		})
		if err == nil {
			rep.Days++
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "rebuilt tenant %s day %s\n", tenantID, day.Format(time.DateOnly))
			}
		}
		return err
	})
	return rep, err
}

// eachDay calls perTenant once for each tenant opts selects and then
// perDay for each of its days, as the system viewer.
func (rl *Rollups) eachDay(ctx context.Context, opts RebuildOptions,
	perTenant func(context.Context, uuid.UUID) error, perDay func(context.Context, uuid.UUID, time.Time) error) error {
	ctx = tenant.SystemContext(ctx)
	var tenants []uuid.UUID
	if opts.Tenant != nil {
		tenants = []uuid.UUID{*opts.Tenant}
	} else {
		var err error
		if tenants, err = rl.tenants(ctx); err != nil {
			return err
		}
	}
	for _, t := range tenants {
		tctx := tenant.NewContext(ctx, tenant.Viewer{TenantID: t, System: true, Role: "system"})
		if err := perTenant(tctx, t); err != nil {
			return err
		}
		from, to, err := rl.span(tctx, t, opts)
		if err != nil {
			return err
		}
		for day := from; day.Before(to); day = day.AddDate(0, 0, 1) {
			if err := perDay(tctx, t, day); err != nil {
				return err
			}
		}
	}
	return nil
}

// tenants lists every tenant with raw rows or rollups.
func (rl *Rollups) tenants(ctx context.Context) ([]uuid.UUID, error) {
	q := ""
	for i, t := range []string{"agent_runs", "usage_metrics", "run_rollups", "usage_rollups", "run_rollup_deltas", "usage_rollup_deltas"} {
		if i > 0 {
			q += " UNION "
		}
		q += "SELECT DISTINCT tenant_id FROM " + rl.s.table(t)
	}
	var out []uuid.UUID
	err := rl.s.query(ctx, q, nil, func(scan func(...any) error) error {
		var id uuid.UUID
		if err := scan(&id); err != nil {
			return err
		}
		out = append(out, id)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, err
}

// span returns the whole days [from, to) opts covers for tenantID: the
// days from the tenant's earliest to its latest raw row or rollup, cut to
// opts' bounds rounded out to whole days.
func (rl *Rollups) span(ctx context.Context, tenantID uuid.UUID, opts RebuildOptions) (from, to time.Time, err error) {
	d := rl.s.rawSQL()
	q := ""
	for i, tc := range [][2]string{{"agent_runs", "created_at"}, {"usage_metrics", "recorded_at"},
		{"run_rollups", "bucket_start"}, {"usage_rollups", "bucket_start"}, {"run_rollup_deltas", "hour"}, {"usage_rollup_deltas", "hour"}} {
		if i > 0 {
			q += " UNION ALL "
		}
		q += "SELECT min(" + d.epochUS(tc[1]) + "), max(" + d.epochUS(tc[1]) + ") FROM " + rl.s.table(tc[0]) + " WHERE tenant_id = $1"
	}
	err = rl.s.query(ctx, q, []any{tenantID}, func(scan func(...any) error) error {
		var lo, hi sql.NullInt64
		if err := scan(&lo, &hi); err != nil {
			return err
		}
		if lo.Valid && (from.IsZero() || time.UnixMicro(lo.Int64).Before(from)) {
			from = time.UnixMicro(lo.Int64).UTC()
		}
		if hi.Valid && time.UnixMicro(hi.Int64).After(to) {
			to = time.UnixMicro(hi.Int64).UTC()
		}
		return nil
	})
	if err != nil || from.IsZero() {
		return from, from, err // nothing at all
	}
	to = to.Add(time.Microsecond)
	if !opts.From.IsZero() && opts.From.After(from) {
		from = opts.From
	}
	if !opts.To.IsZero() && opts.To.Before(to) {
		to = opts.To
	}
	from = rollup.Day(from)
	if end := rollup.Day(to); end.Equal(to.UTC()) {
		to = end
	} else {
		to = end.AddDate(0, 0, 1)
	}
	return from, to, nil
}

// withSnapshotTx is WithTx at REPEATABLE READ on PostgreSQL (SQLite's
// transactions are serializable already).
func (s *Store) withSnapshotTx(ctx context.Context, fn func(ctx context.Context, tx *ent.Tx) error) error {
	if s.dialect != dialect.Postgres {
		return s.WithTx(ctx, fn)
	}
	return s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		if _, err := tx.ExecContext(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
			return err
		}
		return fn(ctx, tx)
	})
}

// rebuildMarks recomputes the usage run marks of tenantID: each run's
// earliest usage hour, overall and per model.
func (rl *Rollups) rebuildMarks(ctx context.Context, tenantID uuid.UUID) error {
	d := rl.s.rawSQL()
	m, u := rl.s.table("usage_run_marks"), rl.s.table("usage_metrics")
	return rl.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		stmts := []string{
			`DELETE FROM ` + m + ` WHERE tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM ` + u + ` x
  WHERE x.tenant_id = $1 AND x.run_id = ` + m + `.run_id AND (` + m + `.model = '' OR x.model = ` + m + `.model))`,
		}
		for _, model := range []string{"''", "model"} {
			group := "run_id"
			if model != "''" {
				group = "run_id, model"
			}
			stmts = append(stmts, `INSERT INTO `+m+` (tenant_id, run_id, model, hour)
SELECT $1, run_id, `+model+`, `+d.hourTime("min(recorded_at)")+` FROM `+u+`
WHERE tenant_id = $1 AND run_id IS NOT NULL GROUP BY `+group+`
ON CONFLICT (tenant_id, run_id, model) DO UPDATE SET hour = excluded.hour`)
		}
		for _, st := range stmts {
			if _, err := tx.ExecContext(ctx, rl.s.q(st), tenantID); err != nil {
				return err
			}
		}
		return nil
	})
}

// rawSQL is the SQL that differs between the backends in the raw scans.
type rawSQL struct{ pg bool }

func (s *Store) rawSQL() rawSQL { return rawSQL{pg: s.dialect == dialect.Postgres} }

// epochUS is the microseconds since the epoch of the timestamp expr.
func (d rawSQL) epochUS(expr string) string {
	if d.pg {
		return "(EXTRACT(EPOCH FROM " + expr + ") * 1000000)::bigint"
	}
	return "agentstore_epoch_us(" + expr + ")"
}

// hourSec is the Unix second of the start of expr's UTC hour.
func (d rawSQL) hourSec(expr string) string {
	if d.pg {
		return "(floor(EXTRACT(EPOCH FROM " + expr + ") / 3600) * 3600)::bigint"
	}
	return "((agentstore_epoch_us(" + expr + ") / 3600000000) * 3600)"
}

// hourTime is the start of expr's UTC hour as a timestamp.
func (d rawSQL) hourTime(expr string) string {
	if d.pg {
		return "date_bin('1 hour', " + expr + ", TIMESTAMPTZ '2000-01-01 00:00:00+00')"
	}
	return "strftime('%Y-%m-%d %H:00:00+00:00', agentstore_epoch_us(" + expr + ") / 1000000, 'unixepoch')"
}

// bucket is the histogram bucket of the microseconds expr
// (rollup.Bucket).
func (d rawSQL) bucket(expr string) string {
	if d.pg {
		return "(CASE WHEN " + expr + " <= 0 THEN -1 ELSE floor(ln((" + expr + ")::float8) / ln(101::float8 / 99::float8))::int END)"
	}
	return "agentstore_bucket(" + expr + ")"
}

// costMicros is rollup.CostMicros of the cost column expr.
func (d rawSQL) costMicros(expr string) string {
	if d.pg {
		return "round(" + expr + " * 1000000)::bigint"
	}
	return "CAST(round(" + expr + " * 1000000) AS INTEGER)"
}

// pdisc is the nearest-rank q-quantile aggregate of expr.
func (d rawSQL) pdisc(expr string, q float64) string {
	if d.pg {
		return fmt.Sprintf("percentile_disc(%g) WITHIN GROUP (ORDER BY %s)", q, expr)
	}
	return fmt.Sprintf("agentstore_pdisc(%s, %g)", expr, q)
}

// rawDay aggregates the raw rows of tenantID created (runs) or recorded
// (usage) on day into the rollup rows they make: what Rebuild writes and
// Verify expects. With exact, it also returns the exact percentiles of each
// hour row's durations.
func (rl *Rollups) rawDay(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, day time.Time, exact bool) (
	map[rollupKey]*runFigures, map[rollupKey]*usageFigures, error) {
	d := rl.s.rawSQL()
	end := day.AddDate(0, 0, 1)
	runsT, callsT, usageT, marksT := rl.s.table("agent_runs"), rl.s.table("tool_calls"), rl.s.table("usage_metrics"), rl.s.table("usage_run_marks")
	dur := "(CASE WHEN r.started_at IS NOT NULL AND r.ended_at IS NOT NULL THEN " + d.epochUS("r.ended_at") + " - " + d.epochUS("r.started_at") + " END)"
	inDay := "r.tenant_id = $1 AND r.created_at >= $2 AND r.created_at < $3"
	runs := map[rollupKey]*runFigures{}
	addRun := func(k runKey, f runFigures) {
		for _, t := range runTargets(k) {
			if runs[t] == nil {
				runs[t] = &runFigures{}
			}
			runs[t].add(f)
		}
	}
	scanKey := func(scan func(...any) error, k *runKey, more ...any) error {
		var h int64
		if err := scan(append([]any{&h, &k.status, &k.agent}, more...)...); err != nil {
			return err
		}
		k.tenant, k.hour = tenantID, time.Unix(h, 0).UTC()
		return nil
	}
	queries := []struct {
		sql  string
		scan func(scan func(...any) error) error
	}{
		{`SELECT ` + d.hourSec("r.created_at") + ` AS h, r.status, r.agent_name, count(*), count(` + dur + `), coalesce(sum(` + dur + `), 0)
FROM ` + runsT + ` r WHERE ` + inDay + ` GROUP BY 1, 2, 3`, func(scan func(...any) error) error {
			var k runKey
			var f runFigures
			if err := scanKey(scan, &k, &f.runs, &f.durCount, &f.durSumUS); err != nil {
				return err
			}
			addRun(k, f)
			return nil
		}},
		{`SELECT h, status, agent_name, b, count(*) FROM (SELECT ` + d.hourSec("r.created_at") + ` AS h, r.status, r.agent_name, ` + d.bucket(dur) + ` AS b
FROM ` + runsT + ` r WHERE ` + inDay + ` AND r.started_at IS NOT NULL AND r.ended_at IS NOT NULL) x GROUP BY 1, 2, 3, 4`, func(scan func(...any) error) error {
			var k runKey
			var b int32
			var n int64
			if err := scanKey(scan, &k, &b, &n); err != nil {
				return err
			}
			addRun(k, runFigures{hist: rollup.Histogram{b: n}})
			return nil
		}},
		{`SELECT ` + d.hourSec("r.created_at") + ` AS h, r.status, r.agent_name, count(*), coalesce(sum(CASE WHEN c.status = 'failed' THEN 1 ELSE 0 END), 0)
FROM ` + runsT + ` r JOIN ` + callsT + ` c ON c.run_id = r.id WHERE ` + inDay + ` GROUP BY 1, 2, 3`, func(scan func(...any) error) error {
			var k runKey
			var f runFigures
			if err := scanKey(scan, &k, &f.toolCalls, &f.failed); err != nil {
				return err
			}
			addRun(k, f)
			return nil
		}},
	}
	usage := map[rollupKey]*usageFigures{}
	scanUsageKey := func(scan func(...any) error, k *usageKey, more ...any) error {
		var h int64
		if err := scan(append([]any{&h, &k.model, &k.agent}, more...)...); err != nil {
			return err
		}
		k.tenant, k.hour = tenantID, time.Unix(h, 0).UTC()
		return nil
	}
	queries = append(queries, []struct {
		sql  string
		scan func(scan func(...any) error) error
	}{
		{`SELECT ` + d.hourSec("u.recorded_at") + `, u.model, coalesce(r.agent_name, ''), coalesce(sum(u.input_tokens), 0), coalesce(sum(u.output_tokens), 0),
  coalesce(sum(u.cached_input_tokens), 0), coalesce(sum(u.total_tokens), 0), coalesce(sum(` + d.costMicros("u.cost_usd") + `), 0), count(*)
FROM ` + usageT + ` u LEFT JOIN ` + runsT + ` r ON r.id = u.run_id
WHERE u.tenant_id = $1 AND u.recorded_at >= $2 AND u.recorded_at < $3 GROUP BY 1, 2, 3`, func(scan func(...any) error) error {
			var k usageKey
			var f usageFigures
			if err := scanUsageKey(scan, &k, &f.in, &f.out, &f.cached, &f.total, &f.costMicros, &f.records); err != nil {
				return err
			}
			addUsageTargets(usage, k, f)
			return nil
		}},
		{`SELECT ` + d.hourSec("m.hour") + `, m.model, r.agent_name, count(*)
FROM ` + marksT + ` m JOIN ` + runsT + ` r ON r.id = m.run_id
WHERE m.tenant_id = $1 AND m.hour >= $2 AND m.hour < $3 GROUP BY 1, 2, 3`, func(scan func(...any) error) error {
			var k usageKey
			var n int64
			if err := scanUsageKey(scan, &k, &n); err != nil {
				return err
			}
			f := usageFigures{runs: n}
			if k.model != "" {
				f = usageFigures{modelRuns: n}
			}
			addUsageTargets(usage, k, f)
			return nil
		}},
	}...)
	for _, q := range queries {
		if err := txQuery(ctx, tx, rl.s.q(q.sql), []any{tenantID, day, end}, q.scan); err != nil {
			return nil, nil, err
		}
	}
	if exact {
		for _, kind := range []struct{ kind, col string }{{kindStatus, "r.status"}, {kindAgentName, "r.agent_name"}} {
			q := `SELECT ` + d.hourSec("r.created_at") + `, ` + kind.col + `, ` + d.pdisc(dur, 0.5) + `, ` + d.pdisc(dur, 0.95) + `, ` + d.pdisc(dur, 0.99) + `
FROM ` + runsT + ` r WHERE ` + inDay + ` AND r.started_at IS NOT NULL AND r.ended_at IS NOT NULL GROUP BY 1, 2`
			err := txQuery(ctx, tx, rl.s.q(q), []any{tenantID, day, end}, func(scan func(...any) error) error {
				var h int64
				var key string
				var p [3]float64
				if err := scan(&h, &key, &p[0], &p[1], &p[2]); err != nil {
					return err
				}
				k := rollupKey{tenantID, grainHour, time.Unix(h, 0).UTC(), kind.kind, key}
				if runs[k] != nil {
					runs[k].exact = &p
				}
				return nil
			})
			if err != nil {
				return nil, nil, err
			}
		}
	}
	return runs, usage, nil
}

// txQuery runs a query inside tx and calls fn for each row.
func txQuery(ctx context.Context, tx *ent.Tx, query string, args []any, fn func(scan func(...any) error) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// VerifyReport lists the differences Verify found, one line each.
type VerifyReport struct {
	Tenants, Days, Rows int
	Differences         []string
}

// OK reports whether Verify found no difference.
func (r VerifyReport) OK() bool { return len(r.Differences) == 0 }

// Verify compares the rollups (rows and pending deltas) of every hour and
// day opts covers with a raw scan: any difference in a count or a sum is
// reported, and each hour's duration percentiles must be within
// rollup.MaxRelativeError of the exact nearest-rank percentiles. Each
// (tenant, day) is read in one snapshot.
func (rl *Rollups) Verify(ctx context.Context, opts RebuildOptions) (rep VerifyReport, err error) {
	defer derrors.Wrap(&err, "Rollups.Verify")
	err = rl.eachDay(ctx, opts, func(context.Context, uuid.UUID) error {
		rep.Tenants++
		return nil
	}, func(ctx context.Context, tenantID uuid.UUID, day time.Time) error {
		rep.Days++
		return rl.s.withSnapshotTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
			wantRuns, wantUsage, err := rl.rawDay(ctx, tx, tenantID, day, true)
			if err != nil {
				return err
			}
			gotRuns, gotUsage, err := rl.storedDay(ctx, tx, tenantID, day)
			if err != nil {
				return err
			}
			for _, k := range unionKeys(wantRuns, gotRuns) {
				rep.Rows++
				w, g := orZero(wantRuns[k]), orZero(gotRuns[k])
				if d := diffRun(w, g); d != "" {
					rep.Differences = append(rep.Differences, fmt.Sprintf("%s: %s", describe(k), d))
				}
			}
			for _, k := range unionKeys(wantUsage, gotUsage) {
				rep.Rows++
				w, g := orZero(wantUsage[k]), orZero(gotUsage[k])
				if w != g {
					rep.Differences = append(rep.Differences, fmt.Sprintf("%s: rollup %+v, raw %+v", describe(k), g, w))
				}
			}
			return nil
		})
	})
	return rep, err
}

func describe(k rollupKey) string {
	return fmt.Sprintf("tenant %s %s %s %s=%q", k.tenant, k.grain, k.bucket.Format(time.RFC3339), k.kind, k.key)
}

func orZero[T any](p *T) T {
	if p == nil {
		var z T
		return z
	}
	return *p
}

func unionKeys[A, B any](a map[rollupKey]A, b map[rollupKey]B) []rollupKey {
	seen := map[rollupKey]bool{}
	var out []rollupKey
	for k := range a {
		seen[k] = true
		out = append(out, k)
	}
	for k := range b {
		if !seen[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return describe(out[i]) < describe(out[j]) })
	return out
}

// diffRun describes how the stored figures g differ from the raw w, "" when
// they agree: every count and sum equal, the histogram holding as many
// durations, and each percentile within the histogram's error.
func diffRun(w, g runFigures) string {
	if w.runs != g.runs || w.durCount != g.durCount || w.durSumUS != g.durSumUS || w.toolCalls != g.toolCalls || w.failed != g.failed {
		return fmt.Sprintf("rollup runs=%d durations=%d sum_us=%d toolCalls=%d failed=%d, raw runs=%d durations=%d sum_us=%d toolCalls=%d failed=%d",
			g.runs, g.durCount, g.durSumUS, g.toolCalls, g.failed, w.runs, w.durCount, w.durSumUS, w.toolCalls, w.failed)
	}
	if g.hist.Total() != w.durCount {
		return fmt.Sprintf("histogram holds %d durations, raw %d", g.hist.Total(), w.durCount)
	}
	if w.exact == nil {
		return ""
	}
	for i, q := range []float64{0.5, 0.95, 0.99} {
		est, _ := g.hist.Quantile(q)
		exact := math.Max(w.exact[i], 0) / 1000 // the histogram reads durations <= 0 as 0
		if math.Abs(est-exact) > exact*rollup.MaxRelativeError*(1+1e-9) {
			return fmt.Sprintf("p%g %.3f ms, raw %.3f ms: beyond %.0f%%", q*100, est, exact, rollup.MaxRelativeError*100)
		}
	}
	return ""
}

// storedDay reads the rollup rows of tenantID's day (its hours and the
// day itself) with the pending deltas folded in, as a read would.
func (rl *Rollups) storedDay(ctx context.Context, tx *ent.Tx, tenantID uuid.UUID, day time.Time) (
	map[rollupKey]*runFigures, map[rollupKey]*usageFigures, error) {
	end := day.AddDate(0, 0, 1)
	args := []any{tenantID, day, end}
	inDay := ` WHERE tenant_id = $1 AND ((grain = 'hour' AND bucket_start >= $2 AND bucket_start < $3) OR (grain = 'day' AND bucket_start = $2))`
	runs := map[rollupKey]*runFigures{}
	err := txQuery(ctx, tx, rl.s.q(`SELECT grain, bucket_start, kind, key, `+runFigureCols+` FROM `+rl.s.table("run_rollups")+inDay), args,
		func(scan func(...any) error) error {
			k := rollupKey{tenant: tenantID}
			f := &runFigures{}
			var hist []byte
			if err := scan(append([]any{&k.grain, &k.bucket, &k.kind, &k.key}, scanRunFigures(f, &hist)...)...); err != nil {
				return err
			}
			k.bucket = k.bucket.UTC()
			runs[k] = f
			return decodeHist(f, hist)
		})
	if err != nil {
		return nil, nil, err
	}
	err = txQuery(ctx, tx, rl.s.q(`SELECT hour, status, agent_name, `+runFigureCols+` FROM `+rl.s.table("run_rollup_deltas")+
		` WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`), args, func(scan func(...any) error) error {
		k := runKey{tenant: tenantID}
		var f runFigures
		var hist []byte
		if err := scan(append([]any{&k.hour, &k.status, &k.agent}, scanRunFigures(&f, &hist)...)...); err != nil {
			return err
		}
		if err := decodeHist(&f, hist); err != nil {
			return err
		}
		for _, t := range runTargets(k) {
			if runs[t] == nil {
				runs[t] = &runFigures{}
			}
			runs[t].add(f)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	usage := map[rollupKey]*usageFigures{}
	err = txQuery(ctx, tx, rl.s.q(`SELECT grain, bucket_start, kind, key, `+usageFigureCols+` FROM `+rl.s.table("usage_rollups")+inDay), args,
		func(scan func(...any) error) error {
			k := rollupKey{tenant: tenantID}
			f := &usageFigures{}
			if err := scan(append([]any{&k.grain, &k.bucket, &k.kind, &k.key}, scanUsageFigures(f)...)...); err != nil {
				return err
			}
			k.bucket = k.bucket.UTC()
			usage[k] = f
			return nil
		})
	if err != nil {
		return nil, nil, err
	}
	err = txQuery(ctx, tx, rl.s.q(`SELECT hour, model, agent_name, model_runs, `+usageFigureCols+` FROM `+rl.s.table("usage_rollup_deltas")+
		` WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`), args, func(scan func(...any) error) error {
		k := usageKey{tenant: tenantID}
		var f usageFigures
		if err := scan(append([]any{&k.hour, &k.model, &k.agent, &f.modelRuns}, scanUsageFigures(&f)...)...); err != nil {
			return err
		}
		addUsageTargets(usage, k, f)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// A stored row whose figures are all zero is no row at all.
	for k, f := range runs {
		if f.zero() {
			delete(runs, k)
		}
	}
	for k, f := range usage {
		if *f == (usageFigures{}) {
			delete(usage, k)
		}
	}
	return runs, usage, nil
}
