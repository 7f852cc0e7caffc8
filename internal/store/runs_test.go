package store

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent/auditlog"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

func TestCreateRunWritesEverythingInOneTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, tenantID := asTenant(t)
		ctx = WithRequestInfo(ctx, RequestInfo{RequestID: "req-1", IP: "10.0.0.1", UserAgent: "test"})
		run, err := s.Runs.Create(ctx, newRun(3))
		require.NoError(t, err)
		assert.Equal(t, tenantID, run.TenantID)
		assert.Equal(t, "queued", string(run.Status))

		got, err := s.Runs.Get(ctx, run.ID, Include{Steps: true, ToolCalls: true})
		require.NoError(t, err)
		require.Len(t, got.Edges.Steps, 3)
		require.Len(t, got.Edges.ToolCalls, 3)
		for i, st := range got.Edges.Steps {
			assert.Equal(t, i+1, st.Seq)
			assert.Equal(t, tenantID, st.TenantID)
			assert.Equal(t, st.ID, *got.Edges.ToolCalls[i].StepID)
		}
		logs, _, err := s.Audit.List(ctx, AuditFilter{Action: "run.create"})
		require.NoError(t, err)
		require.Len(t, logs, 1)
		assert.Equal(t, run.ID.String(), logs[0].ResourceID)
		assert.Equal(t, "req-1", *logs[0].RequestID)
		assert.Equal(t, "10.0.0.1", *logs[0].IP)
		assert.Equal(t, "authenticated", logs[0].ActorRole)
	})
}

func TestCreateRunIsAtomic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		in := newRun(3)
		// The third tool call reuses the first one's primary key.
		id := uuid.New()
		in.ToolCalls[0].ID, in.ToolCalls[2].ID = &id, &id
		_, err := s.Runs.Create(ctx, in)
		require.ErrorIs(t, err, derrors.Conflict)

		sys := tenant.SystemContext(context.Background())
		c := s.Client()
		for name, count := range map[string]func() (int, error){
			"runs":       func() (int, error) { return c.AgentRun.Query().Count(sys) },
			"steps":      func() (int, error) { return c.AgentStep.Query().Count(sys) },
			"tool calls": func() (int, error) { return c.ToolCall.Query().Count(sys) },
			"audit":      func() (int, error) { return c.AuditLog.Query().Count(sys) },
		} {
			n, err := count()
			require.NoError(t, err)
			assert.Zero(t, n, name)
		}
	})
}

func TestCreateRunValidates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		other, _ := asTenant(t)
		foreign, err := s.Runs.Create(other, newRun(0))
		require.NoError(t, err)
		for _, tc := range []struct {
			name string
			edit func(*NewRun)
			want error
		}{
			{"empty agent name", func(r *NewRun) { r.AgentName = "" }, derrors.InvalidArgument},
			{"terminal status", func(r *NewRun) { r.Status = "succeeded" }, derrors.InvalidArgument},
			{"unknown step status", func(r *NewRun) { r.Steps[0].Status = "done" }, derrors.InvalidArgument},
			{"bad tool status", func(r *NewRun) { r.ToolCalls[0].Status = "ok" }, derrors.InvalidArgument},
			{"negative duration", func(r *NewRun) { r.ToolCalls[0].DurationMs = ptr(int64(-1)) }, derrors.InvalidArgument},
			{"step of nothing", func(r *NewRun) { r.ToolCalls[0].StepID = ptr(uuid.New()) }, derrors.InvalidArgument},
			{"explicit seq gap", func(r *NewRun) { r.Steps[1].Seq = ptr(5) }, derrors.Conflict},
			{"parent of another tenant", func(r *NewRun) { r.ParentRunID = &foreign.ID }, derrors.InvalidArgument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				in := newRun(2)
				tc.edit(&in)
				_, err := s.Runs.Create(ctx, in)
				require.ErrorIs(t, err, tc.want)
			})
		}
		runs, _, err := s.Runs.List(ctx, RunFilter{})
		require.NoError(t, err)
		assert.Empty(t, runs, "a rejected create wrote nothing")
	})
}

