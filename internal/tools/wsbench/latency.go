package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/internal/tools/loopback"
)

// LatencyResult is what the fan-out latency mode measured.
type LatencyResult struct {
	Mode  string `json:"mode"` // "latency"
	Label string `json:"label,omitempty"`
	// WS and API are the instances' base URLs; CrossInstance says they
	// differ (the events then travel through Redis).
	WS            string    `json:"ws"`
	API           string    `json:"api"`
	CrossInstance bool      `json:"cross_instance"`
	Started       time.Time `json:"started"`
	Subscribers   int       `json:"subscribers"`
	// Rate is the configured runs per second; AchievedRate the measured
	// runs over the measured window of POSTs.
	Rate         float64 `json:"rate"`
	AchievedRate float64 `json:"achieved_rate"`
	WarmupS      float64 `json:"warmup_s"`
	DurationS    float64 `json:"duration_s"`
	// ConnectS is the time to open and subscribe every connection.
	ConnectS float64 `json:"connect_s"`
	// WarmupEvents counts the runs created during the warm-up (not
	// measured); EventsOK and EventsFailed the measured POSTs, by outcome
	// (201 or not).
	WarmupEvents int64 `json:"warmup_events"`
	EventsOK     int64 `json:"events_ok"`
	EventsFailed int64 `json:"events_failed"`
	// PostStatus counts the measured POSTs by status ("error" for no
	// response).
	PostStatus       map[string]int64 `json:"post_status"`
	PostErrorSamples []string         `json:"post_error_samples,omitempty"`
	// PublishLagMaxMs is how much later than scheduled the latest POST
	// left (all workers busy, or this process starved of CPU).
	PublishLagMaxMs float64 `json:"publish_lag_max_ms"`
	// Expected is Subscribers × EventsOK; Delivered counts those received
	// (once per subscriber), Missing the rest. Duplicates counts second
	// copies; Unexpected the events received of measured POSTs that did
	// not answer 201.
	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	Unexpected int64 `json:"unexpected"`
	// CompleteSubscribers counts the subscribers that got every event.
	CompleteSubscribers int `json:"complete_subscribers"`
	// Disconnected counts the connections that ended before the run did.
	Disconnected      int      `json:"disconnected"`
	DisconnectSamples []string `json:"disconnect_samples,omitempty"`
	// ErrorFrames counts "error" frames received.
	ErrorFrames int64 `json:"error_frames"`
	// DrainS is the time from the last POST's response to the last
	// delivery (or to the -drain timeout).
	DrainS float64 `json:"drain_s"`
	// Latency is the publish-to-receive latency over every delivery of
	// the measured window: receive time minus the time the run's POST
	// was sent.
	Latency Summary `json:"latency_ms"`
	// PostLatency is the measured POSTs' latency, which Latency includes.
	PostLatency Summary `json:"post_latency_ms"`
	// CPU is where the CPU time went from the first POST to the end of
	// the drain.
	CPU *CPUUsage `json:"cpu,omitempty"`
	// NoFileLimit is this process's RLIMIT_NOFILE during the run.
	NoFileLimit uint64 `json:"nofile_limit"`
}

// Keys of the run metadata that carries a benchmark event: the run id of
// the benchmark, the event's number and its send time in Unix
// nanoseconds (a string: a JSON number that large may not survive a
// round trip through float64). They appear nowhere else in a frame, which
// lets a subscriber find them without decoding the whole frame.
const (
	keyBench = "wsbench"
	keySeq   = "wsbenchSeq"
	keyT     = "wsbenchT"
)

// Byte patterns a subscriber looks for in a frame.
var (
	patEvent    = []byte(`"type":"event"`)
	patRuns     = []byte(`"channel":"runs"`)
	patCreated  = []byte(`"event":"run.created"`)
	patError    = []byte(`"type":"error"`)
	patBenchKey = []byte(`"` + keyBench + `":`)
	patSeqKey   = []byte(`"` + keySeq + `":`)
	patTKey     = []byte(`"` + keyT + `":`)
)

