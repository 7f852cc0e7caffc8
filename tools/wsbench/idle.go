package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentstore/agentstore/tools/benchresult"
	"github.com/agentstore/agentstore/tools/loopback"
)

// Server metrics the idle mode reads, when it can.
const (
	metricGoroutines = "go_goroutines"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricOpenFDs    = "process_open_fds"
	metricWSConns    = "agentstore_ws_connections"
)

// RunIdle runs the idle-connection mode (see the package comment);
// progress goes to logw.
func RunIdle(ctx context.Context, cfg Config, logw io.Writer) (*benchresult.WSIdle, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := wsURL(cfg.WS, cfg.Token)
	metricsURL := cfg.Metrics
	if metricsURL == "" {
		metricsURL, _ = apiURL(cfg.WS, "/metrics")
	}
	limit, err := raiseNoFile(uint64(cfg.Idle + 64))
	if err != nil {
		return nil, err
	}
	res := &benchresult.WSIdle{
		Mode: "idle", Label: cfg.Label, WS: cfg.WS, Started: time.Now().UTC(), Connections: cfg.Idle,
		Subscribed: cfg.IdleSubscribe, ServerPID: cfg.ServerPIDs[0], SettleS: cfg.Settle.Seconds(), HoldS: cfg.Hold.Seconds(),
		NoFileLimit: limit,
	}

	// One fresh connection per scrape, closed after it, so that the
	// scrapes leave no idle keep-alive connection in the server.
	mc := loopback.HTTPClient(1, cfg.Timeout)
	mc.Transport.(*http.Transport).DisableKeepAlives = true
	snapshot := func() *benchresult.ServerSnapshot {
		if metricsURL == "-" || res.MetricsUnavailable != "" {
			return nil
		}
		m, err := loopback.Scrape(ctx, mc, metricsURL, metricGoroutines, metricHeapInuse, metricOpenFDs, metricWSConns)
		if err != nil {
			res.MetricsUnavailable = err.Error()
			return nil
		}
		return &benchresult.ServerSnapshot{Goroutines: m[metricGoroutines], HeapInuseBytes: m[metricHeapInuse],
			OpenFDs: m[metricOpenFDs], WSConnections: m[metricWSConns]}
	}

	var before []int64
	for i := range 3 {
		if i > 0 {
			sleep(ctx, 300*time.Millisecond)
		}
		v, err := loopback.ReadRSS(res.ServerPID)
		if err != nil {
			return nil, fmt.Errorf("server process %d: %w", res.ServerPID, err)
		}
		before = append(before, v)
	}
	res.RSSBeforeKiB = median(before)
	res.Before = snapshot()

	fmt.Fprintf(logw, "wsbench: server %d at %d KiB; opening %d idle connections to %s\n", res.ServerPID, res.RSSBeforeKiB, cfg.Idle, cfg.WS)
	t0 := time.Now()
	channel := ""
	if cfg.IdleSubscribe {
		channel = channelRuns
	}
	conns, err := openConns(ctx, u, channel, cfg.Idle, cfg.ConnectParallel, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	res.ConnectS = time.Since(t0).Seconds()

	// Each connection is read, so that the server's pings are answered
	// and a drop is noticed.
	var (
		closing atomic.Bool
		drops   samples
		readers sync.WaitGroup
	)
	for _, c := range conns {
		readers.Go(func() {
			for {
				if _, _, err := c.NextReader(); err != nil {
					if !closing.Load() {
						drops.add(closeText(err))
					}
					return
				}
			}
		})
	}
	readersDone := make(chan struct{})
	go func() { readers.Wait(); close(readersDone) }()

	fmt.Fprintf(logw, "wsbench: %d connections open in %.1fs; holding them for %s + %s\n", cfg.Idle, res.ConnectS, cfg.Settle, cfg.Hold)
	sleep(ctx, cfg.Settle)
	holdEnd := time.Now().Add(cfg.Hold)
	mid := time.Now().Add(cfg.Hold / 2)
	for ctx.Err() == nil {
		v, err := loopback.ReadRSS(res.ServerPID)
		if err != nil {
			closing.Store(true)
			closeAll(conns, readersDone, time.Second)
			return nil, fmt.Errorf("server process %d: %w", res.ServerPID, err)
		}
		res.RSSSamplesKiB = append(res.RSSSamplesKiB, v)
		if res.Held == nil && !time.Now().Before(mid) {
			res.Held = snapshot()
		}
		if !time.Now().Add(time.Second).Before(holdEnd) {
			break
		}
		sleep(ctx, time.Second)
	}
	if res.Held == nil {
		res.Held = snapshot()
	}
	res.Disconnected = int(drops.n.Load())
	res.DisconnectSamples = drops.get()

	closing.Store(true)
	closeAll(conns, readersDone, 3*time.Second)
	<-readersDone
	sleep(ctx, 2*time.Second)
	if v, err := loopback.ReadRSS(res.ServerPID); err == nil {
		res.RSSAfterCloseKiB = v
	}

	if len(res.RSSSamplesKiB) == 0 {
		return nil, ctx.Err()
	}
	res.RSSHeldKiB = median(res.RSSSamplesKiB)
	res.RSSMaxKiB = slices.Max(res.RSSSamplesKiB)
	res.KiBPerConn = float64(res.RSSHeldKiB-res.RSSBeforeKiB) / float64(cfg.Idle)
	if res.Before != nil && res.Held != nil {
		n := float64(cfg.Idle)
		res.GoroutinesPerConn = (res.Held.Goroutines - res.Before.Goroutines) / n
		res.HeapKiBPerConn = (res.Held.HeapInuseBytes - res.Before.HeapInuseBytes) / 1024 / n
	}
	return res, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// median is the median of xs (the lower middle of an even count).
func median(xs []int64) int64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// writeIdleText prints r for people.
func writeIdleText(w io.Writer, r *benchresult.WSIdle) {
	label := ""
	if r.Label != "" {
		label = r.Label + ": "
	}
	sub := "unsubscribed"
	if r.Subscribed {
		sub = "each subscribed to runs"
	}
	fmt.Fprintf(w, "%s%d idle connections to %s (%s), opened in %.2fs, held %.0fs after %.0fs\n",
		label, r.Connections, r.WS, sub, r.ConnectS, r.HoldS, r.SettleS)
	fmt.Fprintf(w, "server RSS   %d KiB before, %d KiB held (median; max %d), %d KiB after closing\n",
		r.RSSBeforeKiB, r.RSSHeldKiB, r.RSSMaxKiB, r.RSSAfterCloseKiB)
	fmt.Fprintf(w, "per conn     %.1f KiB RSS", r.KiBPerConn)
	if r.Before != nil && r.Held != nil {
		fmt.Fprintf(w, ", %.1f KiB Go heap in use, %.2f goroutines (server reports %.0f WebSocket connections)",
			r.HeapKiBPerConn, r.GoroutinesPerConn, r.Held.WSConnections)
	}
	fmt.Fprintln(w)
	if r.MetricsUnavailable != "" {
		fmt.Fprintf(w, "metrics      unavailable: %s\n", r.MetricsUnavailable)
	}
	fmt.Fprintf(w, "disconnected %d\n", r.Disconnected)
	for _, s := range r.DisconnectSamples {
		fmt.Fprintf(w, "disconnect   %s\n", s)
	}
}
