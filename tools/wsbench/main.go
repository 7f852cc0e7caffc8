// Command wsbench measures agentstore's WebSocket feed (GET /v1/ws) from a
// process of its own, on this machine. It is the WebSocket part of
// `make bench` (scripts/bench.sh) and has two modes.
//
// Fan-out latency (the default):
//
//	wsbench -ws http://127.0.0.1:8080 -api http://127.0.0.1:8081 -token "$TOKEN" \
//	    -subscribers 1000 -rate 100 -d 20s -warmup 2s [-source http|ws] -json
//
// opens -subscribers WebSocket connections to the -ws instance, all
// subscribed to one channel, then sends -rate events per second for
// -warmup and -d from the -api instance (-ws by default; another instance
// sharing Redis for the cross-instance case). Each event carries its send
// time ({"wsbench":"<id>","wsbenchSeq":N,"wsbenchT":"<unix ns>"}, taken
// just before the request or frame is written); every subscriber computes
// receive time - t for every such event it reads. It reports the
// p50/p90/p99/p99.9/max of that publish-to-receive latency over every
// (subscriber, event) pair of the measured window and the deliveries
// against the expected count (every subscriber should get every event
// sent). -source says where the events come from:
//
//   - http (the default): the subscribers subscribe to the tenant's "runs"
//     channel and each event is a run created through POST /v1/runs, the
//     send time in its metadata, received as run.created. The figure
//     includes the POST and its durable commit (the run's transaction
//     commits before the event is published): wsbench reports the POST
//     latency too.
//   - ws: wsbench first creates one run through POST /v1/runs on -api; the
//     subscribers subscribe to its channel "run:<id>", and one more
//     WebSocket connection to -api publishes the events as client publish
//     frames ({"type":"publish","channel":"run:<id>","event":"wsbench.tick",
//     "payload":{...}}), measuring the hub alone. The server answers a
//     publish only when it refuses it (an error frame with its ref, such as
//     RATE_LIMITED over WS_BROADCAST_MAX, 200/s by default): those events
//     count as failed; a final ping's pong says every answer has arrived.
//
// Idle connections (-idle N):
//
//	wsbench -idle 5000 -ws http://127.0.0.1:8080 -token "$TOKEN" -server-pid "$PID" -hold 10s -json
//
// reads the server's resident memory (VmRSS of /proc/PID/status), opens N
// connections, each subscribed to "runs" (unless -idle-subscribe=false),
// holds them idle for -settle then -hold while it samples VmRSS every
// second, and reports the growth per connection in KiB (the median sample
// over the hold, minus the baseline, over N). With -metrics (by default
// the -ws instance's /metrics) it also reports the server's goroutines and
// Go heap in use before and during the hold.
//
// wsbench only ever connects to this machine: every URL's host must be
// 127.0.0.1, localhost or [::1], and every connection's address a loopback
// address. It raises its own RLIMIT_NOFILE as the connections need; the
// server needs a limit as high (`ulimit -n` before starting it).
//
// The exit status is 1 when the run could not be done (a connection or
// subscription failed, more than -max-failures of the events failed (POSTs
// or publishes), the server could not be read), 2 on bad usage. Missing deliveries do not
// change it: they are reported (delivered, missing, complete_subscribers).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentstore/agentstore/tools/benchresult"
)

// Bounds on the flags: enough for any benchmark here, small enough that a
// typo cannot start an hour of load or exhaust the machine.
const (
	maxSubscribers     = 20000
	maxIdle            = 50000
	maxRate            = 10000
	maxDuration        = 10 * time.Minute
	maxWarmup          = time.Minute
	maxDrain           = 2 * time.Minute
	maxHold            = 10 * time.Minute
	maxPublishers      = 256
	maxConnectParallel = 512
	// maxDeliveries bounds subscribers × events, which sizes the
	// per-subscriber receipt bitmaps.
	maxDeliveries = 500_000_000
)