// benchEvent finds a benchmark event in a frame: its benchmark id, number
// and send time. It is a byte scan rather than a JSON decode because a
// subscriber reads every event of the run, on the same machine as the
// server: the cheaper it reads, the less it takes from what it measures.
func benchEvent(frame []byte) (bench []byte, seq, sent int64, ok bool) {
	if !bytes.Contains(frame, patEvent) || !bytes.Contains(frame, patRuns) || !bytes.Contains(frame, patCreated) {
		return nil, 0, 0, false
	}
	// The three keys sit together in the run's metadata, "wsbench" first
	// (insertion order on SQLite, jsonb's shortest-first on PostgreSQL):
	// look for the others after it, and in the whole frame only if needed.
	i := bytes.Index(frame, patBenchKey)
	if i < 0 {
		return nil, 0, 0, false
	}
	meta := frame[i:]
	bench, ok = stringAfter(meta, patBenchKey)
	if !ok {
		return nil, 0, 0, false
	}
	if seq, ok = intAfter(meta, patSeqKey); !ok {
		if seq, ok = intAfter(frame, patSeqKey); !ok {
			return nil, 0, 0, false
		}
	}
	t, ok := stringAfter(meta, patTKey)
	if !ok {
		if t, ok = stringAfter(frame, patTKey); !ok {
			return nil, 0, 0, false
		}
	}
	sent, err := strconv.ParseInt(string(t), 10, 64)
	return bench, seq, sent, err == nil
}

// stringAfter returns the JSON string (without escapes) that follows the
// key pat.
func stringAfter(b, pat []byte) ([]byte, bool) {
	i := bytes.Index(b, pat)
	if i < 0 {
		return nil, false
	}
	rest := bytes.TrimLeft(b[i+len(pat):], " ")
	if len(rest) == 0 || rest[0] != '"' {
		return nil, false
	}
	rest = rest[1:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return nil, false
	}
	return rest[:j], true
}

