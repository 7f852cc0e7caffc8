package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// UsageMetric is one billing record of model usage. Its run is optional and
// its row outlives the run: deleting a run only clears run_id.
type UsageMetric struct{ ent.Schema }

// Annotations of the UsageMetric.
func (UsageMetric) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("usage_metrics")}
}

// Mixin of the UsageMetric.
func (UsageMetric) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TenantMixin{}}
}

// Fields of the UsageMetric.
func (UsageMetric) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("run_id", uuid.UUID{}).Optional().Nillable(),
		field.String("model").NotEmpty().MaxLen(200),
		field.Int64("input_tokens").NonNegative().Default(0),
		field.Int64("output_tokens").NonNegative().Default(0),
		field.Int64("cached_input_tokens").NonNegative().Default(0),
		field.Int64("total_tokens").NonNegative().Default(0),
		field.Float("cost_usd").Min(0).Default(0).
			SchemaType(map[string]string{dialect.Postgres: "numeric(18,6)"}),
		field.Time("recorded_at").Default(now).Immutable(),
	}
}

// Edges of the UsageMetric.
func (UsageMetric) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("run", AgentRun.Type).Ref("usage").Field("run_id").Unique(),
	}
}

// Indexes of the UsageMetric.
func (UsageMetric) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("tenant_id", "recorded_at"),
		index.Fields("run_id"),
	}
}
