// Package rollup is the arithmetic of agentstore's rollups (SPEC 15): the
// mergeable duration histogram and the hour and day buckets. It knows
// nothing of the database; internal/store keeps the rollup tables.
package rollup

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"
)

// The duration histogram has log-spaced buckets: bucket i holds the
// durations d (in microseconds, the resolution of the stored timestamps)
// with Ratio^i <= d < Ratio^(i+1), where Ratio = 101/99. A bucket is
// reported by its Representative, 2·lo·hi/(lo+hi) = lo·101/100, which is
// within 1% of every value of the bucket: (lo·1.01 − lo)/lo = 1% at the low
// end and (hi − lo·1.01)/hi = 1 − 0.99 = 1% at the high end. So a
// percentile read from the histogram is within MaxRelativeError of the
// exact nearest-rank percentile of the durations it holds. Durations of
// zero or less (an end before the start) fall in ZeroBucket and read as 0.
// Up to 30 days there are about 1,430 buckets; a histogram stores only the
// ones it uses, and two histograms merge by adding counts bucket by bucket,
// so hours add up to days and days to any window without losing accuracy.
const (
	// Ratio is the ratio between the bounds of a bucket.
	Ratio = 101.0 / 99.0
	// MaxRelativeError bounds |estimate − exact| / exact of a percentile.
	MaxRelativeError = 0.01
	// ZeroBucket holds the durations of zero or less.
	ZeroBucket = -1
)

var logRatio = math.Log(Ratio)

// Bucket returns the bucket of a duration of us microseconds.
func Bucket(us int64) int32 {
	if us <= 0 {
		return ZeroBucket
	}
	return int32(math.Floor(math.Log(float64(us)) / logRatio))
}

// Representative is the value, in microseconds, that stands for the
// durations of bucket b.
func Representative(b int32) float64 {
	if b == ZeroBucket {
		return 0
	}
	return math.Pow(Ratio, float64(b)) * 1.01
}

// Histogram counts durations per bucket. Counts may be negative in a
// delta (a duration taken back); a stored histogram has none.
type Histogram map[int32]int64

// Add counts n more durations of us microseconds.
func (h Histogram) Add(us int64, n int64) {
	b := Bucket(us)
	h[b] += n
	if h[b] == 0 {
		delete(h, b)
	}
}

// Merge adds o to h.
func (h Histogram) Merge(o Histogram) {
	for b, n := range o {
		h[b] += n
		if h[b] == 0 {
			delete(h, b)
		}
	}
}

// Total returns the number of durations h holds.
func (h Histogram) Total() int64 {
	var t int64
	for _, n := range h {
		t += n
	}
	return t
}

// Quantile returns the nearest-rank q-quantile (0 < q <= 1) in
// milliseconds: the representative of the bucket that holds the
// ceil(q·n)-th smallest duration, and false when h is empty.
func (h Histogram) Quantile(q float64) (float64, bool) {
	n := h.Total()
	if n <= 0 {
		return 0, false
	}
	rank := int64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	keys := make([]int32, 0, len(h))
	for b := range h {
		keys = append(keys, b)
	}
	slices.Sort(keys)
	var seen int64
	for _, b := range keys {
		seen += h[b]
		if seen >= rank {
			return Representative(b) / 1000, true
		}
	}
	return Representative(keys[len(keys)-1]) / 1000, true
}

// Encode returns h in its stored form: the used buckets in ascending order,
// each as a signed varint of its distance from the previous one (from -1
// for the first) and a signed varint of its count. An empty histogram is
// nil.
func (h Histogram) Encode() []byte {
	if len(h) == 0 {
		return nil
	}
	keys := make([]int32, 0, len(h))
	for b, n := range h {
		if n != 0 {
			keys = append(keys, b)
		}
	}
	slices.Sort(keys)
	out := make([]byte, 0, 4*len(keys))
	prev := int64(ZeroBucket)
	for _, b := range keys {
		out = binary.AppendVarint(out, int64(b)-prev)
		out = binary.AppendVarint(out, h[b])
		prev = int64(b)
	}
	return out
}

