package store

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/agentstep"
	"github.com/agentstore/agentstore/ent/systemhealth"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/derrors"
)

// TestMinimumsMatchValidators holds minimums to the generated validators
// of every numeric column that has one: the minimum passes, one below
// fails.
func TestMinimumsMatchValidators(t *testing.T) {
	validators := map[string]func(int64) error{
		agentstep.Table + "." + agentstep.FieldSeq:                   func(n int64) error { return agentstep.SeqValidator(int(n)) },
		toolcall.Table + "." + toolcall.FieldDurationMs:              toolcall.DurationMsValidator,
		usagemetric.Table + "." + usagemetric.FieldInputTokens:       usagemetric.InputTokensValidator,
		usagemetric.Table + "." + usagemetric.FieldOutputTokens:      usagemetric.OutputTokensValidator,
		usagemetric.Table + "." + usagemetric.FieldCachedInputTokens: usagemetric.CachedInputTokensValidator,
		usagemetric.Table + "." + usagemetric.FieldTotalTokens:       usagemetric.TotalTokensValidator,
		usagemetric.Table + "." + usagemetric.FieldCostUsd:           func(n int64) error { return usagemetric.CostUsdValidator(float64(n)) },
		systemhealth.Table + "." + systemhealth.FieldLatencyMs:       systemhealth.LatencyMsValidator,
	}
	require.Len(t, minimums, len(validators))
	for col, validate := range validators {
		m, ok := minimums[col]
		require.True(t, ok, "minimums lacks %s", col)
		assert.NoError(t, validate(m), "%s: %d passes", col, m)
		assert.Error(t, validate(m-1), "%s: %d fails", col, m-1)
	}
}

// The refusals of the generated validators, in the client's words.
func TestRefusalsSpeakToClients(t *testing.T) {
	for _, tc := range []struct {
		table, column string
		err           error
		want          string
	}{
		{agentstep.Table, agentstep.FieldStatus, agentstep.StatusValidator("done"), "must be one of queued, running, succeeded, failed, cancelled"},
		{systemhealth.Table, systemhealth.FieldStatus, systemhealth.StatusValidator("sideways"), "must be one of up, degraded, down"},
		{agentrun.Table, agentrun.FieldAgentName, agentrun.AgentNameValidator(""), "must not be empty"},
		{agentrun.Table, agentrun.FieldAgentName, agentrun.AgentNameValidator(string(make([]byte, 201))), "must be at most 200 bytes long"},
		{agentstep.Table, agentstep.FieldSeq, agentstep.SeqValidator(0), "must be at least 1"},
		{usagemetric.Table, usagemetric.FieldCostUsd, usagemetric.CostUsdValidator(-1), "must not be negative"},
	} {
		require.Error(t, tc.err)
		assert.Equal(t, tc.want, refusal(tc.table, tc.column, tc.err), "%s.%s", tc.table, tc.column)
	}
	for column, want := range map[string]string{"input_tokens": "inputTokens", "cost_usd": "costUsd", "type": "type", "cached_input_tokens": "cachedInputTokens"} {
		assert.Equal(t, want, jsonName(column))
	}
}

// An ent builder's validation error becomes the client's field and words.
func TestValidationErrorsAreTranslated(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		_, err := s.Usage.Record(ctx, NewUsage{Model: "m", InputTokens: -5})
		var verr *ent.ValidationError
		require.ErrorAs(t, err, &verr, "the cause is kept for the log")
		var de *derrors.Error
		require.ErrorAs(t, err, &de)
		assert.Equal(t, "inputTokens: must not be negative", de.Message)
		assert.Equal(t, []derrors.Detail{{Field: "inputTokens", Message: "must not be negative"}}, de.Details)
	})
}