// intAfter returns the non-negative JSON integer that follows the key pat.
func intAfter(b, pat []byte) (int64, bool) {
	i := bytes.Index(b, pat)
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(b[i+len(pat):], " ")
	var n int64
	digits := 0
	for _, c := range rest {
		if c < '0' || c > '9' || digits > 15 {
			break
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	return n, digits > 0
}

// recorder gathers what every subscriber received.
type recorder struct {
	bench         string
	warm, measure int64
	hist          histogram
	delivered     atomic.Int64 // first receipts of measured events
	duplicates    atomic.Int64
	errorFrames   atomic.Int64
	lastReceipt   atomic.Int64 // unix ns
	closing       atomic.Bool
}

// subscriber is one subscribed connection and the events it received.
type subscriber struct {
	ws   *websocket.Conn
	seen []uint64 // bitmap over the measured events
	err  error    // why it ended before the run did
}

// read reads frames until the connection ends.
func (s *subscriber) read(rec *recorder) {
	var buf bytes.Buffer
	for {
		_, r, err := s.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if !rec.closing.Load() {
				s.err = err
			}
			return
		}
		rec.receive(s, buf.Bytes(), time.Now())
	}
}

// receive accounts for one frame received at now.
func (rec *recorder) receive(s *subscriber, data []byte, now time.Time) {
	bench, seq, sent, ok := benchEvent(data)
	if !ok {
		if bytes.Contains(data, patError) {
			rec.errorFrames.Add(1)
		}
		return
	}
	i := seq - rec.warm
	if string(bench) != rec.bench || i < 0 || i >= rec.measure {
		return // a warm-up event, or not one of ours
	}
	word, bit := i/64, uint64(1)<<(i%64)
	if s.seen[word]&bit != 0 {
		rec.duplicates.Add(1)
		return
	}
	s.seen[word] |= bit
	at := now.UnixNano()
	rec.hist.Record(time.Duration(at - sent))
	rec.delivered.Add(1)
	for {
		last := rec.lastReceipt.Load()
		if at <= last || rec.lastReceipt.CompareAndSwap(last, at) {
			break
		}
	}
}

// RunLatency runs the fan-out latency mode (see the package comment);
// progress goes to logw.
func RunLatency(ctx context.Context, cfg Config, logw io.Writer) (*LatencyResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := wsURL(cfg.WS, cfg.Token)
	post, _ := apiURL(cfg.apiBase(), "/v1/runs")
	limit, err := raiseNoFile(uint64(cfg.Subscribers + cfg.Publishers + 64))
	if err != nil {
		return nil, err
	}
	res := &LatencyResult{
		Mode: "latency", Label: cfg.Label, WS: cfg.WS, API: cfg.apiBase(), CrossInstance: cfg.WS != cfg.apiBase(),
		Started: time.Now().UTC(), Subscribers: cfg.Subscribers, Rate: cfg.Rate,
		WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds(), PostStatus: map[string]int64{}, NoFileLimit: limit,
	}

	fmt.Fprintf(logw, "wsbench: opening %d subscribers to %s\n", cfg.Subscribers, cfg.WS)
	t0 := time.Now()
	conns, err := openConns(ctx, u, cfg.Subscribers, cfg.ConnectParallel, true, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	res.ConnectS = time.Since(t0).Seconds()

	var id [8]byte
	_, _ = rand.Read(id[:])
	rec := &recorder{bench: hex.EncodeToString(id[:]), warm: int64(cfg.warmupEvents()), measure: int64(cfg.measuredEvents())}
	subs := make([]*subscriber, len(conns))
	var readers sync.WaitGroup
	for i, c := range conns {
		s := &subscriber{ws: c, seen: make([]uint64, (rec.measure+63)/64)}
		subs[i] = s
		readers.Go(func() { s.read(rec) })
	}
	readersDone := make(chan struct{})
	go func() { readers.Wait(); close(readersDone) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			rec.closing.Store(true)
			closeAll(conns, readersDone, 3*time.Second)
			<-readersDone
		}
	}
	defer stop()

	fmt.Fprintf(logw, "wsbench: %d subscribers in %.1fs; creating %g runs/s on %s for %s + %s\n",
		cfg.Subscribers, res.ConnectS, cfg.Rate, res.API, cfg.Warmup, cfg.Duration)
	cpu0, err := readCPU(cfg.ServerPIDs)
	if err != nil {
		return nil, err
	}
	pub := publish(ctx, cfg, post, rec)
	lastPost := time.Now()

	res.WarmupEvents = int64(cfg.warmupEvents())
	res.PostStatus, res.PostErrorSamples = pub.status, pub.errors
	res.PublishLagMaxMs = ms(pub.maxLag)
	res.PostLatency = pub.latency.Summary()
	for i := rec.warm; i < rec.warm+rec.measure; i++ {
		if pub.ok[i] {
			res.EventsOK++
		} else {
			res.EventsFailed++
		}
	}
	if pub.window > 0 {
		res.AchievedRate = float64(rec.measure) / pub.window.Seconds()
	}

	// Drain: wait for every subscriber to get every created run.
	want := int64(len(subs)) * res.EventsOK
	deadline := time.Now().Add(cfg.Drain)
	for rec.delivered.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-readersDone:
			deadline = time.Now() // every connection ended
		case <-time.After(5 * time.Millisecond):
		}
	}
	if last := rec.lastReceipt.Load(); last > lastPost.UnixNano() {
		res.DrainS = time.Duration(last - lastPost.UnixNano()).Seconds()
	}
	if rec.delivered.Load() < want {
		res.DrainS = time.Since(lastPost).Seconds()
	}
	if cpu1, err := readCPU(cfg.ServerPIDs); err == nil {
		res.CPU = usage(cpu0, cpu1, len(cfg.ServerPIDs) > 0)
	}
	stop()

	drops := &samples{}
	res.Expected = want
	for _, s := range subs {
		if s.err != nil {
			res.Disconnected++
			drops.add(closeText(s.err))
		}
		var missing int64
		for i := int64(0); i < rec.measure; i++ {
			got := s.seen[i/64]&(uint64(1)<<(i%64)) != 0
			ok := pub.ok[rec.warm+i]
			switch {
			case ok && got:
				res.Delivered++
			case ok:
				missing++
			case got:
				res.Unexpected++
			}
		}
		res.Missing += missing
		if missing == 0 {
			res.CompleteSubscribers++
		}
	}
	res.DisconnectSamples = drops.get()
	res.Duplicates = rec.duplicates.Load()
	res.ErrorFrames = rec.errorFrames.Load()
	res.Latency = rec.hist.Summary()
	return res, nil
}

// published is what the publisher did.
type published struct {
	ok      []bool // per event: the POST answered 201
	status  map[string]int64
	errors  []string
	latency *histogram
	maxLag  time.Duration
	// window is the time from the first measured POST's schedule to the
	// last measured POST's response.
	window time.Duration
}

