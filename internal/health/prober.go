// Package health records checks of the service's own dependencies into
// system_health on an interval, and prunes old checks.
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Check is one dependency to probe, such as the database or Redis.
type Check struct {
	// Component is the name recorded, such as "db".
	Component string
	// Ping returns nil when the dependency answers.
	Ping func(ctx context.Context) error
}

// Prober records every check each Interval and deletes checks older than
// Retention (keeping each component's newest).
type Prober struct {
	Store     *store.Store
	Checks    []Check
	Interval  time.Duration
	Retention time.Duration
	Log       *slog.Logger
}

// degradedAfter is the latency from which a check that answered counts as
// degraded.
const degradedAfter = 500 * time.Millisecond

// Run probes until ctx is done. The caller owns the goroutine.
func (p *Prober) Run(ctx context.Context) {
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		p.ProbeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ProbeOnce records one round of checks and prunes old ones.
func (p *Prober) ProbeOnce(ctx context.Context) {
	sys := tenant.SystemContext(ctx)
	for _, c := range p.Checks {
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		err := c.Ping(pingCtx)
		cancel()
		latency := time.Since(start).Milliseconds()
		status, details := "up", json.RawMessage(nil)
		switch {
		case err != nil:
			status = "down"
			details, _ = json.Marshal(map[string]string{"error": err.Error()})
		case time.Since(start) > degradedAfter:
			status = "degraded"
		}
		if _, rerr := p.Store.Health.Record(sys, store.NewHealth{
			Component: c.Component, Status: status, LatencyMs: &latency, Details: details,
		}); rerr != nil && ctx.Err() == nil {
			p.Log.WarnContext(ctx, "recording health check failed", "component", c.Component, "err", rerr)
		}
	}
	if p.Retention > 0 {
		if _, err := p.Store.Health.Prune(sys, time.Now().Add(-p.Retention)); err != nil && ctx.Err() == nil {
			p.Log.WarnContext(ctx, "pruning health checks failed", "err", err)
		}
		if _, err := p.Store.PruneIdempotencyKeys(sys); err != nil && ctx.Err() == nil {
			p.Log.WarnContext(ctx, "pruning idempotency keys failed", "err", err)
		}
	}
}