func TestRunStatusMachine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		for _, tc := range []struct {
			path []string // statuses to move through from queued
			ok   bool     // whether the last move is allowed
		}{
			{[]string{"running"}, true},
			{[]string{"cancelled"}, true},
			{[]string{"succeeded"}, false},
			{[]string{"failed"}, false},
			{[]string{"running", "succeeded"}, true},
			{[]string{"running", "failed"}, true},
			{[]string{"running", "cancelled"}, true},
			{[]string{"running", "queued"}, false},
			{[]string{"running", "succeeded", "failed"}, false},
			{[]string{"running", "succeeded", "running"}, false},
			{[]string{"cancelled", "running"}, false},
		} {
			t.Run(fmt.Sprint(tc.path), func(t *testing.T) {
				run, err := s.Runs.Create(ctx, newRun(0))
				require.NoError(t, err)
				for i, st := range tc.path {
					run, err = s.Runs.Update(ctx, run.ID, RunPatch{Status: ptr(st)})
					if i < len(tc.path)-1 || tc.ok {
						require.NoError(t, err)
						assert.Equal(t, st, string(run.Status))
						continue
					}
					require.ErrorIs(t, err, derrors.Conflict)
				}
				if tc.ok && IsTerminal(run.Status) {
					assert.NotNil(t, run.EndedAt, "a terminal status sets endedAt")
					_, err := s.Runs.Update(ctx, run.ID, RunPatch{Metadata: raw(`{"late":true}`)})
					require.ErrorIs(t, err, derrors.Conflict, "a finished run no longer changes")
				}
			})
		}
		run, err := s.Runs.Create(ctx, NewRun{AgentName: "a", Status: "running"})
		require.NoError(t, err)
		require.NotNil(t, run.StartedAt)
		_, err = s.Runs.Update(ctx, run.ID, RunPatch{Status: ptr("bogus")})
		require.ErrorIs(t, err, derrors.InvalidArgument)
		run, err = s.Runs.Update(ctx, run.ID, RunPatch{Output: raw(`{"answer":42}`), Error: ptr("none")})
		require.NoError(t, err)
		assert.JSONEq(t, `{"answer":42}`, string(run.Output))
		logs, _, err := s.Audit.List(ctx, AuditFilter{ResourceID: run.ID.String(), Action: "run.update"})
		require.NoError(t, err)
		assert.Len(t, logs, 1, "the accepted update is audited, the rejected one is not")
	})
}

func TestAppendStepsConcurrently(t *testing.T) {
	const writers, each = 8, 50
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		run, err := s.Runs.Create(ctx, NewRun{AgentName: "a", Status: "running"})
		require.NoError(t, err)
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := s.Runs.AppendSteps(ctx, run.ID, []NewStep{{Type: "llm"}}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		steps, err := s.Runs.ListSteps(ctx, run.ID)
		require.NoError(t, err)
		require.Len(t, steps, writers*each)
		seqs := make([]int, len(steps))
		for i, st := range steps {
			seqs[i] = st.Seq
		}
		sort.Ints(seqs)
		for i, seq := range seqs {
			require.Equal(t, i+1, seq, "seq is 1..%d with no gap or duplicate", writers*each)
		}
	})
}

func TestAppendStepsReplaysAndConflicts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		run, err := s.Runs.Create(ctx, NewRun{AgentName: "a", Status: "running"})
		require.NoError(t, err)
		first, err := s.Runs.AppendSteps(ctx, run.ID, []NewStep{{Type: "llm", Output: raw(`{"a":1,"b":2}`)}, {Type: "tool"}})
		require.NoError(t, err)
		require.Equal(t, []int{1, 2}, []int{first[0].Seq, first[1].Seq})

		// An identical replay of seq 1 (JSON equal by value) returns the
		// stored step; the new seq 3 is appended beside it.
		got, err := s.Runs.AppendSteps(ctx, run.ID, []NewStep{
			{Seq: ptr(1), Type: "llm", Output: raw(`{"b":2, "a":1}`)},
			{Seq: ptr(3), Type: "plan"},
		})
		require.NoError(t, err)
		assert.Equal(t, first[0].ID, got[0].ID)
		assert.Equal(t, 3, got[1].Seq)

		_, err = s.Runs.AppendSteps(ctx, run.ID, []NewStep{{Seq: ptr(2), Type: "llm"}})
		require.ErrorIs(t, err, derrors.Conflict, "same seq, other content")
		_, err = s.Runs.AppendSteps(ctx, run.ID, []NewStep{{Seq: ptr(9), Type: "llm"}})
		require.ErrorIs(t, err, derrors.Conflict, "a gap")

		_, err = s.Runs.Update(ctx, run.ID, RunPatch{Status: ptr("succeeded")})
		require.NoError(t, err)
		_, err = s.Runs.AppendSteps(ctx, run.ID, []NewStep{{Type: "llm"}})
		require.ErrorIs(t, err, derrors.Conflict, "a finished run takes no steps")
		_, err = s.Runs.AppendToolCalls(ctx, run.ID, []NewToolCall{{ToolName: "x", Status: "failed"}})
		require.ErrorIs(t, err, derrors.Conflict, "a finished run takes no tool calls")
	})
}

func TestToolCallStepMustBelongToRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		a, err := s.Runs.Create(ctx, newRun(1))
		require.NoError(t, err)
		b, err := s.Runs.Create(ctx, newRun(1))
		require.NoError(t, err)
		stepOfA := a.Edges.Steps[0].ID
		_, err = s.Runs.AppendToolCalls(ctx, b.ID, []NewToolCall{{StepID: &stepOfA, ToolName: "x", Status: "succeeded"}})
		require.ErrorIs(t, err, derrors.InvalidArgument)
		calls, err := s.Runs.AppendToolCalls(ctx, a.ID, []NewToolCall{{StepID: &stepOfA, ToolName: "x", Status: "failed", Error: ptr("boom")}})
		require.NoError(t, err)
		assert.Equal(t, stepOfA, *calls[0].StepID)
		listed, err := s.Runs.ListToolCalls(ctx, a.ID)
		require.NoError(t, err)
		assert.Len(t, listed, 2)
	})
}

func TestListRunsPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		want := map[uuid.UUID]bool{}
		for i := 0; i < 23; i++ {
			in := NewRun{AgentName: []string{"alpha", "beta"}[i%2]}
			if i%3 == 0 {
				in.Status = "running"
			}
			run, err := s.Runs.Create(ctx, in)
			require.NoError(t, err)
			want[run.ID] = true
		}
		seen := map[uuid.UUID]bool{}
		var prev time.Time
		cur, pages := "", 0
		for {
			runs, next, err := s.Runs.List(ctx, RunFilter{Page: Page{Limit: 5, Cursor: cur}})
			require.NoError(t, err)
			pages++
			for _, r := range runs {
				require.False(t, seen[r.ID], "no duplicate across pages")
				seen[r.ID] = true
				if !prev.IsZero() {
					require.False(t, r.CreatedAt.After(prev), "newest first")
				}
				prev = r.CreatedAt
			}
			if next == "" {
				break
			}
			cur = next
		}
		assert.Equal(t, 5, pages)
		assert.Equal(t, want, seen, "no gap across pages")

		running, _, err := s.Runs.List(ctx, RunFilter{Status: "running"})
		require.NoError(t, err)
		assert.Len(t, running, 8)
		beta, _, err := s.Runs.List(ctx, RunFilter{AgentName: "beta", Status: "queued"})
		require.NoError(t, err)
		for _, r := range beta {
			assert.Equal(t, "beta", r.AgentName)
			assert.Equal(t, "queued", string(r.Status))
		}
		future, _, err := s.Runs.List(ctx, RunFilter{CreatedAfter: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		assert.Empty(t, future)

		for _, bad := range []RunFilter{{Status: "done"}, {Page: Page{Limit: 201}}, {Page: Page{Limit: -1}}, {Page: Page{Cursor: "!!"}}} {
			_, _, err := s.Runs.List(ctx, bad)
			require.ErrorIs(t, err, derrors.InvalidArgument, "%+v", bad)
		}
	})
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		_, err := s.Runs.Create(ctx, newRun(0))
		require.NoError(t, err)
		sys := tenant.SystemContext(context.Background())
		for name, c := range map[string]context.Context{"tenant": ctx, "system": sys} {
			_, err := s.Client().AuditLog.Update().Save(c)
			assert.Error(t, err, "%s may not update audit rows", name)
			_, err = s.Client().AuditLog.Delete().Where(auditlog.ActionNEQ("")).Exec(c)
			assert.Error(t, err, "%s may not delete audit rows", name)
		}
		n, err := s.Client().AuditLog.Query().Count(sys)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
	})
}

func TestErrorsNameTheOperation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		id := uuid.New()
		_, err := s.Runs.Get(ctx, id, Include{})
		require.ErrorIs(t, err, derrors.NotFound)
		assert.Equal(t, "Runs.Get("+id.String()+"): not found", err.Error(), "the log line says which operation failed")
		var de *derrors.Error
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "not found", de.Message, "the client's message does not name the operation")

		_, err = s.Runs.AppendSteps(ctx, id, []NewStep{{Type: "llm"}})
		require.ErrorIs(t, err, derrors.NotFound)
		assert.Equal(t, "Runs.AppendSteps("+id.String()+"): not found", err.Error())
	})
}
