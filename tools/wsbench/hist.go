package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/agentstore/agentstore/tools/benchresult"
)

// histogram counts durations in log-linear buckets: exact below 128 ns,
// then 128 buckets per power of two, so that a quantile read from it is
// within 0.8% of the true value. Record is safe from many goroutines; the
// maximum and the sum are exact.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	max    atomic.Int64  // nanoseconds
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

// bucketOf is the bucket of v nanoseconds.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1 // v>>e is in [histSub, 2*histSub)
	return (e+1)<<histSubBits + int(v>>e) - histSub
}

// bucketRange is the first value of bucket i and the bucket's width.
func bucketRange(i int) (low, width uint64) {
	if i < histSub {
		return uint64(i), 1
	}
	e := i>>histSubBits - 1
	return (uint64(i&(histSub-1)) + histSub) << e, 1 << e
}

// Record counts one duration; a negative one (a clock step) counts as 0.
func (h *histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of durations recorded.
func (h *histogram) Count() uint64 { return h.n.Load() }

// Quantile is the nearest-rank q-quantile, the middle of its bucket
// (never above the maximum).
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(1, min(rank, n))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			low, width := bucketRange(i)
			return min(time.Duration(low+width/2), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Summary summarizes the recorded durations.
func (h *histogram) Summary() benchresult.WSSummary {
	n := h.n.Load()
	if n == 0 {
		return benchresult.WSSummary{}
	}
	return benchresult.WSSummary{
		Count: n,
		Mean:  ms(time.Duration(h.sum.Load() / n)),
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(time.Duration(h.max.Load())),
	}
}

// ms is d in milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
