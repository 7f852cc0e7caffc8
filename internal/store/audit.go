package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/auditlog"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// RequestInfo is what an audit row records of the request that caused it.
type RequestInfo struct {
	RequestID string
	IP        string
	UserAgent string
}

type requestInfoKey struct{}

// WithRequestInfo returns a copy of ctx carrying ri for audit rows.
func WithRequestInfo(ctx context.Context, ri RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, ri)
}

func requestInfoFrom(ctx context.Context) RequestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(RequestInfo)
	return ri
}

// Audit is the append-only audit log. Rows are written by the other
// repositories inside the transaction of the change they record; there is
// no update or delete.
type Audit struct{ s *Store }

// auditEntry is one change to record.
type auditEntry struct {
	action       string
	resourceType string
	resourceID   uuid.UUID
	changes      any
}

// write adds the audit row of e to tx.
func (a *Audit) write(ctx context.Context, tx *ent.Tx, e auditEntry) error {
	row, err := auditRow(ctx, now(), e)
	if err != nil {
		return err
	}
	return insertAudit(ctx, tx, row)
}

// auditRow builds the audit row of e, created at created, with the actor
// taken from the viewer and the request from ctx. The action and resource
// type are the store's own constants, so a validation failure here is a
// defect of the store, not of the request.
func auditRow(ctx context.Context, created time.Time, e auditEntry) (*ent.AuditLog, error) {
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	v, _ := tenant.FromContext(ctx)
	ri := requestInfoFrom(ctx)
	changes, err := json.Marshal(e.changes)
	if err != nil {
		return nil, err
	}
	if err := auditlog.ActionValidator(e.action); err != nil {
		return nil, fmt.Errorf("audit action %q: %w", e.action, err)
	}
	if err := auditlog.ResourceTypeValidator(e.resourceType); err != nil {
		return nil, fmt.Errorf("audit resource type %q: %w", e.resourceType, err)
	}
	return &ent.AuditLog{
		ID: newID(nil), TenantID: tenantID, CreatedAt: created,
		ActorID: nonEmpty(v.UserID), ActorRole: v.Role,
		Action: e.action, ResourceType: e.resourceType, ResourceID: e.resourceID.String(),
		RequestID: nonEmpty(ri.RequestID), IP: nonEmpty(ri.IP), UserAgent: nonEmpty(ri.UserAgent),
		Changes: changes,
	}, nil
}

// AuditFilter selects audit rows; zero fields do not filter.
type AuditFilter struct {
	Action       string
	ResourceType string
	ResourceID   string
	ActorID      string
	From, To     time.Time
	Page         Page
}

// List returns the tenant's audit rows, newest first.
func (a *Audit) List(ctx context.Context, f AuditFilter) (_ []*ent.AuditLog, next string, err error) {
	defer derrors.Wrap(&err, "Audit.List")
	v, err := viewerTenant(ctx)
	if err != nil {
		return nil, "", err
	}
	q := a.s.client.AuditLog.Query().Where(auditlog.TenantID(v))
	if f.Action != "" {
		q.Where(auditlog.Action(f.Action))
	}
	if f.ResourceType != "" {
		q.Where(auditlog.ResourceType(f.ResourceType))
	}
	if f.ResourceID != "" {
		q.Where(auditlog.ResourceID(f.ResourceID))
	}
	if f.ActorID != "" {
		q.Where(auditlog.ActorID(f.ActorID))
	}
	if !f.From.IsZero() {
		q.Where(auditlog.CreatedAtGTE(f.From))
	}
	if !f.To.IsZero() {
		q.Where(auditlog.CreatedAtLT(f.To))
	}
	limit, after, err := f.Page.parse()
	if err != nil {
		return nil, "", err
	}
	if after != nil {
		q.Where(auditlog.Or(
			auditlog.CreatedAtLT(after.T),
			auditlog.And(auditlog.CreatedAt(after.T), auditlog.IDLT(after.ID)),
		))
	}
	rows, err := q.Order(auditlog.ByCreatedAt(descending()), auditlog.ByID(descending())).Limit(limit + 1).All(ctx)
	if err != nil {
		return nil, "", translate(err)
	}
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		next = encodeCursor(cursor{T: last.CreatedAt, ID: last.ID})
	}
	return rows, next, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
