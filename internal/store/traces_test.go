package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/otlp"
	"github.com/agentstore/agentstore/internal/tenant"
)

// traceT0 is when the test traces start.
var traceT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// span is a mapped span of trace "trace" starting at ms after traceT0 and
// lasting 10 ms.
func span(trace, id, parent string, target otlp.Target, ms int) otlp.Span {
	s := otlp.Span{
		TraceID: trace, SpanID: id, ParentSpanID: parent, Target: target, Name: "span " + id,
		Start: traceT0.Add(time.Duration(ms) * time.Millisecond), End: traceT0.Add(time.Duration(ms+10) * time.Millisecond),
	}
	switch target {
	case otlp.TargetRun:
		s.AgentName = "agent-" + id
	case otlp.TargetLLM:
		s.StepType, s.Model, s.InputTokens, s.OutputTokens = "llm", "gpt-x", 10, 5
	case otlp.TargetToolCall:
		s.ToolName = "tool-" + id
	default:
		s.StepType = "chain"
	}
	return s
}

// agentTrace is a trace of 8 spans: the root agent a; under it an LLM call
// b, a tool c, a chain d with a tool e inside, and a nested agent f with an
// LLM call g and a tool h.
func agentTrace(trace string) []otlp.Span {
	return []otlp.Span{
		span(trace, "a", "", otlp.TargetRun, 0),
		span(trace, "b", "a", otlp.TargetLLM, 10),
		span(trace, "c", "a", otlp.TargetToolCall, 20),
		span(trace, "d", "a", otlp.TargetStep, 30),
		span(trace, "e", "d", otlp.TargetToolCall, 35),
		span(trace, "f", "a", otlp.TargetRun, 50),
		span(trace, "g", "f", otlp.TargetLLM, 55),
		span(trace, "h", "f", otlp.TargetToolCall, 60),
	}
}

// traceRun loads the run of trace with its steps and tool calls.
func traceRun(t *testing.T, ctx context.Context, s *Store, tenantID uuid.UUID, trace string) *ent.AgentRun {
	t.Helper()
	run, err := s.Runs.Get(ctx, traceRunID(tenantID, trace), Include{Steps: true, ToolCalls: true})
	require.NoError(t, err)
	return run
}

func stepNames(run *ent.AgentRun) []string {
	var out []string
	for i, st := range run.Edges.Steps {
		out = append(out, fmt.Sprintf("%d:%s", st.Seq, *st.Name))
		_ = i
	}
	return out
}

