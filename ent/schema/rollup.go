package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// The rollup tables hold the figures of GET /v1/runs/stats and GET
// /v1/usage/summary per tenant, hour or day (UTC) and grouping key, so
// those reads cost the same at ten thousand runs as at ten million (SPEC
// 15). Writers never update a rollup row: each write transaction appends
// what it changed to a *_rollup_deltas table, and a folder (internal/store
// Rollups.Fold) moves deltas into the rollup rows; reads add the rollups
// and the deltas not folded yet. See internal/store/rollups.go.

// RunRollup is the run statistics of one tenant, bucket and key: runs by
// creation hour (grain "hour") or day (grain "day"), keyed by status or
// agent name.
type RunRollup struct{ ent.Schema }

// Annotations of the RunRollup.
func (RunRollup) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("run_rollups")}
}

// Mixin of the RunRollup.
func (RunRollup) Mixin() []ent.Mixin { return []ent.Mixin{TenantMixin{}} }

// Fields of the RunRollup.
func (RunRollup) Fields() []ent.Field {
	return append(rollupKeyFields(), runFigureFields()...)
}

// Indexes of the RunRollup.
func (RunRollup) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "grain", "bucket_start", "kind", "key").Unique()}
}

// RunRollupDelta is a change to the run statistics written by one
// transaction, not yet folded into RunRollup: one row per creation hour,
// status and agent name the transaction changed. Rows are only inserted
// (by writers) and deleted (by the folder).
type RunRollupDelta struct{ ent.Schema }

// Annotations of the RunRollupDelta.
func (RunRollupDelta) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("run_rollup_deltas")}
}

// Mixin of the RunRollupDelta.
func (RunRollupDelta) Mixin() []ent.Mixin { return []ent.Mixin{TenantMixin{}} }

// Fields of the RunRollupDelta.
func (RunRollupDelta) Fields() []ent.Field {
	return append([]ent.Field{
		field.Time("hour").Immutable(),
		field.String("status").Immutable(),
		field.String("agent_name").Immutable(),
	}, runFigureFields()...)
}

// Indexes of the RunRollupDelta.
func (RunRollupDelta) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "hour")}
}

// UsageRollup is the usage totals of one tenant, bucket and key: usage by
// recording hour or day, keyed by model or by the agent name of its run
// ("" for usage without a run).
type UsageRollup struct{ ent.Schema }

// Annotations of the UsageRollup.
func (UsageRollup) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("usage_rollups")}
}

// Mixin of the UsageRollup.
func (UsageRollup) Mixin() []ent.Mixin { return []ent.Mixin{TenantMixin{}} }

// Fields of the UsageRollup.
func (UsageRollup) Fields() []ent.Field {
	return append(rollupKeyFields(), usageFigureFields()...)
}

// Indexes of the UsageRollup.
func (UsageRollup) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "grain", "bucket_start", "kind", "key").Unique()}
}

// UsageRollupDelta is a change to the usage totals written by one
// transaction, not yet folded into UsageRollup: one row per recording
// hour, model and agent name. Runs counts runs first seen by the agent-name
// (and day) grouping, ModelRuns those first seen with the model.
type UsageRollupDelta struct{ ent.Schema }

// Annotations of the UsageRollupDelta.
func (UsageRollupDelta) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("usage_rollup_deltas")}
}

// Mixin of the UsageRollupDelta.
func (UsageRollupDelta) Mixin() []ent.Mixin { return []ent.Mixin{TenantMixin{}} }

// Fields of the UsageRollupDelta.
func (UsageRollupDelta) Fields() []ent.Field {
	return append([]ent.Field{
		field.Time("hour").Immutable(),
		field.String("model").Immutable(),
		field.String("agent_name").Immutable(),
		field.Int64("model_runs").Default(0).Immutable(),
	}, usageFigureFields()...)
}

// Indexes of the UsageRollupDelta.
func (UsageRollupDelta) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "hour")}
}

// UsageRunMark attributes a run to the hour of its earliest usage row
// (model ""), and to the earliest hour of its usage of each model, so that
// the distinct runs of usage add up exactly across hours and days: a run
// is counted once, in the bucket that holds its first usage.
type UsageRunMark struct{ ent.Schema }

// Annotations of the UsageRunMark.
func (UsageRunMark) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("usage_run_marks")}
}

// Mixin of the UsageRunMark.
func (UsageRunMark) Mixin() []ent.Mixin { return []ent.Mixin{TenantMixin{}} }

// Fields of the UsageRunMark.
func (UsageRunMark) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("run_id", uuid.UUID{}).Immutable(),
		field.String("model").Immutable(),
		field.Time("hour"),
	}
}

// Indexes of the UsageRunMark.
func (UsageRunMark) Indexes() []ent.Index {
	return []ent.Index{index.Fields("tenant_id", "run_id", "model").Unique()}
}

// rollupKeyFields are the bucket and grouping key of a rollup row.
func rollupKeyFields() []ent.Field {
	return []ent.Field{
		field.Enum("grain").Values("hour", "day").Immutable(),
		field.Time("bucket_start").Immutable(),
		field.String("kind").Immutable(),
		field.String("key").Immutable(),
	}
}

// runFigureFields are the summed figures of runs. Durations are in
// microseconds (timestamps hold microseconds), so their sum is exact; the
// histogram is internal/rollup's sparse encoding.
func runFigureFields() []ent.Field {
	return []ent.Field{
		field.Int64("runs").Default(0),
		field.Int64("duration_count").Default(0),
		field.Int64("duration_sum_us").Default(0),
		field.Int64("tool_calls").Default(0),
		field.Int64("failed_tool_calls").Default(0),
		field.Bytes("histogram").Optional(),
	}
}

// usageFigureFields are the summed figures of usage. Cost is in integer
// micro-dollars (usage_metrics.cost_usd has six decimals), so sums are
// exact. Records counts usage rows, so a group of rows whose figures are
// all zero still shows.
func usageFigureFields() []ent.Field {
	return []ent.Field{
		field.Int64("input_tokens").Default(0),
		field.Int64("output_tokens").Default(0),
		field.Int64("cached_input_tokens").Default(0),
		field.Int64("total_tokens").Default(0),
		field.Int64("cost_micros").Default(0),
		field.Int64("runs").Default(0),
		field.Int64("records").Default(0),
	}
}
