package benchresult

import "time"

// Latency summarizes the latencies of a loadgen run, in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Load is what one loadgen run measured: its -json output.
type Load struct {
	Label       string    `json:"label,omitempty"`
	URL         string    `json:"url"`
	Method      string    `json:"method"`
	Concurrency int       `json:"concurrency"`
	Started     time.Time `json:"started"`
	// WarmupS is the configured warm-up, in seconds.
	WarmupS float64 `json:"warmup_s"`
	// DurationS is the measured window, from the end of the warm-up to the
	// last measured response, in seconds.
	DurationS float64 `json:"duration_s"`
	// Requests counts the responses to requests sent in the window,
	// whatever their status.
	Requests int64 `json:"requests"`
	// Errors counts the requests of the window that got no response.
	Errors int64 `json:"errors"`
	// Unexpected counts the responses of the window whose status is not
	// in -expect.
	Unexpected int64 `json:"unexpected"`
	// WarmupRequests counts the requests sent during the warm-up.
	WarmupRequests int64 `json:"warmup_requests"`
	// TotalRequests counts every request sent, warm-up and errors
	// included: what the server saw, for per-request server-side counters.
	TotalRequests int64 `json:"total_requests"`
	// RPS is Requests / DurationS.
	RPS     float64 `json:"rps"`
	Latency Latency `json:"latency_ms"`
	// Status counts the responses of the window by status code.
	Status map[string]int64 `json:"status"`
	// Connections counts the TCP connections opened, warm-up included;
	// with working keep-alive it equals the concurrency.
	Connections  int64    `json:"connections"`
	ErrorSamples []string `json:"error_samples,omitempty"`
}
