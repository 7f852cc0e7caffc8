package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// backdate moves the creation of the run id (and of its rows) to at, as if
// it had been written then.
func backdate(t *testing.T, s *Store, ctx context.Context, id uuid.UUID, at time.Time) {
	t.Helper()
	err := s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		for _, q := range []struct{ table, col string }{
			{agentrun.Table, "id"}, {agentstep.Table, "run_id"}, {toolcall.Table, "run_id"},
		} {
			table, p1, p2 := `"`+q.table+`"`, "?", "?"
			if s.dialect == dialect.Postgres {
				table, p1, p2 = `"`+s.pgSchema+`".`+table, "$1", "$2"
			}
			if _, err := tx.ExecContext(ctx, "UPDATE "+table+" SET created_at = "+p1+" WHERE "+q.col+" = "+p2, at.UTC(), id); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
}

// countRows counts the rows of the tenant in ctx: runs, steps, tool calls
// and usage rows, and usage rows that still name a run.
func countRows(t *testing.T, s *Store, ctx context.Context) (runs, steps, calls, usage, linked int) {
	t.Helper()
	tenantID, err := viewerTenant(ctx)
	require.NoError(t, err)
	c := s.client
	runs, err = c.AgentRun.Query().Where(agentrun.TenantID(tenantID)).Count(ctx)
	require.NoError(t, err)
	steps, err = c.AgentStep.Query().Where(agentstep.TenantID(tenantID)).Count(ctx)
	require.NoError(t, err)
	calls, err = c.ToolCall.Query().Where(toolcall.TenantID(tenantID)).Count(ctx)
	require.NoError(t, err)
	usage, err = c.UsageMetric.Query().Where(usagemetric.TenantID(tenantID)).Count(ctx)
	require.NoError(t, err)
	linked, err = c.UsageMetric.Query().Where(usagemetric.TenantID(tenantID), usagemetric.RunIDNotNil()).Count(ctx)
	require.NoError(t, err)
	return
}

func auditActions(t *testing.T, s *Store, ctx context.Context, action string) []*ent.AuditLog {
	t.Helper()
	rows, _, err := s.Audit.List(ctx, AuditFilter{Action: action, Page: Page{Limit: MaxPageSize}})
	require.NoError(t, err)
	return rows
}

func TestDeleteRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		run, err := s.Runs.Create(ctx, newRun(3))
		require.NoError(t, err)
		child, err := s.Runs.Create(ctx, NewRun{AgentName: "child", ParentRunID: &run.ID})
		require.NoError(t, err)
		_, err = s.Usage.Record(ctx, NewUsage{RunID: &run.ID, Model: "m", InputTokens: 5})
		require.NoError(t, err)

		other, _ := asTenant(t)
		_, err = s.Runs.Delete(other, run.ID)
		require.True(t, errors.Is(err, derrors.NotFound), "another tenant's run is not found: %v", err)
		_, err = s.Runs.Delete(ctx, uuid.New())
		require.True(t, errors.Is(err, derrors.NotFound), "%v", err)

		removed, err := s.Runs.Delete(ctx, run.ID)
		require.NoError(t, err)
		assert.Equal(t, Removed{Runs: 1, Steps: 3, ToolCalls: 3, UsageUnlinked: 1}, removed)
		_, err = s.Runs.Get(ctx, run.ID, Include{})
		require.True(t, errors.Is(err, derrors.NotFound))
		runs, steps, calls, usage, linked := countRows(t, s, ctx)
		assert.Equal(t, []int{1, 0, 0, 1, 0}, []int{runs, steps, calls, usage, linked}, "the child run and the unlinked usage row stay")
		got, err := s.Runs.Get(ctx, child.ID, Include{})
		require.NoError(t, err)
		assert.Nil(t, got.ParentRunID, "the child lost its parent")

		audit := auditActions(t, s, ctx, "run.delete")
		require.Len(t, audit, 1)
		assert.Equal(t, run.ID.String(), audit[0].ResourceID)
		assert.JSONEq(t, `{"agentName":"researcher","status":"queued","steps":3,"toolCalls":3,"usageUnlinked":1}`, string(audit[0].Changes))
		_, err = s.Runs.Delete(ctx, run.ID)
		require.True(t, errors.Is(err, derrors.NotFound), "a second delete is not found")
	})
}

