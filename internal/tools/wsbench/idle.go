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

	"github.com/agentstore/agentstore/internal/tools/loopback"
)

// Server metrics the idle mode reads, when it can.
const (
	metricGoroutines = "go_goroutines"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricOpenFDs    = "process_open_fds"
	metricWSConns    = "agentstore_ws_connections"
)

// ServerSnapshot is what the server's /metrics said at one moment.
type ServerSnapshot struct {
	Goroutines     float64 `json:"goroutines"`
	HeapInuseBytes float64 `json:"heap_inuse_bytes"`
	OpenFDs        float64 `json:"open_fds"`
	WSConnections  float64 `json:"ws_connections"`
}

// IdleResult is what the idle mode measured.
type IdleResult struct {
	Mode        string    `json:"mode"` // "idle"
	Label       string    `json:"label,omitempty"`
	WS          string    `json:"ws"`
	Started     time.Time `json:"started"`
	Connections int       `json:"connections"`
	// Subscribed says each connection subscribed to "runs".
	Subscribed bool    `json:"subscribed"`
	ServerPID  int     `json:"server_pid"`
	ConnectS   float64 `json:"connect_s"`
	SettleS    float64 `json:"settle_s"`
	HoldS      float64 `json:"hold_s"`
	// RSSBeforeKiB is the server's VmRSS before the connections (the
	// median of three readings); RSSSamplesKiB its readings during the
	// hold, RSSHeldKiB their median and RSSMaxKiB their maximum;
	// RSSAfterCloseKiB a reading two seconds after the connections closed.
	RSSBeforeKiB     int64   `json:"rss_before_kib"`
	RSSSamplesKiB    []int64 `json:"rss_samples_kib"`
	RSSHeldKiB       int64   `json:"rss_held_kib"`
	RSSMaxKiB        int64   `json:"rss_max_kib"`
	RSSAfterCloseKiB int64   `json:"rss_after_close_kib"`
	// KiBPerConn is (RSSHeldKiB - RSSBeforeKiB) / Connections.
	KiBPerConn float64 `json:"kib_per_conn"`
	// Before and Held are the server's metrics before the connections and
	// in the middle of the hold (absent without -metrics); the per-
	// connection figures divide their differences by Connections.
	Before             *ServerSnapshot `json:"before,omitempty"`
	Held               *ServerSnapshot `json:"held,omitempty"`
	GoroutinesPerConn  float64         `json:"goroutines_per_conn,omitempty"`
	HeapKiBPerConn     float64         `json:"heap_kib_per_conn,omitempty"`
	MetricsUnavailable string          `json:"metrics_unavailable,omitempty"`
	// Disconnected counts the connections that ended during the hold.
	Disconnected      int      `json:"disconnected"`
	DisconnectSamples []string `json:"disconnect_samples,omitempty"`
	NoFileLimit       uint64   `json:"nofile_limit"`
}

// RunIdle runs the idle-connection mode (see the package comment);
// progress goes to logw.
func RunIdle(ctx context.Context, cfg Config, logw io.Writer) (*IdleResult, error) {
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
	res := &IdleResult{
		Mode: "idle", Label: cfg.Label, WS: cfg.WS, Started: time.Now().UTC(), Connections: cfg.Idle,
		Subscribed: cfg.IdleSubscribe, ServerPID: cfg.ServerPIDs[0], SettleS: cfg.Settle.Seconds(), HoldS: cfg.Hold.Seconds(),
		NoFileLimit: limit,
	}

	// One fresh connection per scrape, closed after it, so that the
	// scrapes leave no idle keep-alive connection in the server.
	mc := loopback.HTTPClient(1, cfg.Timeout)
	mc.Transport.(*http.Transport).DisableKeepAlives = true
	snapshot := func() *ServerSnapshot {
		if metricsURL == "-" || res.MetricsUnavailable != "" {
			return nil
		}
		m, err := loopback.Scrape(ctx, mc, metricsURL, metricGoroutines, metricHeapInuse, metricOpenFDs, metricWSConns)
		if err != nil {
			res.MetricsUnavailable = err.Error()
			return nil
		}
		return &ServerSnapshot{Goroutines: m[metricGoroutines], HeapInuseBytes: m[metricHeapInuse],
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

// writeText prints r for people.
func (r *IdleResult) writeText(w io.Writer) {
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
