// Package lifecycle runs the data-lifecycle jobs of SPEC 16 inside serve:
// retention, which deletes runs past their tenant's retention, and the
// erasure worker, which works the jobs of POST /v1/erasures. Both delete
// in small batches, each one transaction, at a bounded rate, so that
// ingestion is not disturbed and an interrupted job resumes with exact
// counts.
package lifecycle

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Defaults of the pacing of deletions.
const (
	// DefaultBatchRuns is how many runs one transaction deletes.
	DefaultBatchRuns = 200
	// DefaultMaxRowsPerSecond caps the rows (runs, steps and tool calls)
	// deleted per second by one job.
	DefaultMaxRowsPerSecond = 20000
	// minPause separates two batches even under the cap, so that waiting
	// writers get the locks and the I/O first.
	minPause = 20 * time.Millisecond
	// dutyPause is the pause after a batch as a share of the batch's own
	// duration: a job deletes at most half of the time, and backs off by
	// itself when the database is busy and its batches slow down.
	dutyPause = 1.0
)

// retentionLock names the lock that lets one instance at a time run
// retention.
const retentionLock = "retention"

// Pace bounds the rate of a job's deletions.
type Pace struct {
	// BatchRuns is how many runs one transaction deletes (default
	// DefaultBatchRuns).
	BatchRuns int
	// MaxRowsPerSecond caps the rows deleted per second (default
	// DefaultMaxRowsPerSecond; negative: no cap beyond the pause).
	MaxRowsPerSecond int
}

func (p Pace) batch() int {
	if p.BatchRuns > 0 {
		return p.BatchRuns
	}
	return DefaultBatchRuns
}