func TestRetentionDeletesBeforeTheCutoff(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctxA, a := asTenant(t)
		ctxB, b := asTenant(t)
		now := time.Now().UTC()
		old := now.Add(-40 * 24 * time.Hour).Truncate(time.Hour).Add(10 * time.Minute)
		var oldIDs []uuid.UUID
		for i := range 3 {
			in := newRun(2)
			in.AgentName = "old"
			in.ToolCalls[0].Status = "failed"
			if i == 0 {
				in.Status, in.StartedAt = "running", ptr(old)
			}
			run, err := s.Runs.Create(ctxA, in)
			require.NoError(t, err)
			if i == 0 {
				_, err = s.Runs.Update(ctxA, run.ID, RunPatch{Status: ptr("succeeded"), EndedAt: ptr(old.Add(1500 * time.Millisecond))})
				require.NoError(t, err)
			}
			_, err = s.Usage.Record(ctxA, NewUsage{RunID: &run.ID, Model: "m", InputTokens: 10, OutputTokens: 5, CostUSD: 0.5})
			require.NoError(t, err)
			backdate(t, s, ctxA, run.ID, old.Add(time.Duration(i)*time.Second))
			oldIDs = append(oldIDs, run.ID)
		}
		fresh, err := s.Runs.Create(ctxA, newRun(1))
		require.NoError(t, err)
		runB, err := s.Runs.Create(ctxB, newRun(1))
		require.NoError(t, err)
		backdate(t, s, ctxB, runB.ID, old.Add(-time.Hour))

		sys := tenant.SystemContext(context.Background())
		cutoff := now.Add(-30 * 24 * time.Hour)
		tenants, err := s.Retention.Tenants(sys, cutoff)
		require.NoError(t, err)
		assert.ElementsMatch(t, []TenantRuns{{TenantID: a, Oldest: old}, {TenantID: b, Oldest: old.Add(-time.Hour)}}, tenants)
		_, err = s.Retention.Tenants(ctxA, cutoff)
		require.True(t, errors.Is(err, derrors.Forbidden), "a tenant does not list tenants")

		count, err := s.Retention.Count(ctxA, cutoff)
		require.NoError(t, err)
		assert.Equal(t, Removed{Runs: 3, Steps: 6, ToolCalls: 6, UsageUnlinked: 3}, count)

		var total Removed
		for _, want := range []int64{2, 1, 0} {
			removed, err := s.Retention.DeleteBefore(ForTenant(context.Background(), a), cutoff, 2)
			require.NoError(t, err)
			assert.Equal(t, want, removed.Runs)
			total.Add(removed)
		}
		assert.Equal(t, count, total, "the dry run counted what was deleted")
		runs, steps, calls, usage, linked := countRows(t, s, ctxA)
		assert.Equal(t, []int{1, 1, 1, 3, 0}, []int{runs, steps, calls, usage, linked}, "the fresh run stays; usage rows stay unlinked")
		_, err = s.Runs.Get(ctxA, fresh.ID, Include{})
		require.NoError(t, err)
		_, err = s.Runs.Get(ctxB, runB.ID, Include{})
		require.NoError(t, err, "another tenant's runs are not touched")

		removals, err := s.Removals(ctxA, Window{})
		require.NoError(t, err)
		require.Len(t, removals, 2, "one row per hour, agent and status")
		byStatus := map[string]RunRemoval{}
		for _, r := range removals {
			assert.Equal(t, old.Truncate(time.Hour), r.Hour)
			assert.Equal(t, "old", r.AgentName)
			assert.Equal(t, ReasonRetention, r.Reason)
			byStatus[r.Status] = r
		}
		assert.Equal(t, int64(1), byStatus["succeeded"].Runs)
		assert.Equal(t, int64(1), byStatus["succeeded"].TimedRuns)
		assert.InDelta(t, 1500, byStatus["succeeded"].DurationMsSum, 0.01)
		q := byStatus["queued"]
		assert.Equal(t, []int64{2, 0, 4, 4, 2, 2, 20, 10, 30}, []int64{q.Runs, q.TimedRuns, q.Steps, q.ToolCalls, q.FailedToolCalls,
			q.UsageRows, q.InputTokens, q.OutputTokens, q.TotalTokens})
		assert.InDelta(t, 1.0, q.CostUSD, 1e-9)
		removalsB, err := s.Removals(ctxB, Window{})
		require.NoError(t, err)
		assert.Empty(t, removalsB)

		audit := auditActions(t, s, ctxA, "retention.delete")
		require.Len(t, audit, 2, "one audit row per batch")
		var changes struct{ Runs int64 }
		require.NoError(t, json.Unmarshal(audit[0].Changes, &changes))
		assert.Equal(t, int64(1), changes.Runs, "the newest row is the last batch")
		assert.Equal(t, "system", audit[0].ActorRole)

		// A fresh batch over what is left: nothing.
		tenants, err = s.Retention.Tenants(sys, cutoff)
		require.NoError(t, err)
		assert.Equal(t, []TenantRuns{{TenantID: b, Oldest: old.Add(-time.Hour)}}, tenants)
	})
}