func TestTraceIsOneRunWithChildRuns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, tenantID := asTenant(t)
		trace := "0af7651916cd43dd8448eb211c80319c"
		spans := agentTrace(trace)
		spans[0].Failed, spans[0].Error = true, "gave up"
		spans[0].Model = "gpt-x"
		w, err := s.Traces.Write(ctx, spans, true)
		require.NoError(t, err)
		assert.Zero(t, w.Duplicates)
		require.Len(t, w.CreatedRuns, 2, "the trace's run and the nested agent's")
		assert.Len(t, w.Steps, 3)
		assert.Len(t, w.ToolCalls, 3)
		assert.Equal(t, 2, w.Usage)

		run := traceRun(t, ctx, s, tenantID, trace)
		assert.Equal(t, "agent-a", run.AgentName)
		assert.Equal(t, agentrun.StatusFailed, run.Status)
		assert.Equal(t, "gave up", *run.Error)
		assert.Equal(t, traceT0, run.StartedAt.UTC())
		assert.Equal(t, traceT0.Add(10*time.Millisecond), run.EndedAt.UTC())
		assert.Equal(t, []string{"1:span b", "2:span d"}, stepNames(run))
		require.Len(t, run.Edges.ToolCalls, 2)
		calls := map[string]*ent.ToolCall{}
		for _, c := range run.Edges.ToolCalls {
			calls[c.ToolName] = c
		}
		assert.Nil(t, calls["tool-c"].StepID, "a tool under the agent belongs to no step")
		require.NotNil(t, calls["tool-e"].StepID, "a tool under a step belongs to it")
		assert.Equal(t, run.Edges.Steps[1].ID, *calls["tool-e"].StepID)
		assert.Equal(t, int64(10), *calls["tool-e"].DurationMs)

		child, err := s.Runs.Get(ctx, spanRowID(tenantID, trace, "f"), Include{Steps: true, ToolCalls: true})
		require.NoError(t, err)
		assert.Equal(t, "agent-f", child.AgentName)
		assert.Equal(t, run.ID, *child.ParentRunID)
		assert.Equal(t, agentrun.StatusSucceeded, child.Status)
		assert.Equal(t, []string{"1:span g"}, stepNames(child))
		require.Len(t, child.Edges.ToolCalls, 1)

		usage, err := s.client.UsageMetric.Query().Where(usagemetric.TenantID(tenantID)).Order(usagemetric.ByRecordedAt()).All(ctx)
		require.NoError(t, err)
		require.Len(t, usage, 2, "one usage record per LLM span")
		assert.Equal(t, run.ID, *usage[0].RunID)
		assert.Equal(t, child.ID, *usage[1].RunID)
		assert.Equal(t, int64(15), usage[0].TotalTokens)

		logs, _, err := s.Audit.List(ctx, AuditFilter{Action: "trace.ingest"})
		require.NoError(t, err)
		require.Len(t, logs, 1, "one audit row per trace written")
		assert.Equal(t, run.ID.String(), logs[0].ResourceID)

		// The same spans again, whole or in part: nothing new.
		again, err := s.Traces.Write(ctx, append(spans, spans[3]), true)
		require.NoError(t, err)
		assert.Equal(t, len(spans)+1, again.Duplicates)
		assert.Empty(t, again.Steps)
		assert.Empty(t, again.ToolCalls)
		assert.Empty(t, again.CreatedRuns)
		assert.Equal(t, stepNames(run), stepNames(traceRun(t, ctx, s, tenantID, trace)))
		n, err := s.client.UsageMetric.Query().Where(usagemetric.TenantID(tenantID)).Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, n)

		// Another tenant's trace with the same id is another run.
		other, otherTenant := asTenant(t)
		_, err = s.Traces.Write(other, spans[:2], true)
		require.NoError(t, err)
		assert.NotEqual(t, traceRunID(tenantID, trace), traceRunID(otherTenant, trace))
		assert.Len(t, traceRun(t, other, s, otherTenant, trace).Edges.Steps, 1)
		assert.Len(t, traceRun(t, ctx, s, tenantID, trace).Edges.Steps, 2)
		requireVerified(t, s)
	})
}

func TestTraceSpansInAnyOrderAndSeveralRequests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, tenantID := asTenant(t)
		trace := "5b8efff798038103d269b633813fc60c"
		spans := agentTrace(trace)
		// Children first, latest first, as a batching exporter sends them,
		// the root last.
		_, err := s.Traces.Write(ctx, []otlp.Span{spans[3], spans[4]}, true)
		require.NoError(t, err)
		run := traceRun(t, ctx, s, tenantID, trace)
		assert.Equal(t, agentrun.StatusRunning, run.Status, "a placeholder until the root arrives")
		assert.Equal(t, "trace "+trace, run.AgentName)
		assert.Equal(t, []string{"1:span d"}, stepNames(run))

		_, err = s.Traces.Write(ctx, []otlp.Span{spans[7], spans[6], spans[5]}, true)
		require.NoError(t, err)
		_, err = s.Traces.Write(ctx, []otlp.Span{spans[2], spans[1]}, true)
		require.NoError(t, err)
		run = traceRun(t, ctx, s, tenantID, trace)
		assert.Equal(t, []string{"1:span b", "2:span d"}, stepNames(run), "renumbered by start time")
		assert.Equal(t, agentrun.StatusRunning, run.Status)

		_, err = s.Traces.Write(ctx, []otlp.Span{spans[0]}, true)
		require.NoError(t, err)
		run = traceRun(t, ctx, s, tenantID, trace)
		assert.Equal(t, agentrun.StatusSucceeded, run.Status)
		assert.Equal(t, "agent-a", run.AgentName)
		assert.Len(t, run.Edges.ToolCalls, 2)
		child, err := s.Runs.Get(ctx, spanRowID(tenantID, trace, "f"), Include{Steps: true, ToolCalls: true})
		require.NoError(t, err)
		assert.Equal(t, []string{"1:span g"}, stepNames(child), "the nested agent's spans came with it")
		assert.Len(t, child.Edges.ToolCalls, 1)

		// A child that arrives before its nested agent stays in the run
		// its known ancestors place it in (documented).
		late := "7c1fbb3a2f6a4d55a1b0c9d8e7f60011"
		ls := agentTrace(late)
		_, err = s.Traces.Write(ctx, []otlp.Span{ls[6]}, true)
		require.NoError(t, err)
		_, err = s.Traces.Write(ctx, ls, true)
		require.NoError(t, err)
		lr := traceRun(t, ctx, s, tenantID, late)
		assert.Equal(t, []string{"1:span b", "2:span d", "3:span g"}, stepNames(lr))
		requireVerified(t, s)
	})
}