// Config is one wsbench run.
type Config struct {
	// WS is the base URL (http://host:port) of the instance the
	// subscribers connect to; API that of the instance events are sent
	// from (runs created, or the publisher connected).
	WS, API string
	// Token is the bearer token of both.
	Token string
	// Label names the run in the result.
	Label string

	// Source is where the latency mode's events come from: benchresult.SourceHTTP
	// (also "") or benchresult.SourceWS.
	Source string
	// Subscribers is the number of subscribed connections (latency mode).
	Subscribers int
	// Rate is the number of events (runs created, or publishes) per second.
	Rate float64
	// Warmup is the unmeasured time of events before Duration.
	Warmup time.Duration
	// Duration is the measured time of events.
	Duration time.Duration
	// Drain bounds the wait for the last events after the last one sent.
	Drain time.Duration
	// Publishers is the number of concurrent POST workers (http source).
	Publishers int
	// MaxFailures is the fraction of events (POSTs or publishes) that may
	// fail.
	MaxFailures float64

	// Idle, when positive, selects the idle mode with that many connections.
	Idle int
	// IdleSubscribe subscribes each idle connection to "runs".
	IdleSubscribe bool
	// Settle is the wait after the last idle connection opened, before
	// Hold.
	Settle time.Duration
	// Hold is how long the idle connections are held and sampled.
	Hold time.Duration
	// ServerPIDs are the server processes: the idle mode reads the VmRSS
	// of its one; the latency mode reports their CPU time.
	ServerPIDs []int
	// Metrics is the server's /metrics URL ("" for WS + /metrics, "-" for
	// none).
	Metrics string

	// ConnectParallel bounds the handshakes in flight.
	ConnectParallel int
	// Timeout bounds one handshake, subscription, POST or publish write,
	// and the wait for the publisher's final pong.
	Timeout time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main, testable: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, asJSON, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "wsbench:", err)
		}
		return 2
	}
	var res any
	if cfg.Idle > 0 {
		r, err := RunIdle(ctx, cfg, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "wsbench:", err)
			return 1
		}
		res = r
		if !asJSON {
			writeIdleText(stdout, r)
		}
	} else {
		r, err := RunLatency(ctx, cfg, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "wsbench:", err)
			return 1
		}
		res = r
		if !asJSON {
			writeLatencyText(stdout, r)
		}
		if r.Missing > 0 {
			fmt.Fprintf(stderr, "wsbench: %d of %d expected deliveries missing (%d of %d subscribers got every event)\n",
				r.Missing, r.Expected, r.CompleteSubscribers, r.Subscribers)
		}
		what := "POSTs"
		if r.Source == benchresult.SourceWS {
			what = "publishes"
		}
		if sent := r.EventsOK + r.EventsFailed; sent == 0 {
			fmt.Fprintln(stderr, "wsbench: no event was measured")
			return 1
		} else if rate := float64(r.EventsFailed) / float64(sent); rate > cfg.MaxFailures {
			if asJSON {
				writeJSON(stdout, res, stderr)
			}
			fmt.Fprintf(stderr, "wsbench: %d of %d %s failed, more than -max-failures %g\n", r.EventsFailed, sent, what, cfg.MaxFailures)
			if len(r.PostErrorSamples) > 0 {
				fmt.Fprintf(stderr, "wsbench: errors: %s\n", strings.Join(r.PostErrorSamples, "; "))
			}
			return 1
		}
	}
	if asJSON && !writeJSON(stdout, res, stderr) {
		return 1
	}
	return 0
}

func writeJSON(w io.Writer, v any, stderr io.Writer) bool {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, "wsbench:", err)
		return false
	}
	return true
}

func parseFlags(args []string, stderr io.Writer) (Config, bool, error) {
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.WS, "ws", "", "base URL of the instance the subscribers connect to, http://127.0.0.1:PORT (required)")
	fs.StringVar(&cfg.API, "api", "", "base URL of the instance events are sent from: runs created (-source http), or the run created and the publisher connected (-source ws) (default: -ws)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token (required)")
	fs.StringVar(&cfg.Label, "label", "", "name of the run, copied into the result")
	fs.StringVar(&cfg.Source, "source", benchresult.SourceHTTP, `where the events come from: "http", runs created through POST /v1/runs (run.created on "runs"), `+
		`or "ws", publish frames of one WebSocket client on the channel of one run (wsbench.tick on "run:<id>")`)
	fs.IntVar(&cfg.Subscribers, "subscribers", 1000, fmt.Sprintf("subscribed connections (1..%d)", maxSubscribers))
	fs.Float64Var(&cfg.Rate, "rate", 100, fmt.Sprintf("events (runs created, or publishes) per second (at most %d; -source ws: the server refuses more than WS_BROADCAST_MAX, 200/s by default)", maxRate))
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, fmt.Sprintf("unmeasured events before -d (at most %s)", maxWarmup))
	fs.DurationVar(&cfg.Duration, "d", 20*time.Second, fmt.Sprintf("measured events (at most %s)", maxDuration))
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, fmt.Sprintf("longest wait for the last events after the last one sent (at most %s)", maxDrain))
	fs.IntVar(&cfg.Publishers, "publishers", 32, fmt.Sprintf("concurrent POST workers of -source http (1..%d)", maxPublishers))
	fs.Float64Var(&cfg.MaxFailures, "max-failures", 0.01, "fraction of the events (POSTs, or publishes) that may fail before the exit status is 1")
	fs.IntVar(&cfg.Idle, "idle", 0, fmt.Sprintf("idle mode: open this many idle connections (1..%d) and report the server's memory per connection", maxIdle))
	fs.BoolVar(&cfg.IdleSubscribe, "idle-subscribe", true, "idle mode: subscribe each connection to \"runs\"")
	fs.DurationVar(&cfg.Settle, "settle", 5*time.Second, "idle mode: wait after the last connection opened, before -hold")
	fs.DurationVar(&cfg.Hold, "hold", 10*time.Second, fmt.Sprintf("idle mode: how long the connections are held and sampled (1s..%s)", maxHold))
	fs.Func("server-pid", "process id of the server (required with -idle); in the latency mode a comma-separated list, whose CPU time is reported", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || pid <= 0 {
				return fmt.Errorf("%q is not a process id", f)
			}
			cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
		}
		return nil
	})
	fs.StringVar(&cfg.Metrics, "metrics", "", "idle mode: the server's /metrics URL (default: -ws + /metrics; - for none)")
	fs.IntVar(&cfg.ConnectParallel, "connect-parallel", 64, fmt.Sprintf("handshakes in flight (1..%d)", maxConnectParallel))
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "timeout of one handshake, subscription, POST or publish, and of the wait for the publisher's final pong")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return Config{}, false, err
	}
	if fs.NArg() > 0 {
		return Config{}, false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.API == "" {
		cfg.API = cfg.WS
	}
	if cfg.Source == "" {
		return Config{}, false, fmt.Errorf("-source must be %q or %q", benchresult.SourceHTTP, benchresult.SourceWS)
	}
	return cfg, *asJSON, cfg.validate()
}