func TestErasure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		user, other := uuid.New(), uuid.New()
		for i := range 3 {
			in := newRun(2)
			in.UserID = &user
			if i == 2 {
				in.UserID = &other
			}
			_, err := s.Runs.Create(ctx, in)
			require.NoError(t, err)
		}
		ctxB, _ := asTenant(t)
		inB := newRun(1)
		inB.UserID = &user
		runB, err := s.Runs.Create(ctxB, inB)
		require.NoError(t, err)

		job, err := s.Erasures.Create(ctx, user)
		require.NoError(t, err)
		assert.Equal(t, ErasurePending, string(job.Status))
		_, err = s.Erasures.Get(ctxB, job.ID)
		require.True(t, errors.Is(err, derrors.NotFound), "another tenant's erasure is not found")

		sys := tenant.SystemContext(context.Background())
		queue, err := s.Erasures.Unfinished(sys, 10)
		require.NoError(t, err)
		require.Len(t, queue, 1)
		work := WorkContext(context.Background(), queue[0])

		var last *ent.Erasure
		for _, want := range []string{ErasureRunning, ErasureRunning, ErasureDone, ErasureDone} {
			last, err = s.Erasures.Work(work, job.ID, 1)
			require.NoError(t, err)
			assert.Equal(t, want, string(last.Status))
		}
		assert.Equal(t, []int64{2, 4, 4}, []int64{last.Runs, last.Steps, last.ToolCalls})
		require.NotNil(t, last.FinishedAt)
		runs, _, err := s.Runs.List(ctx, RunFilter{})
		require.NoError(t, err)
		require.Len(t, runs, 1)
		assert.Equal(t, other, *runs[0].UserID, "another user's run stays")
		_, err = s.Runs.Get(ctxB, runB.ID, Include{})
		require.NoError(t, err, "the same user in another tenant is not erased")

		erased := auditActions(t, s, ctx, "user.erase")
		require.Len(t, erased, 1)
		assert.Equal(t, user.String(), erased[0].ResourceID)
		assert.Equal(t, "authenticated", erased[0].ActorRole, "the audit row names who asked")
		assert.JSONEq(t, fmt.Sprintf(`{"erasureId":%q,"runs":2,"steps":4,"toolCalls":4}`, job.ID), string(erased[0].Changes))
		require.Len(t, auditActions(t, s, ctx, "erasure.create"), 1)
		removals, err := s.Removals(ctx, Window{})
		require.NoError(t, err)
		require.Len(t, removals, 1)
		assert.Equal(t, ReasonErasure, removals[0].Reason)
		assert.Equal(t, int64(2), removals[0].Runs)

		queue, err = s.Erasures.Unfinished(sys, 10)
		require.NoError(t, err)
		assert.Empty(t, queue)
		_, err = s.Erasures.Unfinished(ctx, 10)
		require.True(t, errors.Is(err, derrors.Forbidden))

		// Failures: retried, then failed for good.
		job2, err := s.Erasures.Create(ctx, other)
		require.NoError(t, err)
		for i, want := range []string{ErasurePending, ErasurePending, ErasureFailed} {
			got, err := s.Erasures.Failed(ctx, job2.ID, "boom", 3)
			require.NoError(t, err)
			assert.Equal(t, want, string(got.Status), "failure %d", i+1)
		}
		got, err := s.Erasures.Work(ctx, job2.ID, 10)
		require.NoError(t, err)
		assert.Equal(t, ErasureFailed, string(got.Status), "a failed job is not worked again")
	})
}

