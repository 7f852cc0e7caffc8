package httpapi

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentstore/agentstore/internal/store"
)

// The request shapes, decoded strictly: unknown fields are refused.

// CreateRunRequest is the body of POST /v1/runs.
type CreateRunRequest struct {
	ID          *ID               `json:"id"`
	AgentName   string            `json:"agentName"`
	Status      string            `json:"status"`
	Input       json.RawMessage   `json:"input"`
	Metadata    json.RawMessage   `json:"metadata"`
	Model       *string           `json:"model"`
	UserID      *ID               `json:"userId"`
	ParentRunID *ID               `json:"parentRunId"`
	StartedAt   *time.Time        `json:"startedAt"`
	Steps       []StepRequest     `json:"steps"`
	ToolCalls   []ToolCallRequest `json:"toolCalls"`
}

// StepRequest is one step to append.
type StepRequest struct {
	ID        *ID             `json:"id"`
	Seq       *int            `json:"seq"`
	Type      string          `json:"type"`
	Name      *string         `json:"name"`
	Status    string          `json:"status"`
	Input     json.RawMessage `json:"input"`
	Output    json.RawMessage `json:"output"`
	Error     *string         `json:"error"`
	StartedAt *time.Time      `json:"startedAt"`
	EndedAt   *time.Time      `json:"endedAt"`
}

// ToolCallRequest is one tool call to record.
type ToolCallRequest struct {
	ID         *ID             `json:"id"`
	StepID     *ID             `json:"stepId"`
	ToolName   string          `json:"toolName"`
	Arguments  json.RawMessage `json:"arguments"`
	Result     json.RawMessage `json:"result"`
	Status     string          `json:"status"`
	Error      *string         `json:"error"`
	DurationMs *int64          `json:"durationMs"`
	StartedAt  *time.Time      `json:"startedAt"`
	EndedAt    *time.Time      `json:"endedAt"`
}

// PatchRunRequest is the body of PATCH /v1/runs/{id}.
type PatchRunRequest struct {
	Status   *string         `json:"status"`
	Output   json.RawMessage `json:"output"`
	Error    *string         `json:"error"`
	Metadata json.RawMessage `json:"metadata"`
	EndedAt  *time.Time      `json:"endedAt"`
}

// UsageRequest is the body of POST /v1/usage.
type UsageRequest struct {
	ID                *ID        `json:"id"`
	RunID             *ID        `json:"runId"`
	Model             string     `json:"model"`
	InputTokens       int64      `json:"inputTokens"`
	OutputTokens      int64      `json:"outputTokens"`
	CachedInputTokens int64      `json:"cachedInputTokens"`
	TotalTokens       *int64     `json:"totalTokens"`
	CostUSD           float64    `json:"costUsd"`
	RecordedAt        *time.Time `json:"recordedAt"`
}

// HealthRequest is the body of POST /v1/system-health.
type HealthRequest struct {
	Component string          `json:"component"`
	Status    string          `json:"status"`
	LatencyMs *int64          `json:"latencyMs"`
	Details   json.RawMessage `json:"details"`
	CheckedAt *time.Time      `json:"checkedAt"`
}

// isBatch reports whether a JSON object body has the top-level key name,
// the mark of the batch form of an append.
func isBatch(body []byte, name string) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil {
		return false
	}
	_, ok := probe[name]
	return ok
}

func (r CreateRunRequest) toStore() (store.NewRun, error) {
	var req required
	req.check(r.AgentName != "", "agentName")
	steps := stepsToStore(r.Steps, "steps", &req)
	calls := toolCallsToStore(r.ToolCalls, "toolCalls", &req)
	if err := req.err(); err != nil {
		return store.NewRun{}, err
	}
	return store.NewRun{
		ID: uuidPtr(r.ID), AgentName: r.AgentName, Status: r.Status, Input: r.Input, Metadata: r.Metadata,
		Model: r.Model, UserID: uuidPtr(r.UserID), ParentRunID: uuidPtr(r.ParentRunID), StartedAt: r.StartedAt,
		Steps: steps, ToolCalls: calls,
	}, nil
}

func stepsToStore(in []StepRequest, field string, req *required) []store.NewStep {
	out := make([]store.NewStep, len(in))
	for i, s := range in {
		req.check(s.Type != "", fmt.Sprintf("%s[%d].type", field, i))
		out[i] = store.NewStep{
			ID: uuidPtr(s.ID), Seq: s.Seq, Type: s.Type, Name: s.Name, Status: s.Status,
			Input: s.Input, Output: s.Output, Error: s.Error, StartedAt: s.StartedAt, EndedAt: s.EndedAt,
		}
	}
	return out
}

func toolCallsToStore(in []ToolCallRequest, field string, req *required) []store.NewToolCall {
	out := make([]store.NewToolCall, len(in))
	for i, t := range in {
		req.check(t.ToolName != "", fmt.Sprintf("%s[%d].toolName", field, i))
		req.check(t.Status != "", fmt.Sprintf("%s[%d].status", field, i))
		out[i] = store.NewToolCall{
			ID: uuidPtr(t.ID), StepID: uuidPtr(t.StepID), ToolName: t.ToolName, Arguments: t.Arguments,
			Result: t.Result, Status: t.Status, Error: t.Error, DurationMs: t.DurationMs,
			StartedAt: t.StartedAt, EndedAt: t.EndedAt,
		}
	}
	return out
}
