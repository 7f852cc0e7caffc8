package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/agentstore/agentstore/tools/benchresult"
)

// Round is one round of one limiter configuration: a loadgen -json result
// and the round's number, from its file name.
type Round struct {
	benchresult.Load
	Round int `json:"round,omitempty"`
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
	Rounds           []Round   `json:"rounds"`
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
	// TargetMaxCost is the bound on the Redis limiter's cost (set by
	// collect: targetMaxCost): 1 - redis/none must not exceed it.
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

// targetMaxCost is the target the benchmark holds the Redis limiter to:
// it costs at most 15% of the throughput of the same server without a
// limiter.
const targetMaxCost = 0.15

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
	rounds := map[string][]Round{}
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
		var l Round
		if err := readLoad(filepath.Join(dir, name), &l.Load); err != nil {
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
		slices.SortFunc(rs, func(a, b Round) int { return a.Round - b.Round })
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
	var sample benchresult.Load
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

// total adds up the counts of m.
func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// config returns the configuration called name; nil when it was not
// measured.
func (l *LimiterResults) config(name string) *LimiterConfig {
	for i := range l.Configs {
		if l.Configs[i].Name == name {
			return &l.Configs[i]
		}
	}
	return nil
}
