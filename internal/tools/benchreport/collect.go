package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Results is everything one `make bench` measured: the file
// bench/results.json.
type Results struct {
	// Meta describes the run: date, commit, machine, versions, settings.
	Meta    map[string]string `json:"meta"`
	Store   *StoreResults     `json:"store,omitempty"`
	Ingest  *HTTPScenario     `json:"ingest,omitempty"`
	List    *HTTPScenario     `json:"list,omitempty"`
	Limiter *LimiterResults   `json:"limiter,omitempty"`
	WS      *WSResults        `json:"websocket,omitempty"`
	Scale   *ScaleResults     `json:"scale,omitempty"`
	Legacy  *LegacyResults    `json:"legacy_import,omitempty"`
}

// GoBench is one line of `go test -bench` output.
type GoBench struct {
	Name        string  `json:"name"`
	Iterations  int64   `json:"iterations"`
	RunsPerS    float64 `json:"runs_per_s"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// StoreResults are the store benchmarks: Runs.Create and its pgx floor.
type StoreResults struct {
	Store *GoBench `json:"store,omitempty"`
	Floor *GoBench `json:"floor,omitempty"`
	// StoreToFloor is the store's runs/s over the floor's.
	StoreToFloor float64 `json:"store_to_floor,omitempty"`
}

// Latency is a loadgen latency summary, in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Load is one loadgen -json result (the fields the report uses).
type Load struct {
	Label          string           `json:"label,omitempty"`
	URL            string           `json:"url"`
	Method         string           `json:"method"`
	Concurrency    int              `json:"concurrency"`
	WarmupS        float64          `json:"warmup_s"`
	DurationS      float64          `json:"duration_s"`
	Requests       int64            `json:"requests"`
	Errors         int64            `json:"errors"`
	Unexpected     int64            `json:"unexpected"`
	WarmupRequests int64            `json:"warmup_requests"`
	TotalRequests  int64            `json:"total_requests"`
	RPS            float64          `json:"rps"`
	Latency        Latency          `json:"latency_ms"`
	Status         map[string]int64 `json:"status"`
	Connections    int64            `json:"connections"`
	// Round numbers the limiter rounds (set by collect).
	Round int `json:"round,omitempty"`
}

// HTTPScenario is one HTTP load run and its ratio to its baseline.
type HTTPScenario struct {
	Load
	// Baseline names what Ratio divides by; empty when there is none.
	Baseline string  `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
}

// LimiterConfig is one server configuration of the limiter comparison,
// over all its rounds.
type LimiterConfig struct {
	Name string `json:"name"`
	// Requests and DurationS add up the rounds; RPS is their quotient.
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	DurationS float64 `json:"duration_s"`
	RPS       float64 `json:"rps"`
	// P50 and P99 are the medians of the rounds' values; Max their maximum.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	// RatioToNone is RPS over the unlimited server's RPS.
	RatioToNone float64 `json:"ratio_to_none,omitempty"`
	// RoundRatios divide each round's RPS by the unlimited server's RPS of
	// the same round (run next to it); MedianRoundRatio is their median,
	// which one disturbed round moves less than RatioToNone.
	RoundRatios      []float64 `json:"round_ratios,omitempty"`
	MedianRoundRatio float64   `json:"median_round_ratio,omitempty"`
	Rounds           []Load    `json:"rounds"`
}

// RedisCommands are the Redis commands the Redis-limited server sent
// during its rounds (INFO commandstats deltas; INFO itself excluded).
type RedisCommands struct {
	// Requests counts every request of those rounds, warm-up included.
	Requests  int64            `json:"requests"`
	Calls     int64            `json:"calls"`
	ByCommand map[string]int64 `json:"by_command"`
	// PerRequest is Calls / Requests; EvalshaPerRequest counts EVALSHA only.
	PerRequest        float64 `json:"per_request"`
	EvalshaPerRequest float64 `json:"evalsha_per_request"`
	// Sample splits the commands of a short run under MONITOR into those
	// the server sent over the network and those Lua scripts ran inside
	// Redis, which commandstats counts alike.
	Sample *MonitorSample `json:"monitor_sample,omitempty"`
}

