package benchresult

import "time"

// Event sources of wsbench's latency mode (WSLatency.Source).
const (
	// SourceHTTP is runs created through POST /v1/runs: run.created on
	// the "runs" channel.
	SourceHTTP = "http"
	// SourceWS is publish frames of one WebSocket client: wsbench.tick on
	// the channel of one run.
	SourceWS = "ws"
)

// WSSummary is a latency distribution of wsbench, in milliseconds.
type WSSummary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// WSCPU is where the machine's CPU time went while events were created
// and delivered: load generator and server share the machine, so a busy
// machine shows in the latency.
type WSCPU struct {
	// WindowS is the wall time measured: from the first event sent to the
	// end of the drain.
	WindowS float64 `json:"window_s"`
	// ClientS is wsbench's CPU time (the subscribers and the publisher),
	// ServerS that of the -server-pid processes.
	ClientS float64 `json:"client_s"`
	ServerS float64 `json:"server_s,omitempty"`
	// MachineBusyPct is the share of all CPUs' time not idle, from
	// /proc/stat; NProc the CPUs.
	MachineBusyPct float64 `json:"machine_busy_pct"`
	NProc          int     `json:"nproc"`
}

// WSLatency is what wsbench's fan-out latency mode measured: its -json
// output.
type WSLatency struct {
	Mode  string `json:"mode"` // "latency"
	Label string `json:"label,omitempty"`
	// Source is where the events come from: SourceHTTP or SourceWS.
	// Results written before the field existed lack it; they are
	// SourceHTTP.
	Source string `json:"source"`
	// Channel is the channel the subscribers subscribed to; RunID, with
	// the ws source, the run it belongs to (created by wsbench first).
	Channel string `json:"channel"`
	RunID   string `json:"run_id,omitempty"`
	// WS and API are the instances' base URLs (API: where runs are
	// created, or the publisher connects); CrossInstance says they differ
	// (the events then travel through Redis).
	WS            string    `json:"ws"`
	API           string    `json:"api"`
	CrossInstance bool      `json:"cross_instance"`
	Started       time.Time `json:"started"`
	Subscribers   int       `json:"subscribers"`
	// Rate is the configured events (runs created, or publishes) per
	// second; AchievedRate the measured events over the measured window
	// of sends.
	Rate         float64 `json:"rate"`
	AchievedRate float64 `json:"achieved_rate"`
	WarmupS      float64 `json:"warmup_s"`
	DurationS    float64 `json:"duration_s"`
	// ConnectS is the time to open and subscribe every connection.
	ConnectS float64 `json:"connect_s"`
	// WarmupEvents counts the events sent during the warm-up (not
	// measured); EventsOK and EventsFailed the measured events, by
	// outcome: with the http source a POST answered 201 or not; with the
	// ws source a publish sent and not answered with an error frame, or
	// not.
	WarmupEvents int64 `json:"warmup_events"`
	EventsOK     int64 `json:"events_ok"`
	EventsFailed int64 `json:"events_failed"`
	// PostStatus counts the measured events by outcome: with the http
	// source the POSTs by status ("error" for no response); with the ws
	// source the publishes, "ok", the error frame's code (such as
	// "RATE_LIMITED"), "error" when the write failed or "unsent" when the
	// connection was gone before. PostErrorSamples are the first
	// distinct errors (of the warm-up too).
	PostStatus       map[string]int64 `json:"post_status"`
	PostErrorSamples []string         `json:"post_error_samples,omitempty"`
	// PublishLagMaxMs is how much later than scheduled the latest
	// measured event left (all POST workers busy, or wsbench starved of
	// CPU).
	PublishLagMaxMs float64 `json:"publish_lag_max_ms"`
	// Expected is Subscribers × EventsOK; Delivered counts those received
	// (once per subscriber), Missing the rest. Duplicates counts second
	// copies; Unexpected the events received of measured events that
	// failed.
	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	Unexpected int64 `json:"unexpected"`
	// CompleteSubscribers counts the subscribers that got every event.
	CompleteSubscribers int `json:"complete_subscribers"`
	// Disconnected counts the connections that ended before the run did.
	Disconnected      int      `json:"disconnected"`
	DisconnectSamples []string `json:"disconnect_samples,omitempty"`
	// ErrorFrames counts "error" frames received.
	ErrorFrames int64 `json:"error_frames"`
	// DrainS is the time from the last POST's response (the last
	// publish's write with the ws source) to the last delivery (or to the
	// -drain timeout).
	DrainS float64 `json:"drain_s"`
	// Latency is the publish-to-receive latency over every delivery of
	// the measured window: receive time minus the time the run's POST
	// was sent (http), or the publish frame written (ws).
	Latency WSSummary `json:"latency_ms"`
	// PostLatency is the measured POSTs' latency, which Latency includes;
	// nil with the ws source.
	PostLatency *WSSummary `json:"post_latency_ms,omitempty"`
	// CPU is where the CPU time went from the first event sent to the end
	// of the drain.
	CPU *WSCPU `json:"cpu,omitempty"`
	// NoFileLimit is wsbench's RLIMIT_NOFILE during the run.
	NoFileLimit uint64 `json:"nofile_limit"`
}

