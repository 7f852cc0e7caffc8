package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// REST operations of the mix, with their weights.
var restMix = []struct {
	op     string
	weight int
}{
	{opCreate, 22}, {opStep, 25}, {opToolCall, 8}, {opPatch, 15}, {opList, 15}, {opGet, 10}, {opStats, 5},
}

// Names of the REST operations.
const (
	opCreate   = "create run (3 steps)"
	opStep     = "append step"
	opToolCall = "append tool call"
	opPatch    = "patch run (terminal)"
	opList     = "list runs"
	opGet      = "get run (steps, tool calls)"
	opStats    = "run stats"
)

// maxActive bounds the runs kept open for appends: past it, a create
// becomes a patch.
const maxActive = 200

// maxSamples bounds the distinct failure messages kept.
const maxSamples = 8

// counters are the load's running totals.
type counters struct {
	requests  atomic.Int64 // REST requests sent
	failures  atomic.Int64 // REST requests without the expected status
	conflicts atomic.Int64 // 409s of appends and patches racing a patch: expected
	skipped   atomic.Int64 // REST ticks dropped: every worker busy, or the cap reached
	byOp      map[string]*opCounter

	sessions   atomic.Int64 // WebSocket sessions started
	wsFailures atomic.Int64 // sessions that failed (see session)
	events     atomic.Int64 // event frames received
	publishes  atomic.Int64 // client events published
	errFrames  atomic.Int64 // error frames received

	mu      sync.Mutex
	samples []string
}

// opCounter counts one REST operation.
type opCounter struct{ n, failed atomic.Int64 }

func newCounters() *counters {
	c := &counters{byOp: map[string]*opCounter{}}
	for _, m := range restMix {
		c.byOp[m.op] = &opCounter{}
	}
	return c
}

// fail keeps the first few distinct failure messages.
func (c *counters) fail(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) >= maxSamples {
		return
	}
	for _, s := range c.samples {
		if s == msg {
			return
		}
	}
	c.samples = append(c.samples, msg)
}

// restLoad drives the REST mix.
type restLoad struct {
	cfg    Config
	base   string
	client *http.Client
	c      *counters

	mu     sync.Mutex
	active []string // ids of running runs, for appends and patches
	seq    atomic.Int64
}

// run sends cfg.Rate requests per second, open loop, until stop ends or
// the request cap is reached, then waits for the requests in flight,
// which only ctx cuts short.
func (l *restLoad) run(ctx, stop context.Context) {
	jobs := make(chan struct{}, l.cfg.Workers)
	var wg sync.WaitGroup
	for range l.cfg.Workers {
		wg.Go(func() {
			for range jobs {
				l.one(ctx)
			}
		})
	}
	interval := time.Duration(float64(time.Second) / l.cfg.Rate)
	t := time.NewTicker(interval)
	defer func() {
		t.Stop()
		close(jobs)
		wg.Wait()
	}()
	for {
		select {
		case <-stop.Done():
			return
		case <-t.C:
		}
		if l.c.requests.Load() >= l.cfg.MaxRequests {
			l.c.skipped.Add(1)
			continue
		}
		select {
		case jobs <- struct{}{}:
		default:
			l.c.skipped.Add(1) // every worker busy: the server is slower than the rate
		}
	}
}

// pickOp draws an operation from the mix.
func pickOp() string {
	total := 0
	for _, m := range restMix {
		total += m.weight
	}
	n := rand.IntN(total)
	for _, m := range restMix {
		if n < m.weight {
			return m.op
		}
		n -= m.weight
	}
	return opList
}

// runID returns a random running run, removing it when take is set.
func (l *restLoad) runID(take bool) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.active) == 0 {
		return "", false
	}
	i := rand.IntN(len(l.active))
	id := l.active[i]
	if take {
		l.active[i] = l.active[len(l.active)-1]
		l.active = l.active[:len(l.active)-1]
	}
	return id, true
}

// someRun is a running run's id, for the WebSocket sessions.
func (l *restLoad) someRun() string {
	id, _ := l.runID(false)
	return id
}

