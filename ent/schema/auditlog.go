package schema

import (
	"encoding/json"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// AuditLog records who changed what. It is append-only: AppendOnlyMixin
// denies every update and delete, whoever asks.
type AuditLog struct{ ent.Schema }

// Annotations of the AuditLog.
func (AuditLog) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("audit_logs")}
}

// Mixin of the AuditLog.
func (AuditLog) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, AppendOnlyMixin{}, TenantMixin{}, CreateTimeMixin{}}
}

// Fields of the AuditLog.
func (AuditLog) Fields() []ent.Field {
	return []ent.Field{
		field.String("actor_id").Optional().Nillable().Immutable(),
		field.String("actor_role").Immutable(),
		field.String("action").NotEmpty().Immutable(),
		field.String("resource_type").NotEmpty().Immutable(),
		field.String("resource_id").Immutable(),
		field.String("request_id").Optional().Nillable().Immutable(),
		field.String("ip").Optional().Nillable().Immutable(),
		field.String("user_agent").Optional().Nillable().Immutable(),
		field.JSON("changes", json.RawMessage{}).Optional().Immutable(),
	}
}

// Indexes of the AuditLog.
func (AuditLog) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("tenant_id", "created_at"),
		index.Fields("tenant_id", "resource_type", "resource_id"),
	}
}
