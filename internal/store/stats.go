package store

import (
	"context"
	"time"

	"github.com/agentstore/agentstore/internal/derrors"
)

// Window is a half-open time range [From, To); zero ends are open.
type Window struct {
	From, To time.Time
}

// RunStats is one group of GET /v1/runs/stats. The percentiles come from
// the rollups' duration histogram: each is within 1% of the exact
// nearest-rank percentile (internal/rollup).
type RunStats struct {
	Key                 string
	Runs                int64
	MeanDurationMs      *float64
	P50DurationMs       *float64
	P95DurationMs       *float64
	P99DurationMs       *float64
	ToolCalls           int64
	FailedToolCalls     int64
	ToolCallFailureRate *float64
}

// Stats groups the tenant's runs created in w, widened to whole hours (see
// Window.WholeHours), by groupBy ("status" or "agentName"): how many, the
// mean and percentiles of their duration (from startedAt to endedAt, for
// runs that have both), and the share of their tool calls that failed. It
// reads the rollups only, so its cost does not grow with the runs stored.
func (r *Runs) Stats(ctx context.Context, w Window, groupBy string) (_ []RunStats, err error) {
	defer derrors.Wrap(&err, "Runs.Stats")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	if groupBy != kindStatus && groupBy != kindAgentName {
		return nil, derrors.Field("groupBy", "must be status or agentName")
	}
	groups, err := r.s.Rollups.runStats(ctx, tenantID, w.WholeHours(), groupBy)
	if err != nil {
		return nil, err
	}
	out := []RunStats{}
	for _, k := range sortedKeys(groups) {
		if f := groups[k]; f.runs > 0 {
			out = append(out, toRunStats(k, f))
		}
	}
	return out, nil
}
