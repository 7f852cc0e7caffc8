package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentstore/agentstore/tools/loopback"
)

// Server metrics soak reads from /metrics.
const (
	metricGoroutines = "go_goroutines"
	metricOpenFDs    = "process_open_fds"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricWSConns    = "agentstore_ws_connections"
)

// Sample is one reading of the server's resources.
type Sample struct {
	// T is the time since the start, in seconds.
	T            float64 `json:"t_s"`
	RSSKiB       float64 `json:"rss_kib"`
	Goroutines   float64 `json:"goroutines"`
	OpenFDs      float64 `json:"open_fds"`
	HeapInuseKiB float64 `json:"heap_inuse_kib"`
	WSConns      float64 `json:"ws_connections"`
	// DBConns counts the database's connections in pg_stat_activity, this
	// tool's own excluded; -1 when not sampled.
	DBConns float64 `json:"db_connections"`
	// Requests and Sessions are the REST requests and WebSocket sessions
	// so far.
	Requests int64 `json:"requests"`
	Sessions int64 `json:"ws_sessions"`
}

// Check is the trend verdict on one metric.
type Check struct {
	Metric string `json:"metric"`
	// Samples is the number of samples after the warm-up; FirstMean and
	// LastMean the means of their first and last thirds.
	Samples   int     `json:"samples"`
	FirstMean float64 `json:"first_mean"`
	LastMean  float64 `json:"last_mean"`
	// GrowthPct is LastMean over FirstMean, minus one, in percent.
	GrowthPct float64 `json:"growth_pct"`
	// Limit is FirstMean × (1 + MaxGrowth) + the metric's slack.
	Limit float64 `json:"limit"`
	Pass  bool    `json:"pass"`
}

// OpCount counts one REST operation.
type OpCount struct {
	Requests int64 `json:"requests"`
	Failures int64 `json:"failures"`
}

// LoadSummary is what the load did.
type LoadSummary struct {
	Requests  int64              `json:"requests"`
	Failures  int64              `json:"failures"`
	Conflicts int64              `json:"conflicts"`
	Skipped   int64              `json:"skipped_ticks"`
	ByOp      map[string]OpCount `json:"by_op"`
	// WSSessions counts WebSocket connections; WSFailures those that
	// failed to connect or subscribe, were dropped by the server or got
	// an error frame.
	WSSessions    int64    `json:"ws_sessions"`
	WSFailures    int64    `json:"ws_failures"`
	WSEvents      int64    `json:"ws_events"`
	WSPublishes   int64    `json:"ws_publishes"`
	WSErrorFrames int64    `json:"ws_error_frames"`
	FailSamples   []string `json:"failure_samples,omitempty"`
}

// Report is the outcome of a soak run.
type Report struct {
	Started     time.Time   `json:"started"`
	DurationS   float64     `json:"duration_s"`
	WarmupS     float64     `json:"warmup_s"`
	SampleS     float64     `json:"sample_s"`
	Rate        float64     `json:"rate"`
	WSClients   int         `json:"ws_clients"`
	PublishRate float64     `json:"publish_rate"`
	MaxGrowth   float64     `json:"max_growth"`
	Samples     []Sample    `json:"samples"`
	Checks      []Check     `json:"checks"`
	Load        LoadSummary `json:"load"`
	// Pass is the verdict; Reason says why not.
	Pass   bool   `json:"pass"`
	Reason string `json:"reason,omitempty"`
}

// sampler reads the server's resources.
type sampler struct {
	pid     int
	metrics string
	client  *http.Client
	dbURL   string
	db      *pgx.Conn
}

// read takes one sample; the database connection is opened on first use
// and reopened once if it broke.
func (s *sampler) read(ctx context.Context) (Sample, error) {
	var smp Sample
	rss, err := loopback.ReadRSS(s.pid)
	if err != nil {
		return smp, fmt.Errorf("server process %d: %w", s.pid, err)
	}
	smp.RSSKiB = float64(rss)
	m, err := loopback.Scrape(ctx, s.client, s.metrics, metricGoroutines, metricOpenFDs, metricHeapInuse, metricWSConns)
	if err != nil {
		return smp, err
	}
	for _, name := range []string{metricGoroutines, metricOpenFDs} {
		if _, ok := m[name]; !ok {
			return smp, fmt.Errorf("%s has no %s", s.metrics, name)
		}
	}
	smp.Goroutines, smp.OpenFDs = m[metricGoroutines], m[metricOpenFDs]
	smp.HeapInuseKiB, smp.WSConns = m[metricHeapInuse]/1024, m[metricWSConns]
	smp.DBConns = -1
	if s.dbURL != "" {
		n, err := s.dbConns(ctx)
		if err != nil {
			return smp, err
		}
		smp.DBConns = float64(n)
	}
	return smp, nil
}