var errCorrupt = errors.New("rollup: corrupt histogram")

// DecodeInto adds the histogram encoded in p to h.
func DecodeInto(h Histogram, p []byte) error {
	prev := int64(ZeroBucket)
	for len(p) > 0 {
		d, n := binary.Varint(p)
		if n <= 0 {
			return errCorrupt
		}
		p = p[n:]
		c, n := binary.Varint(p)
		if n <= 0 {
			return errCorrupt
		}
		p = p[n:]
		prev += d
		b := int32(prev)
		h[b] += c
		if h[b] == 0 {
			delete(h, b)
		}
	}
	return nil
}

// Hour is the start of the UTC hour that holds t.
func Hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// Day is the start of the UTC day that holds t.
func Day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Window is a range of whole hours [From, To); a zero end is open.
type Window struct{ From, To time.Time }

// WholeHours widens [from, to) to whole hours: from rounds down, to up.
func WholeHours(from, to time.Time) Window {
	var w Window
	if !from.IsZero() {
		w.From = Hour(from)
	}
	if !to.IsZero() {
		w.To = Hour(to)
		if !w.To.Equal(to.UTC()) {
			w.To = w.To.Add(time.Hour)
		}
	}
	return w
}

// Split cuts w into the whole UTC days it covers, read from day rows, and
// the hours at its ragged ends, read from hour rows: [From, daysFrom) and
// [daysTo, To). An open end stays open on the day range. When w holds no
// whole day, days is empty (daysFrom == daysTo) and all of w is hours.
func (w Window) Split() (daysFrom, daysTo time.Time) {
	daysFrom = w.From
	if !w.From.IsZero() {
		daysFrom = Day(w.From)
		if !daysFrom.Equal(w.From) {
			daysFrom = daysFrom.AddDate(0, 0, 1)
		}
	}
	daysTo = w.To
	if !w.To.IsZero() {
		daysTo = Day(w.To)
	}
	if !daysFrom.IsZero() && !daysTo.IsZero() && !daysFrom.Before(daysTo) {
		return w.From, w.From
	}
	return daysFrom, daysTo
}

// CostMicros is a cost in US dollars as whole micro-dollars, the
// resolution of usage_metrics.cost_usd on PostgreSQL.
func CostMicros(usd float64) int64 { return int64(math.Round(usd * 1e6)) }

// Dense is a histogram as a slice indexed by bucket+1 (ZeroBucket first),
// for adding many encoded histograms fast: a read of a month of rollups
// adds a few hundred of them, and no map hashing is needed.
type Dense []int64

// AddEncoded adds the histogram encoded in p (Histogram.Encode) to *d.
func (d *Dense) AddEncoded(p []byte) error {
	prev := int64(ZeroBucket)
	for len(p) > 0 {
		delta, n := binary.Varint(p)
		if n <= 0 {
			return errCorrupt
		}
		p = p[n:]
		c, n := binary.Varint(p)
		if n <= 0 {
			return errCorrupt
		}
		p = p[n:]
		prev += delta
		i := int(prev - ZeroBucket)
		if i < 0 || i > 1<<16 {
			return errCorrupt
		}
		if i >= len(*d) {
			*d = append(*d, make([]int64, i+1-len(*d))...)
		}
		(*d)[i] += c
	}
	return nil
}

// Quantile is Histogram.Quantile of d.
func (d Dense) Quantile(q float64) (float64, bool) {
	var n int64
	for _, c := range d {
		n += c
	}
	if n <= 0 {
		return 0, false
	}
	rank := max(int64(math.Ceil(q*float64(n))), 1)
	var seen int64
	last := 0
	for i, c := range d {
		if c == 0 {
			continue
		}
		last = i
		seen += c
		if seen >= rank {
			return Representative(int32(i)+ZeroBucket) / 1000, true
		}
	}
	return Representative(int32(last)+ZeroBucket) / 1000, true
}
