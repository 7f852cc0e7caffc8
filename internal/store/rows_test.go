package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/internal/derrors"
)

// The rules of rows.go answer alike on both backends, whether a run is
// created or appended to: one error naming every bad field by its place in
// the request.
func TestRowRulesNameEveryBadField(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		details := func(t *testing.T, err error) []derrors.Detail {
			t.Helper()
			require.ErrorIs(t, err, derrors.InvalidArgument)
			var de *derrors.Error
			require.ErrorAs(t, err, &de)
			return de.Details
		}

		in := newRun(2)
		in.AgentName = ""
		in.Steps[1].Type = ""
		in.ToolCalls[0].StepID = ptr(uuid.New())
		in.ToolCalls[1].DurationMs = ptr(int64(-1))
		_, err := s.Runs.Create(ctx, in)
		got := details(t, err)
		fields := make([]string, len(got))
		for i, d := range got {
			fields[i] = d.Field
		}
		assert.Equal(t, []string{"agentName", "steps[1].type", "toolCalls[0].stepId", "toolCalls[1].durationMs"}, fields)
		assert.Equal(t, "is not a step of this run", got[2].Message)

		run, err := s.Runs.Create(ctx, newRun(1))
		require.NoError(t, err)
		// Index 0 replays seq 1; index 1 is new and invalid.
		_, err = s.Runs.AppendSteps(ctx, run.ID, []NewStep{
			{Seq: ptr(1), ID: &run.Edges.Steps[0].ID, Type: "llm", Input: raw(`{"i":1}`)},
			{Type: "llm", Status: "done"},
		})
		got = details(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, "steps[1].status", got[0].Field, "a field's place in the request, replays counted")

		_, err = s.Runs.AppendToolCalls(ctx, run.ID, []NewToolCall{
			{ToolName: "ok", Status: "succeeded"},
			{ToolName: "", Status: "maybe", StepID: &run.Edges.Steps[0].ID},
		})
		got = details(t, err)
		require.Len(t, got, 2)
		assert.Equal(t, "toolCalls[1].toolName", got[0].Field)
		assert.Equal(t, "toolCalls[1].status", got[1].Field)
	})
}

// Every write to a run is audited once, with what it changed; a batch of
// replays only changes nothing and is not audited.
func TestAppendsAreAudited(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		ctx = WithRequestInfo(ctx, RequestInfo{RequestID: "req-2"})
		run, err := s.Runs.Create(ctx, NewRun{AgentName: "a", Status: "running"})
		require.NoError(t, err)
		steps, err := s.Runs.AppendSteps(ctx, run.ID, []NewStep{{Type: "llm"}, {Type: "tool"}})
		require.NoError(t, err)
		_, err = s.Runs.AppendSteps(ctx, run.ID, []NewStep{{Seq: ptr(2), ID: &steps[1].ID, Type: "tool"}})
		require.NoError(t, err, "an identical replay")
		calls, err := s.Runs.AppendToolCalls(ctx, run.ID, []NewToolCall{
			{StepID: &steps[0].ID, ToolName: "x", Status: "succeeded"}, {ToolName: "y", Status: "failed"},
		})
		require.NoError(t, err)
		require.Len(t, calls, 2)
		assert.Equal(t, run.ID, calls[0].RunID)

		for action, want := range map[string]string{
			"step.append":     `{"firstSeq":1,"lastSeq":2}`,
			"toolcall.record": `{"toolCalls":2}`,
		} {
			logs, _, err := s.Audit.List(ctx, AuditFilter{Action: action, ResourceID: run.ID.String()})
			require.NoError(t, err)
			require.Len(t, logs, 1, action)
			assert.JSONEq(t, want, string(logs[0].Changes), action)
			assert.Equal(t, "req-2", *logs[0].RequestID, action)
			assert.Equal(t, "run", logs[0].ResourceType, action)
		}
		listed, err := s.Runs.ListToolCalls(ctx, run.ID)
		require.NoError(t, err)
		require.Len(t, listed, 2)
		assert.Equal(t, calls[0].ID, listed[0].ID, "tool calls read back in the order written")
		var changes map[string]any
		logs, _, err := s.Audit.List(ctx, AuditFilter{Action: "run.create"})
		require.NoError(t, err)
		require.Len(t, logs, 1)
		require.NoError(t, json.Unmarshal(logs[0].Changes, &changes))
		assert.Equal(t, map[string]any{"agentName": "a", "status": "running", "steps": 0.0, "toolCalls": 0.0}, changes)
	})
}

// Lists longer than MaxItems are refused before anything is written, and
// the rows of a batch too large for one statement on SQLite (more than
// maxParams bind parameters) are written in chunks on both backends.
func TestItemLimitsAndChunkedWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		tooMany := newRun(MaxItems + 1)
		_, err := s.Runs.Create(ctx, tooMany)
		require.ErrorIs(t, err, derrors.InvalidArgument)
		var de *derrors.Error
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "steps", de.Details[0].Field)

		run, err := s.Runs.Create(ctx, newRun(MaxItems))
		require.NoError(t, err, "the maximum is allowed")
		_, err = s.Runs.AppendSteps(ctx, run.ID, make([]NewStep, MaxItems+1))
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "steps", de.Details[0].Field)
		_, err = s.Runs.AppendToolCalls(ctx, run.ID, make([]NewToolCall, MaxItems+1))
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "toolCalls", de.Details[0].Field)

		// Past the limit, by the row builder directly: 3 chunks of steps.
		n := 2*maxParams/len(agentstep.Columns) + 7
		b := newRowBuilder(run.TenantID, run.ID)
		in := make([]NewStep, n)
		for i := range in {
			in[i] = NewStep{Type: "bulk"}
		}
		_, err = b.addSteps(in, MaxItems, nil)
		require.NoError(t, err)
		require.NoError(t, b.addAudit(ctx, "step.append", nil))
		rows, err := b.done()
		require.NoError(t, err)
		require.Greater(t, n*len(agentstep.Columns), maxParams)
		require.NoError(t, s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error { return insertRows(ctx, tx, rows) }))
		steps, err := s.Runs.ListSteps(ctx, run.ID)
		require.NoError(t, err)
		assert.Len(t, steps, MaxItems+n)
	})
}

func TestInChunks(t *testing.T) {
	var got [][2]int
	size := maxParams / 10
	require.NoError(t, inChunks(2*size+3, 10, func(lo, hi int) error { got = append(got, [2]int{lo, hi}); return nil }))
	assert.Equal(t, [][2]int{{0, size}, {size, 2 * size}, {2 * size, 2*size + 3}}, got)
	got = nil
	require.NoError(t, inChunks(0, 13, func(lo, hi int) error { got = append(got, [2]int{lo, hi}); return nil }))
	assert.Empty(t, got)
	assert.LessOrEqual(t, MaxItems*len(agentstep.Columns), maxParams, "a batch of the maximum is one statement")
}
