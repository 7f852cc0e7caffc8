package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/tools/benchresult"
)

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
func RunLatency(ctx context.Context, cfg Config, logw io.Writer) (*benchresult.WSLatency, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := wsURL(cfg.WS, cfg.Token)
	post, _ := apiURL(cfg.apiBase(), "/v1/runs")
	limit, err := raiseNoFile(uint64(cfg.Subscribers + cfg.Publishers + 64))
	if err != nil {
		return nil, err
	}
	res := &benchresult.WSLatency{
		Mode: "latency", Label: cfg.Label, Source: cfg.source(), Channel: channelRuns,
		WS: cfg.WS, API: cfg.apiBase(), CrossInstance: cfg.WS != cfg.apiBase(),
		Started: time.Now().UTC(), Subscribers: cfg.Subscribers, Rate: cfg.Rate,
		WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds(), PostStatus: map[string]int64{}, NoFileLimit: limit,
	}

	var id [8]byte
	_, _ = rand.Read(id[:])
	bench := hex.EncodeToString(id[:])
	event := eventRunCreated
	if res.Source == benchresult.SourceWS {
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
	if res.Source == benchresult.SourceWS {
		what = "publishing %g " + eventTick + "/s from one WebSocket client"
	}
	fmt.Fprintf(logw, "wsbench: %d subscribers in %.1fs; "+what+" on %s for %s + %s\n",
		cfg.Subscribers, res.ConnectS, cfg.Rate, res.API, cfg.Warmup, cfg.Duration)
	cpu0, err := readCPU(cfg.ServerPIDs)
	if err != nil {
		return nil, err
	}
	var pub *published
	if res.Source == benchresult.SourceWS {
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

// writeLatencyText prints r for people.
func writeLatencyText(w io.Writer, r *benchresult.WSLatency) {
	label := ""
	if r.Label != "" {
		label = r.Label + ": "
	}
	ws := r.Source == benchresult.SourceWS
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
