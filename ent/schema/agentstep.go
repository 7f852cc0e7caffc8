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

// AgentStep is one numbered step of a run; seq is gap-free per run.
type AgentStep struct{ ent.Schema }

// Annotations of the AgentStep.
func (AgentStep) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("agent_steps")}
}

// Mixin of the AgentStep.
func (AgentStep) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TenantMixin{}, CreateTimeMixin{}}
}

// Fields of the AgentStep.
func (AgentStep) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("run_id", uuid.UUID{}).Immutable(),
		field.Int("seq").Positive().Immutable(),
		field.String("type").NotEmpty().MaxLen(100),
		field.String("name").Optional().Nillable().MaxLen(200),
		field.Enum("status").Values("queued", "running", "succeeded", "failed", "cancelled").Default("succeeded"),
		field.JSON("input", json.RawMessage{}).Optional(),
		field.JSON("output", json.RawMessage{}).Optional(),
		field.String("error").Optional().Nillable(),
		field.Time("started_at").Optional().Nillable(),
		field.Time("ended_at").Optional().Nillable(),
	}
}

// Edges of the AgentStep.
func (AgentStep) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("run", AgentRun.Type).Ref("steps").Field("run_id").Unique().Required().Immutable(),
		edge.To("tool_calls", ToolCall.Type).Annotations(entsql.OnDelete(entsql.SetNull)),
	}
}

// Indexes of the AgentStep: seq is unique within a run and orders its steps.
func (AgentStep) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("run_id", "seq").Unique(),
	}
}
