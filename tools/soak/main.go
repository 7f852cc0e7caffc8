// Command soak runs a long, moderate, mixed load against one agentstore
// server on this machine and checks that the server's resources do not
// grow with time. It is `make soak` (scripts/soak.sh), not part of
// `make test`.
//
//	soak -url http://127.0.0.1:8080 -token "$TOKEN" -server-pid "$PID" \
//	    -db-url "$DATABASE_URL" -d 10m -sample 10s
//
// For -d it drives, at a steady rate:
//
//   - REST (-rate requests per second, open loop, -workers at a time):
//     runs created with steps, steps and tool calls appended, runs
//     patched to a terminal status, runs listed (a page, sometimes the
//     next), fetched with their steps, and run stats;
//   - WebSocket (-ws-clients connections at a time): each connects,
//     subscribes to "runs" and often to one run's channel, publishes
//     client events there (-publish-rate in all), reads what comes, and
//     after a random hold disconnects, cleanly or by dropping the TCP
//     connection, then connects again.
//
// Every -sample it records the server's resident memory (VmRSS of
// /proc/PID/status), goroutines (go_goroutines) and open files
// (process_open_fds) from its /metrics, and the connections of its
// database (pg_stat_activity, this tool's own excluded). After the
// warm-up (-warmup; by default a sixth of -d, at least one sample
// interval) it compares, for each, the mean of the last third of the
// samples with that of the first third: more than -max-growth above it,
// plus the metric's absolute slack, is a trend. It prints the samples
// and the verdicts as a table, and with -json-out writes them as JSON.
//
// It is bounded: -d at most 2h, and at most -max-requests REST requests.
// It only ever connects to this machine (every URL's host, and the
// database's, must be 127.0.0.1, localhost or [::1]), and closes every
// connection it opened before it exits.
//
// The exit status is 1 on a trend, when more than -max-failures of the
// requests or WebSocket sessions failed, or when the server could not be
// sampled; 2 on bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Bounds on the flags.
const (
	maxDuration  = 2 * time.Hour
	maxRate      = 1000
	maxWorkers   = 256
	maxWSClients = 2000
)

// Config is one soak run.
type Config struct {
	// URL is the server's base URL; Token a bearer token of one tenant.
	URL, Token string
	// ServerPID is the server's process id.
	ServerPID int
	// DBURL is the server's database (for pg_stat_activity); "" skips
	// that metric.
	DBURL string

	// Duration is the whole run, Warmup its first part, left out of the
	// trend check; Sample the sampling interval.
	Duration, Warmup, Sample time.Duration
	// Rate is REST requests per second, Workers the requests in flight.
	Rate    float64
	Workers int
	// MaxRequests bounds the REST requests (0: Rate × Duration + 10%).
	MaxRequests int64
	// WSClients is the WebSocket connections held at a time; each is held
	// between WSHoldMin and WSHoldMax. PublishRate is the client events
	// published per second, over all connections.
	WSClients            int
	WSHoldMin, WSHoldMax time.Duration
	PublishRate          float64

	// MaxGrowth is the relative growth of a metric's mean, from the first
	// to the last third of the samples, that makes a trend, on top of
	// the metric's absolute slack.
	MaxGrowth float64
	// Slacks are the absolute allowances, by metric.
	SlackRSSKiB, SlackGoroutines, SlackFDs, SlackDB float64
	// MaxFailures is the fraction of REST requests, and of WebSocket
	// sessions, that may fail.
	MaxFailures float64
	// Timeout bounds one request or handshake.
	Timeout time.Duration
	// JSONOut, when set, receives the report as JSON.
	JSONOut string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main, testable: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "soak:", err)
		}
		return 2
	}
	rep, err := Run(ctx, cfg, stderr)
	if rep != nil {
		rep.WriteText(stdout)
		if cfg.JSONOut != "" {
			if werr := rep.WriteJSON(cfg.JSONOut); werr != nil {
				fmt.Fprintln(stderr, "soak:", werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "soak:", err)
		return 1
	}
	if !rep.Pass {
		fmt.Fprintln(stderr, "soak: FAIL:", rep.Reason)
		return 1
	}
	fmt.Fprintln(stderr, "soak: PASS")
	return 0
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.URL, "url", "", "base URL of the server, http://127.0.0.1:PORT (required)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token (required)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "process id of the server (required)")
	fs.StringVar(&cfg.DBURL, "db-url", "", "the server's database URL, for its connection count in pg_stat_activity (\"\": not sampled)")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Minute, fmt.Sprintf("duration of the run (at most %s)", maxDuration))
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "first part of the run left out of the trend check (0: a sixth of -d, at least -sample)")
	fs.DurationVar(&cfg.Sample, "sample", 10*time.Second, "sampling interval")
	fs.Float64Var(&cfg.Rate, "rate", 20, fmt.Sprintf("REST requests per second (at most %d)", maxRate))
	fs.IntVar(&cfg.Workers, "workers", 8, fmt.Sprintf("REST requests in flight (1..%d)", maxWorkers))
	fs.Int64Var(&cfg.MaxRequests, "max-requests", 0, "stop the REST load after this many requests (0: -rate × -d + 10%)")
	fs.IntVar(&cfg.WSClients, "ws-clients", 20, fmt.Sprintf("WebSocket connections held at a time (0..%d)", maxWSClients))
	fs.DurationVar(&cfg.WSHoldMin, "ws-hold-min", 2*time.Second, "shortest life of a WebSocket connection")
	fs.DurationVar(&cfg.WSHoldMax, "ws-hold-max", 20*time.Second, "longest life of a WebSocket connection")
	fs.Float64Var(&cfg.PublishRate, "publish-rate", 5, "client events published per second over all WebSocket connections")
	fs.Float64Var(&cfg.MaxGrowth, "max-growth", 0.20, "relative growth of a metric's mean (first to last third) that makes a trend")
	fs.Float64Var(&cfg.SlackRSSKiB, "slack-rss-kib", 8192, "absolute allowance on resident memory, KiB")
	fs.Float64Var(&cfg.SlackGoroutines, "slack-goroutines", -1, "absolute allowance on goroutines (-1: 20 + 2 × -ws-clients)")
	fs.Float64Var(&cfg.SlackFDs, "slack-fds", -1, "absolute allowance on open files (-1: 10 + -ws-clients)")
	fs.Float64Var(&cfg.SlackDB, "slack-db", 3, "absolute allowance on database connections")
	fs.Float64Var(&cfg.MaxFailures, "max-failures", 0.01, "fraction of REST requests, and of WebSocket sessions, that may fail")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "timeout of one request or handshake")
	fs.StringVar(&cfg.JSONOut, "json-out", "", "also write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.defaults()
	return cfg, cfg.validate()
}

