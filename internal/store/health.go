package store

import (
	"context"
	"encoding/json"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/systemhealth"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Health holds checks of the system's components. It is global: every
// viewer reads the same rows; only the system and service_role write them.
type Health struct{ s *Store }

// NewHealth is one check of a component.
type NewHealth struct {
	Component string
	Status    string // up, degraded or down
	LatencyMs *int64
	Details   json.RawMessage
	CheckedAt *time.Time
}

// Record writes a check. A tenant viewer's check is audited in its tenant;
// the system's, and that of a service_role viewer acting for no tenant,
// are not audited: audit rows belong to a tenant.
func (h *Health) Record(ctx context.Context, in NewHealth) (_ *ent.SystemHealth, err error) {
	defer derrors.Wrap(&err, "Health.Record")
	var row *ent.SystemHealth
	err = h.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		c := tx.SystemHealth.Create().
			SetComponent(in.Component).
			SetStatus(systemhealth.Status(in.Status)).
			SetNillableLatencyMs(in.LatencyMs).
			SetNillableCheckedAt(utc(in.CheckedAt))
		if in.Details != nil {
			c.SetDetails(in.Details)
		}
		var err error
		if row, err = c.Save(ctx); err != nil {
			return err
		}
		if v, _ := tenant.FromContext(ctx); v.System || v.TenantID == uuid.Nil {
			return nil
		}
		return h.s.Audit.write(ctx, tx, auditEntry{
			action: "health.record", resourceType: "system_health", resourceID: row.ID,
			changes: map[string]any{"component": row.Component, "status": row.Status},
		})
	})
	if err != nil {
		return nil, err
	}
	return row, nil
}

// Latest returns the newest check of every component, by component name.
func (h *Health) Latest(ctx context.Context) (_ []*ent.SystemHealth, err error) {
	defer derrors.Wrap(&err, "Health.Latest")
	return h.latest(ctx)
}

func (h *Health) latest(ctx context.Context) ([]*ent.SystemHealth, error) {
	rows, err := h.s.client.SystemHealth.Query().
		Where(func(s *sql.Selector) {
			inner := sql.Table(systemhealth.Table).Schema(h.s.pgSchema).As("newer")
			s.Where(sql.NotExists(
				sql.Select(inner.C(systemhealth.FieldID)).From(inner).Where(sql.And(
					sql.ColumnsEQ(inner.C(systemhealth.FieldComponent), s.C(systemhealth.FieldComponent)),
					sql.Or(
						sql.ColumnsGT(inner.C(systemhealth.FieldCheckedAt), s.C(systemhealth.FieldCheckedAt)),
						sql.And(
							sql.ColumnsEQ(inner.C(systemhealth.FieldCheckedAt), s.C(systemhealth.FieldCheckedAt)),
							sql.ColumnsGT(inner.C(systemhealth.FieldID), s.C(systemhealth.FieldID)),
						),
					),
				)),
			))
		}).
		Order(systemhealth.ByComponent()).
		All(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return rows, nil
}

// History returns the checks of component in w, newest first, at most
// limit of them (DefaultPageSize when 0).
func (h *Health) History(ctx context.Context, component string, w Window, limit int) (_ []*ent.SystemHealth, err error) {
	defer derrors.Wrap(&err, "Health.History(%q)", component)
	if limit <= 0 || limit > MaxPageSize {
		limit = DefaultPageSize
	}
	q := h.s.client.SystemHealth.Query().Where(systemhealth.Component(component))
	if !w.From.IsZero() {
		q.Where(systemhealth.CheckedAtGTE(w.From))
	}
	if !w.To.IsZero() {
		q.Where(systemhealth.CheckedAtLT(w.To))
	}
	rows, err := q.Order(systemhealth.ByCheckedAt(descending()), systemhealth.ByID(descending())).Limit(limit).All(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return rows, nil
}

// Prune deletes checks older than before, keeping each component's newest
// one. Only the system viewer may prune.
func (h *Health) Prune(ctx context.Context, before time.Time) (_ int, err error) {
	defer derrors.Wrap(&err, "Health.Prune")
	latest, err := h.latest(ctx)
	if err != nil {
		return 0, err
	}
	keep := make([]uuid.UUID, len(latest))
	for i, r := range latest {
		keep[i] = r.ID
	}
	n, err := h.s.client.SystemHealth.Delete().
		Where(systemhealth.CheckedAtLT(before), systemhealth.IDNotIn(keep...)).
		Exec(ctx)
	return n, translate(err)
}
