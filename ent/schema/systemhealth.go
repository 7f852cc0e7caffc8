package schema

import (
	"encoding/json"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/agentstore/agentstore/ent/privacy"
	"github.com/agentstore/agentstore/internal/policy"
)

// SystemHealth is one check of a component. It is global, not
// tenant-scoped: any viewer may read it, only the system or service_role may
// record it, and a service_role viewer needs no tenant to do either.
type SystemHealth struct{ ent.Schema }

// Annotations of the SystemHealth.
func (SystemHealth) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("system_health")}
}

// Mixin of the SystemHealth.
func (SystemHealth) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}}
}

// Fields of the SystemHealth.
func (SystemHealth) Fields() []ent.Field {
	return []ent.Field{
		field.String("component").NotEmpty().MaxLen(100).Immutable(),
		field.Enum("status").Values("up", "degraded", "down").Immutable(),
		field.Int64("latency_ms").Optional().Nillable().NonNegative().Immutable(),
		field.JSON("details", json.RawMessage{}).Optional().Immutable(),
		field.Time("checked_at").Default(now).Immutable(),
	}
}

// Policy of the SystemHealth.
func (SystemHealth) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			policy.DenyIfNoGlobalViewer(),
			privacy.AlwaysAllowRule(),
		},
		Mutation: privacy.MutationPolicy{
			policy.DenyIfNoGlobalViewer(),
			policy.AllowIfSystem(),
			policy.AllowCreateIfServiceRole(),
			privacy.AlwaysDenyRule(),
		},
	}
}

// Indexes of the SystemHealth.
func (SystemHealth) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("component", "checked_at"),
	}
}