func TestTraceRootThatIsNotAnAgent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, tenantID := asTenant(t)
		for _, order := range []string{"root first", "agent first"} {
			trace := fmt.Sprintf("%032x", len(order))
			root := span(trace, "r", "", otlp.TargetStep, 0)
			root.Name, root.StepType = "POST /chat", "server"
			agent := span(trace, "a", "r", otlp.TargetRun, 5)
			agent.AgentName = "support-bot"
			llm := span(trace, "l", "a", otlp.TargetLLM, 6)
			batches := [][]otlp.Span{{root}, {agent, llm}}
			if order == "agent first" {
				batches[0], batches[1] = batches[1], batches[0]
			}
			for _, b := range batches {
				_, err := s.Traces.Write(ctx, b, true)
				require.NoError(t, err, order)
			}
			run := traceRun(t, ctx, s, tenantID, trace)
			assert.Equal(t, "support-bot", run.AgentName, "%s: the agent span under the root names the run", order)
			assert.Equal(t, agentrun.StatusSucceeded, run.Status, order)
			child, err := s.Runs.Get(ctx, spanRowID(tenantID, trace, "a"), Include{Steps: true})
			require.NoError(t, err, order)
			assert.Equal(t, run.ID, *child.ParentRunID)
			assert.Len(t, child.Edges.Steps, 1, order)
			requireVerified(t, s)
		}
	})
}

func TestTraceWritesOfOneTraceTakeTurns(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, tenantID := asTenant(t)
		trace := "11112222333344445555666677778888"
		var spans []otlp.Span
		spans = append(spans, span(trace, "root", "", otlp.TargetRun, 0))
		for i := range 40 {
			spans = append(spans, span(trace, fmt.Sprintf("s%02d", i), "root", otlp.TargetLLM, 40-i))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Every writer sends every fifth span, and the root; some overlap.
				var part []otlp.Span
				for i, sp := range spans {
					if i%5 == w%5 || i == 0 {
						part = append(part, sp)
					}
				}
				_, err := s.Traces.Write(ctx, part, true)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		run := traceRun(t, ctx, s, tenantID, trace)
		require.Len(t, run.Edges.Steps, 40, "every span once")
		for i, st := range run.Edges.Steps {
			assert.Equal(t, i+1, st.Seq)
			assert.Equal(t, fmt.Sprintf("span s%02d", 39-i), *st.Name, "by start time")
		}
		n, err := s.client.UsageMetric.Query().Where(usagemetric.TenantID(tenantID)).Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 40, n)
		requireVerified(t, s)
	})
}

// BenchmarkTracesWrite writes requests of 100 spans (10 traces of 10
// spans) from one writer, on PostgreSQL.
//
//	scripts/services.sh --durable -- go test -run '^$' -bench TracesWrite ./internal/store/
func BenchmarkTracesWrite(b *testing.B) {
	db, err := OpenPostgres(context.Background(), dbtest.Postgres(b), 4)
	require.NoError(b, err)
	b.Cleanup(func() { db.Close() })
	s := New(db, "postgres", dbtest.Schema, nil)
	ctx := tenant.NewContext(context.Background(), tenant.Viewer{TenantID: uuid.New(), Role: "service_role"})
	b.ResetTimer()
	for range b.N {
		var spans []otlp.Span
		for range 10 {
			trace := strings.ReplaceAll(uuid.NewString(), "-", "")
			spans = append(spans, span(trace, "r", "", otlp.TargetRun, 0))
			for i := range 4 {
				spans = append(spans, span(trace, fmt.Sprint("c", i), "r", otlp.TargetLLM, 1+i))
			}
			for i := range 3 {
				spans = append(spans, span(trace, fmt.Sprint("t", i), "r", otlp.TargetToolCall, 5+i))
			}
			spans = append(spans, span(trace, "h", "r", otlp.TargetStep, 8), span(trace, "v", "r", otlp.TargetStep, 9))
		}
		if _, err := s.Traces.Write(ctx, spans, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "spans/s")
}
