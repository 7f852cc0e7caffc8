package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// storeCase is one place counters live: memory (rdb nil) or the shared Redis.
type storeCase struct {
	name string
	rdb  *redis.Client
}

// stores returns the memory store and the shared Redis, so that behaviour
// tests run on both.
func stores(t *testing.T) []storeCase {
	return []storeCase{{"memory", nil}, {"redis", sharedRedis(t)}}
}

// newTestLimiter returns a Limiter with a key prefix of the test's own.
func newTestLimiter(t *testing.T, cfg Config, rdb *redis.Client) *Limiter {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = testPrefix(t, rdb)
	}
	l, err := New(cfg, rdb, nil, nil)
	require.NoError(t, err)
	return l
}

var baseKey = Key{Tenant: "0b7c6a3e-6c1f-4b8e-9a57-3f5d0c7e2a11", Method: "GET", Route: "/v1/runs/:id", IP: "203.0.113.7"}

func TestKeyString(t *testing.T) {
	tests := []struct {
		key  Key
		want string
	}{
		{baseKey, "0b7c6a3e-6c1f-4b8e-9a57-3f5d0c7e2a11|GET|/v1/runs/:id|203.0.113.7"},
		{Key{Tenant: "-", Method: "POST", Route: "/v1/runs", IP: "2001:db8::1"}, "-|POST|/v1/runs|2001:db8::1"},
		{Key{Method: "POST", Route: "/v1/runs", IP: "2001:db8::1"}, "-|POST|/v1/runs|2001:db8::1"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.key.String())
	}
}

func TestParseOverrides(t *testing.T) {
	a, b := uuid.MustParse("0b7c6a3e-6c1f-4b8e-9a57-3f5d0c7e2a11"), uuid.MustParse("9d1e2f3a-4b5c-4d6e-8f70-112233445566")
	tests := []struct {
		name    string
		in      string
		want    map[uuid.UUID]int
		wantErr string
	}{
		{"empty", "", map[uuid.UUID]int{}, ""},
		{"blank", "  ", map[uuid.UUID]int{}, ""},
		{"one", a.String() + "=500", map[uuid.UUID]int{a: 500}, ""},
		{"two with spaces", " " + a.String() + " = 500 , " + b.String() + "=7 ", map[uuid.UUID]int{a: 500, b: 7}, ""},
		{"upper-case uuid", "0B7C6A3E-6C1F-4B8E-9A57-3F5D0C7E2A11=3", map[uuid.UUID]int{a: 3}, ""},
		{"no equals", a.String(), nil, "want <tenant uuid>=<max>"},
		{"bad uuid", "tenant-1=5", nil, `"tenant-1" is not a UUID`},
		{"zero", a.String() + "=0", nil, "must be a positive integer"},
		{"negative", a.String() + "=-3", nil, "must be a positive integer"},
		{"not a number", a.String() + "=lots", nil, "must be a positive integer"},
		{"duplicate", a.String() + "=1," + a.String() + "=2", nil, "listed twice"},
		{"trailing comma", a.String() + "=1,", nil, "want <tenant uuid>=<max>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOverrides(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero max", Config{Max: 0, Window: time.Second}, "max 0"},
		{"zero window", Config{Max: 1}, "window 0s"},
		{"sub-millisecond window", Config{Max: 1, Window: time.Microsecond}, "at least 1ms"},
		{"bad fail mode", Config{Max: 1, Window: time.Second, FailMode: "sideways"}, `"sideways"`},
		{"zero override", Config{Max: 1, Window: time.Second, TenantOverrides: map[uuid.UUID]int{uuid.New(): 0}}, "max 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, nil, nil, nil)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	_, err := NewEventLimiter(EventConfig{Max: 1, Window: time.Second, FailMode: "maybe"}, nil, nil, nil)
	require.ErrorContains(t, err, `"maybe"`)
}

func TestAllowThreshold(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			l := newTestLimiter(t, Config{Max: 5, Window: time.Minute}, sc.rdb)
			ctx := context.Background()
			for i := 1; i <= 5; i++ {
				r, err := l.Allow(ctx, baseKey)
				require.NoError(t, err)
				assert.True(t, r.Allowed, "request %d", i)
				assert.Equal(t, 5, r.Limit)
				assert.Equal(t, 5-i, r.Remaining, "request %d", i)
				assert.Zero(t, r.RetryAfter, "request %d", i)
				assert.Equal(t, PolicyDefault, r.Policy)
				assert.Equal(t, time.Minute, r.Window)
			}
			start := time.Now()
			r, err := l.Allow(ctx, baseKey)
			require.NoError(t, err)
			assert.False(t, r.Allowed, "6th request")
			assert.Equal(t, 0, r.Remaining)
			assert.Greater(t, r.RetryAfter, time.Duration(0))
			assert.LessOrEqual(t, r.RetryAfter, time.Minute)
			assert.True(t, r.Reset.After(start), "reset %v is not after %v", r.Reset, start)
			assert.False(t, r.Reset.After(start.Add(time.Minute+time.Second)), "reset %v is more than a window away", r.Reset)
			if sc.rdb != nil {
				n, err := sc.rdb.Get(ctx, l.c.redisKey(baseKey.String())).Int()
				require.NoError(t, err, "the counter is in Redis under the key's name")
				assert.Equal(t, 6, n)
			}
		})
	}
}