// dbConns counts the client connections to the database, this one
// excluded (autovacuum workers, which also show the database, are not
// clients).
func (s *sampler) dbConns(ctx context.Context) (int64, error) {
	const q = `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`
	for attempt := 0; ; attempt++ {
		if s.db == nil {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			db, err := pgx.Connect(cctx, s.dbURL)
			cancel()
			if err != nil {
				return 0, fmt.Errorf("database: %w", err)
			}
			s.db = db
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var n int64
		err := s.db.QueryRow(qctx, q).Scan(&n)
		cancel()
		if err == nil {
			return n, nil
		}
		s.close()
		if attempt > 0 {
			return 0, fmt.Errorf("pg_stat_activity: %w", err)
		}
	}
}

func (s *sampler) close() {
	if s.db != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.db.Close(ctx)
		cancel()
		s.db = nil
	}
}

// Run runs the load for cfg.Duration, sampling every cfg.Sample, and
// judges the samples. Progress goes to logw. The report is returned even
// with an error, when there is something to show.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base, _ := baseURL(cfg.URL)
	wsu := *base
	wsu.Scheme = map[string]string{"http": "ws", "https": "wss"}[base.Scheme]
	wsu.Path += "/v1/ws"
	wsu.RawQuery = url.Values{"access_token": {cfg.Token}}.Encode()
	metrics := base.String() + "/metrics"

	mc := loopback.HTTPClient(1, cfg.Timeout)
	mc.Transport.(*http.Transport).DisableKeepAlives = true // no idle connection of ours in the samples
	smp := &sampler{pid: cfg.ServerPID, metrics: metrics, client: mc, dbURL: cfg.DBURL}
	defer smp.close()
	if _, err := smp.read(ctx); err != nil { // fail before any load
		return nil, err
	}

	c := newCounters()
	rest := &restLoad{cfg: cfg, base: base.String(), client: loopback.HTTPClient(cfg.Workers, cfg.Timeout), c: c}
	defer rest.client.CloseIdleConnections()
	ws := &wsLoad{cfg: cfg, url: wsu.String(), dialer: loopback.WSDialer(cfg.Timeout), runs: rest.someRun, c: c}

	rep := &Report{
		Started: time.Now().UTC(), DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(), SampleS: cfg.Sample.Seconds(),
		Rate: cfg.Rate, WSClients: cfg.WSClients, PublishRate: cfg.PublishRate, MaxGrowth: cfg.MaxGrowth,
	}
	fmt.Fprintf(logw, "soak: %s of %g REST req/s and %d WebSocket clients (%g publishes/s) on %s; sampling every %s, warm-up %s\n",
		cfg.Duration, cfg.Rate, cfg.WSClients, cfg.PublishRate, base, cfg.Sample, cfg.Warmup)

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { rest.run(ctx, loadCtx) })
	wg.Go(func() { ws.run(loadCtx) })
	stop := func() { stopLoad(); wg.Wait() }

	start := time.Now()
	var runErr error
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * cfg.Sample)
		if at.After(start.Add(cfg.Duration)) {
			break
		}
		sleep(ctx, time.Until(at))
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
		s, err := smp.read(ctx)
		if err != nil {
			runErr = err
			break
		}
		s.T = time.Since(start).Seconds()
		s.Requests, s.Sessions = c.requests.Load(), c.sessions.Load()
		rep.Samples = append(rep.Samples, s)
		fmt.Fprintf(logw, "soak: %6.0fs  rss %7.1f MiB  goroutines %5.0f  fds %4.0f  db %3.0f  ws %4.0f  requests %d\n",
			s.T, s.RSSKiB/1024, s.Goroutines, s.OpenFDs, s.DBConns, s.WSConns, s.Requests)
	}
	stop()

	rep.Load = summarize(c)
	if runErr != nil {
		rep.Reason = runErr.Error()
		return rep, runErr
	}
	rep.Checks = judge(rep.Samples, cfg)
	rep.Pass = true
	var why []string
	for _, ch := range rep.Checks {
		if !ch.Pass {
			why = append(why, fmt.Sprintf("%s grew %+.1f%% (last-third mean %.1f > limit %.1f)", ch.Metric, ch.GrowthPct, ch.LastMean, ch.Limit))
		}
	}
	l := rep.Load
	if l.Requests == 0 {
		why = append(why, "no REST request was sent")
	} else if r := float64(l.Failures) / float64(l.Requests); r > cfg.MaxFailures {
		why = append(why, fmt.Sprintf("%d of %d REST requests failed", l.Failures, l.Requests))
	}
	if l.WSSessions > 0 {
		if r := float64(l.WSFailures) / float64(l.WSSessions); r > cfg.MaxFailures {
			why = append(why, fmt.Sprintf("%d of %d WebSocket sessions failed", l.WSFailures, l.WSSessions))
		}
	}
	if len(why) > 0 {
		rep.Pass, rep.Reason = false, strings.Join(why, "; ")
	}
	return rep, nil
}

// summarize copies the counters.
func summarize(c *counters) LoadSummary {
	l := LoadSummary{
		Requests: c.requests.Load(), Failures: c.failures.Load(), Conflicts: c.conflicts.Load(), Skipped: c.skipped.Load(),
		ByOp:       map[string]OpCount{},
		WSSessions: c.sessions.Load(), WSFailures: c.wsFailures.Load(), WSEvents: c.events.Load(),
		WSPublishes: c.publishes.Load(), WSErrorFrames: c.errFrames.Load(),
	}
	for op, oc := range c.byOp {
		l.ByOp[op] = OpCount{Requests: oc.n.Load(), Failures: oc.failed.Load()}
	}
	c.mu.Lock()
	l.FailSamples = append([]string(nil), c.samples...)
	c.mu.Unlock()
	return l
}

