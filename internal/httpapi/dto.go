package httpapi

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/store"
)

// The response shapes. ent entities never leave the service: they are
// converted here, with camelCase names, UTC RFC 3339 timestamps and
// explicit nulls.

// Run is the JSON of an agent run.
type Run struct {
	ID          uuid.UUID       `json:"id"`
	TenantID    uuid.UUID       `json:"tenantId"`
	AgentName   string          `json:"agentName"`
	Status      string          `json:"status"`
	Input       json.RawMessage `json:"input"`
	Output      json.RawMessage `json:"output"`
	Error       *string         `json:"error"`
	Metadata    json.RawMessage `json:"metadata"`
	Model       *string         `json:"model"`
	UserID      *uuid.UUID      `json:"userId"`
	ParentRunID *uuid.UUID      `json:"parentRunId"`
	StartedAt   *time.Time      `json:"startedAt"`
	EndedAt     *time.Time      `json:"endedAt"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	Steps       []Step          `json:"steps,omitzero"`
	ToolCalls   []ToolCall      `json:"toolCalls,omitzero"`
}

// Step is the JSON of a run's step.
type Step struct {
	ID        uuid.UUID       `json:"id"`
	RunID     uuid.UUID       `json:"runId"`
	Seq       int             `json:"seq"`
	Type      string          `json:"type"`
	Name      *string         `json:"name"`
	Status    string          `json:"status"`
	Input     json.RawMessage `json:"input"`
	Output    json.RawMessage `json:"output"`
	Error     *string         `json:"error"`
	StartedAt *time.Time      `json:"startedAt"`
	EndedAt   *time.Time      `json:"endedAt"`
	CreatedAt time.Time       `json:"createdAt"`
}

// ToolCall is the JSON of a tool call.
type ToolCall struct {
	ID         uuid.UUID       `json:"id"`
	RunID      uuid.UUID       `json:"runId"`
	StepID     *uuid.UUID      `json:"stepId"`
	ToolName   string          `json:"toolName"`
	Arguments  json.RawMessage `json:"arguments"`
	Result     json.RawMessage `json:"result"`
	Status     string          `json:"status"`
	Error      *string         `json:"error"`
	DurationMs *int64          `json:"durationMs"`
	StartedAt  *time.Time      `json:"startedAt"`
	EndedAt    *time.Time      `json:"endedAt"`
	CreatedAt  time.Time       `json:"createdAt"`
}

// AuditLog is the JSON of an audit row.
type AuditLog struct {
	ID           uuid.UUID       `json:"id"`
	ActorID      *string         `json:"actorId"`
	ActorRole    string          `json:"actorRole"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resourceType"`
	ResourceID   string          `json:"resourceId"`
	RequestID    *string         `json:"requestId"`
	IP           *string         `json:"ip"`
	UserAgent    *string         `json:"userAgent"`
	Changes      json.RawMessage `json:"changes"`
	CreatedAt    time.Time       `json:"createdAt"`
}

// Usage is the JSON of a usage record.
type Usage struct {
	ID                uuid.UUID  `json:"id"`
	RunID             *uuid.UUID `json:"runId"`
	Model             string     `json:"model"`
	InputTokens       int64      `json:"inputTokens"`
	OutputTokens      int64      `json:"outputTokens"`
	CachedInputTokens int64      `json:"cachedInputTokens"`
	TotalTokens       int64      `json:"totalTokens"`
	CostUSD           float64    `json:"costUsd"`
	RecordedAt        time.Time  `json:"recordedAt"`
}

// Health is the JSON of a component check.
type Health struct {
	ID        uuid.UUID       `json:"id"`
	Component string          `json:"component"`
	Status    string          `json:"status"`
	LatencyMs *int64          `json:"latencyMs"`
	Details   json.RawMessage `json:"details"`
	CheckedAt time.Time       `json:"checkedAt"`
}

// RunStats is one group of GET /v1/runs/stats.
type RunStats struct {
	Key                 string   `json:"key"`
	Runs                int64    `json:"runs"`
	MeanDurationMs      *float64 `json:"meanDurationMs"`
	P50DurationMs       *float64 `json:"p50DurationMs"`
	P95DurationMs       *float64 `json:"p95DurationMs"`
	P99DurationMs       *float64 `json:"p99DurationMs"`
	ToolCalls           int64    `json:"toolCalls"`
	ToolCallFailureRate *float64 `json:"toolCallFailureRate"`
}

// UsageSummary is one group of GET /v1/usage/summary; Key is null for usage
// without a run when grouping by agent name.
type UsageSummary struct {
	Key          *string `json:"key"`
	InputTokens  int64   `json:"inputTokens"`
	OutputTokens int64   `json:"outputTokens"`
	TotalTokens  int64   `json:"totalTokens"`
	CostUSD      float64 `json:"costUsd"`
	Runs         int64   `json:"runs"`
}