// MonitorSample is what MONITOR showed during a sample of requests.
type MonitorSample struct {
	Requests int64 `json:"requests"`
	// Client are the commands received over the network, by name;
	// Script those run by Lua scripts.
	Client map[string]int64 `json:"client"`
	Script map[string]int64 `json:"script"`
	// ClientPerRequest bounds the round trips per request from above
	// (pipelined commands would share one round trip).
	ClientPerRequest float64 `json:"client_per_request"`
	ScriptPerRequest float64 `json:"script_per_request"`
}

// LimiterResults compare the same cheap authenticated route with no
// limiter, the memory limiter and the Redis limiter.
type LimiterResults struct {
	Route   string          `json:"route"`
	Configs []LimiterConfig `json:"configs"`
	Redis   *RedisCommands  `json:"redis_commands,omitempty"`
	// TargetMaxCost is the bound on the Redis limiter's cost:
	// 1 - redis/none must not exceed it.
	TargetMaxCost float64 `json:"target_max_cost"`
	// RedisCost is 1 - redis/none, when both were measured, over all the
	// rounds; MeetsTarget compares it with TargetMaxCost. RedisCostMedian
	// is 1 - the median of the per-round ratios.
	RedisCostMedian *float64 `json:"redis_cost_median,omitempty"`
	RedisCost       *float64 `json:"redis_cost,omitempty"`
	MeetsTarget     *bool    `json:"meets_target,omitempty"`
}

// limiterConfigs are the configurations, baseline first.
var limiterConfigs = []string{"none", "memory", "redis"}

// targetMaxCost is the target: the Redis limiter costs at most 15%
// of the throughput.
const targetMaxCost = 0.15

// Collect reads the raw directory (see the package comment).
func Collect(raw string) (*Results, error) {
	if _, err := os.Stat(raw); err != nil {
		return nil, err
	}
	res := &Results{Meta: map[string]string{}}
	if err := readEnv(filepath.Join(raw, "meta.env"), res.Meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	if b, err := os.ReadFile(filepath.Join(raw, "store-bench.txt")); err == nil {
		benches := parseGoBench(string(b))
		st := &StoreResults{}
		for i := range benches {
			switch {
			case strings.HasPrefix(benches[i].Name, "BenchmarkCreateRunStore"):
				st.Store = &benches[i]
			case strings.HasPrefix(benches[i].Name, "BenchmarkCreateRunPgxFloor"):
				st.Floor = &benches[i]
			}
		}
		if st.Store != nil && st.Floor != nil && st.Floor.RunsPerS > 0 {
			st.StoreToFloor = st.Store.RunsPerS / st.Floor.RunsPerS
		}
		if st.Store != nil || st.Floor != nil {
			res.Store = st
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	for _, s := range []struct {
		file string
		dst  **HTTPScenario
	}{{"ingest.json", &res.Ingest}, {"list.json", &res.List}} {
		var l Load
		switch err := readLoad(filepath.Join(raw, s.file), &l); {
		case err == nil:
			*s.dst = &HTTPScenario{Load: l}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	if res.Ingest != nil && res.Store != nil && res.Store.Store != nil && res.Store.Store.RunsPerS > 0 {
		res.Ingest.Baseline = "store Runs.Create runs/s"
		res.Ingest.Ratio = res.Ingest.RPS / res.Store.Store.RunsPerS
	}

	lim, err := collectLimiter(filepath.Join(raw, "limiter"), res.Meta["limiter_route"])
	if err != nil {
		return nil, err
	}
	res.Limiter = lim

	if res.WS, err = collectWS(filepath.Join(raw, "ws")); err != nil {
		return nil, err
	}
	if res.Scale, err = collectScale(filepath.Join(raw, "scale"), res.List); err != nil {
		return nil, err
	}
	if res.Legacy, err = collectLegacy(filepath.Join(raw, "legacy")); err != nil {
		return nil, err
	}
	return res, nil
}

// readEnv reads KEY=VALUE lines into m; blank lines and # comments are
// skipped.
func readEnv(path string, m map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s: %q is not KEY=VALUE", path, line)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return sc.Err()
}

func readLoad(path string, l *Load) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, l); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// parseGoBench parses the result lines of `go test -bench` output:
// name, iterations, then value-unit pairs.
func parseGoBench(out string) []GoBench {
	var res []GoBench
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		b := GoBench{Name: f[0], Iterations: n}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "runs/s":
				b.RunsPerS = v
			case "ns/op":
				b.NsPerOp = v
			case "B/op":
				b.BytesPerOp = v
			case "allocs/op":
				b.AllocsPerOp = v
			}
		}
		res = append(res, b)
	}
	return res
}

// parseCommandStats parses `INFO commandstats` into calls per command.
func parseCommandStats(out string) map[string]int64 {
	m := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					m[strings.TrimPrefix(name, "cmdstat_")] = n
				}
			}
		}
	}
	return m
}

