package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/internal/rollup"
)

// WholeHours is the window a rollup read covers for w: From rounded down
// and To rounded up to whole UTC hours; zero ends stay open.
func (w Window) WholeHours() Window {
	h := rollup.WholeHours(w.From, w.To)
	return Window{From: h.From, To: h.To}
}

// windowSQL is the WHERE clause of a rollup read over w (whole hours):
// day rows for the whole days, hour rows for the ragged ends, and the
// deltas of every hour. args continue after the tenant ($1) and kind ($2).
type windowSQL struct {
	rollups, deltas string
	args            []any
}

func newWindowSQL(w Window) windowSQL {
	hw := rollup.Window{From: w.From, To: w.To}
	daysFrom, daysTo := hw.Split()
	out := windowSQL{args: []any{}}
	arg := func(v time.Time) string {
		out.args = append(out.args, v)
		return fmt.Sprintf("$%d", len(out.args)+2)
	}
	rng := func(col string, from, to time.Time) string {
		var c []string
		if !from.IsZero() {
			c = append(c, col+" >= "+arg(from))
		}
		if !to.IsZero() {
			c = append(c, col+" < "+arg(to))
		}
		if len(c) == 0 {
			return "true"
		}
		return strings.Join(c, " AND ")
	}
	var parts []string
	if daysFrom.IsZero() || daysTo.IsZero() || daysFrom.Before(daysTo) {
		parts = append(parts, "(grain = 'day' AND "+rng("bucket_start", daysFrom, daysTo)+")")
	}
	if !w.From.IsZero() && w.From.Before(daysFrom) {
		parts = append(parts, "(grain = 'hour' AND "+rng("bucket_start", w.From, daysFrom)+")")
	}
	if !w.To.IsZero() && daysTo.Before(w.To) {
		parts = append(parts, "(grain = 'hour' AND "+rng("bucket_start", daysTo, w.To)+")")
	}
	if len(parts) == 0 {
		parts = []string{"false"}
	}
	out.rollups = "(" + strings.Join(parts, " OR ") + ")"
	out.deltas = rng("hour", w.From, w.To)
	return out
}

// query runs a rollup read through the ent driver (with the tenant set for
// row-level security) and calls fn for each row.
func (s *Store) query(ctx context.Context, query string, args []any, fn func(scan func(...any) error) error) error {
	var rows entsql.Rows
	if err := s.drv.Query(ctx, s.q(query), args, &rows); err != nil {
		return translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return translate(err)
		}
	}
	return translate(rows.Err())
}

// runStats reads the run rollups of tenantID over w (whole hours) grouped
// by kind: status or agentName.
func (rl *Rollups) runStats(ctx context.Context, tenantID uuid.UUID, w Window, kind string) (map[string]*runGroup, error) {
	ws := newWindowSQL(w)
	deltaKey := "status"
	if kind == kindAgentName {
		deltaKey = "agent_name"
	}
	q := `SELECT key, ` + runFigureCols + ` FROM ` + rl.s.table("run_rollups") +
		` WHERE tenant_id = $1 AND kind = $2 AND ` + ws.rollups + `
UNION ALL
SELECT ` + deltaKey + `, ` + runFigureCols + ` FROM ` + rl.s.table("run_rollup_deltas") +
		` WHERE tenant_id = $1 AND ` + ws.deltas
	out := map[string]*runGroup{}
	err := rl.s.query(ctx, q, append([]any{tenantID, kind}, ws.args...), func(scan func(...any) error) error {
		var key string
		var f runFigures
		var hist []byte
		if err := scan(append([]any{&key}, scanRunFigures(&f, &hist)...)...); err != nil {
			return err
		}
		g := out[key]
		if g == nil {
			g = &runGroup{}
			out[key] = g
		}
		g.add(f)
		return g.hist.AddEncoded(hist)
	})
	return out, err
}

// runGroup is the figures of one group of a stats read, its histogram
// dense for fast adding.
type runGroup struct {
	runFigures
	hist rollup.Dense
}

// toRunStats turns the figures of a group into its stats.
func toRunStats(key string, f *runGroup) RunStats {
	st := RunStats{Key: key, Runs: f.runs, ToolCalls: f.toolCalls, FailedToolCalls: f.failed}
	if f.durCount > 0 {
		mean := float64(f.durSumUS) / float64(f.durCount) / 1000
		st.MeanDurationMs = &mean
		for q, dst := range map[float64]**float64{0.5: &st.P50DurationMs, 0.95: &st.P95DurationMs, 0.99: &st.P99DurationMs} {
			if v, ok := f.hist.Quantile(q); ok {
				*dst = &v
			}
		}
	}
	if f.toolCalls > 0 {
		rate := float64(f.failed) / float64(f.toolCalls)
		st.ToolCallFailureRate = &rate
	}
	return st
}

// usageSummary reads the usage rollups of tenantID over w (whole hours):
// by model, by agent name, or (day) by UTC day of the agent-name rows.
func (rl *Rollups) usageSummary(ctx context.Context, tenantID uuid.UUID, w Window, groupBy string) (map[string]*usageFigures, error) {
	ws := newWindowSQL(w)
	kind, deltaKey, deltaRuns := kindAgentName, "agent_name", "runs"
	if groupBy == "model" {
		kind, deltaKey, deltaRuns = kindModel, "model", "model_runs"
	}
	cols := "input_tokens, output_tokens, cached_input_tokens, total_tokens, cost_micros, %s, records"
	q := `SELECT key, bucket_start, ` + fmt.Sprintf(cols, "runs") + ` FROM ` + rl.s.table("usage_rollups") +
		` WHERE tenant_id = $1 AND kind = $2 AND ` + ws.rollups + `
UNION ALL
SELECT ` + deltaKey + `, hour, ` + fmt.Sprintf(cols, deltaRuns) + ` FROM ` + rl.s.table("usage_rollup_deltas") +
		` WHERE tenant_id = $1 AND ` + ws.deltas
	out := map[string]*usageFigures{}
	err := rl.s.query(ctx, q, append([]any{tenantID, kind}, ws.args...), func(scan func(...any) error) error {
		var key string
		var bucket time.Time
		var f usageFigures
		if err := scan(append([]any{&key, &bucket}, scanUsageFigures(&f)...)...); err != nil {
			return err
		}
		if groupBy == "day" {
			key = rollup.Day(bucket).Format(time.DateOnly)
		}
		if out[key] == nil {
			out[key] = &usageFigures{}
		}
		out[key].add(f)
		return nil
	})
	return out, err
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
