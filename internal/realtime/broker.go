package realtime

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/google/uuid"
)

// chanKey names a channel inside a tenant. Channels of different tenants
// never share a key, so no lookup can cross tenants.
type chanKey struct {
	tenant  uuid.UUID
	channel string
}

// event is one published event of one channel.
type event struct {
	key    chanKey
	offset uint64
	name   string
	data   json.RawMessage
	// origin is the connection that published it, "" for the server; that
	// connection does not receive it back.
	origin string

	frameOnce sync.Once
	frameB    []byte
}

// frame is the event's "event" frame, encoded once however many
// subscribers receive it.
func (e *event) frame() []byte {
	e.frameOnce.Do(func() {
		b, err := json.Marshal(eventFrame{Type: typeEvent, Channel: e.key.channel, Event: e.name, Offset: e.offset, Data: e.data})
		if err != nil {
			// data was checked JSON when published; keep the frame valid anyway.
			b, _ = json.Marshal(eventFrame{Type: typeEvent, Channel: e.key.channel, Event: e.name, Offset: e.offset, Data: json.RawMessage("null")})
		}
		e.frameB = b
	})
	return e.frameB
}

// broker numbers events, keeps their bounded history and hands every event
// of every channel to the hub's dispatch func, on every instance, in offset
// order per channel.
type broker interface {
	// publish appends one event with the same name, data and origin to
	// each of keys, in order.
	publish(ctx context.Context, keys []chanKey, name string, data json.RawMessage, origin string) error
	// snapshot returns the channel's current offset and, when since is not
	// nil, its retained events with an offset above *since, oldest first.
	// A channel without state starts at a time-derived offset, so offsets
	// keep growing even after a channel's state expired.
	snapshot(ctx context.Context, key chanKey, since *uint64) (top uint64, events []*event, err error)
	// stop ends the broker's goroutines and returns once they have.
	stop()
}

// recovered reports whether events hold every event after since up to
// top, and returns those events.
func recovered(since, top uint64, events []*event) ([]*event, bool) {
	if since == top {
		return nil, true
	}
	if since > top {
		return nil, false
	}
	need := top - since
	var out []*event
	for _, e := range events {
		if e.offset > since && e.offset <= top {
			out = append(out, e)
		}
	}
	if uint64(len(out)) != need || out[0].offset != since+1 {
		return nil, false
	}
	for i := 1; i < len(out); i++ {
		if out[i].offset != out[i-1].offset+1 {
			return nil, false
		}
	}
	return out, true
}

// memBroker is the broker of a single instance: offsets and history live
// in this process.
type memBroker struct {
	size     int
	ttl      time.Duration
	dispatch func(*event)
	// start is the offset a channel without live state starts at.
	start func(key chanKey, now time.Time) uint64

	mu    sync.Mutex
	chans map[chanKey]*memChannel

	cancel context.CancelFunc // ends the sweep
	wg     sync.WaitGroup
}

// memChannel is the state of one channel: its last offset and the newest
// events, which all expire ttl after the last publish.
type memChannel struct {
	top     uint64
	log     []*event
	touched time.Time
}

// clockStart starts a channel at the clock in microseconds, so that its
// offsets stay above those of any earlier life of the channel, and a
// client's stale "since" can never look recoverable.
func clockStart(_ chanKey, now time.Time) uint64 { return uint64(now.UnixMicro()) }

// newMemBroker returns a memBroker whose new channels start at start
// (nil: clockStart), and starts the goroutine that forgets expired
// channels until stop.
func newMemBroker(size int, ttl time.Duration, dispatch func(*event), start func(chanKey, time.Time) uint64) *memBroker {
	if start == nil {
		start = clockStart
	}
	b := &memBroker{
		size: size, ttl: ttl, dispatch: dispatch, start: start,
		chans: make(map[chanKey]*memChannel),
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.wg.Go(func() { b.sweep(ctx) })
	return b
}

// channel returns the live state of key, starting it when it has none or
// it expired; an expired channel's offsets continue. b.mu must be held.
func (b *memBroker) channel(key chanKey, now time.Time) *memChannel {
	ch := b.chans[key]
	if ch == nil || now.Sub(ch.touched) > b.ttl {
		seed := b.start(key, now)
		if ch != nil && ch.top >= seed {
			seed = ch.top
		}
		ch = &memChannel{top: seed, touched: now}
		b.chans[key] = ch
	}
	return ch
}

func (b *memBroker) publish(_ context.Context, keys []chanKey, name string, data json.RawMessage, origin string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for _, key := range keys {
		ch := b.channel(key, now)
		ch.top++
		ch.touched = now
		e := &event{key: key, offset: ch.top, name: name, data: data, origin: origin}
		ch.log = append(ch.log, e)
		if len(ch.log) > b.size {
			ch.log = ch.log[len(ch.log)-b.size:]
		}
		// Under b.mu, so that the events of a channel reach the hub in
		// offset order and a snapshot sees either all or none of them.
		b.dispatch(e)
	}
	return nil
}

func (b *memBroker) snapshot(_ context.Context, key chanKey, since *uint64) (uint64, []*event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.channel(key, time.Now())
	if since == nil {
		return ch.top, nil, nil
	}
	var out []*event
	for _, e := range ch.log {
		if e.offset > *since {
			out = append(out, e)
		}
	}
	return ch.top, out, nil
}

// tops returns the last offset of every live channel.
func (b *memBroker) tops() map[chanKey]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[chanKey]uint64, len(b.chans))
	for k, ch := range b.chans {
		out[k] = ch.top
	}
	return out
}

// reset forgets every channel.
func (b *memBroker) reset() {
	b.mu.Lock()
	clear(b.chans)
	b.mu.Unlock()
}

// sweep forgets expired channels until ctx ends.
func (b *memBroker) sweep(ctx context.Context) {
	t := time.NewTicker(min(b.ttl, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.mu.Lock()
			for k, ch := range b.chans {
				if now.Sub(ch.touched) > b.ttl {
					delete(b.chans, k)
				}
			}
			b.mu.Unlock()
		}
	}
}

// stop ends the sweep and returns once it has. The broker still numbers
// and dispatches events afterwards; expired channels are then forgotten
// only when next used.
func (b *memBroker) stop() {
	b.cancel()
	b.wg.Wait()
}
