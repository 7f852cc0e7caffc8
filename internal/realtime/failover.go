package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// primary is a broker that instances share, and that can be unreachable.
type primary interface {
	broker
	// run starts delivering the events of every instance. link is called
	// with false, and the cause, when the connection that delivers them is
	// lost, and with true when it is back.
	run(link func(up bool, cause error))
	// ping reports whether the primary answers.
	ping(ctx context.Context) error
	// raise sets each channel's offset to at least its top + 1.
	raise(ctx context.Context, tops map[chanKey]uint64) error
}

// failover is the broker of an instance that shares events through a
// primary broker (Redis) and keeps serving its own subscribers through a
// local one (in process) while the primary is unreachable.
//
// It goes local-only when a publish or snapshot on the primary fails, or
// when the primary's link that delivers the events of other instances is
// lost: events written through this instance still reach its own
// subscribers, numbered by the local broker (see localStart). Once the
// primary answers again and its link is back (a probe checks every
// probeEvery, and the link says when it is back), it rejoins: the offset
// of every channel numbered locally meanwhile is raised in the primary
// above the local one, and resync closes the subscribed connections with
// 1012, because events written through other instances during the outage
// never reached this one; a resubscription with since says so
// ("recovered": false).
type failover struct {
	primary primary
	local   *memBroker
	resync  func()
	log     *slog.Logger
	m       *Metrics

	// modeMu is held for reading by each publish and snapshot, and for
	// writing to leave local-only, so that no local event is numbered
	// after the primary's offsets were raised above the local ones.
	modeMu    sync.RWMutex
	localOnly atomic.Bool
	linkUp    atomic.Bool // the primary's link delivers events

	ctx    context.Context // ends with stop
	cancel context.CancelFunc

	mu      sync.Mutex // orders starting a probe with stop
	stopped bool
	wg      sync.WaitGroup // the probes
}

// probeEvery is how often a local-only failover checks whether the
// primary is back.
const probeEvery = time.Second

// localStart is where the local broker of a failover starts a channel:
// above the clock in microseconds, which is above any offset Redis gave
// out while the clocks of this host and of Redis agree, and above the
// highest offset this instance sent the channel's subscribers (sent),
// whatever the clocks say. A subscriber thus never sees an offset go back
// when its instance goes local-only.
func localStart(sent func(chanKey) uint64) func(chanKey, time.Time) uint64 {
	return func(key chanKey, now time.Time) uint64 {
		return max(clockStart(key, now), sent(key))
	}
}

// newFailover wraps primary and local, and starts the primary's delivery.
// resync closes the connections that may have missed events; log and m
// report the mode.
func newFailover(p primary, local *memBroker, resync func(), log *slog.Logger, m *Metrics) *failover {
	f := &failover{primary: p, local: local, resync: resync, log: log, m: m}
	f.linkUp.Store(true)
	f.ctx, f.cancel = context.WithCancel(context.Background())
	p.run(f.link)
	return f
}

func (f *failover) publish(ctx context.Context, keys []chanKey, name string, data json.RawMessage, origin string) error {
	f.modeMu.RLock()
	defer f.modeMu.RUnlock()
	if !f.localOnly.Load() {
		err := f.primary.publish(ctx, keys, name, data, origin)
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, errInvalidEvent) {
			return err
		}
		f.goLocal(fmt.Errorf("publish: %w", err))
	}
	return f.local.publish(ctx, keys, name, data, origin)
}

func (f *failover) snapshot(ctx context.Context, key chanKey, since *uint64) (uint64, []*event, error) {
	f.modeMu.RLock()
	defer f.modeMu.RUnlock()
	if !f.localOnly.Load() {
		top, events, err := f.primary.snapshot(ctx, key, since)
		if err == nil || errors.Is(err, context.Canceled) {
			return top, events, err
		}
		f.goLocal(err)
	}
	return f.local.snapshot(ctx, key, since)
}

// link follows the primary's link: lost, the failover goes local-only;
// back, it rejoins (or the probe does, once the primary answers commands
// again).
func (f *failover) link(up bool, cause error) {
	if !up {
		if f.linkUp.Swap(false) {
			f.goLocal(cause)
		}
		return
	}
	if !f.linkUp.Swap(true) {
		f.rejoin(f.ctx)
	}
}

// goLocal makes the failover local-only, unless it already is, and starts
// the probe, unless it was stopped.
func (f *failover) goLocal(cause error) {
	if !f.localOnly.CompareAndSwap(false, true) {
		return
	}
	f.log.Warn("realtime: Redis unreachable; events reach this instance's subscribers only until it is back", "err", cause)
	f.m.setLocalOnly(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.wg.Go(f.probe)
	}
}

// probe rejoins once the primary answers and its link is back, unless
// the link did first.
func (f *failover) probe() {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for f.localOnly.Load() {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		if f.linkUp.Load() && f.primary.ping(f.ctx) == nil {
			f.rejoin(f.ctx)
		}
	}
}

// rejoin leaves local-only: it raises in the primary the offset of every
// channel numbered locally meanwhile to above the local offsets, forgets
// the local channels, then closes the subscribed connections so that they
// resubscribe. It stays local-only when the primary failed again.
func (f *failover) rejoin(ctx context.Context) {
	f.modeMu.Lock()
	if !f.localOnly.Load() {
		f.modeMu.Unlock()
		return // the probe or the link did it
	}
	if err := f.primary.raise(ctx, f.local.tops()); err != nil {
		f.modeMu.Unlock()
		f.log.Warn("realtime: Redis still failing", "err", err)
		return
	}
	f.local.reset()
	f.localOnly.Store(false)
	f.m.setLocalOnly(false)
	f.modeMu.Unlock()
	f.log.Warn("realtime: Redis is back; closing subscribed connections so they resync")
	f.resync()
}

// stop ends the probe and the primary's and the local broker's goroutines,
// and returns once every one of them has. Publish and snapshot keep
// working afterwards, without a probe.
func (f *failover) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.cancel()
	f.primary.stop()
	f.wg.Wait()
	f.local.stop()
}