func TestAllowSeparateBudgets(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			l := newTestLimiter(t, Config{Max: 2, Window: time.Minute}, sc.rdb)
			ctx := context.Background()
			for range 3 {
				_, err := l.Allow(ctx, baseKey)
				require.NoError(t, err)
			}
			r, err := l.Allow(ctx, baseKey)
			require.NoError(t, err)
			require.False(t, r.Allowed, "the base key's budget is spent")

			others := []struct {
				name string
				key  Key
			}{
				{"another tenant", Key{Tenant: uuid.NewString(), Method: baseKey.Method, Route: baseKey.Route, IP: baseKey.IP}},
				{"anonymous", Key{Tenant: "-", Method: baseKey.Method, Route: baseKey.Route, IP: baseKey.IP}},
				{"another route", Key{Tenant: baseKey.Tenant, Method: baseKey.Method, Route: "/v1/runs", IP: baseKey.IP}},
				{"another method", Key{Tenant: baseKey.Tenant, Method: "PATCH", Route: baseKey.Route, IP: baseKey.IP}},
				{"another ip", Key{Tenant: baseKey.Tenant, Method: baseKey.Method, Route: baseKey.Route, IP: "198.51.100.9"}},
			}
			for _, o := range others {
				r, err := l.Allow(ctx, o.key)
				require.NoError(t, err)
				assert.True(t, r.Allowed, o.name)
				assert.Equal(t, 1, r.Remaining, o.name)
			}
			// An empty tenant is the anonymous "-" budget, not another one.
			r, err = l.Allow(ctx, Key{Method: baseKey.Method, Route: baseKey.Route, IP: baseKey.IP})
			require.NoError(t, err)
			assert.Equal(t, 0, r.Remaining, "empty tenant shares the anonymous budget")
		})
	}
}

func TestAllowWindowReset(t *testing.T) {
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			l := newTestLimiter(t, Config{Max: 2, Window: time.Second}, sc.rdb)
			ctx := context.Background()
			for range 2 {
				r, err := l.Allow(ctx, baseKey)
				require.NoError(t, err)
				require.True(t, r.Allowed)
			}
			r, err := l.Allow(ctx, baseKey)
			require.NoError(t, err)
			require.False(t, r.Allowed)
			require.LessOrEqual(t, r.RetryAfter, time.Second, "never more than a window")

			// Waiting what RetryAfter says is enough, give or take Redis's
			// expiry clock (a key may outlive its PTTL by a few ms).
			time.Sleep(r.RetryAfter)
			require.Eventually(t, func() bool {
				r, err = l.Allow(ctx, baseKey)
				return err == nil && r.Allowed
			}, 250*time.Millisecond, 10*time.Millisecond, "a new window has started")
			assert.Equal(t, 1, r.Remaining)
		})
	}
}