// wait sleeps after a batch that deleted rows in took: as long as the
// batch took (at most half of the time deleting), long enough to keep
// under the cap, and at least minPause; it returns early with ctx.
func (p Pace) wait(ctx context.Context, rows int64, took time.Duration) {
	limit := p.MaxRowsPerSecond
	if limit == 0 {
		limit = DefaultMaxRowsPerSecond
	}
	d := max(minPause, time.Duration(dutyPause*float64(took)))
	if limit > 0 {
		if need := time.Duration(float64(rows)/float64(limit)*float64(time.Second)) - took; need > d {
			d = need
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// RetentionConfig is the retention policy and its schedule.
type RetentionConfig struct {
	// Days keeps runs this many days; 0 keeps them forever.
	Days int
	// TenantOverrides replace Days for some tenants (0: forever).
	TenantOverrides map[uuid.UUID]int
	// Interval separates two passes of Run.
	Interval time.Duration
	// FirstPass is the delay of Run's first pass (default: 10 to 40
	// seconds after start, so that several instances started together do
	// not all try at once).
	FirstPass time.Duration
	// Pace bounds the deletions.
	Pace Pace
}

// daysOf is the retention of tenantID in days; 0 keeps forever.
func (c RetentionConfig) daysOf(tenantID uuid.UUID) int {
	if d, ok := c.TenantOverrides[tenantID]; ok {
		return d
	}
	return c.Days
}

// shortest is the shortest retention in days of any tenant, 0 when every
// tenant keeps its runs forever.
func (c RetentionConfig) shortest() int {
	min := c.Days
	for _, d := range c.TenantOverrides {
		if d > 0 && (min == 0 || d < min) {
			min = d
		}
	}
	return min
}

// Retention deletes runs past their tenant's retention.
type Retention struct {
	st  *store.Store
	cfg RetentionConfig
	log *slog.Logger
	m   *Metrics
	now func() time.Time
}

// NewRetention returns the retention job over st; m may be nil.
func NewRetention(st *store.Store, cfg RetentionConfig, log *slog.Logger, m *Metrics) *Retention {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Retention{st: st, cfg: cfg, log: log, m: m, now: func() time.Time { return time.Now().UTC() }}
}

// TenantReport is what one pass did, or would do, for one tenant.
type TenantReport struct {
	TenantID uuid.UUID
	Days     int
	Cutoff   time.Time
	Removed  store.Removed
}

// Report is what one pass did.
type Report struct {
	// Skipped is set when another instance holds the retention lock:
	// the pass did nothing.
	Skipped bool
	// DryRun is set when nothing was deleted, only counted.
	DryRun bool
	// Tenants are the tenants that had expired runs.
	Tenants []TenantReport
	// Removed totals Tenants.
	Removed store.Removed
}

// Pass runs retention once: for every tenant with runs created before its
// cut-off (now minus its retention), it deletes them in batches, oldest
// first, with their steps and tool calls, at the pace of the
// configuration; with dryRun it only counts them. Only one instance runs a
// pass at a time; the others skip it. Usage rows stay with runId null,
// audit rows and rollups stay, and run_removals records what went.
func (r *Retention) Pass(ctx context.Context, dryRun bool) (Report, error) {
	rep := Report{DryRun: dryRun}
	shortest := r.cfg.shortest()
	if shortest == 0 {
		r.m.setLag(0)
		return rep, nil
	}
	lock, err := r.st.TryLock(ctx, retentionLock)
	if err != nil {
		return rep, err
	}
	if lock == nil {
		rep.Skipped = true
		return rep, nil
	}
	defer lock.Release()
	now := r.now()
	expired, err := r.expired(ctx, now, shortest)
	if err != nil {
		return rep, err
	}
	for _, t := range expired {
		tr := TenantReport{TenantID: t.TenantID, Days: r.cfg.daysOf(t.TenantID), Cutoff: t.cutoff}
		tctx := store.ForTenant(ctx, t.TenantID)
		if dryRun {
			if tr.Removed, err = r.st.Retention.Count(tctx, t.cutoff); err != nil {
				return rep, err
			}
		} else if err := r.deleteTenant(ctx, lock, tctx, t.cutoff, &tr.Removed); err != nil {
			rep.Tenants = append(rep.Tenants, tr)
			rep.Removed.Add(tr.Removed)
			return rep, err
		}
		rep.Tenants = append(rep.Tenants, tr)
		rep.Removed.Add(tr.Removed)
	}
	if !dryRun {
		if _, err := r.expired(ctx, r.now(), shortest); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// expiredTenant is a tenant with runs before its cut-off.
type expiredTenant struct {
	store.TenantRuns
	cutoff time.Time
}

// expired returns the tenants whose oldest run is older than their
// retention at now, and sets the lag gauge from them.
func (r *Retention) expired(ctx context.Context, now time.Time, shortest int) ([]expiredTenant, error) {
	tenants, err := r.st.Retention.Tenants(tenant.SystemContext(ctx), now.Add(-days(shortest)))
	if err != nil {
		return nil, err
	}
	var out []expiredTenant
	var lag time.Duration
	for _, t := range tenants {
		d := r.cfg.daysOf(t.TenantID)
		if d == 0 {
			continue
		}
		cutoff := now.Add(-days(d))
		if !t.Oldest.Before(cutoff) {
			continue
		}
		out = append(out, expiredTenant{TenantRuns: t, cutoff: cutoff})
		lag = max(lag, cutoff.Sub(t.Oldest))
	}
	r.m.setLag(lag)
	return out, nil
}

// deleteTenant deletes the runs of the tenant of tctx created before
// cutoff, batch by batch, adding what it removed to total.
func (r *Retention) deleteTenant(ctx context.Context, lock *store.Lock, tctx context.Context, cutoff time.Time, total *store.Removed) error {
	for ctx.Err() == nil {
		if err := lock.Check(ctx); err != nil {
			return err
		}
		start := time.Now()
		removed, err := r.st.Retention.DeleteBefore(tctx, cutoff, r.cfg.Pace.batch())
		if err != nil {
			return err
		}
		total.Add(removed)
		r.m.deleted(store.ReasonRetention, removed)
		if removed.Runs == 0 {
			return nil
		}
		r.cfg.Pace.wait(ctx, removed.Rows(), time.Since(start))
	}
	return ctx.Err()
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// Run runs a pass shortly after start (within a minute) and then every
// interval until ctx ends. A failed pass is logged; the next one resumes.
func (r *Retention) Run(ctx context.Context) {
	if r.cfg.shortest() == 0 {
		r.log.Info("retention off: runs are kept forever (RETENTION_DAYS=0)")
		return
	}
	first := r.cfg.FirstPass
	if first == 0 {
		first = 10*time.Second + rand.N(30*time.Second)
	}
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		rep, err := r.Pass(ctx, false)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Error("retention pass failed", "err", err, "runs", rep.Removed.Runs)
		case rep.Skipped:
			r.log.Debug("retention pass skipped: another instance holds the lock")
		case err == nil:
			r.log.Info("retention pass", "tenants", len(rep.Tenants), "runs", rep.Removed.Runs, "steps", rep.Removed.Steps,
				"tool_calls", rep.Removed.ToolCalls, "usage_unlinked", rep.Removed.UsageUnlinked,
				"duration_ms", time.Since(start).Milliseconds())
		}
		t.Reset(r.cfg.Interval)
	}
}

// Metrics are the series of the lifecycle jobs:
//
//	agentstore_lifecycle_deleted_rows_total{reason,table}  rows deleted by retention or erasure
//	agentstore_retention_lag_seconds                       how long the oldest expired run is past its cut-off
type Metrics struct {
	rows *prometheus.CounterVec
	lag  prometheus.Gauge
}

// Tables whose deleted rows are counted.
var countedTables = []string{"agent_runs", "agent_steps", "tool_calls"}

// NewMetrics registers the lifecycle series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentstore_lifecycle_deleted_rows_total",
			Help: "Rows deleted by retention or by erasures, by reason and table.",
		}, []string{"reason", "table"}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentstore_retention_lag_seconds",
			Help: "How long the oldest run past its retention has been due for deletion, at the last check of this instance (0: none).",
		}),
	}
	reg.MustRegister(m.rows, m.lag)
	for _, reason := range []string{store.ReasonRetention, store.ReasonErasure} {
		for _, table := range countedTables {
			m.rows.WithLabelValues(reason, table)
		}
	}
	return m
}

func (m *Metrics) deleted(reason string, r store.Removed) {
	if m == nil {
		return
	}
	m.rows.WithLabelValues(reason, "agent_runs").Add(float64(r.Runs))
	m.rows.WithLabelValues(reason, "agent_steps").Add(float64(r.Steps))
	m.rows.WithLabelValues(reason, "tool_calls").Add(float64(r.ToolCalls))
}

func (m *Metrics) setLag(d time.Duration) {
	if m != nil {
		m.lag.Set(d.Seconds())
	}
}
