package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/internal/tools/loopback"
)

// LatencyResult is what the fan-out latency mode measured.
type LatencyResult struct {
	Mode  string `json:"mode"` // "latency"
	Label string `json:"label,omitempty"`
	// Source is where the events come from: "http", runs created through
	// POST /v1/runs (run.created on "runs"), or "ws", publish frames of
	// one WebSocket client (wsbench.tick on "run:<RunID>").
	Source string `json:"source"`
	// Channel is the channel the subscribers subscribed to; RunID, with
	// the ws source, the run it belongs to (created by wsbench first).
	Channel string `json:"channel"`
	RunID   string `json:"run_id,omitempty"`
	// WS and API are the instances' base URLs (API: where runs are
	// created, or the publisher connects); CrossInstance says they differ
	// (the events then travel through Redis).
	WS            string    `json:"ws"`
	API           string    `json:"api"`
	CrossInstance bool      `json:"cross_instance"`
	Started       time.Time `json:"started"`
	Subscribers   int       `json:"subscribers"`
	// Rate is the configured events (runs created, or publishes) per
	// second; AchievedRate the measured events over the measured window
	// of sends.
	Rate         float64 `json:"rate"`
	AchievedRate float64 `json:"achieved_rate"`
	WarmupS      float64 `json:"warmup_s"`
	DurationS    float64 `json:"duration_s"`
	// ConnectS is the time to open and subscribe every connection.
	ConnectS float64 `json:"connect_s"`
	// WarmupEvents counts the events sent during the warm-up (not
	// measured); EventsOK and EventsFailed the measured events, by
	// outcome: with the http source a POST answered 201 or not; with the
	// ws source a publish sent and not answered with an error frame, or
	// not.
	WarmupEvents int64 `json:"warmup_events"`
	EventsOK     int64 `json:"events_ok"`
	EventsFailed int64 `json:"events_failed"`
	// PostStatus counts the measured events by outcome: with the http
	// source the POSTs by status ("error" for no response); with the ws
	// source the publishes, "ok", the error frame's code (such as
	// "RATE_LIMITED"), "error" when the write failed or "unsent" when the
	// connection was gone before. PostErrorSamples are the first
	// distinct errors (of the warm-up too).
	PostStatus       map[string]int64 `json:"post_status"`
	PostErrorSamples []string         `json:"post_error_samples,omitempty"`
	// PublishLagMaxMs is how much later than scheduled the latest
	// measured event left (all POST workers busy, or this process starved
	// of CPU).
	PublishLagMaxMs float64 `json:"publish_lag_max_ms"`
	// Expected is Subscribers × EventsOK; Delivered counts those received
	// (once per subscriber), Missing the rest. Duplicates counts second
	// copies; Unexpected the events received of measured events that
	// failed.
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
	// DrainS is the time from the last POST's response (the last
	// publish's write with the ws source) to the last delivery (or to the
	// -drain timeout).
	DrainS float64 `json:"drain_s"`
	// Latency is the publish-to-receive latency over every delivery of
	// the measured window: receive time minus the time the run's POST
	// was sent (http), or the publish frame written (ws).
	Latency Summary `json:"latency_ms"`
	// PostLatency is the measured POSTs' latency, which Latency includes;
	// nil with the ws source.
	PostLatency *Summary `json:"post_latency_ms,omitempty"`
	// CPU is where the CPU time went from the first event sent to the end
	// of the drain.
	CPU *CPUUsage `json:"cpu,omitempty"`
	// NoFileLimit is this process's RLIMIT_NOFILE during the run.
	NoFileLimit uint64 `json:"nofile_limit"`
}

// Keys of the run metadata (http source) or publish payload (ws source)
// that carries a benchmark event: the run id of the benchmark, the
// event's number and its send time in Unix nanoseconds (a string: a JSON
// number that large may not survive a round trip through float64). They
// appear nowhere else in a frame, which lets a subscriber find them
// without decoding the whole frame.
const (
	keyBench = "wsbench"
	keySeq   = "wsbenchSeq"
	keyT     = "wsbenchT"
)

// Events of each source: the run event (on channelRuns) and the event
// the ws source publishes (on "run:<id>").
const (
	eventRunCreated = "run.created"
	eventTick       = "wsbench.tick"
)

// Byte patterns a subscriber looks for in a frame; those of the expected
// channel and event name come from channelPattern and eventPattern.
var (
	patEvent    = []byte(`"type":"event"`)
	patError    = []byte(`"type":"error"`)
	patBenchKey = []byte(`"` + keyBench + `":`)
	patSeqKey   = []byte(`"` + keySeq + `":`)
	patTKey     = []byte(`"` + keyT + `":`)
)