// exportSink records what Export wrote, as lines of "run <id>",
// "step <seq>", "call <tool>", "end", "page".
type exportSink struct {
	lines   []string
	cursors []string
}

func (e *exportSink) Run(r *ent.AgentRun) error {
	e.lines = append(e.lines, "run "+r.AgentName)
	return nil
}

func (e *exportSink) Step(s *ent.AgentStep) error {
	e.lines = append(e.lines, fmt.Sprintf("step %d %s", s.Seq, s.Input))
	return nil
}

func (e *exportSink) ToolCall(c *ent.ToolCall) error {
	e.lines = append(e.lines, "call "+c.ToolName)
	return nil
}

func (e *exportSink) EndRun() error { e.lines = append(e.lines, "end"); return nil }

func (e *exportSink) EndPage(c string) error {
	e.lines = append(e.lines, "page")
	e.cursors = append(e.cursors, c)
	return nil
}

func TestExportStreamsRunsOldestFirst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		var want []string
		n := ExportPageSize + 3
		for i := range n {
			in := NewRun{AgentName: fmt.Sprint("r", i)}
			switch i % 4 {
			case 1:
				in.Steps = []NewStep{{Type: "llm", Input: raw(`"a"`)}, {Type: "tool"}}
			case 2:
				in.ToolCalls = []NewToolCall{{ToolName: "t1", Status: "succeeded"}, {ToolName: "t2", Status: "failed"}}
			case 3:
				in.Steps = []NewStep{{Type: "llm"}}
				in.ToolCalls = []NewToolCall{{ToolName: "t1", Status: "succeeded"}}
			}
			run, err := s.Runs.Create(ctx, in)
			require.NoError(t, err)
			// Created in reverse order of their names' numbers: export
			// follows createdAt, not insertion.
			backdate(t, s, ctx, run.ID, base.Add(-time.Duration(i)*time.Second))
		}
		for i := n - 1; i >= 0; i-- {
			want = append(want, fmt.Sprint("run r", i))
			switch i % 4 {
			case 1:
				want = append(want, `step 1 "a"`, "step 2 ")
			case 2:
				want = append(want, "call t1", "call t2")
			case 3:
				want = append(want, "step 1 ", "call t1")
			}
			want = append(want, "end")
			if i == n-ExportPageSize {
				want = append(want, "page")
			}
		}
		want = append(want, "page")
		other, _ := asTenant(t)
		_, err := s.Runs.Create(other, newRun(1))
		require.NoError(t, err)

		var all exportSink
		require.NoError(t, s.Runs.Export(ctx, Window{}, "", &all))
		assert.Equal(t, want, all.lines)
		require.Len(t, all.cursors, 2)

		var rest exportSink
		require.NoError(t, s.Runs.Export(ctx, Window{}, all.cursors[0], &rest))
		assert.Equal(t, want[len(want)-len(rest.lines):], rest.lines, "the cursor resumes after its page")
		assert.Equal(t, 3, countPrefix(rest.lines, "run "))

		var window exportSink
		require.NoError(t, s.Runs.Export(ctx, Window{From: base.Add(-2 * time.Second), To: base}, "", &window))
		assert.Equal(t, 2, countPrefix(window.lines, "run "), "[from, to) by createdAt")

		var none exportSink
		require.NoError(t, s.Runs.Export(ctx, Window{From: base.Add(time.Hour)}, "", &none))
		assert.Empty(t, none.lines)
		err = s.Runs.Export(ctx, Window{}, "garbage", &none)
		require.True(t, errors.Is(err, derrors.InvalidArgument))
	})
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if len(l) >= len(prefix) && l[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

func TestTryLock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		name := "test-" + uuid.NewString()
		l1, err := s.TryLock(ctx, name)
		require.NoError(t, err)
		require.NotNil(t, l1)
		require.NoError(t, l1.Check(ctx))
		l2, err := s.TryLock(ctx, name)
		require.NoError(t, err)
		assert.Nil(t, l2, "held")
		other, err := s.TryLock(ctx, name+"-other")
		require.NoError(t, err)
		require.NotNil(t, other, "another name is another lock")
		other.Release()
		l1.Release()
		l1.Release()
		l3, err := s.TryLock(ctx, name)
		require.NoError(t, err)
		require.NotNil(t, l3, "released")
		l3.Release()
	})
}
