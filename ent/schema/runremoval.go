package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// RunRemoval totals the runs that retention or an erasure removed, per
// tenant, UTC hour of the runs' creation, agent, status and reason: what a
// rollup verifier subtracts from the rollups (which keep removed runs) to
// compare them with the raw rows that remain. It holds no personal data:
// no run or user id, no input or output.
type RunRemoval struct{ ent.Schema }

// Annotations of the RunRemoval.
func (RunRemoval) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("run_removals")}
}

// Mixin of the RunRemoval.
func (RunRemoval) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TenantMixin{}}
}

// Fields of the RunRemoval.
func (RunRemoval) Fields() []ent.Field {
	return []ent.Field{
		field.Time("hour").Immutable(),
		field.String("agent_name").Immutable(),
		field.String("status").Immutable(),
		field.Enum("reason").Values("retention", "erasure").Immutable(),
		field.Int64("runs").NonNegative().Default(0),
		field.Int64("timed_runs").NonNegative().Default(0),
		field.Float("duration_ms_sum").Default(0),
		field.Int64("steps").NonNegative().Default(0),
		field.Int64("tool_calls").NonNegative().Default(0),
		field.Int64("failed_tool_calls").NonNegative().Default(0),
		field.Int64("usage_rows").NonNegative().Default(0),
		field.Int64("input_tokens").NonNegative().Default(0),
		field.Int64("output_tokens").NonNegative().Default(0),
		field.Int64("total_tokens").NonNegative().Default(0),
		field.Float("cost_usd").Default(0).
			SchemaType(map[string]string{dialect.Postgres: "numeric(18,6)"}),
		field.Time("updated_at").Default(now).UpdateDefault(now),
	}
}

// Indexes of the RunRemoval: one row per tenant, hour, agent, status and
// reason, which every removal adds to.
func (RunRemoval) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("tenant_id", "hour", "agent_name", "status", "reason").Unique(),
	}
}
