// Package tenant carries the Viewer, the identity a request acts as, in a
// context.Context, so that every layer below the transport filters by the
// same tenant without passing it around by hand.
package tenant

import (
	"context"

	"github.com/google/uuid"
)

// The Supabase roles a token may carry that the API accepts.
const (
	// RoleServiceRole is the Supabase role that may act for any tenant named
	// in the request, and call every operation.
	RoleServiceRole = "service_role"
	// RoleAuthenticated is the role of a signed-in end user of one tenant.
	RoleAuthenticated = "authenticated"
)

// Viewer is who a call acts as: a tenant's user, or the system itself (the
// migration tool, the health prober). The zero Viewer is nobody.
type Viewer struct {
	// TenantID is the tenant every read and write is confined to.
	TenantID uuid.UUID
	// UserID is the token's subject, kept for audit rows; may be empty.
	UserID string
	// Role is the token's role claim, such as "authenticated" or "service_role".
	Role string
	// System marks internal callers that act across tenants, such as the
	// legacy importer and the health prober. Never set from a request.
	System bool
}

// IsServiceRole reports whether the viewer holds Supabase's service_role.
func (v Viewer) IsServiceRole() bool { return v.Role == RoleServiceRole }

type ctxKey struct{}

// NewContext returns a copy of ctx that carries v.
func NewContext(ctx context.Context, v Viewer) context.Context {
	return context.WithValue(ctx, ctxKey{}, v)
}

// FromContext returns the viewer in ctx, and false when there is none.
func FromContext(ctx context.Context) (Viewer, bool) {
	v, ok := ctx.Value(ctxKey{}).(Viewer)
	return v, ok
}

// SystemContext returns a copy of ctx that acts as the system, across tenants.
func SystemContext(ctx context.Context) context.Context {
	return NewContext(ctx, Viewer{System: true, Role: "system"})
}
