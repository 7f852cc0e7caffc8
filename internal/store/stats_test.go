package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/derrors"
)

func TestRunStats(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
		for _, r := range []struct {
			agent  string
			final  string
			durMs  int
			failed int // failed tool calls out of two
		}{
			{"alpha", "succeeded", 100, 1},
			{"alpha", "succeeded", 200, 0},
			{"beta", "succeeded", 1000, 0},
			{"beta", "failed", 50, 2},
		} {
			in := NewRun{AgentName: r.agent, Status: "running", StartedAt: &t0}
			for i := 0; i < 2; i++ {
				st := "succeeded"
				if i < r.failed {
					st = "failed"
				}
				in.ToolCalls = append(in.ToolCalls, NewToolCall{ToolName: "t", Status: st})
			}
			run, err := s.Runs.Create(ctx, in)
			require.NoError(t, err)
			end := t0.Add(time.Duration(r.durMs) * time.Millisecond)
			_, err = s.Runs.Update(ctx, run.ID, RunPatch{Status: &r.final, EndedAt: &end})
			require.NoError(t, err)
		}
		_, err := s.Runs.Create(ctx, NewRun{AgentName: "gamma"}) // queued: no duration, no calls
		require.NoError(t, err)

		byStatus, err := s.Runs.Stats(ctx, Window{}, "status")
		require.NoError(t, err)
		require.Len(t, byStatus, 3)
		failed, queued, succeeded := byStatus[0], byStatus[1], byStatus[2]
		assert.Equal(t, "succeeded", succeeded.Key)
		assert.EqualValues(t, 3, succeeded.Runs)
		assert.InDelta(t, 433.33, *succeeded.MeanDurationMs, 0.5)
		assert.InEpsilon(t, 1000, *succeeded.P95DurationMs, 0.01, "nearest-rank 95th percentile of 100, 200, 1000, within the histogram's 1%")
		assert.InEpsilon(t, 200, *succeeded.P50DurationMs, 0.01)
		assert.InEpsilon(t, 1000, *succeeded.P99DurationMs, 0.01)
		assert.EqualValues(t, 6, succeeded.ToolCalls)
		assert.InDelta(t, 1.0/6, *succeeded.ToolCallFailureRate, 1e-9)
		assert.Equal(t, "failed", failed.Key)
		assert.InDelta(t, 1.0, *failed.ToolCallFailureRate, 1e-9)
		assert.Equal(t, "queued", queued.Key)
		assert.Nil(t, queued.MeanDurationMs)
		assert.Nil(t, queued.P95DurationMs)
		assert.Nil(t, queued.ToolCallFailureRate)

		byAgent, err := s.Runs.Stats(ctx, Window{}, "agentName")
		require.NoError(t, err)
		require.Len(t, byAgent, 3)
		assert.Equal(t, "alpha", byAgent[0].Key)
		assert.InDelta(t, 150, *byAgent[0].MeanDurationMs, 0.5)
		assert.InDelta(t, 0.25, *byAgent[0].ToolCallFailureRate, 1e-9)

		none, err := s.Runs.Stats(ctx, Window{From: time.Now().Add(time.Hour)}, "status")
		require.NoError(t, err)
		assert.Empty(t, none)
		_, err = s.Runs.Stats(ctx, Window{}, "model")
		require.ErrorIs(t, err, derrors.InvalidArgument)
	})
}

func TestUsageSummary(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		day1 := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
		day2 := time.Date(2026, 3, 2, 0, 1, 0, 0, time.UTC)
		alpha, err := s.Runs.Create(ctx, NewRun{AgentName: "alpha"})
		require.NoError(t, err)
		beta, err := s.Runs.Create(ctx, NewRun{AgentName: "beta"})
		require.NoError(t, err)
		for _, u := range []NewUsage{
			{RunID: &alpha.ID, Model: "m1", InputTokens: 10, OutputTokens: 5, CostUSD: 0.5, RecordedAt: &day1},
			{RunID: &beta.ID, Model: "m2", InputTokens: 1, OutputTokens: 1, CostUSD: 0.25, RecordedAt: &day2},
			{Model: "m1", InputTokens: 100, CostUSD: 1, RecordedAt: &day1},
		} {
			_, err := s.Usage.Record(ctx, u)
			require.NoError(t, err)
		}
		for _, tc := range []struct {
			groupBy string
			want    []UsageSummary
		}{
			{"model", []UsageSummary{{"m1", 110, 5, 115, 1.5, 1}, {"m2", 1, 1, 2, 0.25, 1}}},
			{"day", []UsageSummary{{"2026-03-01", 110, 5, 115, 1.5, 1}, {"2026-03-02", 1, 1, 2, 0.25, 1}}},
			{"agentName", []UsageSummary{{"", 100, 0, 100, 1, 0}, {"alpha", 10, 5, 15, 0.5, 1}, {"beta", 1, 1, 2, 0.25, 1}}},
		} {
			t.Run(tc.groupBy, func(t *testing.T) {
				got, err := s.Usage.Summary(ctx, Window{}, tc.groupBy)
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			})
		}
		got, err := s.Usage.Summary(ctx, Window{From: day2}, "model")
		require.NoError(t, err)
		assert.Equal(t, []UsageSummary{{"m2", 1, 1, 2, 0.25, 1}}, got)
		_, err = s.Usage.Summary(ctx, Window{}, "week")
		require.ErrorIs(t, err, derrors.InvalidArgument)
		_, err = s.Usage.Record(ctx, NewUsage{Model: "m", InputTokens: -1})
		require.ErrorIs(t, err, derrors.InvalidArgument)
	})
}

func TestWithTx(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		t.Run("retries serialization failures and deadlocks", func(t *testing.T) {
			attempts := 0
			err := s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
				attempts++
				if _, err := tx.AgentRun.Create().SetAgentName("retry").Save(ctx); err != nil {
					return err
				}
				switch attempts {
				case 1:
					return &pgconn.PgError{Code: "40001"}
				case 2:
					return &pgconn.PgError{Code: "40P01"}
				}
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, 3, attempts)
			n, err := s.Client().AgentRun.Query().Count(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "the failed attempts were rolled back")
		})
		t.Run("gives up after a bound", func(t *testing.T) {
			attempts := 0
			err := s.WithTx(ctx, func(context.Context, *ent.Tx) error {
				attempts++
				return &pgconn.PgError{Code: "40001"}
			})
			require.ErrorIs(t, err, derrors.Unavailable)
			assert.Equal(t, maxTxAttempts, attempts)
		})
		t.Run("does not retry other errors", func(t *testing.T) {
			attempts := 0
			boom := errors.New("boom")
			err := s.WithTx(ctx, func(context.Context, *ent.Tx) error { attempts++; return boom })
			require.ErrorIs(t, err, boom)
			assert.Equal(t, 1, attempts)
		})
		t.Run("rolls back on panic", func(t *testing.T) {
			before, err := s.Client().AgentRun.Query().Count(ctx)
			require.NoError(t, err)
			require.PanicsWithValue(t, "kaboom", func() {
				_ = s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
					_, err := tx.AgentRun.Create().SetAgentName("panic").Save(ctx)
					require.NoError(t, err)
					panic("kaboom")
				})
			})
			after, err := s.Client().AgentRun.Query().Count(ctx)
			require.NoError(t, err)
			assert.Equal(t, before, after)
		})
	})
}
