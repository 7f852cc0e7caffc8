package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Erasure is the durable job of erasing one end user's runs, with their
// steps and tool calls, from a tenant. Its row outlives the work: it keeps
// the counts of what was removed and who asked, never the removed data.
type Erasure struct{ ent.Schema }

// Annotations of the Erasure.
func (Erasure) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("erasures")}
}

// Mixin of the Erasure.
func (Erasure) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TenantMixin{}, CreateTimeMixin{}}
}

// Fields of the Erasure.
func (Erasure) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("user_id", uuid.UUID{}).Immutable(),
		field.Enum("status").Values("pending", "running", "done", "failed").Default("pending"),
		field.Int64("runs").NonNegative().Default(0),
		field.Int64("steps").NonNegative().Default(0),
		field.Int64("tool_calls").NonNegative().Default(0),
		field.Int("attempts").NonNegative().Default(0),
		field.String("error").Optional().Nillable(),
		field.String("actor_id").Optional().Nillable().Immutable(),
		field.String("actor_role").Immutable(),
		field.String("request_id").Optional().Nillable().Immutable(),
		field.Time("updated_at").Default(now).UpdateDefault(now),
		field.Time("finished_at").Optional().Nillable(),
	}
}

// Indexes of the Erasure: the worker finds unfinished jobs by status.
func (Erasure) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("status", "created_at"),
		index.Fields("tenant_id", "user_id"),
	}
}
