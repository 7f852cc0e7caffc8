package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/otlp"
	"github.com/agentstore/agentstore/internal/rollup"
)

// oracle computes the run stats and the usage summary from the raw rows,
// in Go, independently of the rollups.
type oracle struct {
	runs  []*ent.AgentRun
	usage []*ent.UsageMetric
}

func loadOracle(t *testing.T, ctx context.Context, s *Store) oracle {
	t.Helper()
	runs, err := s.Client().AgentRun.Query().WithToolCalls().All(ctx)
	require.NoError(t, err)
	usage, err := s.Client().UsageMetric.Query().Order(usagemetric.ByRecordedAt()).All(ctx)
	require.NoError(t, err)
	return oracle{runs, usage}
}

func in(w Window, t time.Time) bool {
	return (w.From.IsZero() || !t.Before(w.From)) && (w.To.IsZero() || t.Before(w.To))
}

// stats returns, per key, runs, tool calls, failed calls and the sorted
// durations in microseconds.
func (o oracle) stats(w Window, groupBy string) map[string]*oracleGroup {
	out := map[string]*oracleGroup{}
	for _, r := range o.runs {
		if !in(w, r.CreatedAt) {
			continue
		}
		k := string(r.Status)
		if groupBy == "agentName" {
			k = r.AgentName
		}
		g := out[k]
		if g == nil {
			g = &oracleGroup{}
			out[k] = g
		}
		g.runs++
		for _, c := range r.Edges.ToolCalls {
			g.calls++
			if c.Status == "failed" {
				g.failed++
			}
		}
		if r.StartedAt != nil && r.EndedAt != nil {
			g.durs = append(g.durs, r.EndedAt.Sub(*r.StartedAt).Microseconds())
		}
	}
	for _, g := range out {
		slices.Sort(g.durs)
	}
	return out
}

type oracleGroup struct {
	runs, calls, failed int64
	durs                []int64
}