func TestAllowTenantOverride(t *testing.T) {
	big := uuid.MustParse("5a5a5a5a-1111-4222-8333-444455556666")
	for _, sc := range stores(t) {
		t.Run(sc.name, func(t *testing.T) {
			l := newTestLimiter(t, Config{Max: 1, Window: time.Minute, TenantOverrides: map[uuid.UUID]int{big: 3}}, sc.rdb)
			ctx := context.Background()
			tests := []struct {
				name       string
				tenant     string
				wantLimit  int
				wantPolicy string
				allowed    int
			}{
				{"overridden tenant", big.String(), 3, PolicyTenant, 3},
				{"overridden tenant, upper case", "5A5A5A5A-1111-4222-8333-444455556666", 3, PolicyTenant, 3},
				{"other tenant", uuid.NewString(), 1, PolicyDefault, 1},
				{"anonymous", "-", 1, PolicyDefault, 1},
				{"not a uuid", "nonsense", 1, PolicyDefault, 1},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					k := Key{Tenant: tt.tenant, Method: "GET", Route: "/v1/runs", IP: "192.0.2.1"}
					allowed := 0
					for range tt.wantLimit + 2 {
						r, err := l.Allow(ctx, k)
						require.NoError(t, err)
						assert.Equal(t, tt.wantLimit, r.Limit)
						assert.Equal(t, tt.wantPolicy, r.Policy)
						if r.Allowed {
							allowed++
						}
					}
					assert.Equal(t, tt.allowed, allowed)
				})
			}
		})
	}
}

// Two instances sharing one Redis enforce one limit between them.
func TestAllowSharedRedisOneGlobalLimit(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := testPrefix(t, rdb)
	const limit, perWorker, workers = 50, 40, 10
	cfg := Config{Max: limit, Window: time.Minute, Prefix: prefix}
	a, err := New(cfg, rdb, nil, nil)
	require.NoError(t, err)
	// The second instance has its own client, as another process would.
	other := redis.NewClient(rdb.Options())
	t.Cleanup(func() { _ = other.Close() })
	b, err := New(cfg, other, nil, nil)
	require.NoError(t, err)

	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		l := a
		if w%2 == 1 {
			l = b
		}
		wg.Go(func() {
			for range perWorker {
				r, err := l.Allow(context.Background(), baseKey)
				if !assert.NoError(t, err) {
					return
				}
				if r.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(limit), allowed.Load(), "allowed across both instances")
}

func TestAllowCountsRejections(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	l, err := New(Config{Max: 1, Window: time.Minute}, nil, nil, m)
	require.NoError(t, err)
	for range 3 {
		_, err := l.Allow(context.Background(), baseKey)
		require.NoError(t, err)
	}
	assert.Equal(t, 2.0, testutil.ToFloat64(m.rejectedTotal.WithLabelValues("http", "GET", "/v1/runs/:id")))
	assert.Equal(t, 1, testutil.CollectAndCount(m.rejectedTotal), "one series: no tenant or address label")
}

// The memory store of one Limiter is not shared with another: without Redis
// each instance counts for itself.
func TestAllowMemoryIsPerInstance(t *testing.T) {
	a := newTestLimiter(t, Config{Max: 1, Window: time.Minute}, nil)
	b := newTestLimiter(t, Config{Max: 1, Window: time.Minute}, nil)
	for _, l := range []*Limiter{a, b} {
		r, err := l.Allow(context.Background(), baseKey)
		require.NoError(t, err)
		assert.True(t, r.Allowed)
	}
}

func ExampleKey_String() {
	fmt.Println(Key{Tenant: "-", Method: "POST", Route: "/v1/runs", IP: "192.0.2.1"})
	// Output: -|POST|/v1/runs|192.0.2.1
}
