package rollup

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQuantileWithinOnePercent checks the documented bound on random
// durations from 1 µs to 30 days: every percentile read from the
// histogram (map or dense, after an encode/decode round trip) is within
// MaxRelativeError of the exact nearest-rank percentile.
func TestQuantileWithinOnePercent(t *testing.T) {
	for seed := range 50 {
		rng := rand.New(rand.NewPCG(uint64(seed), 99))
		n := 1 + rng.IntN(2000)
		xs := make([]int64, n)
		h := Histogram{}
		for i := range xs {
			xs[i] = int64(math.Exp(rng.Float64() * math.Log(float64(30*24*time.Hour/time.Microsecond))))
			if rng.IntN(50) == 0 {
				xs[i] = -rng.Int64N(1000) // an end before the start reads as 0
			}
			h.Add(xs[i], 1)
		}
		slices.Sort(xs)
		back := Histogram{}
		require.NoError(t, DecodeInto(back, h.Encode()))
		require.Equal(t, h, back)
		var d Dense
		require.NoError(t, d.AddEncoded(h.Encode()))
		for _, q := range []float64{0.01, 0.5, 0.95, 0.99, 1} {
			exact := math.Max(float64(xs[max(int(math.Ceil(q*float64(n))), 1)-1]), 0) / 1000
			got, ok := h.Quantile(q)
			require.True(t, ok)
			assert.LessOrEqual(t, math.Abs(got-exact), exact*MaxRelativeError*(1+1e-12), "seed %d q %v", seed, q)
			dense, _ := d.Quantile(q)
			assert.Equal(t, got, dense)
		}
	}
}

func TestMergeAndDeltas(t *testing.T) {
	a, b := Histogram{}, Histogram{}
	a.Add(1000, 1)
	a.Add(5000, 2)
	b.Add(5000, -2) // a delta taking two durations back
	a.Merge(b)
	assert.Equal(t, int64(1), a.Total())
	assert.Nil(t, Histogram{}.Encode())
	var d Dense
	require.NoError(t, d.AddEncoded(nil))
	_, ok := d.Quantile(0.5)
	assert.False(t, ok)
	assert.Error(t, DecodeInto(Histogram{}, []byte{0x80}))
}

func TestWindows(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v }
	w := WholeHours(at("2026-03-01T10:15:00+01:00"), at("2026-03-03T12:00:00.5Z"))
	assert.Equal(t, at("2026-03-01T09:00:00Z"), w.From)
	assert.Equal(t, at("2026-03-03T13:00:00Z"), w.To)
	from, to := w.Split()
	assert.Equal(t, at("2026-03-02T00:00:00Z"), from)
	assert.Equal(t, at("2026-03-03T00:00:00Z"), to)
	w = WholeHours(at("2026-03-01T10:00:00Z"), at("2026-03-01T20:00:00Z"))
	from, to = w.Split()
	assert.Equal(t, from, to, "no whole day: all hours")
	assert.Equal(t, int64(1000000), CostMicros(1))
}

// BenchmarkReadMonth adds 230 encoded histograms of ~320 buckets each, what
// a 30-day stats read of three statuses does.
func BenchmarkReadMonth(b *testing.B) {
	var encs [][]byte
	for i := range 230 {
		h := Histogram{}
		for s := 1; s <= 600; s++ {
			h.Add(int64(s)*1_000_000, int64(1+i%3))
		}
		encs = append(encs, h.Encode())
	}
	b.Run("map", func(b *testing.B) {
		for range b.N {
			h := Histogram{}
			for _, p := range encs {
				_ = DecodeInto(h, p)
			}
			h.Quantile(0.99)
		}
	})
	b.Run("dense", func(b *testing.B) {
		for range b.N {
			var d Dense
			for _, p := range encs {
				_ = d.AddEncoded(p)
			}
			d.Quantile(0.99)
		}
	})
}