func (o oracle) summary(w Window, groupBy string) []UsageSummary {
	agent := map[uuid.UUID]string{}
	for _, r := range o.runs {
		agent[r.ID] = r.AgentName
	}
	type first struct {
		run   uuid.UUID
		model string
	}
	firsts := map[first]*ent.UsageMetric{}
	for _, u := range o.usage { // by recordedAt
		if u.RunID == nil {
			continue
		}
		for _, f := range []first{{*u.RunID, ""}, {*u.RunID, u.Model}} {
			if firsts[f] == nil || rollup.Hour(u.RecordedAt).Before(rollup.Hour(firsts[f].RecordedAt)) {
				firsts[f] = u
			}
		}
	}
	key := func(u *ent.UsageMetric) string {
		switch groupBy {
		case "model":
			return u.Model
		case "day":
			return u.RecordedAt.UTC().Format(time.DateOnly)
		}
		if u.RunID == nil {
			return ""
		}
		return agent[*u.RunID]
	}
	sums := map[string]*UsageSummary{}
	micros := map[string]int64{}
	for _, u := range o.usage {
		if !in(w, u.RecordedAt) {
			continue
		}
		k := key(u)
		if sums[k] == nil {
			sums[k] = &UsageSummary{Key: k}
		}
		s := sums[k]
		s.InputTokens += u.InputTokens
		s.OutputTokens += u.OutputTokens
		s.TotalTokens += u.TotalTokens
		micros[k] += rollup.CostMicros(u.CostUsd)
	}
	for f, u := range firsts {
		if (groupBy == "model") != (f.model != "") || !in(w, rollup.Hour(u.RecordedAt)) {
			continue
		}
		if s := sums[key(u)]; s != nil {
			s.Runs++
		}
	}
	var out []UsageSummary
	for k, s := range sums {
		s.CostUSD = float64(micros[k]) / 1e6
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// check compares Stats and Summary with the oracle over w.
func (o oracle) check(t *testing.T, ctx context.Context, s *Store, w Window) {
	t.Helper()
	hw := w.WholeHours()
	for _, groupBy := range []string{"status", "agentName"} {
		got, err := s.Runs.Stats(ctx, w, groupBy)
		require.NoError(t, err)
		want := o.stats(hw, groupBy)
		require.Len(t, got, len(want), "%s over %v", groupBy, hw)
		for _, st := range got {
			g := want[st.Key]
			require.NotNil(t, g, st.Key)
			assert.Equal(t, g.runs, st.Runs, st.Key)
			assert.Equal(t, g.calls, st.ToolCalls, st.Key)
			assert.Equal(t, g.failed, st.FailedToolCalls, st.Key)
			if len(g.durs) == 0 {
				assert.Nil(t, st.MeanDurationMs)
				continue
			}
			var sum int64
			for _, d := range g.durs {
				sum += d
			}
			require.NotNil(t, st.MeanDurationMs)
			assert.InDelta(t, float64(sum)/float64(len(g.durs))/1000, *st.MeanDurationMs, 1e-9, "mean of %s", st.Key)
			for q, p := range map[float64]*float64{0.5: st.P50DurationMs, 0.95: st.P95DurationMs, 0.99: st.P99DurationMs} {
				exact := float64(g.durs[max(int(math.Ceil(q*float64(len(g.durs)))), 1)-1])
				exact = math.Max(exact, 0) / 1000
				require.NotNil(t, p)
				assert.LessOrEqual(t, math.Abs(*p-exact), exact*rollup.MaxRelativeError*(1+1e-9), "p%v of %s: %v vs exact %v", q, st.Key, *p, exact)
			}
		}
	}
	for _, groupBy := range []string{"day", "model", "agentName"} {
		got, err := s.Usage.Summary(ctx, w, groupBy)
		require.NoError(t, err)
		want := o.summary(hw, groupBy)
		if len(want) == 0 {
			assert.Empty(t, got)
			continue
		}
		assert.Equal(t, want, got, "%s over %v", groupBy, hw)
	}
}

// randomWindow is a window inside [base-3 days, base+1 day), not on hours.
func randomWindow(rng *rand.Rand, base time.Time) Window {
	span := 4 * 24 * time.Hour
	a := base.Add(-3*24*time.Hour + time.Duration(rng.Int64N(int64(span))))
	b := base.Add(-3*24*time.Hour + time.Duration(rng.Int64N(int64(span))))
	if b.Before(a) {
		a, b = b, a
	}
	switch rng.IntN(5) {
	case 0:
		return Window{}
	case 1:
		return Window{From: a}
	case 2:
		return Window{To: b}
	}
	return Window{From: a, To: b}
}

func requireVerified(t *testing.T, s *Store) {
	t.Helper()
	rep, err := s.Rollups.Verify(context.Background(), RebuildOptions{})
	require.NoError(t, err)
	require.True(t, rep.OK(), "verify: %v", rep.Differences)
}

// TestRollupsExact drives random workloads through every write path, on
// both backends and many seeds, and checks that the stats and the usage
// summary (read from rollups and deltas, folded at random moments) equal a
// raw scan for random windows; that verify agrees; and that rebuild from
// raw rows, here also of runs created across several days, gives the same.
func TestRollupsExact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		for seed := range 12 {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(seed), 14))
				ctx, tenantID := asTenant(t)
				base := time.Now().UTC()
				randomWorkload(t, ctx, s, rng, base, 40)
				o := loadOracle(t, ctx, s)
				for range 6 {
					o.check(t, ctx, s, randomWindow(rng, base))
				}
				requireVerified(t, s)

				// Runs of past days, written straight into the raw table
				// (as a legacy import or a seed would), then rebuilt.
				for i := range 30 {
					// Microseconds, as every timestamp the service writes.
					created := base.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour)))).Truncate(time.Microsecond)
					c := s.Client().AgentRun.Create().SetTenantID(tenantID).SetAgentName(fmt.Sprint("old-", i%3)).
						SetStatus(agentrun.Status([]string{"queued", "succeeded", "failed"}[i%3])).SetCreatedAt(created)
					if i%3 != 0 {
						c.SetStartedAt(created).SetEndedAt(created.Add(time.Duration(rng.Int64N(int64(time.Hour)))).Truncate(time.Microsecond))
					}
					_, err := c.Save(ctx)
					require.NoError(t, err)
				}
				rep, err := s.Rollups.Verify(context.Background(), RebuildOptions{Tenant: &tenantID})
				require.NoError(t, err)
				require.False(t, rep.OK(), "verify must see the runs the rollups miss")
				_, err = s.Rollups.Rebuild(context.Background(), RebuildOptions{Tenant: &tenantID})
				require.NoError(t, err)
				o = loadOracle(t, ctx, s)
				for range 6 {
					o.check(t, ctx, s, randomWindow(rng, base))
				}
				requireVerified(t, s)
			})
		}
	})
}

