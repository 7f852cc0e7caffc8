package store

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/agentrun"
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
		var agent *string
		if in.RunID != nil {
			run, err := tx.AgentRun.Query().Where(agentrun.ID(*in.RunID), agentrun.TenantID(tenantID)).
				Select(agentrun.FieldAgentName).Only(ctx)
			if ent.IsNotFound(err) {
				return derrors.Field("runId", "no such run")
			}
			if err != nil {
				return err
			}
			agent = &run.AgentName
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
		if err := u.s.Rollups.usageRecorded(ctx, tx, m, agent); err != nil {
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
	Key          string
	InputTokens  int64
	OutputTokens int64
	TotalTokens  int64
	CostUSD      float64
	Runs         int64
}

// Summary totals the tenant's usage recorded in w, widened to whole hours
// (see Window.WholeHours), grouped by groupBy: "day" (UTC), "model" or
// "agentName". Runs counts the runs whose first usage (by recordedAt; per
// model when grouping by model) falls in the group and the window, so the
// runs of adjacent windows add up. It reads the rollups only.
func (u *Usage) Summary(ctx context.Context, w Window, groupBy string) (_ []UsageSummary, err error) {
	defer derrors.Wrap(&err, "Usage.Summary")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	if groupBy != "day" && groupBy != "model" && groupBy != "agentName" {
		return nil, derrors.Field("groupBy", "must be day, model or agentName")
	}
	groups, err := u.s.Rollups.usageSummary(ctx, tenantID, w.WholeHours(), groupBy)
	if err != nil {
		return nil, err
	}
	out := []UsageSummary{}
	for _, k := range sortedKeys(groups) {
		f := groups[k]
		if f.records <= 0 {
			continue
		}
		out = append(out, UsageSummary{
			Key: k, InputTokens: f.in, OutputTokens: f.out, TotalTokens: f.total,
			CostUSD: float64(f.costMicros) / 1e6, Runs: f.runs,
		})
	}
	return out, nil
}
