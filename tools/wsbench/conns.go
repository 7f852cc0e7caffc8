package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/agentstore/agentstore/tools/loopback"
)

// channelRuns is the channel of every run event of the token's tenant.
const channelRuns = "runs"

// reply is the part of a server frame the handshake reads.
type reply struct {
	Type    string `json:"type"`
	Ref     string `json:"ref"`
	Channel string `json:"channel"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// openConns opens n WebSocket connections to u, parallel at a time, each
// subscribed to channel unless it is "". On error it closes those it
// opened and returns the first error.
func openConns(ctx context.Context, u, channel string, n, parallel int, timeout time.Duration) ([]*websocket.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dialer := loopback.WSDialer(timeout)
	conns := make([]*websocket.Conn, n)
	sem := make(chan struct{}, parallel)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	fail := func(i int, err error) {
		once.Do(func() {
			firstErr = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
			cancel()
		})
	}
	for i := range conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialOne(ctx, dialer, u, channel, timeout)
			if err != nil {
				fail(i, err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil, firstErr
	}
	return conns, nil
}

// dialOne opens one connection and, unless channel is "", subscribes it
// to channel and waits for the "subscribed" reply.
func dialOne(ctx context.Context, dialer *websocket.Dialer, u, channel string, timeout time.Duration) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, resp, err := dialer.DialContext(dctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake: %s: %w", resp.Status, err)
		}
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if channel == "" {
		return c, nil
	}
	deadline := time.Now().Add(timeout)
	_ = c.SetWriteDeadline(deadline)
	_ = c.SetReadDeadline(deadline)
	const ref = "1"
	if err := c.WriteJSON(map[string]string{"type": "subscribe", "ref": ref, "channel": channel}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
		var r reply
		if err := json.Unmarshal(data, &r); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("subscribe: unreadable frame: %w", err)
		}
		switch {
		case r.Type == "subscribed" && r.Ref == ref:
			_ = c.SetWriteDeadline(time.Time{})
			_ = c.SetReadDeadline(time.Time{})
			return c, nil
		case r.Type == "error":
			_ = c.Close()
			return nil, fmt.Errorf("subscribe: %s: %s", r.Code, r.Message)
		}
	}
}

// closeAll sends every connection a normal close frame, gives the readers
// up to grace to see the server's answer (done is closed when they all
// returned), then closes the sockets.
func closeAll(conns []*websocket.Conn, done <-chan struct{}, grace time.Duration) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		})
	}
	wg.Wait()
	t := time.NewTimer(grace)
	select {
	case <-done:
	case <-t.C:
	}
	t.Stop()
	for _, c := range conns {
		_ = c.Close()
	}
}

// samples keeps the first few distinct messages of a kind of error.
type samples struct {
	mu   sync.Mutex
	list []string
	n    atomic.Int64
}

// maxSamples bounds the distinct messages a samples keeps.
const maxSamples = 5

func (s *samples) add(msg string) {
	s.n.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) >= maxSamples {
		return
	}
	for _, m := range s.list {
		if m == msg {
			return
		}
	}
	s.list = append(s.list, msg)
}

func (s *samples) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.list...)
}

// closeText describes why a connection ended.
func closeText(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return "close " + strconv.Itoa(ce.Code) + " " + ce.Text
	}
	return err.Error()
}