// ServerSnapshot is what the server's /metrics said at one moment.
type ServerSnapshot struct {
	Goroutines     float64 `json:"goroutines"`
	HeapInuseBytes float64 `json:"heap_inuse_bytes"`
	OpenFDs        float64 `json:"open_fds"`
	WSConnections  float64 `json:"ws_connections"`
}

// WSIdle is what wsbench's idle mode (-idle) measured: its -json output.
type WSIdle struct {
	Mode        string    `json:"mode"` // "idle"
	Label       string    `json:"label,omitempty"`
	WS          string    `json:"ws"`
	Started     time.Time `json:"started"`
	Connections int       `json:"connections"`
	// Subscribed says each connection subscribed to "runs".
	Subscribed bool    `json:"subscribed"`
	ServerPID  int     `json:"server_pid"`
	ConnectS   float64 `json:"connect_s"`
	SettleS    float64 `json:"settle_s"`
	HoldS      float64 `json:"hold_s"`
	// RSSBeforeKiB is the server's VmRSS before the connections (the
	// median of three readings); RSSSamplesKiB its readings during the
	// hold, RSSHeldKiB their median and RSSMaxKiB their maximum;
	// RSSAfterCloseKiB a reading two seconds after the connections closed.
	RSSBeforeKiB     int64   `json:"rss_before_kib"`
	RSSSamplesKiB    []int64 `json:"rss_samples_kib"`
	RSSHeldKiB       int64   `json:"rss_held_kib"`
	RSSMaxKiB        int64   `json:"rss_max_kib"`
	RSSAfterCloseKiB int64   `json:"rss_after_close_kib"`
	// KiBPerConn is (RSSHeldKiB - RSSBeforeKiB) / Connections.
	KiBPerConn float64 `json:"kib_per_conn"`
	// Before and Held are the server's metrics before the connections and
	// in the middle of the hold (absent without -metrics); the per-
	// connection figures divide their differences by Connections.
	Before             *ServerSnapshot `json:"before,omitempty"`
	Held               *ServerSnapshot `json:"held,omitempty"`
	GoroutinesPerConn  float64         `json:"goroutines_per_conn,omitempty"`
	HeapKiBPerConn     float64         `json:"heap_kib_per_conn,omitempty"`
	MetricsUnavailable string          `json:"metrics_unavailable,omitempty"`
	// Disconnected counts the connections that ended during the hold.
	Disconnected      int      `json:"disconnected"`
	DisconnectSamples []string `json:"disconnect_samples,omitempty"`
	NoFileLimit       uint64   `json:"nofile_limit"`
}
