package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// IdempotencyKey remembers the response to a request sent with an
// Idempotency-Key header, so that a retry gets the first response and a
// different request under the same key is refused.
type IdempotencyKey struct{ ent.Schema }

// Annotations of the IdempotencyKey.
func (IdempotencyKey) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Table("idempotency_keys")}
}

// Mixin of the IdempotencyKey.
func (IdempotencyKey) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TenantMixin{}, CreateTimeMixin{}}
}

// Fields of the IdempotencyKey.
func (IdempotencyKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("scope").NotEmpty().MaxLen(100).Immutable(),
		field.String("key").NotEmpty().MaxLen(255).Immutable(),
		field.String("request_hash").NotEmpty().Immutable(),
		field.Int("status_code").Immutable(),
		field.Bytes("response").Immutable(),
	}
}

// Indexes of the IdempotencyKey.
func (IdempotencyKey) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("tenant_id", "scope", "key").Unique(),
		index.Fields("created_at"),
	}
}
