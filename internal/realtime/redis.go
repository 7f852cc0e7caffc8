package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Redis layout, for a channel C of tenant T under prefix P:
//
//	P{T}:C:seq   string  the channel's last offset
//	P{T}:C:log   stream  the newest HistorySize events, entry id "0-<offset>"
//	P events     pub/sub every event of every channel, to every instance
//
// The tenant is a hash tag, so the keys one publish touches share a slot.
// Both keys expire HistoryTTL after the channel's last publish. A channel
// without a seq starts at the Redis server's clock in microseconds, so its
// offsets stay above those of any expired earlier life of the channel, and
// a client's stale "since" can never look recoverable.

// publishScript appends one event to each channel of KEYS (pairs of seq
// and log keys) and publishes it, all in one round trip and atomically, so
// that the pub/sub order of a channel is its offset order.
//
// ARGV: 1 pub/sub channel, 2 history size, 3 TTL in ms, 4 body, 5.. the
// public channel names. Each pub/sub message is "<channel>\n<offset>\n<body>".
var publishScript = redis.NewScript(`
local t = redis.call('TIME')
local seed = t[1] .. string.format('%06d', tonumber(t[2]))
local out = {}
for i = 1, #KEYS / 2 do
  local seq, log = KEYS[2*i-1], KEYS[2*i]
  if redis.call('SET', seq, seed, 'NX', 'PX', ARGV[3]) then
    redis.call('DEL', log)
  end
  local off = string.format('%d', redis.call('INCR', seq))
  redis.call('XADD', log, 'MAXLEN', ARGV[2], '0-' .. off, 'b', ARGV[4])
  redis.call('PEXPIRE', seq, ARGV[3])
  redis.call('PEXPIRE', log, ARGV[3])
  redis.call('PUBLISH', ARGV[1], ARGV[4+i] .. '\n' .. off .. '\n' .. ARGV[4])
  out[i] = off
end
return out
`)

// snapshotScript returns a channel's offset and, when ARGV[2] is not
// empty, its retained events from id ARGV[2] on (at most ARGV[3]). A
// channel without state is started, as publishScript would.
//
// KEYS: seq, log. ARGV: 1 TTL in ms, 2 first stream id or "", 3 count.
var snapshotScript = redis.NewScript(`
local top = redis.call('GET', KEYS[1])
if not top then
  local t = redis.call('TIME')
  top = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('SET', KEYS[1], top, 'PX', ARGV[1])
  redis.call('DEL', KEYS[2])
end
if ARGV[2] == '' then
  return {top}
end
return {top, redis.call('XRANGE', KEYS[2], ARGV[2], '+', 'COUNT', ARGV[3])}
`)