// one sends one operation of the mix.
func (l *restLoad) one(ctx context.Context) {
	op := pickOp()
	l.mu.Lock()
	n := len(l.active)
	l.mu.Unlock()
	switch {
	case op == opCreate && n >= maxActive:
		op = opPatch
	case op != opCreate && op != opList && op != opStats && n == 0:
		op = opCreate
	}
	var (
		method, path string
		body         []byte
		expect       = []int{http.StatusOK}
		id           string
	)
	switch op {
	case opCreate:
		method, path, expect = http.MethodPost, "/v1/runs", []int{http.StatusCreated}
		k := l.seq.Add(1)
		var steps []string
		for i := 1; i <= 3; i++ {
			steps = append(steps, fmt.Sprintf(`{"type":"llm","name":"step-%d","status":"succeeded","input":{"prompt":"soak %d"},"output":{"text":"ok","tokens":%d}}`, i, k, i))
		}
		body = fmt.Appendf(nil, `{"agentName":"soak-%d","status":"running","input":{"prompt":"soak"},"metadata":{"soak":%d},"model":"gpt-4o-mini","steps":[%s]}`,
			k%5, k, strings.Join(steps, ","))
	case opStep:
		id, _ = l.runID(false)
		method, path, expect = http.MethodPost, "/v1/runs/"+id+"/steps", []int{http.StatusCreated, http.StatusConflict}
		body = []byte(`{"type":"tool","name":"lookup","status":"succeeded","input":{"q":"soak"},"output":{"hits":2}}`)
	case opToolCall:
		id, _ = l.runID(false)
		method, path, expect = http.MethodPost, "/v1/runs/"+id+"/tool-calls", []int{http.StatusCreated, http.StatusConflict}
		body = []byte(`{"toolName":"search","status":"succeeded","arguments":{"q":"soak"},"result":{"n":1},"durationMs":7}`)
	case opPatch:
		id, _ = l.runID(true)
		method, path, expect = http.MethodPatch, "/v1/runs/"+id, []int{http.StatusOK, http.StatusConflict}
		switch rand.IntN(4) {
		case 0:
			body = []byte(`{"status":"failed","error":"soak failure"}`)
		case 1:
			body = []byte(`{"status":"cancelled"}`)
		default:
			body = []byte(`{"status":"succeeded","output":{"text":"done"},"metadata":{"soak":"done"}}`)
		}
	case opList:
		method, path = http.MethodGet, "/v1/runs?limit=20"
		switch rand.IntN(3) {
		case 0:
			path += "&status=running"
		case 1:
			path += fmt.Sprintf("&agentName=soak-%d", rand.IntN(5))
		}
	case opGet:
		id, _ = l.runID(false)
		method, path = http.MethodGet, "/v1/runs/"+id+"?include=steps,toolCalls"
	case opStats:
		method, path = http.MethodGet, "/v1/runs/stats?groupBy="+[]string{"status", "agentName"}[rand.IntN(2)]
	}
	resp, ok := l.send(ctx, op, method, path, body, expect)
	if !ok {
		return
	}
	switch op {
	case opCreate:
		var r struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(resp, &r) == nil && r.ID != "" {
			l.mu.Lock()
			l.active = append(l.active, r.ID)
			l.mu.Unlock()
		}
	case opList:
		var r struct {
			NextCursor *string `json:"nextCursor"`
		}
		if json.Unmarshal(resp, &r) == nil && r.NextCursor != nil && rand.IntN(3) == 0 && l.c.requests.Load() < l.cfg.MaxRequests {
			l.send(ctx, op, http.MethodGet, "/v1/runs?limit=20&cursor="+url.QueryEscape(*r.NextCursor), nil, []int{http.StatusOK})
		}
	}
}

