package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentstore/agentstore/tools/benchresult"
	"github.com/agentstore/agentstore/tools/loopback"
)

// Config is one load run.
type Config struct {
	// URL is the target; its host must be a loopback name (see checkURL).
	URL string
	// Method is the HTTP method.
	Method string
	// Body is sent with every request; a template when Template is set.
	Body []byte
	// Template expands Body per request (see the package comment).
	Template bool
	// Token, when set, is sent as a bearer token.
	Token string
	// Headers are added to every request.
	Headers http.Header
	// Concurrency is the number of workers, each with its own connection.
	Concurrency int
	// Warmup is the unmeasured time before Duration.
	Warmup time.Duration
	// Duration is the measured time.
	Duration time.Duration
	// MaxRequests, when positive, ends the run after that many measured
	// requests.
	MaxRequests int64
	// Timeout bounds one request.
	Timeout time.Duration
	// Expect, when not empty, is the set of statuses that count as success.
	Expect map[int]bool
	// Label names the run in the result.
	Label string
}

func (c Config) validate() error {
	if c.URL == "" {
		return errors.New("-url is required")
	}
	if _, err := checkURL(c.URL); err != nil {
		return err
	}
	switch {
	case c.Method == "":
		return errors.New("-method is empty")
	case c.Concurrency < 1 || c.Concurrency > maxConcurrency:
		return fmt.Errorf("-c must be between 1 and %d", maxConcurrency)
	case c.Duration <= 0 || c.Duration > maxDuration:
		return fmt.Errorf("-d must be positive and at most %s", maxDuration)
	case c.Warmup < 0 || c.Warmup > maxWarmup:
		return fmt.Errorf("-warmup must be between 0 and %s", maxWarmup)
	case c.MaxRequests < 0:
		return errors.New("-n must not be negative")
	case c.Timeout <= 0:
		return errors.New("-timeout must be positive")
	}
	if c.Template {
		if _, err := parseTemplate(c.Body); err != nil {
			return err
		}
	}
	return nil
}

// checkURL parses raw and refuses anything but http(s) to this machine.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-url %q: the scheme must be http or https", raw)
	}
	if !loopback.IsHost(u.Hostname()) {
		return nil, fmt.Errorf("-url %q: loadgen only targets 127.0.0.1, localhost or [::1], not %q", raw, u.Hostname())
	}
	return u, nil
}

// maxErrorSamples bounds the distinct transport errors a result keeps.
const maxErrorSamples = 5

// worker holds one worker's measurements, merged after the run.
type worker struct {
	lat        []time.Duration
	status     map[int]int64
	errors     int64
	unexpected int64
	warmup     int64
	total      int64
	lastDone   time.Time
	errSamples []string
}

// Run sends the load described by cfg and returns what it measured. It
// stops early, with what it has, when ctx is cancelled.
func Run(ctx context.Context, cfg Config) (*benchresult.Load, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := checkURL(cfg.URL)
	var tmpl template
	if cfg.Template {
		tmpl, _ = parseTemplate(cfg.Body)
	}

	var conns atomic.Int64
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: loopback.Control}
	transport := &http.Transport{
		Proxy: nil, // never through a proxy: the load stays on this machine
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				conns.Add(1)
			}
			return c, err
		},
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect could point anywhere
		},
	}

	started := time.Now()
	measureFrom := started.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	var claimed atomic.Int64
	workers := make([]*worker, cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{status: map[int]int64{}}
		workers[i] = w
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				measured := !t0.Before(measureFrom)
				if measured && cfg.MaxRequests > 0 && claimed.Add(1) > cfg.MaxRequests {
					return
				}
				body := cfg.Body
				if cfg.Template {
					body = tmpl.expand(t0)
				}
				code, err := send(ctx, client, u, cfg, body)
				t1 := time.Now()
				w.total++
				if !measured {
					w.warmup++
				} else {
					w.lastDone = t1
					if err != nil {
						w.errors++
						if msg := err.Error(); len(w.errSamples) < maxErrorSamples && !slices.Contains(w.errSamples, msg) {
							w.errSamples = append(w.errSamples, msg)
						}
					} else {
						w.lat = append(w.lat, t1.Sub(t0))
						w.status[code]++
						if len(cfg.Expect) > 0 && !cfg.Expect[code] {
							w.unexpected++
						}
					}
				}
				if err != nil && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond) // do not spin on a dead server
				}
			}
		})
	}
	wg.Wait()
	return summarize(cfg, started, measureFrom, workers, conns.Load()), nil
}

// send sends one request and reads the whole response.
func send(ctx context.Context, client *http.Client, u *url.URL, cfg Config, body []byte) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, cfg.Method, u.String(), rd)
	if err != nil {
		return 0, err
	}
	for k, vs := range cfg.Headers {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// summarize merges the workers' measurements.
func summarize(cfg Config, started, measureFrom time.Time, workers []*worker, conns int64) *benchresult.Load {
	r := &benchresult.Load{
		Label: cfg.Label, URL: cfg.URL, Method: cfg.Method, Concurrency: cfg.Concurrency,
		Started: started.UTC(), WarmupS: cfg.Warmup.Seconds(), Status: map[string]int64{}, Connections: conns,
	}
	var lat []time.Duration
	var last time.Time
	for _, w := range workers {
		lat = append(lat, w.lat...)
		for code, n := range w.status {
			r.Status[strconv.Itoa(code)] += n
		}
		r.Errors += w.errors
		r.Unexpected += w.unexpected
		r.WarmupRequests += w.warmup
		r.TotalRequests += w.total
		if w.lastDone.After(last) {
			last = w.lastDone
		}
		for _, s := range w.errSamples {
			if len(r.ErrorSamples) < maxErrorSamples && !slices.Contains(r.ErrorSamples, s) {
				r.ErrorSamples = append(r.ErrorSamples, s)
			}
		}
	}
	r.Requests = int64(len(lat))
	if last.After(measureFrom) {
		r.DurationS = last.Sub(measureFrom).Seconds()
	}
	if r.DurationS > 0 {
		r.RPS = float64(r.Requests) / r.DurationS
	}
	r.Latency = summarizeLatency(lat)
	return r
}

// summarizeLatency returns the mean, the nearest-rank percentiles and the
// maximum of lat, in milliseconds; lat is sorted in place.
func summarizeLatency(lat []time.Duration) benchresult.Latency {
	if len(lat) == 0 {
		return benchresult.Latency{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return benchresult.Latency{
		Mean: ms(sum / time.Duration(len(lat))),
		P50:  ms(percentile(lat, 0.50)),
		P90:  ms(percentile(lat, 0.90)),
		P99:  ms(percentile(lat, 0.99)),
		Max:  ms(lat[len(lat)-1]),
	}
}

// percentile is the nearest-rank p-quantile of the sorted sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