// publish creates the warm-up and measured runs at cfg.Rate through
// cfg.Publishers workers, each run carrying its send time.
func publish(ctx context.Context, cfg Config, u string, rec *recorder) *published {
	total := int(rec.warm + rec.measure)
	p := &published{ok: make([]bool, total), status: map[string]int64{}, latency: &histogram{}}
	client := loopback.HTTPClient(cfg.Publishers, cfg.Timeout)
	defer client.CloseIdleConnections()

	interval := float64(time.Second) / cfg.Rate
	start := time.Now().Add(20 * time.Millisecond)
	due := func(i int) time.Time { return start.Add(time.Duration(float64(i) * interval)) }
	jobs := make(chan int, total)
	go func() {
		defer close(jobs)
		t := time.NewTimer(0)
		defer t.Stop()
		for i := range total {
			if d := time.Until(due(i)); d > 0 {
				t.Reset(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
			}
			jobs <- i
		}
	}()

	var (
		mu       sync.Mutex
		errs     samples
		wg       sync.WaitGroup
		lastDone time.Time
	)
	for range cfg.Publishers {
		wg.Go(func() {
			for i := range jobs {
				t0 := time.Now()
				lag := t0.Sub(due(i))
				body := fmt.Appendf(nil, `{"agentName":"wsbench","status":"running","metadata":{%q:%q,%q:%d,%q:"%d"}}`,
					keyBench, rec.bench, keySeq, i, keyT, t0.UnixNano())
				code, err := postRun(ctx, client, u, cfg.Token, body)
				t1 := time.Now()
				p.ok[i] = err == nil && code == http.StatusCreated
				if int64(i) < rec.warm {
					continue
				}
				p.latency.Record(t1.Sub(t0))
				key := strconv.Itoa(code)
				if err != nil {
					key = "error"
					errs.add(err.Error())
				}
				mu.Lock()
				p.status[key]++
				p.maxLag = max(p.maxLag, lag)
				if t1.After(lastDone) {
					lastDone = t1
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	p.errors = errs.get()
	if first := due(int(rec.warm)); lastDone.After(first) {
		p.window = lastDone.Sub(first)
	}
	return p
}

// postRun sends one POST /v1/runs and reads the whole response.
func postRun(ctx context.Context, client *http.Client, u, token string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
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

// writeText prints r for people.
func (r *LatencyResult) writeText(w io.Writer) {
	label := ""
	if r.Label != "" {
		label = r.Label + ": "
	}
	via := "same instance"
	if r.CrossInstance {
		via = "runs created on " + r.API
	}
	fmt.Fprintf(w, "%s%d subscribers on %s (%s), %g runs/s (achieved %.1f) for %.1fs after %.1fs warm-up\n",
		label, r.Subscribers, r.WS, via, r.Rate, r.AchievedRate, r.DurationS, r.WarmupS)
	fmt.Fprintf(w, "connect      %.2fs for every subscriber\n", r.ConnectS)
	fmt.Fprintf(w, "runs         %d created, %d failed (status %s), latest POST %.2fms behind schedule\n",
		r.EventsOK, r.EventsFailed, countText(r.PostStatus), r.PublishLagMaxMs)
	fmt.Fprintf(w, "deliveries   %d of %d (missing %d, duplicates %d, unexpected %d); %d of %d subscribers complete; %d disconnected\n",
		r.Delivered, r.Expected, r.Missing, r.Duplicates, r.Unexpected, r.CompleteSubscribers, r.Subscribers, r.Disconnected)
	l := r.Latency
	fmt.Fprintf(w, "latency      p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms  mean %.2fms (publish to receive)\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	pl := r.PostLatency
	fmt.Fprintf(w, "POST         p50 %.2fms  p99 %.2fms  max %.2fms\n", pl.P50, pl.P99, pl.Max)
	if c := r.CPU; c != nil {
		fmt.Fprintf(w, "CPU          over %.1fs: wsbench %.1fs, server %.1fs; machine %.0f%% busy (%d CPUs)\n",
			c.WindowS, c.ClientS, c.ServerS, c.MachineBusyPct, c.NProc)
	}
	for _, s := range r.DisconnectSamples {
		fmt.Fprintf(w, "disconnect   %s\n", s)
	}
	for _, s := range r.PostErrorSamples {
		fmt.Fprintf(w, "error        %s\n", s)
	}
}

// countText renders a count map as "k=v ..." sorted by key.
func countText(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
