package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// load returns a loadgen -json result.
func load(rps, p99 float64, requests, total int64, status string) string {
	return fmt.Sprintf(`{"url":"http://127.0.0.1:1/x","method":"GET","concurrency":32,"warmup_s":2,"duration_s":%g,
		"requests":%d,"errors":0,"unexpected":0,"warmup_requests":%d,"total_requests":%d,"rps":%g,
		"latency_ms":{"mean":1,"p50":%g,"p90":2,"p99":%g,"max":%g},"status":{%q:%d},"connections":32}`,
		float64(requests)/rps, requests, total-requests, total, rps, p99/4, p99, p99*2, status, requests)
}

// wsLatency returns a wsbench -json latency result of source "http" or
// "ws"; "" is an http result from before wsbench had -source (no
// "source", no "channel").
func wsLatency(source string, cross bool, p99 float64, missing int64) string {
	head := `"mode":"latency"`
	post := `"post_status":{"201":2000},"post_latency_ms":{"count":2000,"mean":3,"p50":2.5,"p90":4,"p99":9,"p999":12,"max":15},`
	switch source {
	case "http":
		head += `,"source":"http","channel":"runs"`
	case "ws":
		head += `,"source":"ws","channel":"run:0b4c8a53-7f7e-4c4c-9a55-0a2d8c7e3f11","run_id":"0b4c8a53-7f7e-4c4c-9a55-0a2d8c7e3f11"`
		post = `"post_status":{"ok":2000},`
	}
	return fmt.Sprintf(`{%s,"ws":"http://127.0.0.1:1","api":"http://127.0.0.1:2","cross_instance":%t,"subscribers":1000,
		"rate":100,"achieved_rate":99.5,"warmup_s":3,"duration_s":20,"connect_s":0.5,"warmup_events":300,"events_ok":2000,"events_failed":0,
		%s"publish_lag_max_ms":1.5,"expected":2000000,"delivered":%d,"missing":%d,"duplicates":0,"unexpected":0,
		"complete_subscribers":%d,"disconnected":0,"error_frames":0,"drain_s":0.02,
		"latency_ms":{"count":%d,"mean":5,"p50":4,"p90":8,"p99":%g,"p999":90,"max":120},
		"cpu":{"window_s":20,"client_s":10,"server_s":16,"machine_busy_pct":95,"nproc":2},"nofile_limit":20000}`,
		head, cross, post, 2000000-missing, missing, 1000-missing, 2000000-missing, p99)
}

