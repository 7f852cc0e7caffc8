package store

import (
	"context"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/usagemetric"
	"github.com/agentstore/agentstore/internal/derrors"
)

// Usage holds billing records of model usage.
type Usage struct{ s *Store }

// NewUsage is a usage record. RunID is optional; TotalTokens defaults to
// input plus output.
type NewUsage struct {
	ID                *uuid.UUID
	RunID             *uuid.UUID
	Model             string
	InputTokens       int64
	OutputTokens      int64
	CachedInputTokens int64
	TotalTokens       *int64
	CostUSD           float64
	RecordedAt        *time.Time
}

// Record writes a usage row and its audit row. A RunID must name one of
// the tenant's runs.
func (u *Usage) Record(ctx context.Context, in NewUsage) (_ *ent.UsageMetric, err error) {
	defer derrors.Wrap(&err, "Usage.Record")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	total := in.InputTokens + in.OutputTokens
	if in.TotalTokens != nil {
		total = *in.TotalTokens
	}
	var m *ent.UsageMetric
	err = u.s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
		if in.RunID != nil {
			ok, err := tx.AgentRun.Query().Where(agentrun.ID(*in.RunID), agentrun.TenantID(tenantID)).Exist(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return derrors.Field("runId", "no such run")
			}
		}
		c := tx.UsageMetric.Create().
			SetNillableRunID(in.RunID).
			SetModel(in.Model).
			SetInputTokens(in.InputTokens).
			SetOutputTokens(in.OutputTokens).
			SetCachedInputTokens(in.CachedInputTokens).
			SetTotalTokens(total).
			SetCostUsd(in.CostUSD).
			SetNillableRecordedAt(utc(in.RecordedAt))
		if in.ID != nil {
			c.SetID(*in.ID)
		}
		var err error
		if m, err = c.Save(ctx); err != nil {
			return err
		}
		return u.s.Audit.write(ctx, tx, auditEntry{
			action: "usage.record", resourceType: "usage", resourceID: m.ID,
			changes: map[string]any{"model": m.Model, "totalTokens": m.TotalTokens, "costUsd": m.CostUsd},
		})
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// UsageSummary is one group of GET /v1/usage/summary. Key is empty for
// usage recorded without a run when grouping by agent name.
type UsageSummary struct {
	Key          string  `sql:"key"`
	InputTokens  int64   `sql:"input_tokens"`
	OutputTokens int64   `sql:"output_tokens"`
	TotalTokens  int64   `sql:"total_tokens"`
	CostUSD      float64 `sql:"cost_usd"`
	Runs         int64   `sql:"runs"`
}

// Summary totals the tenant's usage recorded in w, grouped by groupBy:
// "day" (UTC), "model" or "agentName".
func (u *Usage) Summary(ctx context.Context, w Window, groupBy string) (_ []UsageSummary, err error) {
	defer derrors.Wrap(&err, "Usage.Summary")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	if groupBy != "day" && groupBy != "model" && groupBy != "agentName" {
		return nil, derrors.Field("groupBy", "must be day, model or agentName")
	}
	q := u.s.client.UsageMetric.Query().Where(usagemetric.TenantID(tenantID))
	if !w.From.IsZero() {
		q.Where(usagemetric.RecordedAtGTE(w.From))
	}
	if !w.To.IsZero() {
		q.Where(usagemetric.RecordedAtLT(w.To))
	}
	var out []UsageSummary
	err = q.Modify(func(s *sql.Selector) {
		var key, group string
		switch groupBy {
		case "day":
			group, key = u.s.dialectSQL().day(s.C(usagemetric.FieldRecordedAt))
		case "model":
			key = s.C(usagemetric.FieldModel)
		case "agentName":
			runs := sql.Table(agentrun.Table).Schema(u.s.pgSchema).As("r")
			s.LeftJoin(runs).On(s.C(usagemetric.FieldRunID), runs.C(agentrun.FieldID))
			key = "COALESCE(" + runs.C(agentrun.FieldAgentName) + ", '')"
		}
		if group == "" {
			group = key
		}
		s.Select(
			sql.As(key, "key"),
			sql.As(sql.Sum(s.C(usagemetric.FieldInputTokens)), "input_tokens"),
			sql.As(sql.Sum(s.C(usagemetric.FieldOutputTokens)), "output_tokens"),
			sql.As(sql.Sum(s.C(usagemetric.FieldTotalTokens)), "total_tokens"),
			sql.As(sql.Sum(s.C(usagemetric.FieldCostUsd)), "cost_usd"),
			sql.As(sql.Count(sql.Distinct(s.C(usagemetric.FieldRunID))), "runs"),
		).GroupBy(group).OrderBy(group)
	}).Scan(ctx, &out)
	if err != nil {
		return nil, translate(err)
	}
	return out, nil
}
