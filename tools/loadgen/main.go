// Command loadgen drives fixed-concurrency, closed-loop HTTP load at a
// service on this machine and reports throughput and latency. It is the
// load generator of `make bench` (scripts/bench.sh).
//
//	go run ./tools/loadgen -url http://127.0.0.1:8080/v1/runs \
//	    -method POST -body-file run.json -body-template -token "$TOKEN" \
//	    -c 16 -d 20s -warmup 3s -expect 201 -json
//
// Each of -c workers sends one request, reads the whole response and sends
// the next, over keep-alive connections (one per worker). Requests sent
// during -warmup are not measured; then requests are measured for -d, or
// until -n have been sent. It reports the measured requests, requests per
// second, p50/p90/p99/max latency and the count of each status code, as
// text or, with -json, as one JSON object.
//
// It only ever connects to this machine: the URL's host must be 127.0.0.1,
// localhost or [::1], every connection's address must be a loopback address,
// redirects are not followed and no proxy is used.
//
// With -body-template the body is a template, expanded per request:
//
//	{{uuid}}       a new UUID (version 7) at each occurrence
//	{{uuid:NAME}}  a new UUID per request, the same for every {{uuid:NAME}}
//	               of that request (an id and a reference to it)
//	{{now}}        the current time, RFC 3339 with nanoseconds, UTC
//	{{nowns}}      the current time in Unix nanoseconds (OTLP's timestamps)
//	{{traceid:NAME}} a random 16-byte id in hex per request and NAME (an
//	               OTLP trace id)
//	{{spanid:NAME}}  a random 8-byte id in hex per request and NAME (an
//	               OTLP span id)
//
// The exit status is 1 when more than -max-failures of the measured
// requests failed (a transport error, or a status not in -expect), 2 on
// bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentstore/agentstore/tools/benchresult"
)

// Bounds on the flags: enough for any benchmark here, small enough that a
// typo cannot start an hour of load.
const (
	maxConcurrency = 1024
	maxDuration    = 30 * time.Minute
	maxWarmup      = 5 * time.Minute
)

// headerFlags collects repeated -header k:v flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main, testable: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, asJSON, maxFailures, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "loadgen:", err)
		}
		return 2
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
	} else {
		writeText(stdout, res)
	}
	failed := res.Errors + res.Unexpected
	if res.Requests+res.Errors == 0 {
		fmt.Fprintln(stderr, "loadgen: no request completed")
		return 1
	}
	if rate := float64(failed) / float64(res.Requests+res.Errors); rate > maxFailures {
		fmt.Fprintf(stderr, "loadgen: %d of %d measured requests failed (%d transport errors, %d unexpected statuses), more than -max-failures %g\n",
			failed, res.Requests+res.Errors, res.Errors, res.Unexpected, maxFailures)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (Config, bool, float64, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      Config
		headers  headerFlags
		bodyFile string
		expect   string
	)
	fs.StringVar(&cfg.URL, "url", "", "target URL; the host must be 127.0.0.1, localhost or [::1] (required)")
	fs.StringVar(&cfg.Method, "method", http.MethodGet, "HTTP method")
	fs.StringVar(&bodyFile, "body-file", "", "file holding the request body")
	fs.BoolVar(&cfg.Template, "body-template", false, "expand {{uuid}}, {{uuid:NAME}} and {{now}} in the body per request")
	fs.StringVar(&cfg.Token, "token", "", "bearer token sent as Authorization: Bearer TOKEN")
	fs.Var(&headers, "header", "extra request header k:v (repeatable)")
	fs.IntVar(&cfg.Concurrency, "c", 16, fmt.Sprintf("concurrent workers, each with its own keep-alive connection (1..%d)", maxConcurrency))
	fs.DurationVar(&cfg.Duration, "d", 20*time.Second, fmt.Sprintf("measured duration (at most %s)", maxDuration))
	fs.DurationVar(&cfg.Warmup, "warmup", 3*time.Second, fmt.Sprintf("unmeasured warm-up before -d (at most %s)", maxWarmup))
	fs.Int64Var(&cfg.MaxRequests, "n", 0, "stop after this many measured requests (0: only -d bounds the run)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.StringVar(&expect, "expect", "", "comma-separated expected status codes; others count as failures (default: any status)")
	fs.StringVar(&cfg.Label, "label", "", "name of the run, copied into the report")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	maxFailures := fs.Float64("max-failures", 0, "fraction of measured requests that may fail before the exit status is 1")
	if err := fs.Parse(args); err != nil {
		return Config{}, false, 0, err
	}
	if fs.NArg() > 0 {
		return Config{}, false, 0, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if bodyFile != "" {
		b, err := os.ReadFile(bodyFile)
		if err != nil {
			return Config{}, false, 0, err
		}
		cfg.Body = b
	} else if cfg.Template {
		return Config{}, false, 0, errors.New("-body-template needs -body-file")
	}
	cfg.Headers = http.Header{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return Config{}, false, 0, fmt.Errorf("-header %q: want key:value", h)
		}
		cfg.Headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if expect != "" {
		cfg.Expect = map[int]bool{}
		for _, s := range strings.Split(expect, ",") {
			code, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || code < 100 || code > 599 {
				return Config{}, false, 0, fmt.Errorf("-expect: %q is not a status code", s)
			}
			cfg.Expect[code] = true
		}
	}
	if *maxFailures < 0 || *maxFailures > 1 {
		return Config{}, false, 0, errors.New("-max-failures must be between 0 and 1")
	}
	return cfg, *asJSON, *maxFailures, cfg.validate()
}

// writeText prints res for people.
func writeText(w io.Writer, r *benchresult.Load) {
	label := ""
	if r.Label != "" {
		label = r.Label + ": "
	}
	fmt.Fprintf(w, "%s%s %s  c=%d d=%.1fs warmup=%.1fs\n", label, r.Method, r.URL, r.Concurrency, r.DurationS, r.WarmupS)
	fmt.Fprintf(w, "requests     %d (warm-up %d, transport errors %d, unexpected statuses %d)\n",
		r.Requests, r.WarmupRequests, r.Errors, r.Unexpected)
	fmt.Fprintf(w, "throughput   %.1f req/s\n", r.RPS)
	l := r.Latency
	fmt.Fprintf(w, "latency      p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	codes := make([]string, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s=%d", c, r.Status[c])
	}
	fmt.Fprintf(w, "status       %s\n", strings.Join(parts, " "))
	fmt.Fprintf(w, "connections  %d\n", r.Connections)
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "error        %s\n", e)
	}
}