// randomWorkload runs n random writes: runs created, moved through their
// statuses, given tool calls, and usage recorded with and without a run,
// at times over the last three days; deltas are folded now and then.
func randomWorkload(t *testing.T, ctx context.Context, s *Store, rng *rand.Rand, base time.Time, n int) {
	t.Helper()
	var runs []*ent.AgentRun
	models := []string{"m-a", "m-b", "m-c"}
	// Three traces, each written in random parts, repeats included: a
	// placeholder run filled in and renamed when its root arrives, child
	// runs, tool calls and LLM spans over several hours.
	var traces [][]otlp.Span
	var traceRuns []uuid.UUID
	tenantID, err := viewerTenant(ctx)
	require.NoError(t, err)
	for i := range 3 {
		id := fmt.Sprintf("%032x", rng.Uint64())
		spans := agentTrace(id)
		if i == 0 { // a root that is not an agent span: the agent under it names the run
			spans[0].Target, spans[0].StepType = otlp.TargetStep, "server"
		}
		for j := range spans {
			at := base.Add(-time.Duration(rng.Int64N(int64(48 * time.Hour)))).Truncate(time.Millisecond)
			spans[j].Start, spans[j].End = at, at.Add(time.Duration(rng.Int64N(int64(time.Minute))))
			spans[j].Model = models[rng.IntN(3)]
			spans[j].Failed = rng.IntN(3) == 0
		}
		traces = append(traces, spans)
		traceRuns = append(traceRuns, traceRunID(tenantID, id))
	}
	for range n {
		switch op := rng.IntN(12); {
		case op >= 10:
			spans := traces[rng.IntN(len(traces))]
			var part []otlp.Span
			for _, sp := range spans {
				if rng.IntN(3) == 0 {
					part = append(part, sp)
				}
			}
			_, err := s.Traces.Write(ctx, part, rng.IntN(4) > 0)
			require.NoError(t, err)
		case op < 3 || len(runs) == 0:
			in := NewRun{AgentName: fmt.Sprint("agent-", rng.IntN(3))}
			if rng.IntN(2) == 0 {
				in.Status = "running"
				st := base.Add(-time.Duration(rng.Int64N(int64(48 * time.Hour))))
				in.StartedAt = &st
			}
			for range rng.IntN(4) {
				in.ToolCalls = append(in.ToolCalls, NewToolCall{ToolName: "t", Status: []string{"succeeded", "failed"}[rng.IntN(2)]})
			}
			run, err := s.Runs.Create(ctx, in)
			require.NoError(t, err)
			runs = append(runs, run)
		case op < 5:
			run := runs[rng.IntN(len(runs))]
			next := map[agentrun.Status][]string{"queued": {"running", "cancelled"}, "running": {"succeeded", "failed", "cancelled"}}[run.Status]
			if len(next) == 0 {
				continue
			}
			to := next[rng.IntN(len(next))]
			p := RunPatch{Status: &to}
			if rng.IntN(2) == 0 {
				end := base.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour)))) // may be before the start
				p.EndedAt = &end
			}
			updated, err := s.Runs.Update(ctx, run.ID, p)
			require.NoError(t, err)
			*run = *updated
		case op < 6:
			run := runs[rng.IntN(len(runs))]
			if IsTerminal(run.Status) {
				continue
			}
			_, err := s.Runs.AppendToolCalls(ctx, run.ID, []NewToolCall{{ToolName: "t", Status: "failed"}, {ToolName: "u", Status: "succeeded"}})
			require.NoError(t, err)
		case op < 9:
			u := NewUsage{Model: models[rng.IntN(3)], InputTokens: rng.Int64N(1000), OutputTokens: rng.Int64N(100),
				CostUSD: float64(rng.IntN(1_000_000)) / 1e6}
			at := base.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour))))
			u.RecordedAt = &at
			if rng.IntN(4) > 0 {
				u.RunID = &runs[rng.IntN(len(runs))].ID
			}
			if id := traceRuns[rng.IntN(len(traceRuns))]; rng.IntN(4) == 0 {
				if _, err := s.Runs.Get(ctx, id, Include{}); err == nil {
					u.RunID = &id // a trace's run, maybe a placeholder renamed later
				}
			}
			_, err := s.Usage.Record(ctx, u)
			require.NoError(t, err)
		default:
			_, err := s.Rollups.Fold(context.Background())
			require.NoError(t, err)
		}
	}
}

// TestRollupsConcurrentWriters has 16 writers create runs, record tool
// calls and usage on one tenant in the same hour while the folder runs:
// every sum is exact, and no writer waited on another for a rollup row.
func TestRollupsConcurrentWriters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		const writers, each = 16, 15
		now := time.Now().UTC()
		stop := make(chan struct{})
		folded := make(chan struct{})
		go func() {
			defer close(folded)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
					_, err := s.Rollups.Fold(context.Background())
					assert.NoError(t, err)
				}
			}
		}()
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					run, err := s.Runs.Create(ctx, NewRun{AgentName: "a", Status: "running", StartedAt: &now,
						ToolCalls: []NewToolCall{{ToolName: "t", Status: "failed"}}})
					if !assert.NoError(t, err) {
						return
					}
					_, err = s.Usage.Record(ctx, NewUsage{RunID: &run.ID, Model: "m", InputTokens: int64(w), CostUSD: 0.000001, RecordedAt: &now})
					assert.NoError(t, err)
					end := now.Add(time.Duration(i+1) * time.Millisecond)
					_, err = s.Runs.Update(ctx, run.ID, RunPatch{Status: ptr("succeeded"), EndedAt: &end})
					assert.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		close(stop)
		<-folded
		stats, err := s.Runs.Stats(ctx, Window{}, "status")
		require.NoError(t, err)
		require.Len(t, stats, 1)
		assert.Equal(t, "succeeded", stats[0].Key)
		assert.EqualValues(t, writers*each, stats[0].Runs)
		assert.EqualValues(t, writers*each, stats[0].ToolCalls)
		assert.InDelta(t, float64(each+1)/2, *stats[0].MeanDurationMs, 1e-9)
		sum, err := s.Usage.Summary(ctx, Window{}, "model")
		require.NoError(t, err)
		assert.Equal(t, []UsageSummary{{Key: "m", InputTokens: each * writers * (writers - 1) / 2, TotalTokens: each * writers * (writers - 1) / 2,
			CostUSD: float64(writers*each) / 1e6, Runs: writers * each}}, sum)
		requireVerified(t, s)
	})
}
