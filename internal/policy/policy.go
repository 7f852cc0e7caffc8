// Package policy holds the privacy rules of agentstore's ent schema: who
// may read and write which rows. The schema attaches them; tests read them
// to know what to expect.
package policy

import (
	"context"
	"errors"

	"entgo.io/ent/entql"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/privacy"
	"github.com/agentstore/agentstore/internal/tenant"
)

// ErrTenantMismatch is returned when a create names a tenant other than the
// viewer's.
var ErrTenantMismatch = errors.New("tenant of the new row differs from the viewer's")

// DenyIfNoViewer denies any query or mutation made without a viewer in the
// context, and any viewer that is neither the system nor bound to a tenant.
func DenyIfNoViewer() privacy.QueryMutationRule {
	return privacy.ContextQueryMutationRule(func(ctx context.Context) error {
		v, ok := tenant.FromContext(ctx)
		if !ok {
			return privacy.Denyf("no viewer in context")
		}
		if !v.System && v.TenantID == uuid.Nil {
			return privacy.Denyf("viewer has no tenant")
		}
		return privacy.Skip
	})
}

// DenyIfNoGlobalViewer is DenyIfNoViewer for a global entity, whose rows no
// tenant owns (system health): it also admits a service_role viewer bound
// to no tenant.
func DenyIfNoGlobalViewer() privacy.QueryMutationRule {
	return privacy.ContextQueryMutationRule(func(ctx context.Context) error {
		v, ok := tenant.FromContext(ctx)
		if !ok {
			return privacy.Denyf("no viewer in context")
		}
		if !v.System && v.TenantID == uuid.Nil && !v.IsServiceRole() {
			return privacy.Denyf("viewer has no tenant")
		}
		return privacy.Skip
	})
}

// AllowIfSystem allows the system viewer everything the rules after it
// would otherwise filter.
func AllowIfSystem() privacy.QueryMutationRule {
	return privacy.ContextQueryMutationRule(func(ctx context.Context) error {
		if v, _ := tenant.FromContext(ctx); v.System {
			return privacy.Allow
		}
		return privacy.Skip
	})
}

// tenantFilter is what every tenant-scoped entity's generated filter has.
type tenantFilter interface {
	WhereTenantID(entql.ValueP)
}

// FilterTenant confines queries, updates and deletes to the viewer's
// tenant by adding a tenant_id predicate to them.
func FilterTenant() privacy.QueryMutationRule {
	return privacy.FilterFunc(func(ctx context.Context, f privacy.Filter) error {
		v, _ := tenant.FromContext(ctx)
		tf, ok := f.(tenantFilter)
		if !ok {
			return privacy.Denyf("%T is not tenant-scoped", f)
		}
		tf.WhereTenantID(entql.ValueEQ(v.TenantID))
		return privacy.Allow
	})
}

// tenantMutation is what every tenant-scoped entity's generated mutation has.
type tenantMutation interface {
	TenantID() (uuid.UUID, bool)
	SetTenantID(uuid.UUID)
}

// SetTenantOnCreate gives every row a tenant viewer creates the viewer's
// tenant, and denies a create that names another one.
func SetTenantOnCreate() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		if !m.Op().Is(ent.OpCreate) {
			return privacy.Skip
		}
		tm, ok := m.(tenantMutation)
		if !ok {
			return privacy.Denyf("%T is not tenant-scoped", m)
		}
		v, _ := tenant.FromContext(ctx)
		if id, set := tm.TenantID(); set && id != v.TenantID {
			return privacy.Denyf("%w", ErrTenantMismatch)
		}
		tm.SetTenantID(v.TenantID)
		return privacy.Skip
	})
}

// AllowCreateIfServiceRole lets a service_role viewer create rows.
func AllowCreateIfServiceRole() privacy.MutationRule {
	return privacy.MutationRuleFunc(func(ctx context.Context, m ent.Mutation) error {
		if v, _ := tenant.FromContext(ctx); v.IsServiceRole() && m.Op().Is(ent.OpCreate) {
			return privacy.Allow
		}
		return privacy.Skip
	})
}

// DenyUpdateAndDelete makes an entity append-only.
func DenyUpdateAndDelete() privacy.MutationRule {
	return privacy.OnMutationOperation(
		privacy.AlwaysDenyRule(),
		ent.OpUpdate|ent.OpUpdateOne|ent.OpDelete|ent.OpDeleteOne,
	)
}
