// Package schema is agentstore's code-first data model: the six internal
// tables, their edges and indexes, and the privacy policies that confine
// every query and mutation to the viewer's tenant.
package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent/privacy"
	"github.com/agentstore/agentstore/internal/policy"
)

// newID returns a time-ordered UUIDv7, which keeps primary-key inserts at the
// right edge of the B-tree instead of scattering them.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// now is the default for timestamps: UTC, truncated to the microsecond that
// PostgreSQL stores, so a value reads back exactly as it was written on
// either backend.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// IDMixin gives an entity a client-suppliable UUID primary key.
type IDMixin struct{ mixin.Schema }

// Fields of the IDMixin.
func (IDMixin) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(newID).Immutable(),
	}
}

// TenantMixin makes an entity tenant-scoped: a required, immutable tenant_id
// taken from the viewer on create, and a policy that filters every query and
// mutation by it and denies when there is no viewer.
type TenantMixin struct{ mixin.Schema }

// Fields of the TenantMixin.
func (TenantMixin) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("tenant_id", uuid.UUID{}).Immutable(),
	}
}

// Policy of the TenantMixin.
func (TenantMixin) Policy() ent.Policy {
	return privacy.Policy{
		Query: privacy.QueryPolicy{
			policy.DenyIfNoViewer(),
			policy.AllowIfSystem(),
			policy.FilterTenant(),
		},
		Mutation: privacy.MutationPolicy{
			policy.DenyIfNoViewer(),
			policy.AllowIfSystem(),
			policy.SetTenantOnCreate(),
			policy.FilterTenant(),
		},
	}
}

// CreateTimeMixin adds an immutable created_at.
type CreateTimeMixin struct{ mixin.Schema }

// Fields of the CreateTimeMixin.
func (CreateTimeMixin) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(now).Immutable(),
	}
}

// AppendOnlyMixin denies every update and delete. List it before
// TenantMixin: the first policy that decides wins.
type AppendOnlyMixin struct{ mixin.Schema }

// Policy of the AppendOnlyMixin.
func (AppendOnlyMixin) Policy() ent.Policy {
	return privacy.Policy{
		Mutation: privacy.MutationPolicy{policy.DenyUpdateAndDelete()},
	}
}