// send sends one request and returns the body of an expected answer.
func (l *restLoad) send(ctx context.Context, op, method, path string, body []byte, expect []int) ([]byte, bool) {
	l.c.requests.Add(1)
	oc := l.c.byOp[op]
	oc.n.Add(1)
	fail := func(msg string) ([]byte, bool) {
		if ctx.Err() != nil {
			return nil, false // the run is ending: not the server's failure
		}
		l.c.failures.Add(1)
		oc.failed.Add(1)
		l.c.fail(op + ": " + msg)
		return nil, false
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, rd)
	if err != nil {
		return fail(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+l.cfg.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return fail(err.Error())
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	_ = resp.Body.Close()
	if err != nil {
		return fail(err.Error())
	}
	for _, code := range expect {
		if resp.StatusCode != code {
			continue
		}
		if code == http.StatusConflict {
			l.c.conflicts.Add(1)
			return nil, false
		}
		return b, true
	}
	msg := string(b)
	if len(msg) > 160 {
		msg = msg[:160]
	}
	return fail(fmt.Sprintf("%s %s: %d %s", method, strings.SplitN(path, "?", 2)[0], resp.StatusCode, msg))
}

// wsLoad holds WSClients connections, each living a random while.
type wsLoad struct {
	cfg    Config
	url    string // ws://…/v1/ws?access_token=…
	dialer *websocket.Dialer
	runs   func() string // a running run's id, or ""
	c      *counters
}

// run keeps cfg.WSClients sessions going until ctx ends.
func (w *wsLoad) run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range w.cfg.WSClients {
		wg.Go(func() {
			// Spread the first connections over the first second.
			sleep(ctx, time.Duration(i)*time.Second/time.Duration(w.cfg.WSClients))
			for ctx.Err() == nil {
				w.session(ctx)
				sleep(ctx, time.Duration(100+rand.IntN(400))*time.Millisecond)
			}
		})
	}
	wg.Wait()
}

// session is one connection's life: connect, subscribe to "runs" and
// often to a run's channel, publish there now and then, read everything,
// and after a random hold leave, cleanly or by dropping the connection.
// It fails when the handshake or a subscription fails, when the server
// drops the connection, or when the server answers with an error frame.
func (w *wsLoad) session(ctx context.Context) {
	w.c.sessions.Add(1)
	var failed atomic.Bool // a session fails once, from its goroutine or its reader's
	fail := func(msg string) {
		if ctx.Err() != nil || !failed.CompareAndSwap(false, true) {
			return
		}
		w.c.wsFailures.Add(1)
		w.c.fail("websocket: " + msg)
	}
	dctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	conn, resp, err := w.dialer.DialContext(dctx, w.url, nil)
	cancel()
	if err != nil {
		if resp != nil {
			fail(fmt.Sprintf("handshake: %s", resp.Status))
		} else {
			fail("handshake: " + err.Error())
		}
		return
	}
	defer conn.Close()
	channel := ""
	if id := w.runs(); id != "" && rand.IntN(10) < 7 {
		channel = "run:" + id
	}
	for i, ch := range []string{"runs", channel} {
		if ch == "" {
			continue
		}
		if err := subscribe(conn, fmt.Sprint(i+1), ch, w.cfg.Timeout); err != nil {
			fail(err.Error())
			return
		}
	}

	done := make(chan error, 1)
	go func() {
		for {
			_, r, err := conn.NextReader()
			if err != nil {
				done <- err
				return
			}
			b, err := io.ReadAll(r)
			if err != nil {
				done <- err
				return
			}
			switch {
			case bytes.Contains(b, []byte(`"type":"event"`)):
				w.c.events.Add(1)
			case bytes.Contains(b, []byte(`"type":"error"`)):
				w.c.errFrames.Add(1)
				fail("error frame: " + string(b))
			}
		}
	}()

	hold := w.cfg.WSHoldMin + rand.N(w.cfg.WSHoldMax-w.cfg.WSHoldMin+1)
	end := time.NewTimer(hold)
	defer end.Stop()
	var tick <-chan time.Time
	if channel != "" && w.cfg.PublishRate > 0 {
		// Each connection's share of the publish rate.
		every := time.Duration(float64(w.cfg.WSClients) / w.cfg.PublishRate * float64(time.Second))
		t := time.NewTicker(every/2 + rand.N(every))
		defer t.Stop()
		tick = t.C
	}
	readerEnded := false
loop:
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			break loop
		case <-end.C:
			break loop
		case err := <-done:
			readerEnded = true
			fail("dropped by the server: " + err.Error())
			return
		case <-tick:
			frame := fmt.Sprintf(`{"type":"publish","ref":"p%d","channel":%q,"event":"agent.thinking","payload":{"n":%d,"text":"soak"}}`, n, channel, n)
			_ = conn.SetWriteDeadline(time.Now().Add(w.cfg.Timeout))
			if err := conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
				fail("publish: " + err.Error())
				break loop
			}
			w.c.publishes.Add(1)
		}
	}
	if !readerEnded && rand.IntN(2) == 0 {
		// A clean close: send ours, wait for the server's answer.
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
		t := time.NewTimer(2 * time.Second)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	_ = conn.Close() // otherwise an abrupt drop of the TCP connection
}

// subscribe subscribes conn to channel and waits for the reply.
func subscribe(conn *websocket.Conn, ref, channel string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	_ = conn.SetWriteDeadline(deadline)
	_ = conn.SetReadDeadline(deadline)
	defer conn.SetReadDeadline(time.Time{})
	if err := conn.WriteJSON(map[string]string{"type": "subscribe", "ref": ref, "channel": channel}); err != nil {
		return fmt.Errorf("subscribe %s: %w", channel, err)
	}
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", channel, err)
		}
		var r struct {
			Type, Ref, Code, Message string
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("subscribe %s: unreadable reply", channel)
		}
		switch {
		case r.Type == "subscribed" && r.Ref == ref:
			return nil
		case r.Type == "error" && r.Ref == ref:
			return fmt.Errorf("subscribe %s: %s %s", channel, r.Code, r.Message)
		}
	}
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
