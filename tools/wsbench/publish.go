package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/tools/loopback"
)

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