// channelPattern and eventPattern are the bytes of an event frame's
// channel and event name (neither needs escaping in JSON).
func channelPattern(channel string) []byte { return []byte(`"channel":"` + channel + `"`) }
func eventPattern(name string) []byte      { return []byte(`"event":"` + name + `"`) }

// benchEvent finds a benchmark event in a frame of an event named by
// event (an eventPattern) on channel (a channelPattern): its benchmark
// id, number and send time. It is a byte scan rather than a JSON decode
// because a subscriber reads every event of the run, on the same machine
// as the server: the cheaper it reads, the less it takes from what it
// measures.
func benchEvent(frame, channel, event []byte) (bench []byte, seq, sent int64, ok bool) {
	if !bytes.Contains(frame, patEvent) || !bytes.Contains(frame, channel) || !bytes.Contains(frame, event) {
		return nil, 0, 0, false
	}
	// The three keys sit together in the run's metadata or the publish's
	// payload, "wsbench" first (insertion order on SQLite and in a
	// payload, jsonb's shortest-first on PostgreSQL): look for the others
	// after it, and in the whole frame only if needed.
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
	bench string
	// channel and event are the patterns (channelPattern, eventPattern)
	// of the frames that carry the benchmark's events.
	channel, event []byte
	warm, measure  int64
	hist           histogram
	delivered      atomic.Int64 // first receipts of measured events
	duplicates     atomic.Int64
	errorFrames    atomic.Int64
	lastReceipt    atomic.Int64 // unix ns
	closing        atomic.Bool
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
	bench, seq, sent, ok := benchEvent(data, rec.channel, rec.event)
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
		Mode: "latency", Label: cfg.Label, Source: cfg.source(), Channel: channelRuns,
		WS: cfg.WS, API: cfg.apiBase(), CrossInstance: cfg.WS != cfg.apiBase(),
		Started: time.Now().UTC(), Subscribers: cfg.Subscribers, Rate: cfg.Rate,
		WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds(), PostStatus: map[string]int64{}, NoFileLimit: limit,
	}

	var id [8]byte
	_, _ = rand.Read(id[:])
	bench := hex.EncodeToString(id[:])
	event := eventRunCreated
	if res.Source == sourceWS {
		runID, err := createRun(ctx, cfg, post, bench)
		if err != nil {
			return nil, fmt.Errorf("creating the run to publish on: %w", err)
		}
		res.RunID, res.Channel, event = runID, "run:"+runID, eventTick
		fmt.Fprintf(logw, "wsbench: created run %s on %s\n", runID, res.API)
	}
	rec := &recorder{bench: bench, channel: channelPattern(res.Channel), event: eventPattern(event),
		warm: int64(cfg.warmupEvents()), measure: int64(cfg.measuredEvents())}

	fmt.Fprintf(logw, "wsbench: opening %d subscribers to %s (channel %s)\n", cfg.Subscribers, cfg.WS, res.Channel)
	t0 := time.Now()
	conns, err := openConns(ctx, u, res.Channel, cfg.Subscribers, cfg.ConnectParallel, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	res.ConnectS = time.Since(t0).Seconds()

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

	what := "creating %g runs/s"
	if res.Source == sourceWS {
		what = "publishing %g " + eventTick + "/s from one WebSocket client"
	}
	fmt.Fprintf(logw, "wsbench: %d subscribers in %.1fs; "+what+" on %s for %s + %s\n",
		cfg.Subscribers, res.ConnectS, cfg.Rate, res.API, cfg.Warmup, cfg.Duration)
	cpu0, err := readCPU(cfg.ServerPIDs)
	if err != nil {
		return nil, err
	}
	var pub *published
	if res.Source == sourceWS {
		pu, _ := wsURL(cfg.apiBase(), cfg.Token)
		if pub, err = publishWS(ctx, cfg, pu, res.Channel, rec); err != nil {
			return nil, err
		}
	} else {
		pub = publish(ctx, cfg, post, rec)
	}
	lastPost := pub.done

	res.WarmupEvents = int64(cfg.warmupEvents())
	res.PostStatus, res.PostErrorSamples = pub.status, pub.errors
	res.PublishLagMaxMs = ms(pub.maxLag)
	if pub.latency != nil {
		s := pub.latency.Summary()
		res.PostLatency = &s
	}
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

	// Drain: wait for every subscriber to get every event sent.
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

// schedule paces events at a fixed rate from a start just ahead.
type schedule struct {
	start    time.Time
	interval float64 // nanoseconds between events
}

func newSchedule(rate float64) schedule {
	return schedule{start: time.Now().Add(20 * time.Millisecond), interval: float64(time.Second) / rate}
}

// due is when event i should be sent.
func (s schedule) due(i int) time.Time {
	return s.start.Add(time.Duration(float64(i) * s.interval))
}

// wait sleeps on t until event i is due, and reports false when ctx ended
// first.
func (s schedule) wait(ctx context.Context, t *time.Timer, i int) bool {
	if d := time.Until(s.due(i)); d > 0 {
		t.Reset(d)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return ctx.Err() == nil
}

// published is what the publisher did.
type published struct {
	ok      []bool // per event: the POST answered 201, or the publish was sent and not refused
	status  map[string]int64
	errors  []string
	latency *histogram // of the POSTs; nil with the ws source
	maxLag  time.Duration
	// window is the time from the first measured event's schedule to the
	// last measured POST's response (the last publish's write).
	window time.Duration
	// done is when the last event was sent: the end of the last POST, or
	// the last publish written.
	done time.Time
}

// publish creates the warm-up and measured runs at cfg.Rate through
// cfg.Publishers workers, each run carrying its send time.
func publish(ctx context.Context, cfg Config, u string, rec *recorder) *published {
	total := int(rec.warm + rec.measure)
	p := &published{ok: make([]bool, total), status: map[string]int64{}, latency: &histogram{}}
	client := loopback.HTTPClient(cfg.Publishers, cfg.Timeout)
	defer client.CloseIdleConnections()

	sched := newSchedule(cfg.Rate)
	due := sched.due
	jobs := make(chan int, total)
	go func() {
		defer close(jobs)
		t := time.NewTimer(0)
		defer t.Stop()
		for i := range total {
			if !sched.wait(ctx, t, i) {
				return
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
	p.done = time.Now()
	p.errors = errs.get()
	if first := due(int(rec.warm)); lastDone.After(first) {
		p.window = lastDone.Sub(first)
	}
	return p
}

// endRef is the ref of the ping the ws publisher sends after its last
// publish: its pong comes after the answer to every publish.
const endRef = "end"

// publishWS sends the warm-up and measured events at cfg.Rate as publish
// frames on one WebSocket connection to u (no subscription), each
// carrying its send time, taken just before the write. The server answers
// a publish only when it refuses it, with an error frame of the same ref:
// a reader marks those events failed. After the last publish a ping, whose
// pong (frames are handled in order) says every answer has arrived. The
// error is that of the connection's opening.
func publishWS(ctx context.Context, cfg Config, u, channel string, rec *recorder) (*published, error) {
	c, err := dialOne(ctx, loopback.WSDialer(cfg.Timeout), u, "", cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("publisher connection: %w", err)
	}
	defer c.Close()
	total := int(rec.warm + rec.measure)
	p := &published{ok: make([]bool, total), status: map[string]int64{}}
	var (
		errs   samples
		mu     sync.Mutex
		failed = map[int]string{} // event → error code
	)

	pong := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			var r reply
			if json.Unmarshal(data, &r) != nil {
				continue
			}
			switch r.Type {
			case "pong":
				if r.Ref == endRef {
					close(pong)
					return
				}
			case "error":
				code := r.Code
				if code == "" {
					code = "error"
				}
				errs.add(code + ": " + r.Message)
				if i, err := strconv.Atoi(r.Ref); err == nil && i >= 0 && i < total {
					mu.Lock()
					if _, dup := failed[i]; !dup {
						failed[i] = code
					}
					mu.Unlock()
				}
			}
		}
	}()

	sched := newSchedule(cfg.Rate)
	due := sched.due
	sent := make([]bool, total)
	writeFailed := -1 // the event whose write failed
	var frame []byte
	t := time.NewTimer(0)
	defer t.Stop()
	for i := range total {
		if !sched.wait(ctx, t, i) {
			break
		}
		t0 := time.Now()
		frame = fmt.Appendf(frame[:0], `{"type":"publish","ref":"%d","channel":%q,"event":%q,"payload":{%q:%q,%q:%d,%q:"%d"}}`,
			i, channel, eventTick, keyBench, rec.bench, keySeq, i, keyT, t0.UnixNano())
		_ = c.SetWriteDeadline(t0.Add(cfg.Timeout))
		if err := c.WriteMessage(websocket.TextMessage, frame); err != nil {
			writeFailed = i
			errs.add("publish: " + err.Error())
			break
		}
		p.done = time.Now()
		sent[i] = true
		if int64(i) >= rec.warm {
			p.maxLag = max(p.maxLag, t0.Sub(due(i)))
		}
	}
	if p.done.IsZero() {
		p.done = time.Now()
	}

	// Every answer has arrived once the pong of a last ping has.
	if writeFailed < 0 && ctx.Err() == nil {
		_ = c.SetWriteDeadline(time.Now().Add(cfg.Timeout))
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","ref":"`+endRef+`"}`)); err != nil {
			errs.add("final ping: " + err.Error())
		} else {
			wait := time.NewTimer(cfg.Timeout)
			select {
			case <-pong:
			case <-readDone: // also closed right after pong: check which
				select {
				case <-pong:
				default:
					errs.add("publisher connection ended before the final pong")
				}
			case <-wait.C:
				errs.add(fmt.Sprintf("no pong to the final ping within %s: refusals may be missing", cfg.Timeout))
			case <-ctx.Done():
			}
			wait.Stop()
		}
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	_ = c.Close()
	<-readDone

	mu.Lock()
	defer mu.Unlock()
	for i := range total {
		code, refused := failed[i]
		p.ok[i] = sent[i] && !refused
		if int64(i) < rec.warm {
			continue
		}
		switch {
		case refused:
			p.status[code]++
		case sent[i]:
			p.status["ok"]++
		case i == writeFailed:
			p.status["error"]++
		default:
			p.status["unsent"]++
		}
	}
	p.errors = errs.get()
	if first := due(int(rec.warm)); p.done.After(first) {
		p.window = p.done.Sub(first)
	}
	return p, nil
}

// createRun creates, through POST u (/v1/runs), the run whose channel the
// ws source publishes on, and returns its id.
func createRun(ctx context.Context, cfg Config, u, bench string) (string, error) {
	client := loopback.HTTPClient(1, cfg.Timeout)
	defer client.CloseIdleConnections()
	body := fmt.Appendf(nil, `{"agentName":"wsbench","status":"running","metadata":{%q:%q}}`, keyBench, bench)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST %s: %s, want 201: %.200s", u, resp.Status, b)
	}
	var run struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &run); err != nil {
		return "", fmt.Errorf("POST %s: unreadable response: %w", u, err)
	}
	if id, err := uuid.Parse(run.ID); err != nil || id.String() != run.ID {
		return "", fmt.Errorf("POST %s: the run id %q is not a UUID in canonical form", u, run.ID)
	}
	return run.ID, nil
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
	ws := r.Source == sourceWS
	via := "same instance"
	switch {
	case r.CrossInstance && ws:
		via = "published on " + r.API
	case r.CrossInstance:
		via = "runs created on " + r.API
	}
	what := "runs/s"
	if ws {
		what = eventTick + "/s published by one WebSocket client"
	}
	fmt.Fprintf(w, "%s%d subscribers of %s on %s (%s), %g %s (achieved %.1f) for %.1fs after %.1fs warm-up\n",
		label, r.Subscribers, r.Channel, r.WS, via, r.Rate, what, r.AchievedRate, r.DurationS, r.WarmupS)
	fmt.Fprintf(w, "connect      %.2fs for every subscriber\n", r.ConnectS)
	if ws {
		fmt.Fprintf(w, "publishes    %d sent, %d failed (%s), latest publish %.2fms behind schedule\n",
			r.EventsOK, r.EventsFailed, countText(r.PostStatus), r.PublishLagMaxMs)
	} else {
		fmt.Fprintf(w, "runs         %d created, %d failed (status %s), latest POST %.2fms behind schedule\n",
			r.EventsOK, r.EventsFailed, countText(r.PostStatus), r.PublishLagMaxMs)
	}
	fmt.Fprintf(w, "deliveries   %d of %d (missing %d, duplicates %d, unexpected %d); %d of %d subscribers complete; %d disconnected\n",
		r.Delivered, r.Expected, r.Missing, r.Duplicates, r.Unexpected, r.CompleteSubscribers, r.Subscribers, r.Disconnected)
	l := r.Latency
	fmt.Fprintf(w, "latency      p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms  mean %.2fms (publish to receive)\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	if pl := r.PostLatency; pl != nil {
		fmt.Fprintf(w, "POST         p50 %.2fms  p99 %.2fms  max %.2fms\n", pl.P50, pl.P99, pl.Max)
	}
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