// defaults fills the settings derived from others.
func (c *Config) defaults() {
	if c.Warmup == 0 {
		c.Warmup = max(c.Duration/6, c.Sample)
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = int64(c.Rate*c.Duration.Seconds()*1.1) + 1
	}
	if c.SlackGoroutines < 0 {
		c.SlackGoroutines = 20 + 2*float64(c.WSClients)
	}
	if c.SlackFDs < 0 {
		c.SlackFDs = 10 + float64(c.WSClients)
	}
}

func (c Config) validate() error {
	switch {
	case c.URL == "":
		return errors.New("-url is required")
	case c.Token == "":
		return errors.New("-token is required")
	case c.ServerPID <= 0:
		return errors.New("-server-pid is required")
	}
	if _, err := baseURL(c.URL); err != nil {
		return fmt.Errorf("-url %w", err)
	}
	if c.DBURL != "" {
		if err := checkDBURL(c.DBURL); err != nil {
			return fmt.Errorf("-db-url: %w", err)
		}
	}
	switch {
	case c.Duration <= 0 || c.Duration > maxDuration:
		return fmt.Errorf("-d must be positive and at most %s", maxDuration)
	case c.Sample < time.Second || c.Sample > c.Duration:
		return errors.New("-sample must be at least 1s and at most -d")
	case c.Warmup < 0 || c.Warmup >= c.Duration:
		return errors.New("-warmup must be shorter than -d")
	case (c.Duration-c.Warmup)/c.Sample < 3:
		return errors.New("fewer than 3 samples after the warm-up: lengthen -d or shorten -sample or -warmup")
	case !(c.Rate > 0) || c.Rate > maxRate:
		return fmt.Errorf("-rate must be positive and at most %d", maxRate)
	case c.Workers < 1 || c.Workers > maxWorkers:
		return fmt.Errorf("-workers must be between 1 and %d", maxWorkers)
	case c.MaxRequests < 1:
		return errors.New("-max-requests must be positive")
	case c.WSClients < 0 || c.WSClients > maxWSClients:
		return fmt.Errorf("-ws-clients must be between 0 and %d", maxWSClients)
	case c.WSHoldMin <= 0 || c.WSHoldMax < c.WSHoldMin:
		return errors.New("-ws-hold-min must be positive and at most -ws-hold-max")
	case c.PublishRate < 0 || c.PublishRate > maxRate:
		return fmt.Errorf("-publish-rate must be between 0 and %d", maxRate)
	case c.MaxGrowth < 0:
		return errors.New("-max-growth must not be negative")
	case c.SlackRSSKiB < 0 || c.SlackGoroutines < 0 || c.SlackFDs < 0 || c.SlackDB < 0:
		return errors.New("slacks must not be negative")
	case c.MaxFailures < 0 || c.MaxFailures > 1:
		return errors.New("-max-failures must be between 0 and 1")
	case c.Timeout <= 0 || c.Timeout > time.Minute:
		return errors.New("-timeout must be positive and at most 1m")
	}
	return nil
}
