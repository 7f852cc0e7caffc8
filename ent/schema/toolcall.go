package schema

import (
	"encoding/json"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// ToolCall is one tool invocation made during a run, optionally within one
// of that run's steps.
type ToolCall struct{ ent.Schema }

// Annotations of the ToolCall.
func (ToolCall) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("tool_calls")}
}

// Mixin of the ToolCall.
func (ToolCall) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TenantMixin{}, CreateTimeMixin{}}
}

// Fields of the ToolCall.
func (ToolCall) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("run_id", uuid.UUID{}).Immutable(),
		field.UUID("step_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		field.String("tool_name").NotEmpty().MaxLen(200),
		field.JSON("arguments", json.RawMessage{}).Optional(),
		field.JSON("result", json.RawMessage{}).Optional(),
		field.Enum("status").Values("succeeded", "failed"),
		field.String("error").Optional().Nillable(),
		field.Int64("duration_ms").Optional().Nillable().NonNegative(),
		field.Time("started_at").Optional().Nillable(),
		field.Time("ended_at").Optional().Nillable(),
	}
}

// Edges of the ToolCall.
func (ToolCall) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("run", AgentRun.Type).Ref("tool_calls").Field("run_id").Unique().Required().Immutable(),
		edge.From("step", AgentStep.Type).Ref("tool_calls").Field("step_id").Unique().Immutable(),
	}
}

// Indexes of the ToolCall.
func (ToolCall) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("tenant_id", "created_at"),
		index.Fields("run_id", "created_at"),
		index.Fields("step_id"),
	}
}