// judge compares, for each checked metric, the mean of the last third of
// the samples after the warm-up with that of the first third.
func judge(samples []Sample, cfg Config) []Check {
	var post []Sample
	for _, s := range samples {
		if s.T >= cfg.Warmup.Seconds() {
			post = append(post, s)
		}
	}
	metrics := []struct {
		name  string
		slack float64
		get   func(Sample) float64
	}{
		{"RSS KiB", cfg.SlackRSSKiB, func(s Sample) float64 { return s.RSSKiB }},
		{"goroutines", cfg.SlackGoroutines, func(s Sample) float64 { return s.Goroutines }},
		{"open fds", cfg.SlackFDs, func(s Sample) float64 { return s.OpenFDs }},
	}
	if cfg.DBURL != "" {
		metrics = append(metrics, struct {
			name  string
			slack float64
			get   func(Sample) float64
		}{"db connections", cfg.SlackDB, func(s Sample) float64 { return s.DBConns }})
	}
	third := len(post) / 3
	var checks []Check
	for _, m := range metrics {
		ch := Check{Metric: m.name, Samples: len(post), Pass: true}
		if third > 0 {
			ch.FirstMean = mean(post[:third], m.get)
			ch.LastMean = mean(post[len(post)-third:], m.get)
			ch.Limit = ch.FirstMean*(1+cfg.MaxGrowth) + m.slack
			if ch.FirstMean > 0 {
				ch.GrowthPct = 100 * (ch.LastMean/ch.FirstMean - 1)
			}
			ch.Pass = ch.LastMean <= ch.Limit
		} else {
			ch.Pass = false // too few samples to judge
		}
		checks = append(checks, ch)
	}
	return checks
}

func mean(s []Sample, get func(Sample) float64) float64 {
	var sum float64
	for _, x := range s {
		sum += get(x)
	}
	return sum / float64(len(s))
}

// WriteText prints the samples, the load and the verdicts as tables.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nsoak: %.0fs, %g REST req/s, %d WebSocket clients, %g publishes/s; samples every %.0fs, warm-up %.0fs\n\n",
		r.DurationS, r.Rate, r.WSClients, r.PublishRate, r.SampleS, r.WarmupS)
	fmt.Fprintf(w, "%8s %10s %11s %9s %9s %9s %8s %10s %12s\n", "t (s)", "RSS MiB", "goroutines", "open fds", "db conns", "ws conns", "heap MiB", "requests", "ws sessions")
	for _, s := range r.Samples {
		mark := ""
		if s.T < r.WarmupS {
			mark = "  (warm-up)"
		}
		db := "-"
		if s.DBConns >= 0 {
			db = fmt.Sprintf("%.0f", s.DBConns)
		}
		fmt.Fprintf(w, "%8.0f %10.1f %11.0f %9.0f %9s %9.0f %8.1f %10d %12d%s\n",
			s.T, s.RSSKiB/1024, s.Goroutines, s.OpenFDs, db, s.WSConns, s.HeapInuseKiB/1024, s.Requests, s.Sessions, mark)
	}
	l := r.Load
	fmt.Fprintf(w, "\nREST: %d requests, %d failed, %d expected conflicts (a race with a patch), %d ticks skipped\n",
		l.Requests, l.Failures, l.Conflicts, l.Skipped)
	ops := make([]string, 0, len(l.ByOp))
	for op := range l.ByOp {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	for _, op := range ops {
		fmt.Fprintf(w, "  %-28s %8d requests %6d failed\n", op, l.ByOp[op].Requests, l.ByOp[op].Failures)
	}
	fmt.Fprintf(w, "WebSocket: %d sessions, %d failed, %d events received, %d published, %d error frames\n",
		l.WSSessions, l.WSFailures, l.WSEvents, l.WSPublishes, l.WSErrorFrames)
	for _, s := range l.FailSamples {
		fmt.Fprintf(w, "  failure: %s\n", s)
	}
	if len(r.Checks) > 0 {
		fmt.Fprintf(w, "\ntrend (mean of the last third vs the first third of the %d samples after the warm-up; limit = first × %.2f + slack)\n",
			r.Checks[0].Samples, 1+r.MaxGrowth)
		fmt.Fprintf(w, "%-16s %12s %12s %9s %12s  %s\n", "metric", "first third", "last third", "growth", "limit", "verdict")
		for _, c := range r.Checks {
			v := "ok"
			if !c.Pass {
				v = "TREND"
			}
			fmt.Fprintf(w, "%-16s %12.1f %12.1f %+8.1f%% %12.1f  %s\n", c.Metric, c.FirstMean, c.LastMean, c.GrowthPct, c.Limit, v)
		}
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL: " + r.Reason
	}
	fmt.Fprintf(w, "\nverdict: %s\n", verdict)
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