func (c Config) validate() error {
	if c.WS == "" {
		return errors.New("-ws is required")
	}
	if c.Token == "" {
		return errors.New("-token is required")
	}
	if _, err := wsURL(c.WS, c.Token); err != nil {
		return err
	}
	if _, err := apiURL(c.apiBase(), "/v1/runs"); err != nil {
		return fmt.Errorf("-api %w", err)
	}
	switch c.Source {
	case "", benchresult.SourceHTTP, benchresult.SourceWS:
	default:
		return fmt.Errorf("-source must be %q or %q, not %q", benchresult.SourceHTTP, benchresult.SourceWS, c.Source)
	}
	switch {
	case c.ConnectParallel < 1 || c.ConnectParallel > maxConnectParallel:
		return fmt.Errorf("-connect-parallel must be between 1 and %d", maxConnectParallel)
	case c.Timeout <= 0 || c.Timeout > time.Minute:
		return errors.New("-timeout must be positive and at most 1m")
	}
	if c.Idle != 0 {
		switch {
		case c.Idle < 0 || c.Idle > maxIdle:
			return fmt.Errorf("-idle must be between 1 and %d", maxIdle)
		case len(c.ServerPIDs) != 1:
			return errors.New("-idle needs -server-pid, one process id")
		case c.Hold < time.Second || c.Hold > maxHold:
			return fmt.Errorf("-hold must be between 1s and %s", maxHold)
		case c.Settle < 0 || c.Settle > maxHold:
			return fmt.Errorf("-settle must be between 0 and %s", maxHold)
		}
		if c.Metrics != "" && c.Metrics != "-" {
			if _, err := apiURL(c.Metrics, ""); err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case c.Subscribers < 1 || c.Subscribers > maxSubscribers:
		return fmt.Errorf("-subscribers must be between 1 and %d", maxSubscribers)
	case !(c.Rate > 0) || c.Rate > maxRate:
		return fmt.Errorf("-rate must be positive and at most %d", maxRate)
	case c.Duration <= 0 || c.Duration > maxDuration:
		return fmt.Errorf("-d must be positive and at most %s", maxDuration)
	case c.Warmup < 0 || c.Warmup > maxWarmup:
		return fmt.Errorf("-warmup must be between 0 and %s", maxWarmup)
	case c.Drain <= 0 || c.Drain > maxDrain:
		return fmt.Errorf("-drain must be positive and at most %s", maxDrain)
	case c.Publishers < 1 || c.Publishers > maxPublishers:
		return fmt.Errorf("-publishers must be between 1 and %d", maxPublishers)
	case c.MaxFailures < 0 || c.MaxFailures > 1:
		return errors.New("-max-failures must be between 0 and 1")
	case c.measuredEvents() < 1:
		return errors.New("-rate × -d is less than one event")
	case float64(c.Subscribers)*float64(c.measuredEvents()) > maxDeliveries:
		return fmt.Errorf("-subscribers × -rate × -d is more than %d deliveries", maxDeliveries)
	}
	return nil
}

// source is the latency mode's event source, benchresult.SourceHTTP or benchresult.SourceWS.
func (c Config) source() string {
	if c.Source == "" {
		return benchresult.SourceHTTP
	}
	return c.Source
}

// apiBase is the instance events are sent from: API, else WS.
func (c Config) apiBase() string {
	if c.API == "" {
		return c.WS
	}
	return c.API
}

// warmupEvents and measuredEvents are the events sent in each phase.
func (c Config) warmupEvents() int   { return int(c.Rate * c.Warmup.Seconds()) }
func (c Config) measuredEvents() int { return int(c.Rate * c.Duration.Seconds()) }
