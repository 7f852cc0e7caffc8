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

// AgentRun is one execution of an agent: the root of its steps, tool calls
// and usage, and optionally the child of another run.
type AgentRun struct{ ent.Schema }

// Annotations of the AgentRun.
func (AgentRun) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("agent_runs")}
}

// Mixin of the AgentRun.
func (AgentRun) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TenantMixin{}, CreateTimeMixin{}}
}

// Fields of the AgentRun.
func (AgentRun) Fields() []ent.Field {
	return []ent.Field{
		field.String("agent_name").NotEmpty().MaxLen(200),
		field.Enum("status").Values("queued", "running", "succeeded", "failed", "cancelled").Default("queued"),
		field.JSON("input", json.RawMessage{}).Optional(),
		field.JSON("output", json.RawMessage{}).Optional(),
		field.String("error").Optional().Nillable(),
		field.JSON("metadata", json.RawMessage{}).Optional(),
		field.String("model").Optional().Nillable().MaxLen(200),
		field.UUID("user_id", uuid.UUID{}).Optional().Nillable(),
		field.UUID("parent_run_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		field.Time("started_at").Optional().Nillable(),
		field.Time("ended_at").Optional().Nillable(),
		field.Time("updated_at").Default(now).UpdateDefault(now),
	}
}

// Edges of the AgentRun.
func (AgentRun) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("children", AgentRun.Type).
			Annotations(entsql.OnDelete(entsql.SetNull)).
			From("parent").Field("parent_run_id").Unique().Immutable(),
		edge.To("steps", AgentStep.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("tool_calls", ToolCall.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
		edge.To("usage", UsageMetric.Type).Annotations(entsql.OnDelete(entsql.SetNull)),
	}
}

// Indexes of the AgentRun: the tenant's newest-first list, with and without
// a status filter, and by agent name; an end user's runs, for erasure (by
// user alone: a (tenant_id, user_id) index would compete with
// (tenant_id, created_at) for the tenant's aggregates).
func (AgentRun) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("tenant_id", "created_at"),
		index.Fields("tenant_id", "status", "created_at"),
		index.Fields("tenant_id", "agent_name", "created_at"),
		index.Fields("parent_run_id"),
		index.Fields("user_id"),
	}
}