// collectLimiter reads the limiter rounds; nil when there are none.
func collectLimiter(dir, route string) (*LimiterResults, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lim := &LimiterResults{Route: route, TargetMaxCost: targetMaxCost}
	rounds := map[string][]Load{}
	redis := &RedisCommands{ByCommand: map[string]int64{}}
	for _, e := range entries {
		name := e.Name()
		cfg, round, ok := strings.Cut(strings.TrimSuffix(name, ".json"), "-r")
		if !ok || !strings.HasSuffix(name, ".json") || !slices.Contains(limiterConfigs, cfg) {
			continue
		}
		n, err := strconv.Atoi(round)
		if err != nil {
			continue
		}
		var l Load
		if err := readLoad(filepath.Join(dir, name), &l); err != nil {
			return nil, err
		}
		l.Round = n
		rounds[cfg] = append(rounds[cfg], l)
		if cfg != "redis" {
			continue
		}
		before, err1 := os.ReadFile(filepath.Join(dir, "redis-r"+round+".before"))
		after, err2 := os.ReadFile(filepath.Join(dir, "redis-r"+round+".after"))
		if err1 != nil || err2 != nil {
			continue
		}
		b, a := parseCommandStats(string(before)), parseCommandStats(string(after))
		redis.Requests += l.TotalRequests
		for cmd, n := range a {
			if cmd == "info" {
				continue // the measurement's own INFO
			}
			if d := n - b[cmd]; d > 0 {
				redis.ByCommand[cmd] += d
				redis.Calls += d
			}
		}
	}
	if len(rounds) == 0 {
		return nil, nil
	}
	for _, name := range limiterConfigs {
		rs := rounds[name]
		if len(rs) == 0 {
			continue
		}
		slices.SortFunc(rs, func(a, b Load) int { return a.Round - b.Round })
		c := LimiterConfig{Name: name, Rounds: rs}
		var p50, p99 []float64
		for _, r := range rs {
			c.Requests += r.Requests
			c.Errors += r.Errors + r.Unexpected
			c.DurationS += r.DurationS
			p50 = append(p50, r.Latency.P50)
			p99 = append(p99, r.Latency.P99)
			c.Max = max(c.Max, r.Latency.Max)
		}
		if c.DurationS > 0 {
			c.RPS = float64(c.Requests) / c.DurationS
		}
		c.P50, c.P99 = median(p50), median(p99)
		lim.Configs = append(lim.Configs, c)
	}
	if none := lim.config("none"); none != nil && none.RPS > 0 {
		noneByRound := map[int]float64{}
		for _, r := range none.Rounds {
			noneByRound[r.Round] = r.RPS
		}
		for i := range lim.Configs {
			c := &lim.Configs[i]
			c.RatioToNone = c.RPS / none.RPS
			for _, r := range c.Rounds {
				if base := noneByRound[r.Round]; base > 0 {
					c.RoundRatios = append(c.RoundRatios, r.RPS/base)
				}
			}
			c.MedianRoundRatio = median(c.RoundRatios)
		}
		if r := lim.config("redis"); r != nil {
			cost := 1 - r.RatioToNone
			ok := cost <= targetMaxCost
			lim.RedisCost, lim.MeetsTarget = &cost, &ok
			if len(r.RoundRatios) > 0 {
				m := 1 - r.MedianRoundRatio
				lim.RedisCostMedian = &m
			}
		}
	}
	var sample Load
	switch err := readLoad(filepath.Join(dir, "monitor-sample.json"), &sample); {
	case err == nil:
		mon, err := os.ReadFile(filepath.Join(dir, "monitor.txt"))
		if err != nil {
			return nil, err
		}
		ms := parseMonitor(string(mon))
		ms.Requests = sample.TotalRequests
		if ms.Requests > 0 {
			ms.ClientPerRequest = float64(total(ms.Client)) / float64(ms.Requests)
			ms.ScriptPerRequest = float64(total(ms.Script)) / float64(ms.Requests)
		}
		redis.Sample = &ms
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if redis.Requests > 0 || redis.Sample != nil {
		if redis.Requests > 0 {
			redis.PerRequest = float64(redis.Calls) / float64(redis.Requests)
			redis.EvalshaPerRequest = float64(redis.ByCommand["evalsha"]) / float64(redis.Requests)
		}
		lim.Redis = redis
	}
	return lim, nil
}

// parseMonitor counts the commands of MONITOR output by name, those run by
// Lua scripts ("[DB lua]") apart from those of network clients
// ("[DB ADDR:PORT]").
func parseMonitor(out string) MonitorSample {
	ms := MonitorSample{Client: map[string]int64{}, Script: map[string]int64{}}
	for _, line := range strings.Split(out, "\n") {
		open := strings.IndexByte(line, '[')
		end := strings.IndexByte(line, ']')
		if open < 0 || end < open {
			continue
		}
		src := strings.Fields(line[open+1 : end])
		rest := strings.TrimSpace(line[end+1:])
		if len(src) != 2 || !strings.HasPrefix(rest, `"`) {
			continue
		}
		cmd, _, _ := strings.Cut(rest[1:], `"`)
		cmd = strings.ToLower(cmd)
		if src[1] == "lua" {
			ms.Script[cmd]++
		} else {
			ms.Client[cmd]++
		}
	}
	return ms
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func (l *LimiterResults) config(name string) *LimiterConfig {
	for i := range l.Configs {
		if l.Configs[i].Name == name {
			return &l.Configs[i]
		}
	}
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func writeJSON(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readJSON(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if res.Meta == nil {
		res.Meta = map[string]string{}
	}
	return &res, nil
}

// WSSummary is a wsbench latency distribution, in milliseconds.
type WSSummary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// WSCPU is where the CPU time went during a wsbench latency run.
type WSCPU struct {
	WindowS        float64 `json:"window_s"`
	ClientS        float64 `json:"client_s"`
	ServerS        float64 `json:"server_s"`
	MachineBusyPct float64 `json:"machine_busy_pct"`
	NProc          int     `json:"nproc"`
}

// WSLatency is one wsbench latency result (the fields the report uses)
// and its comparison with the target.
type WSLatency struct {
	Label string `json:"label,omitempty"`
	// Source is where the events came from: "http", runs created through
	// POST /v1/runs, or "ws", a WebSocket client's publish frames (set to
	// "http" by collect for results older than the field).
	Source        string  `json:"source"`
	CrossInstance bool    `json:"cross_instance"`
	Subscribers   int     `json:"subscribers"`
	Rate          float64 `json:"rate"`
	AchievedRate  float64 `json:"achieved_rate"`
	WarmupS       float64 `json:"warmup_s"`
	DurationS     float64 `json:"duration_s"`
	ConnectS      float64 `json:"connect_s"`
	EventsOK      int64   `json:"events_ok"`
	EventsFailed  int64   `json:"events_failed"`
	// PostStatus counts the measured events by outcome: HTTP statuses,
	// or "ok" and error codes of the publishes.
	PostStatus          map[string]int64 `json:"post_status,omitempty"`
	PublishLagMaxMs     float64          `json:"publish_lag_max_ms"`
	Expected            int64            `json:"expected"`
	Delivered           int64            `json:"delivered"`
	Missing             int64            `json:"missing"`
	Duplicates          int64            `json:"duplicates"`
	CompleteSubscribers int              `json:"complete_subscribers"`
	Disconnected        int              `json:"disconnected"`
	DrainS              float64          `json:"drain_s"`
	Latency             WSSummary        `json:"latency_ms"`
	// PostLatency is the POSTs' latency (http source only).
	PostLatency *WSSummary `json:"post_latency_ms,omitempty"`
	CPU         *WSCPU     `json:"cpu,omitempty"`
	// TargetP99Ms is the bound on the p99 (set by collect);
	// MeetsTarget says the p99 is within it and every subscriber got
	// every event.
	TargetP99Ms float64 `json:"target_p99_ms"`
	MeetsTarget bool    `json:"meets_target"`
}

// WSIdle is one wsbench -idle result (the fields the report uses) and
// its comparison with the target.
type WSIdle struct {
	Connections        int     `json:"connections"`
	Subscribed         bool    `json:"subscribed"`
	ConnectS           float64 `json:"connect_s"`
	SettleS            float64 `json:"settle_s"`
	HoldS              float64 `json:"hold_s"`
	RSSBeforeKiB       int64   `json:"rss_before_kib"`
	RSSHeldKiB         int64   `json:"rss_held_kib"`
	RSSMaxKiB          int64   `json:"rss_max_kib"`
	RSSAfterCloseKiB   int64   `json:"rss_after_close_kib"`
	KiBPerConn         float64 `json:"kib_per_conn"`
	GoroutinesPerConn  float64 `json:"goroutines_per_conn"`
	HeapKiBPerConn     float64 `json:"heap_kib_per_conn"`
	MetricsUnavailable string  `json:"metrics_unavailable,omitempty"`
	Disconnected       int     `json:"disconnected"`
	// TargetKiBPerConn is the bound (set by collect); MeetsTarget
	// says KiBPerConn is within it and no connection dropped.
	TargetKiBPerConn float64 `json:"target_kib_per_conn"`
	MeetsTarget      bool    `json:"meets_target"`
}

// WSResults are the WebSocket scenarios: fan-out latency on one instance
// and across two instances through Redis, each with events from runs
// created (Single, Cross) and from a client's publish frames
// (SinglePublish, CrossPublish), and idle-connection memory.
type WSResults struct {
	Single        *WSLatency `json:"single,omitempty"`
	SinglePublish *WSLatency `json:"single_publish,omitempty"`
	Cross         *WSLatency `json:"cross,omitempty"`
	CrossPublish  *WSLatency `json:"cross_publish,omitempty"`
	Idle          *WSIdle    `json:"idle,omitempty"`
}

// latencies are the fan-out latency results in the report's order, with
// their names; nil results are left out.
func (ws *WSResults) latencies() []namedLatency {
	var out []namedLatency
	for _, c := range []namedLatency{
		{"one instance", "one instance", ws.Single}, {"one instance", "one instance", ws.SinglePublish},
		{"two instances, Redis", "two instances", ws.Cross}, {"two instances, Redis", "two instances", ws.CrossPublish},
	} {
		if c.l != nil {
			out = append(out, c)
		}
	}
	return out
}

// namedLatency is a fan-out latency result and its scenario's name, in
// the report's table and, short, in the chart.
type namedLatency struct {
	name, short string
	l           *WSLatency
}

// wsbench's event sources: runs created through POST /v1/runs, and a
// WebSocket client's publish frames.
const (
	sourceHTTP = "http"
	sourceWS   = "ws"
)

// The WebSocket targets.
const (
	targetWSSingleP99Ms  = 50
	targetWSCrossP99Ms   = 60
	targetWSIdleKiBPerCn = 30
)

// collectWS reads ws/single.json, ws/single-publish.json, ws/cross.json,
// ws/cross-publish.json and ws/idle.json (wsbench -json results); nil when
// there is none. The target of a latency result is that of its instances,
// whatever the source of its events.
func collectWS(dir string) (*WSResults, error) {
	ws := &WSResults{}
	for _, s := range []struct {
		file   string
		dst    **WSLatency
		target float64
	}{
		{"single.json", &ws.Single, targetWSSingleP99Ms}, {"single-publish.json", &ws.SinglePublish, targetWSSingleP99Ms},
		{"cross.json", &ws.Cross, targetWSCrossP99Ms}, {"cross-publish.json", &ws.CrossPublish, targetWSCrossP99Ms},
	} {
		var l WSLatency
		switch err := readJSONFile(filepath.Join(dir, s.file), &l); {
		case err == nil:
			if l.Source == "" {
				l.Source = sourceHTTP
			}
			l.TargetP99Ms = s.target
			l.MeetsTarget = l.Latency.Count > 0 && l.Latency.P99 <= s.target && l.Missing == 0 && l.Delivered == l.Expected
			*s.dst = &l
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	var idle WSIdle
	switch err := readJSONFile(filepath.Join(dir, "idle.json"), &idle); {
	case err == nil:
		idle.TargetKiBPerConn = targetWSIdleKiBPerCn
		idle.MeetsTarget = idle.Connections > 0 && idle.KiBPerConn <= targetWSIdleKiBPerCn && idle.Disconnected == 0
		ws.Idle = &idle
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if len(ws.latencies()) == 0 && ws.Idle == nil {
		return nil, nil
	}
	return ws, nil
}

// readJSONFile decodes the JSON file at path into v.
func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ScaleResults are the routes of one tenant with many runs and usage
// rows: the first page of the list, a status filter and two aggregates.
type ScaleResults struct {
	List   *HTTPScenario `json:"list,omitempty"`
	Failed *HTTPScenario `json:"failed,omitempty"`
	Stats  *HTTPScenario `json:"stats,omitempty"`
	Usage  *HTTPScenario `json:"usage_summary,omitempty"`
	// StatsSolo and UsageSolo are the aggregates with one client: the time
	// of one request when nothing else runs.
	StatsSolo *HTTPScenario `json:"stats_solo,omitempty"`
	UsageSolo *HTTPScenario `json:"usage_summary_solo,omitempty"`
	// ListP99Ratio is the list's p99 over the baseline list's (scenario c).
	ListP99Ratio float64 `json:"list_p99_ratio,omitempty"`
}

// collectScale reads scale/list.json, failed.json, stats.json,
// usage.json, stats-1.json and usage-1.json (loadgen -json results); nil
// when there is none. The list
// is compared with base, the list of scenario c.
func collectScale(dir string, base *HTTPScenario) (*ScaleResults, error) {
	sc := &ScaleResults{}
	for _, s := range []struct {
		file string
		dst  **HTTPScenario
	}{{"list.json", &sc.List}, {"failed.json", &sc.Failed}, {"stats.json", &sc.Stats}, {"usage.json", &sc.Usage},
		{"stats-1.json", &sc.StatsSolo}, {"usage-1.json", &sc.UsageSolo}} {
		var l Load
		switch err := readLoad(filepath.Join(dir, s.file), &l); {
		case err == nil:
			*s.dst = &HTTPScenario{Load: l}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	if sc.List == nil && sc.Failed == nil && sc.Stats == nil && sc.Usage == nil {
		return nil, nil
	}
	if sc.List != nil && base != nil && base.RPS > 0 {
		sc.List.Baseline = "list req/s of scenario c"
		sc.List.Ratio = sc.List.RPS / base.RPS
		if base.Latency.P99 > 0 {
			sc.ListP99Ratio = sc.List.Latency.P99 / base.Latency.P99
		}
	}
	return sc, nil
}

// LegacyResults are one timed `legacy import` of the seeded legacy
// fixtures and the `legacy verify` after it.
type LegacyResults struct {
	// RunsParam is the seed's runs variable; Rows the legacy rows of the
	// six tables, RowsByTable per table.
	RunsParam   int64            `json:"runs_param"`
	Rows        int64            `json:"rows"`
	RowsByTable map[string]int64 `json:"rows_by_table"`
	Quarantined *int64           `json:"quarantined,omitempty"`
	Flags       string           `json:"flags,omitempty"`
	SeedS       float64          `json:"seed_s"`
	WallS       float64          `json:"wall_s"`
	RowsPerS    float64          `json:"rows_per_s"`
	MaxRSSKiB   int64            `json:"max_rss_kib"`
	RSSSource   string           `json:"rss_source,omitempty"`
	VerifyS     float64          `json:"verify_s"`
	VerifyExit  int              `json:"verify_exit"`
	// TargetWallS is the bound on the whole import; MeetsTarget
	// says the import took at most that and verify passed.
	TargetWallS float64 `json:"target_wall_s"`
	MeetsTarget bool    `json:"meets_target"`
}

// targetLegacyWallS is the target: the whole import in 60 s.
const targetLegacyWallS = 60

// legacyTargetRuns is the fixture size (seed.sql's runs) the target is
// meant for: about 1.7M legacy rows.
const legacyTargetRuns = 100000

// collectLegacy reads legacy/legacy.env (KEY=VALUE lines written by
// bench.sh); nil when it is missing.
func collectLegacy(dir string) (*LegacyResults, error) {
	m := map[string]string{}
	switch err := readEnv(filepath.Join(dir, "legacy.env"), m); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	}
	lg := &LegacyResults{RowsByTable: map[string]int64{}, Flags: m["flags"], RSSSource: m["rss_source"], TargetWallS: targetLegacyWallS}
	var errs []error
	i64 := func(k string) int64 {
		if m[k] == "" {
			return 0
		}
		v, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("legacy.env: %s: %w", k, err))
		}
		return v
	}
	f64 := func(k string) float64 {
		if m[k] == "" {
			return 0
		}
		v, err := strconv.ParseFloat(m[k], 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("legacy.env: %s: %w", k, err))
		}
		return v
	}
	lg.RunsParam, lg.Rows, lg.MaxRSSKiB = i64("runs_param"), i64("rows"), i64("max_rss_kib")
	lg.SeedS, lg.WallS, lg.VerifyS = f64("seed_s"), f64("wall_s"), f64("verify_s")
	lg.VerifyExit = int(i64("verify_exit"))
	if m["quarantined"] != "" {
		q := i64("quarantined")
		lg.Quarantined = &q
	}
	for k := range m {
		if t, ok := strings.CutPrefix(k, "rows_"); ok {
			lg.RowsByTable[t] = i64(k)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if lg.WallS > 0 {
		lg.RowsPerS = float64(lg.Rows) / lg.WallS
	}
	lg.MeetsTarget = lg.WallS > 0 && lg.WallS <= lg.TargetWallS && lg.VerifyExit == 0
	return lg, nil
}