// raiseScript raises a channel's offset to at least ARGV[1], keeping its
// TTL of ARGV[2] ms: after a Redis outage, offsets continue above those an
// instance gave out alone (see failover).
var raiseScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
`)

// redisBody is what the stream and the pub/sub message carry of an event.
type redisBody struct {
	Tenant uuid.UUID       `json:"t"`
	Event  string          `json:"e"`
	Origin string          `json:"o,omitempty"`
	Data   json.RawMessage `json:"d"`
}

// redisBroker shares offsets, history and events between instances
// through Redis. Each instance holds one pub/sub connection, which run's
// goroutine reads; what to do while Redis is unreachable is failover's
// business, not this broker's.
type redisBroker struct {
	rdb      *redis.Client
	prefix   string
	pubsub   string
	size     int
	ttl      time.Duration
	dispatch func(*event)
	log      *slog.Logger

	mu      sync.Mutex
	ps      *redis.PubSub
	stopped bool
	ctx     context.Context // ends with stop
	cancel  context.CancelFunc
	wg      sync.WaitGroup // run's goroutine
}

// healthEvery is how long the pub/sub connection may stay silent before
// it is pinged; a second silence in a row replaces the connection.
const healthEvery = 15 * time.Second

// errInvalidEvent is an event no broker could take, whatever the state of
// Redis.
var errInvalidEvent = errors.New("realtime: invalid event")

// newRedisBroker loads the broker's scripts and subscribes to the pub/sub
// channel, within ctx; run then starts delivering.
func newRedisBroker(ctx context.Context, rdb *redis.Client, prefix string, size int, ttl time.Duration,
	dispatch func(*event), log *slog.Logger) (*redisBroker, error) {
	b := &redisBroker{
		rdb: rdb, prefix: prefix, pubsub: prefix + "events", size: size, ttl: ttl,
		dispatch: dispatch, log: log,
	}
	for _, s := range []*redis.Script{publishScript, snapshotScript} {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			return nil, fmt.Errorf("realtime: load Redis script: %w", err)
		}
	}
	ps, err := b.subscribe(ctx)
	if err != nil {
		return nil, err
	}
	b.ps = ps
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// run starts the goroutine that hands every pub/sub message to dispatch
// until stop. link is called from it with false, and the cause, each time
// the pub/sub connection is lost, and with true each time the
// subscription is confirmed again.
func (b *redisBroker) run(link func(up bool, cause error)) {
	b.wg.Go(func() { b.receive(b.ctx, link) })
}

// subscribe opens a pub/sub connection and waits until Redis confirmed the
// subscription, so that no event published afterwards is missed.
func (b *redisBroker) subscribe(ctx context.Context) (*redis.PubSub, error) {
	ps := b.rdb.Subscribe(ctx, b.pubsub)
	msg, err := ps.Receive(ctx)
	if err == nil {
		if _, ok := msg.(*redis.Subscription); !ok {
			err = fmt.Errorf("unexpected %T", msg)
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("realtime: subscribe to Redis: %w", err)
	}
	return ps, nil
}

func (b *redisBroker) keys(k chanKey) (seq, log string) {
	base := b.prefix + "{" + k.tenant.String() + "}:" + k.channel
	return base + ":seq", base + ":log"
}

func (b *redisBroker) publish(ctx context.Context, keys []chanKey, name string, data json.RawMessage, origin string) error {
	if len(keys) == 0 {
		return nil
	}
	body, err := json.Marshal(redisBody{Tenant: keys[0].tenant, Event: name, Origin: origin, Data: data})
	if err != nil {
		return fmt.Errorf("%w: %w", errInvalidEvent, err)
	}
	ks := make([]string, 0, 2*len(keys))
	args := []any{b.pubsub, b.size, b.ttl.Milliseconds(), body}
	for _, k := range keys {
		if k.tenant != keys[0].tenant {
			return fmt.Errorf("%w: one publish spans one tenant", errInvalidEvent)
		}
		seq, log := b.keys(k)
		ks = append(ks, seq, log)
		args = append(args, k.channel)
	}
	return publishScript.Run(ctx, b.rdb, ks, args...).Err()
}

// ping reports whether Redis answers commands.
func (b *redisBroker) ping(ctx context.Context) error { return b.rdb.Ping(ctx).Err() }

// raise sets each channel's Redis offset to at least its top + 1, in one
// round trip, keeping the channel's TTL.
func (b *redisBroker) raise(ctx context.Context, tops map[chanKey]uint64) error {
	if len(tops) == 0 {
		return nil
	}
	pipe := b.rdb.Pipeline()
	for k, top := range tops {
		seq, _ := b.keys(k)
		raiseScript.Eval(ctx, pipe, []string{seq}, top+1, b.ttl.Milliseconds())
	}
	_, err := pipe.Exec(ctx)
	return err
}

func (b *redisBroker) snapshot(ctx context.Context, key chanKey, since *uint64) (uint64, []*event, error) {
	seq, log := b.keys(key)
	start := ""
	if since != nil {
		start = "0-" + strconv.FormatUint(*since+1, 10)
	}
	res, err := snapshotScript.Run(ctx, b.rdb, []string{seq, log}, b.ttl.Milliseconds(), start, b.size).Slice()
	if err != nil {
		return 0, nil, fmt.Errorf("realtime: read history from Redis: %w", err)
	}
	if len(res) == 0 {
		return 0, nil, errors.New("realtime: empty snapshot reply")
	}
	top, err := strconv.ParseUint(fmt.Sprint(res[0]), 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("realtime: bad channel offset %v", res[0])
	}
	if len(res) < 2 {
		return top, nil, nil
	}
	entries, _ := res[1].([]any)
	out := make([]*event, 0, len(entries))
	for _, raw := range entries {
		e, err := parseEntry(key, raw)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, e)
	}
	return top, out, nil
}

// parseEntry turns one XRANGE entry, [id, [field, value]], into an event.
func parseEntry(key chanKey, raw any) (*event, error) {
	pair, _ := raw.([]any)
	if len(pair) != 2 {
		return nil, errors.New("realtime: bad history entry")
	}
	id, _ := pair[0].(string)
	off, err := strconv.ParseUint(strings.TrimPrefix(id, "0-"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("realtime: bad history id %q", id)
	}
	fields, _ := pair[1].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		if f, _ := fields[i].(string); f == "b" {
			s, _ := fields[i+1].(string)
			return decodeBody(key, off, s)
		}
	}
	return nil, errors.New("realtime: history entry without a body")
}

func decodeBody(key chanKey, off uint64, s string) (*event, error) {
	var body redisBody
	if err := json.Unmarshal([]byte(s), &body); err != nil {
		return nil, fmt.Errorf("realtime: bad event body: %w", err)
	}
	if key.tenant == uuid.Nil {
		key.tenant = body.Tenant
	}
	return &event{key: key, offset: off, name: body.Event, data: body.Data, origin: body.Origin}, nil
}

// decodeMessage parses a pub/sub message, "<channel>\n<offset>\n<body>".
func decodeMessage(payload string) (*event, error) {
	channel, rest, ok1 := strings.Cut(payload, "\n")
	offs, body, ok2 := strings.Cut(rest, "\n")
	if !ok1 || !ok2 {
		return nil, errors.New("realtime: malformed pub/sub message")
	}
	off, err := strconv.ParseUint(offs, 10, 64)
	if err != nil {
		return nil, errors.New("realtime: malformed pub/sub offset")
	}
	return decodeBody(chanKey{channel: channel}, off, body)
}

// receive hands every pub/sub message to dispatch until ctx ends, and
// tells link when the connection is lost and when it is back.
func (b *redisBroker) receive(ctx context.Context, link func(up bool, cause error)) {
	pinged := false
	backoff := 50 * time.Millisecond
	lost := func(err error) {
		pinged = false
		link(false, fmt.Errorf("pub/sub: %w", err))
	}
	for {
		b.mu.Lock()
		ps := b.ps
		b.mu.Unlock()
		msg, err := ps.ReceiveTimeout(ctx, healthEvery)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					pinged = true
					if perr := ps.Ping(ctx); perr == nil {
						continue
					}
				}
				// Silent through a ping: replace the connection.
				b.log.Warn("realtime: Redis pub/sub silent, reconnecting")
				if !b.replace(ctx) {
					return
				}
				lost(err)
				continue
			}
			lost(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff, pinged = 50*time.Millisecond, false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				link(true, nil)
			}
		case *redis.Message:
			e, err := decodeMessage(m.Payload)
			if err != nil {
				b.log.Error("realtime: dropped a pub/sub message", "err", err)
				continue
			}
			b.dispatch(e)
		}
	}
}

// replace swaps the pub/sub connection for a new one; false after stop.
func (b *redisBroker) replace(ctx context.Context) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false
	}
	_ = b.ps.Close()
	b.ps = b.rdb.Subscribe(ctx, b.pubsub)
	return true
}

// stop closes the pub/sub connection and returns once run's goroutine
// ended. Publish and snapshot keep working through the client.
func (b *redisBroker) stop() {
	b.cancel()
	b.mu.Lock()
	b.stopped = true
	_ = b.ps.Close()
	b.mu.Unlock()
	b.wg.Wait()
}
