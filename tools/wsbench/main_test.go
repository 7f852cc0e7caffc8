package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/tools/benchresult"
	"github.com/agentstore/agentstore/tools/loopback"
)

func TestURLsRefuseOtherHosts(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:1/", "ws://[::1]:9", "https://127.0.0.1"} {
		if _, err := wsURL(ok, "tok"); err != nil {
			t.Errorf("wsURL(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"http://example.com", "http://10.0.0.1:80", "http://127.0.0.2", "http://0.0.0.0:1",
		"ftp://127.0.0.1", "http://localhost.example.com", "//127.0.0.1", "http://u:p@127.0.0.1"} {
		if _, err := wsURL(bad, "tok"); err == nil {
			t.Errorf("wsURL(%q) accepted a non-loopback target", bad)
		}
		if _, err := apiURL(bad, "/v1/runs"); err == nil {
			t.Errorf("apiURL(%q) accepted a non-loopback target", bad)
		}
	}
	if u, _ := wsURL("http://127.0.0.1:8080/", "a b"); u != "ws://127.0.0.1:8080/v1/ws?access_token=a+b" {
		t.Errorf("wsURL = %q", u)
	}
	if u, _ := apiURL("ws://127.0.0.1:8080", "/v1/runs"); u != "http://127.0.0.1:8080/v1/runs" {
		t.Errorf("apiURL = %q", u)
	}
	if err := loopback.Control("tcp", "192.0.2.1:80", nil); err == nil {
		t.Error("loopbackOnly accepted 192.0.2.1")
	}
	if err := loopback.Control("tcp", "[::1]:80", nil); err != nil {
		t.Errorf("loopbackOnly refused ::1: %v", err)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-ws", "http://example.com", "-token", "x"},
		{"-ws", "http://127.0.0.1:1"},
		{"-ws", "http://127.0.0.1:1", "-token", "x", "-api", "http://192.0.2.1:1"},
		{"-ws", "http://127.0.0.1:1", "-token", "x", "-subscribers", "0"},
		{"-ws", "http://127.0.0.1:1", "-token", "x", "-d", "1h"},
		{"-ws", "http://127.0.0.1:1", "-token", "x", "-rate", "0.1", "-d", "1s"},
		{"-ws", "http://127.0.0.1:1", "-token", "x", "-idle", "10"},
		{"-ws", "http://127.0.0.1:1", "-token", "x", "-source", "sse"},
		{"-ws", "http://127.0.0.1:1", "-token", "x", "-source", ""},
		{"-ws", "http://127.0.0.1:1", "-token", "x", "-idle", "10", "-server-pid", "1", "-metrics", "http://192.0.2.1/metrics"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, io.Discard, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}

func TestHistogram(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 12345678, 1 << 40, math.MaxInt64} {
		i := bucketOf(v)
		low, width := bucketRange(i)
		if v < low || v-low >= width {
			t.Errorf("%d in bucket %d = [%d, +%d)", v, i, low, width)
		}
		if i >= histBuckets {
			t.Errorf("%d: bucket %d out of range", v, i)
		}
	}
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	h.Record(-time.Second) // a clock step counts as 0
	s := h.Summary()
	if s.Count != 1001 || s.Max != 1000 {
		t.Fatalf("%+v", s)
	}
	for _, c := range []struct{ got, want float64 }{{s.P50, 500}, {s.P99, 990}, {s.P90, 900}} {
		if math.Abs(c.got-c.want)/c.want > 0.01 {
			t.Errorf("quantile %v, want %v ± 1%%", c.got, c.want)
		}
	}
}

// fakeServer is just enough of agentstore for wsbench: /v1/ws with
// subscribe, publish (to the channel's other subscribers, refused with
// RATE_LIMITED when refuse says so) and ping, POST /v1/runs publishing
// run.created to every subscriber of "runs" (but those skip names), and
// /metrics.
type fakeServer struct {
	mu     sync.Mutex
	subs   []*fakeSub
	offset int
	posts  int
	// skip, when set, is called with the subscriber index and the run
	// number; true means that subscriber does not get that event.
	skip func(sub, run int) bool
	// refuse, when set, is called with the number of each publish; true
	// means it is refused.
	refuse    func(n int) bool
	publishes int
	runIDs    []string
}

type fakeSub struct {
	mu      sync.Mutex
	ws      *websocket.Conn
	channel string
}

// write sends one frame to s.
func (s *fakeSub) write(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.ws.WriteMessage(websocket.TextMessage, frame)
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/ws":
		if r.URL.Query().Get("access_token") != "tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		self := &fakeSub{ws: ws}
		for {
			var in struct {
				Type, Ref, Channel, Event string
				Payload                   json.RawMessage
			}
			if err := ws.ReadJSON(&in); err != nil {
				return
			}
			switch in.Type {
			case "subscribe":
				f.mu.Lock()
				frame, _ := json.Marshal(map[string]any{"type": "subscribed", "ref": in.Ref, "channel": in.Channel, "offset": f.offset})
				self.write(frame)
				self.channel = in.Channel
				f.subs = append(f.subs, self)
				f.mu.Unlock()
			case "ping":
				frame, _ := json.Marshal(map[string]string{"type": "pong", "ref": in.Ref})
				self.write(frame)
			case "publish":
				f.mu.Lock()
				n := f.publishes
				f.publishes++
				if f.refuse != nil && f.refuse(n) {
					frame, _ := json.Marshal(map[string]any{"type": "error", "ref": in.Ref, "code": "RATE_LIMITED", "message": "too many events", "retryAfterMs": 5})
					self.write(frame)
					f.mu.Unlock()
					continue
				}
				f.offset++
				frame, _ := json.Marshal(map[string]any{"type": "event", "channel": in.Channel, "event": in.Event, "offset": f.offset, "data": in.Payload})
				for _, s := range f.subs {
					if s != self && s.channel == in.Channel {
						s.write(frame)
					}
				}
				f.mu.Unlock()
			}
		}
	case r.URL.Path == "/v1/runs" && r.Method == http.MethodPost:
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		var run struct {
			Metadata json.RawMessage `json:"metadata"`
		}
		if err := json.NewDecoder(r.Body).Decode(&run); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.offset++
		n := f.posts
		f.posts++
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
		f.runIDs = append(f.runIDs, id)
		frame, _ := json.Marshal(map[string]any{"type": "event", "channel": "runs", "event": "run.created", "offset": f.offset,
			"data": map[string]any{"id": id, "metadata": run.Metadata}})
		for i, s := range f.subs {
			if s.channel != "runs" || f.skip != nil && f.skip(i, n) {
				continue
			}
			s.write(frame)
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"agentName":"wsbench","status":"running","metadata":%s}`, id, run.Metadata)
	case r.URL.Path == "/metrics":
		f.mu.Lock()
		n := len(f.subs)
		f.mu.Unlock()
		fmt.Fprintf(w, "go_goroutines %d\ngo_memstats_heap_inuse_bytes %d\nprocess_open_fds %d\nagentstore_ws_connections %d\n", 10+2*n, 1<<20+n*10240, 5+n, n)
	default:
		http.NotFound(w, r)
	}
}

func TestLatencyAgainstFakeServer(t *testing.T) {
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var out, stderr bytes.Buffer
	code := run(context.Background(), []string{"-ws", srv.URL, "-token", "tok", "-subscribers", "20", "-rate", "200",
		"-warmup", "100ms", "-d", "500ms", "-drain", "2s", "-json", "-label", "fake"}, &out, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var r benchresult.WSLatency
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Mode != "latency" || r.Label != "fake" || r.CrossInstance || r.WarmupEvents != 20 || r.EventsOK != 100 || r.EventsFailed != 0 {
		t.Fatalf("%+v", r)
	}
	if r.Expected != 2000 || r.Delivered != 2000 || r.Missing != 0 || r.CompleteSubscribers != 20 || r.Latency.Count != 2000 ||
		r.Duplicates != 0 || r.Disconnected != 0 || r.PostStatus["201"] != 100 {
		t.Fatalf("%+v", r)
	}
	if r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 || r.PostLatency == nil || r.PostLatency.Count != 100 {
		t.Fatalf("latency %+v, POST %+v", r.Latency, r.PostLatency)
	}
	if r.Source != "http" || r.Channel != "runs" || r.RunID != "" {
		t.Fatalf("source %q, channel %q, run %q", r.Source, r.Channel, r.RunID)
	}
}

func TestLatencyWSSourceAgainstFakeServer(t *testing.T) {
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var out, stderr bytes.Buffer
	code := run(context.Background(), []string{"-ws", srv.URL, "-token", "tok", "-source", "ws", "-subscribers", "20", "-rate", "200",
		"-warmup", "100ms", "-d", "500ms", "-drain", "2s", "-json", "-label", "fake-ws"}, &out, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var r benchresult.WSLatency
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	// One run created, then every event published on its channel.
	if len(f.runIDs) != 1 || f.posts != 1 || f.publishes != 120 {
		t.Fatalf("runs %v, publishes %d", f.runIDs, f.publishes)
	}
	if r.Source != "ws" || r.RunID != f.runIDs[0] || r.Channel != "run:"+f.runIDs[0] || r.Label != "fake-ws" || r.PostLatency != nil {
		t.Fatalf("%+v", r)
	}
	if r.WarmupEvents != 20 || r.EventsOK != 100 || r.EventsFailed != 0 || r.PostStatus["ok"] != 100 || len(r.PostStatus) != 1 {
		t.Fatalf("%+v", r)
	}
	if r.Expected != 2000 || r.Delivered != 2000 || r.Missing != 0 || r.CompleteSubscribers != 20 || r.Latency.Count != 2000 ||
		r.Duplicates != 0 || r.Unexpected != 0 || r.Disconnected != 0 || r.AchievedRate <= 0 {
		t.Fatalf("%+v", r)
	}
	if r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
		t.Fatalf("latency %+v", r.Latency)
	}
	if bytes.Contains(out.Bytes(), []byte(`"post_latency_ms"`)) || !bytes.Contains(out.Bytes(), []byte(`"source": "ws"`)) {
		t.Errorf("JSON:\n%s", out.Bytes())
	}
	var b bytes.Buffer
	writeLatencyText(&b, &r)
	if !strings.Contains(b.String(), "publishes    100 sent, 0 failed (ok=100)") || strings.Contains(b.String(), "POST ") {
		t.Error(b.String())
	}
}

func TestLatencyWSSourceCountsRefusedPublishes(t *testing.T) {
	// Publishes 20-29 (the first ten measured; 0-9 are the warm-up) are
	// refused, and no subscriber gets them.
	f := &fakeServer{refuse: func(n int) bool { return n >= 20 && n < 30 }}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := Config{WS: srv.URL, API: srv.URL, Token: "tok", Source: "ws", Subscribers: 3, Rate: 100, Warmup: 100 * time.Millisecond,
		Duration: 500 * time.Millisecond, Drain: 300 * time.Millisecond, Publishers: 1, MaxFailures: 0, ConnectParallel: 2, Timeout: 5 * time.Second}
	r, err := RunLatency(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r.EventsOK != 40 || r.EventsFailed != 10 || r.PostStatus["RATE_LIMITED"] != 10 || r.PostStatus["ok"] != 40 ||
		r.Expected != 120 || r.Delivered != 120 || r.Missing != 0 || r.Unexpected != 0 || r.CompleteSubscribers != 3 {
		t.Fatalf("%+v", r)
	}
	if len(r.PostErrorSamples) != 1 || r.PostErrorSamples[0] != "RATE_LIMITED: too many events" {
		t.Fatalf("samples %q", r.PostErrorSamples)
	}

	// Through run, more failures than -max-failures: exit 1, with the
	// result.
	f.mu.Lock()
	f.publishes = 0
	f.mu.Unlock()
	var out, stderr bytes.Buffer
	code := run(context.Background(), []string{"-ws", srv.URL, "-token", "tok", "-source", "ws", "-subscribers", "2", "-rate", "100",
		"-warmup", "100ms", "-d", "500ms", "-drain", "300ms", "-max-failures", "0.1", "-json"}, &out, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "10 of 50 publishes failed") || !bytes.Contains(out.Bytes(), []byte(`"RATE_LIMITED": 10`)) {
		t.Fatalf("exit %d: %s\n%s", code, stderr.String(), out.Bytes())
	}
}

func TestLatencyCountsMissingEvents(t *testing.T) {
	// Subscriber 0 misses every measured run after the tenth (runs 0-9
	// are the warm-up here).
	f := &fakeServer{skip: func(sub, run int) bool { return sub == 0 && run >= 20 }}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := Config{WS: srv.URL, API: srv.URL, Token: "tok", Subscribers: 3, Rate: 100, Warmup: 100 * time.Millisecond,
		Duration: 500 * time.Millisecond, Drain: 300 * time.Millisecond, Publishers: 4, MaxFailures: 0, ConnectParallel: 2, Timeout: 5 * time.Second}
	r, err := RunLatency(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r.EventsOK != 50 || r.Expected != 150 || r.Missing != 40 || r.Delivered != 110 || r.CompleteSubscribers != 2 {
		t.Fatalf("%+v", r)
	}
}

func TestIdleAgainstFakeServer(t *testing.T) {
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := Config{WS: srv.URL, Token: "tok", Idle: 50, IdleSubscribe: true, Hold: 2 * time.Second, ServerPIDs: []int{os.Getpid()},
		ConnectParallel: 8, Timeout: 5 * time.Second}
	r, err := RunIdle(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if r.Connections != 50 || r.RSSBeforeKiB <= 0 || len(r.RSSSamplesKiB) != 2 || r.Disconnected != 0 || r.Held == nil || r.Before == nil {
		t.Fatalf("%+v", r)
	}
	if r.Held.WSConnections != 50 || r.GoroutinesPerConn != 2 || r.HeapKiBPerConn != 10 {
		t.Fatalf("metrics %+v %+v: %v goroutines/conn, %v KiB/conn", r.Before, r.Held, r.GoroutinesPerConn, r.HeapKiBPerConn)
	}
	var b bytes.Buffer
	writeIdleText(&b, r)
	if !strings.Contains(b.String(), "50 idle connections") {
		t.Error(b.String())
	}
}

func TestBenchEvent(t *testing.T) {
	frame := []byte(`{"type":"event","channel":"runs","event":"run.created","offset":7,"data":{"id":"x","agentName":"wsbench",` +
		`"metadata":{"wsbenchT": "1760000000123456789", "wsbench":"ab12", "wsbenchSeq": 42},"status":"running"}}`)
	runs, created := channelPattern("runs"), eventPattern("run.created")
	bench, seq, sent, ok := benchEvent(frame, runs, created)
	if !ok || string(bench) != "ab12" || seq != 42 || sent != 1760000000123456789 {
		t.Fatalf("%q %d %d %v", bench, seq, sent, ok)
	}
	// A client publish: the keys in the payload, on a run's channel.
	const id = "0b4c8a53-7f7e-4c4c-9a55-0a2d8c7e3f11"
	pub := []byte(`{"type":"event","channel":"run:` + id + `","event":"wsbench.tick","offset":3,` +
		`"data":{"wsbench":"ab12","wsbenchSeq":7,"wsbenchT":"1760000000000000001"}}`)
	onRun, tick := channelPattern("run:"+id), eventPattern("wsbench.tick")
	if bench, seq, sent, ok := benchEvent(pub, onRun, tick); !ok || string(bench) != "ab12" || seq != 7 || sent != 1760000000000000001 {
		t.Fatalf("publish: %q %d %d %v", bench, seq, sent, ok)
	}
	for _, m := range [][2][]byte{{runs, tick}, {onRun, created}, {channelPattern("run:0b4c8a53"), tick}} {
		if _, _, _, ok := benchEvent(pub, m[0], m[1]); ok {
			t.Errorf("publish accepted as %s %s", m[0], m[1])
		}
	}
	for _, bad := range []string{
		strings.Replace(string(frame), `"channel":"runs"`, `"channel":"run:x"`, 1),
		strings.Replace(string(frame), `run.created`, `run.updated`, 1),
		strings.Replace(string(frame), `"wsbenchSeq": 42`, `"wsbenchSeq": "42"`, 1),
		strings.Replace(string(frame), `"wsbenchT": "1760000000123456789"`, `"wsbenchT": 1760000000123456789`, 1),
		strings.Replace(string(frame), `"ab12"`, `"a\"b"`, 1),
		`{"type":"error","ref":"","code":"X","message":"y"}`,
	} {
		if _, _, _, ok := benchEvent([]byte(bad), runs, created); ok {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestCPUParsers(t *testing.T) {
	d, err := parseProcStat("1234 (agent store) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0")
	if err != nil || d != 3*time.Second {
		t.Fatalf("%v, %v", d, err)
	}
	busy, total, err := parseStatCPU("cpu  100 10 50 800 20 5 5 10 0 0")
	if err != nil || busy != 180 || total != 1000 {
		t.Fatalf("%d %d %v", busy, total, err)
	}
	if _, err := readCPU([]int{os.Getpid()}); err != nil {
		t.Fatal(err)
	}
}