// RollupWindow is the window a rollup read covered: whole UTC hours, null
// for an open end.
type RollupWindow struct {
	From *time.Time `json:"from"`
	To   *time.Time `json:"to"`
}

// Rollup is the JSON of a read of the rollups: the window it covered and
// its groups.
type Rollup[T any] struct {
	Window RollupWindow `json:"window"`
	Data   []T          `json:"data"`
}

func toRollupWindow(w store.Window) RollupWindow {
	var out RollupWindow
	if !w.From.IsZero() {
		out.From = &w.From
	}
	if !w.To.IsZero() {
		out.To = &w.To
	}
	return out
}

// List is the JSON of a page.
type List[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"nextCursor"`
}

// Data is the JSON of a result that is not paginated.
type Data[T any] struct {
	Data []T `json:"data"`
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// nullJSON makes an absent JSON value an explicit null.
func nullJSON(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("null")
	}
	return m
}

func toRun(r *ent.AgentRun) Run {
	out := Run{
		ID: r.ID, TenantID: r.TenantID, AgentName: r.AgentName, Status: string(r.Status),
		Input: nullJSON(r.Input), Output: nullJSON(r.Output), Error: r.Error, Metadata: nullJSON(r.Metadata),
		Model: r.Model, UserID: r.UserID, ParentRunID: r.ParentRunID,
		StartedAt: utcPtr(r.StartedAt), EndedAt: utcPtr(r.EndedAt),
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.Edges.Steps != nil {
		out.Steps = mapSlice(r.Edges.Steps, toStep)
	}
	if r.Edges.ToolCalls != nil {
		out.ToolCalls = mapSlice(r.Edges.ToolCalls, toToolCall)
	}
	return out
}

func toStep(s *ent.AgentStep) Step {
	return Step{
		ID: s.ID, RunID: s.RunID, Seq: s.Seq, Type: s.Type, Name: s.Name, Status: string(s.Status),
		Input: nullJSON(s.Input), Output: nullJSON(s.Output), Error: s.Error,
		StartedAt: utcPtr(s.StartedAt), EndedAt: utcPtr(s.EndedAt), CreatedAt: s.CreatedAt.UTC(),
	}
}

func toToolCall(t *ent.ToolCall) ToolCall {
	return ToolCall{
		ID: t.ID, RunID: t.RunID, StepID: t.StepID, ToolName: t.ToolName,
		Arguments: nullJSON(t.Arguments), Result: nullJSON(t.Result), Status: string(t.Status),
		Error: t.Error, DurationMs: t.DurationMs,
		StartedAt: utcPtr(t.StartedAt), EndedAt: utcPtr(t.EndedAt), CreatedAt: t.CreatedAt.UTC(),
	}
}

func toAuditLog(a *ent.AuditLog) AuditLog {
	return AuditLog{
		ID: a.ID, ActorID: a.ActorID, ActorRole: a.ActorRole, Action: a.Action,
		ResourceType: a.ResourceType, ResourceID: a.ResourceID, RequestID: a.RequestID,
		IP: a.IP, UserAgent: a.UserAgent, Changes: nullJSON(a.Changes), CreatedAt: a.CreatedAt.UTC(),
	}
}

func toUsage(u *ent.UsageMetric) Usage {
	return Usage{
		ID: u.ID, RunID: u.RunID, Model: u.Model, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		CachedInputTokens: u.CachedInputTokens, TotalTokens: u.TotalTokens, CostUSD: u.CostUsd,
		RecordedAt: u.RecordedAt.UTC(),
	}
}

func toHealth(h *ent.SystemHealth) Health {
	return Health{
		ID: h.ID, Component: h.Component, Status: string(h.Status), LatencyMs: h.LatencyMs,
		Details: nullJSON(h.Details), CheckedAt: h.CheckedAt.UTC(),
	}
}

func toRunStats(s store.RunStats) RunStats {
	return RunStats{
		Key: s.Key, Runs: s.Runs, MeanDurationMs: s.MeanDurationMs,
		P50DurationMs: s.P50DurationMs, P95DurationMs: s.P95DurationMs, P99DurationMs: s.P99DurationMs,
		ToolCalls: s.ToolCalls, ToolCallFailureRate: s.ToolCallFailureRate,
	}
}

func toUsageSummary(s store.UsageSummary) UsageSummary {
	out := UsageSummary{
		InputTokens: s.InputTokens, OutputTokens: s.OutputTokens, TotalTokens: s.TotalTokens,
		CostUSD: s.CostUSD, Runs: s.Runs,
	}
	if s.Key != "" {
		out.Key = &s.Key
	}
	return out
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func page[T, U any](in []T, f func(T) U, next string) List[U] {
	l := List[U]{Data: mapSlice(in, f)}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}