func writeRaw(t *testing.T) string {
	t.Helper()
	raw := t.TempDir()
	files := map[string]string{
		"meta.env": "date=2026-01-02T03:04:05Z\ncommit=abc1234\nnproc=2\n# a comment\nload_start=1.00 2.00 3.00\n" +
			"load_end=4.00 5.00 6.00\nlimiter_route=GET /v1/runs/{unknown id} (404)\ningest_written=700 7000 7000\n",
		"store-bench.txt": "goos: linux\nBenchmarkCreateRunStore-2      \t     830\t   1404255 ns/op\t       900.0 runs/s\t   89471 B/op\t    1395 allocs/op\n" +
			"BenchmarkCreateRunPgxFloor-2   \t     951\t   1173862 ns/op\t      1000.0 runs/s\t   69140 B/op\t    1321 allocs/op\nPASS\n",
		"ingest.json":          load(450, 80, 9000, 10000, "201"),
		"list.json":            load(600, 50, 12000, 13000, "200"),
		"limiter/none-r1.json": load(2000, 40, 16000, 20000, "404"),
		// Rounds sort by number, not name: r10 after r2.
		"limiter/none-r10.json":   load(1000, 60, 8000, 10000, "404"),
		"limiter/memory-r1.json":  load(1900, 42, 15200, 19000, "404"),
		"limiter/redis-r1.json":   load(1800, 44, 14400, 18000, "404"),
		"limiter/redis-r2.json":   load(1600, 48, 12800, 16000, "404"),
		"limiter/redis-r1.before": "# Commandstats\r\ncmdstat_info:calls=1,usec=1\r\ncmdstat_evalsha:calls=5,usec=1\r\n",
		"limiter/redis-r1.after":  "# Commandstats\r\ncmdstat_info:calls=2,usec=1\r\ncmdstat_evalsha:calls=18005,usec=1\r\ncmdstat_incrby:calls=18000,usec=1\r\ncmdstat_ping:calls=1,usec=1\r\n",
		"limiter/redis-r2.before": "cmdstat_evalsha:calls=18005,usec=1\r\ncmdstat_incrby:calls=18000,usec=1\r\n",
		"limiter/redis-r2.after":  "cmdstat_evalsha:calls=34005,usec=1\r\ncmdstat_incrby:calls=34000,usec=1\r\n",
		"limiter/monitor.txt": "OK\n" +
			`1795698081.620671 [0 127.0.0.1:33328] "evalsha" "f742" "1" "agentstore:rl:t|GET|/v1/runs/:id|127.0.0.1" "1" "60000"` + "\n" +
			`1795698081.620782 [0 lua] "incrby" "agentstore:rl:t|GET|/v1/runs/:id|127.0.0.1" "1"` + "\n" +
			`1795698081.620805 [0 lua] "pttl" "agentstore:rl:t|GET|/v1/runs/:id|127.0.0.1"` + "\n" +
			`1795698081.620848 [0 127.0.0.1:33212] "EVALSHA" "f742" "1" "k" "1" "60000"` + "\n" +
			`1795698081.620900 [0 lua] "incrby" "k" "1"` + "\n",
		"limiter/monitor-sample.json": load(100, 10, 2, 2, "404"),
		"scale/list.json":             load(300, 100, 6000, 7000, "200"),
		"scale/failed.json":           load(400, 80, 8000, 9000, "200"),
		"scale/stats.json":            load(5, 3000, 50, 60, "200"),
		"scale/usage.json":            load(8, 2000, 80, 90, "200"),
		"scale/stats-1.json":          strings.Replace(load(1, 700, 15, 15, "200"), `"concurrency":32`, `"concurrency":1`, 1),
		"scale/usage-1.json":          strings.Replace(load(2, 450, 30, 30, "200"), `"concurrency":32`, `"concurrency":1`, 1),
		"legacy/legacy.env": "runs_param=100000\nflags=\nseed_s=70\nrows=1700000\nrows_agent_runs=100000\nrows_agent_steps=800000\n" +
			"rows_tool_calls=400000\nrows_audit_logs=300000\nrows_usage_metrics=90000\nrows_system_health=10000\nquarantined=25000\n" +
			"wall_s=42.500\nmax_rss_kib=102400\nrss_source=/usr/bin/time -v\nverify_s=8.25\nverify_exit=0\n",
		"ws/single.json":         wsLatency("", false, 30, 0),
		"ws/single-publish.json": wsLatency("ws", false, 12, 0),
		"ws/cross.json":          wsLatency("http", true, 75, 3),
		"ws/cross-publish.json":  wsLatency("ws", true, 55, 0),
		"ws/idle.json": `{"mode":"idle","connections":5000,"subscribed":true,"connect_s":3.1,"settle_s":5,"hold_s":20,
			"rss_before_kib":30000,"rss_samples_kib":[150000,150100],"rss_held_kib":150000,"rss_max_kib":150100,"rss_after_close_kib":149000,
			"kib_per_conn":24,"goroutines_per_conn":2,"heap_kib_per_conn":14.5,"disconnected":0,"nofile_limit":20000}`,
	}
	for name, body := range files {
		path := filepath.Join(raw, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return raw
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }

func TestCollect(t *testing.T) {
	res, err := Collect(writeRaw(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta["commit"] != "abc1234" || res.Meta["load_end"] != "4.00 5.00 6.00" {
		t.Errorf("meta %v", res.Meta)
	}
	st := res.Store
	if st == nil || st.Store.RunsPerS != 900 || st.Floor.RunsPerS != 1000 || !near(st.StoreToFloor, 0.9) || st.Store.AllocsPerOp != 1395 {
		t.Fatalf("store %+v", st)
	}
	if res.Ingest == nil || !near(res.Ingest.Ratio, 0.5) || res.Ingest.Status["201"] != 9000 {
		t.Fatalf("ingest %+v", res.Ingest)
	}
	if res.List == nil || res.List.RPS != 600 || res.List.Ratio != 0 {
		t.Fatalf("list %+v", res.List)
	}
	lim := res.Limiter
	if lim == nil || len(lim.Configs) != 3 || lim.Route != "GET /v1/runs/{unknown id} (404)" {
		t.Fatalf("limiter %+v", lim)
	}
	none, redis := lim.config("none"), lim.config("redis")
	if none.Rounds[0].Round != 1 || none.Rounds[1].Round != 10 {
		t.Errorf("rounds out of order: %d, %d", none.Rounds[0].Round, none.Rounds[1].Round)
	}
	// (16000 + 8000) / (8 + 8) s; redis (14400 + 12800) / (8 + 8) s.
	if !near(none.RPS, 1500) || !near(redis.RPS, 1700) || !near(redis.RatioToNone, 1700.0/1500) || none.Max != 120 {
		t.Errorf("none %+v, redis %+v", none, redis)
	}
	if !near(redis.P99, 46) { // the median of 44 and 48
		t.Errorf("redis p99 %v", redis.P99)
	}
	// Round 1: 1800/2000; round 2 has no unlimited round to pair with.
	if len(redis.RoundRatios) != 1 || !near(redis.RoundRatios[0], 0.9) || !near(redis.MedianRoundRatio, 0.9) ||
		lim.RedisCostMedian == nil || !near(*lim.RedisCostMedian, 0.1) {
		t.Errorf("round ratios %v, median %v", redis.RoundRatios, redis.MedianRoundRatio)
	}
	if lim.RedisCost == nil || !near(*lim.RedisCost, 1-1700.0/1500) || !*lim.MeetsTarget {
		t.Errorf("cost %v, meets %v", lim.RedisCost, lim.MeetsTarget)
	}
	rc := lim.Redis
	if rc == nil || rc.Requests != 34000 || rc.ByCommand["evalsha"] != 34000 || rc.ByCommand["incrby"] != 34000 ||
		rc.ByCommand["ping"] != 1 || rc.ByCommand["info"] != 0 || !near(rc.EvalshaPerRequest, 1) || !near(rc.PerRequest, 68001.0/34000) {
		t.Fatalf("redis commands %+v", rc)
	}
	ws := res.WS
	if ws == nil || ws.Single == nil || ws.SinglePublish == nil || ws.Cross == nil || ws.CrossPublish == nil || ws.Idle == nil {
		t.Fatalf("websocket %+v", ws)
	}
	// An old result without "source" is an http one.
	if !ws.Single.MeetsTarget || ws.Single.TargetP99Ms != 50 || ws.Single.Latency.P99 != 30 || ws.Single.CPU.ServerS != 16 ||
		ws.Single.Source != "http" || ws.Single.PostLatency == nil || ws.Single.PostLatency.P99 != 9 {
		t.Errorf("single %+v", ws.Single)
	}
	if sp := ws.SinglePublish; !sp.MeetsTarget || sp.TargetP99Ms != 50 || sp.Latency.P99 != 12 || sp.Source != "ws" || sp.PostLatency != nil ||
		sp.PostStatus["ok"] != 2000 {
		t.Errorf("single publish %+v", sp)
	}
	if ws.Cross.MeetsTarget || ws.Cross.TargetP99Ms != 60 || ws.Cross.Missing != 3 || !ws.Cross.CrossInstance || ws.Cross.Source != "http" {
		t.Errorf("cross %+v", ws.Cross)
	}
	if cp := ws.CrossPublish; !cp.MeetsTarget || cp.TargetP99Ms != 60 || cp.Latency.P99 != 55 || cp.Source != "ws" || !cp.CrossInstance {
		t.Errorf("cross publish %+v", cp)
	}
	if !ws.Idle.MeetsTarget || ws.Idle.TargetKiBPerConn != 30 || ws.Idle.KiBPerConn != 24 {
		t.Errorf("idle %+v", ws.Idle)
	}
	sc := res.Scale
	if sc == nil || sc.List == nil || sc.Failed == nil || sc.Stats == nil || sc.Usage == nil || sc.StatsSolo == nil || sc.UsageSolo == nil {
		t.Fatalf("scale %+v", sc)
	}
	// The list of 600 req/s, p99 50 ms is the baseline.
	if !near(sc.List.Ratio, 0.5) || !near(sc.ListP99Ratio, 2) || sc.Failed.Ratio != 0 || sc.Stats.Latency.P99 != 3000 || sc.Usage.RPS != 8 {
		t.Errorf("scale list %+v, p99 ratio %v", sc.List, sc.ListP99Ratio)
	}
	if sc.StatsSolo.Concurrency != 1 || sc.StatsSolo.Latency.P99 != 700 || sc.UsageSolo.RPS != 2 {
		t.Errorf("scale solo %+v %+v", sc.StatsSolo, sc.UsageSolo)
	}
	lg := res.Legacy
	if lg == nil || lg.Rows != 1700000 || lg.RowsByTable["agent_steps"] != 800000 || len(lg.RowsByTable) != 6 || !near(lg.RowsPerS, 40000) ||
		lg.MaxRSSKiB != 102400 || lg.Quarantined == nil || *lg.Quarantined != 25000 || lg.TargetWallS != 60 || !lg.MeetsTarget {
		t.Fatalf("legacy %+v", lg)
	}
	s := rc.Sample
	if s == nil || s.Requests != 2 || s.Client["evalsha"] != 2 || s.Script["incrby"] != 2 || s.Script["pttl"] != 1 ||
		!near(s.ClientPerRequest, 1) || !near(s.ScriptPerRequest, 1.5) {
		t.Fatalf("monitor sample %+v", s)
	}
}

func TestRender(t *testing.T) {
	raw := writeRaw(t)
	out := t.TempDir()
	results, md, svg := filepath.Join(out, "results.json"), filepath.Join(out, "report.md"), filepath.Join(out, "throughput.svg")
	if err := run([]string{"collect", "-raw", raw, "-out", results}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"render", "-in", results, "-md", md, "-svg", svg}, io.Discard); err != nil {
		t.Fatal(err)
	}
	report, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| commit | `abc1234` |", "| load average at end | 4.00 5.00 6.00 |", "![throughput and p99 latency per scenario](throughput.svg)",
		"| store `Runs.Create` | 900 |", "| 0.90 |", "| 450 | 20.00 |", "| 0.50 |", "700 runs, 7000 steps, 7000 tool calls",
		"| none (RATE_LIMIT_DISABLED=true) | 1500 |", "1.13 |", "of which EVALSHA 1.000", "1.000 command(s) received from the network",
		"costs -13.3% — **met** (the median of the per-round ratios puts its cost at 10.0%)", "| 0.90 (0.90) |",
		"## WebSocket fan-out",
		"| one instance | run created | 1000 | 100 (99.5) | 2000000 / 2000000 | 1000 | 4.00 | 8.00 | 30.00 | 90.00 | 120.00 | 2.50 / 9.00 | ≤ 50 ms | **met** |\n" +
			"| one instance | client publish | 1000 | 100 (99.5) | 2000000 / 2000000 | 1000 | 4.00 | 8.00 | 12.00 | 90.00 | 120.00 | n/a | ≤ 50 ms | **met** |\n" +
			"| two instances, Redis | run created | 1000 | 100 (99.5) | 1999997 / 2000000 | 997 | 4.00 | 8.00 | 75.00 | 90.00 | 120.00 | 2.50 / 9.00 | ≤ 60 ms | **not met** |\n" +
			"| two instances, Redis | client publish | 1000 | 100 (99.5) | 2000000 / 2000000 | 1000 | 4.00 | 8.00 | 55.00 | 90.00 | 120.00 | n/a | ≤ 60 ms | **met** |\n",
		"*Client publish*: ", "the hub alone", "includes the HTTP request and a durable PostgreSQL commit",
		"- One instance, run created: 2000 runs created in 20.0s", "- Two instances, Redis, client publish: 2000 events published in 20.0s after 3.0s warm-up (0 refused or not sent; ok=2000)",
		"after the last publish was written.", "applied to both sources",
		"Server CPU per delivery: 8.0 µs.",
		"## Scale: list and aggregates over", "| `GET /v1/runs?limit=50` | 32 | 20.0s | 300 | 25.00 | 2.00 | 100.00 | 200.00 | 6000 | 0 | 0.50, 2.00 |",
		"| `GET /v1/runs/stats?groupBy=status&from=…` | 32 | 10.0s | 5.0 |", "| `GET /v1/usage/summary?groupBy=day&from=…` |",
		"## Legacy import", "| 1700000 | 25000 | 42.5s | 40000 | 100.0 | passed in 8.2s | ≤ 60 s | **met** |", "agent_steps=800000", "| 5000 | 30000 | 150000 (150100) | 149000 | 24.0 | 14.5 | 2.00 | 0 | ≤ 30 KiB | **met** |",
	} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	chart, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(string(chart)))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, chart)
		}
	}
	for _, want := range []string{"store: Runs.Create", "limiter: redis", "1700 req/s", "46.00 ms", "HTTP list: GET /v1/runs?limit=50",
		"WS two instances, run created (target 60)", "75.00 ms", "WS one instance, client publish (target 50)", "12.00 ms",
		"WS two instances, client publish (target 60)", "55.00 ms",
		"scale: GET /v1/runs/stats", "3000.00 ms"} {
		if !strings.Contains(string(chart), want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestCollectEmpty(t *testing.T) {
	res, err := Collect(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.Store != nil || res.Ingest != nil || res.Limiter != nil || res.WS != nil || res.Scale != nil || res.Legacy != nil {
		t.Fatalf("%+v", res)
	}
	if md := Markdown(res, "c.svg"); !strings.Contains(md, "# agentstore benchmarks") {
		t.Fatal(md)
	}
	if svg := SVG(res); !strings.Contains(svg, "no data") {
		t.Fatal(svg)
	}
}

func TestCollectWSWithoutPublishRuns(t *testing.T) {
	// A raw directory from before the client-publish runs.
	raw := t.TempDir()
	if err := os.MkdirAll(filepath.Join(raw, "ws"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"single.json": wsLatency("", false, 30, 0), "cross.json": wsLatency("", true, 45, 0)} {
		if err := os.WriteFile(filepath.Join(raw, "ws", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Collect(raw)
	if err != nil {
		t.Fatal(err)
	}
	ws := res.WS
	if ws == nil || ws.Single == nil || ws.Cross == nil || ws.SinglePublish != nil || ws.CrossPublish != nil || ws.Idle != nil ||
		!ws.Cross.MeetsTarget || ws.Cross.Source != "http" {
		t.Fatalf("websocket %+v", ws)
	}
	md := Markdown(res, "c.svg")
	if !strings.Contains(md, "| two instances, Redis | run created | 1000 |") || strings.Contains(md, "| client publish |") {
		t.Fatal(md)
	}
	if svg := SVG(res); !strings.Contains(svg, "WS one instance, run created (target 50)") || strings.Contains(svg, "client publish") {
		t.Fatal(svg)
	}
}
