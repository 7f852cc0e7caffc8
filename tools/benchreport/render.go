package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/agentstore/agentstore/tools/benchresult"
)

// limiterTitles name the limiter configurations in the report.
var limiterTitles = map[string]string{
	"none":   "none (RATE_LIMIT_DISABLED=true)",
	"memory": "memory (no REDIS_URL)",
	"redis":  "Redis (REDIS_URL)",
}

// svgRef is how the report at mdPath links the chart at svgPath.
func svgRef(mdPath, svgPath string) string {
	if rel, err := filepath.Rel(filepath.Dir(mdPath), svgPath); err == nil {
		return filepath.ToSlash(rel)
	}
	return svgPath
}

// Markdown renders the report; chart is the chart's link.
func Markdown(r *Results, chart string) string {
	var b strings.Builder
	m := r.Meta
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# agentstore benchmarks\n\n")
	p("One `make bench` run (`scripts/bench.sh`), every scenario in the same run so that the ratios compare like with like. ")
	p("PostgreSQL and Redis are throwaway local servers started by `scripts/services.sh --durable` (fsync on); ")
	p("all load goes over 127.0.0.1 with `tools/loadgen` (closed loop, keep-alive, fixed concurrency). ")
	p("The load generator, the server and the databases share the machine's CPUs, and other work may be running: ")
	p("read absolute figures as this machine's, and the ratios as the result.\n\n")

	p("| run | |\n|---|---|\n")
	for _, row := range [][2]string{
		{"date", m["date"]}, {"commit", code(m["commit"])}, {"CPU", m["cpu"]}, {"nproc", m["nproc"]},
		{"load average at start", m["load_start"]}, {"load average at end", m["load_end"]},
		{"kernel", m["kernel"]}, {"Go", m["go"]}, {"PostgreSQL", m["postgres"]}, {"Redis", m["redis"]},
		{"server log level", m["log_level"]}, {"wall time", secs(m["wall_s"])},
	} {
		if row[1] != "" {
			p("| %s | %s |\n", row[0], row[1])
		}
	}
	p("\n![throughput and p99 latency per scenario](%s)\n\n", chart)

	if s := r.Store; s != nil {
		p("## Store: run creation (Go benchmarks)\n\n")
		p("`go test -run '^$' -bench CreateRun -benchtime %s ./internal/store/`: 16 concurrent writers, ", orDefault(m["store_benchtime"], "10s"))
		p("each run written with 10 steps, 10 tool calls and one audit row. The floor is raw pgx: one transaction, ")
		p("one pipelined batch of four INSERTs.\n\n")
		p("| benchmark | runs/s | ns/op | B/op | allocs/op | ratio to floor |\n|---|---:|---:|---:|---:|---:|\n")
		if f := s.Floor; f != nil {
			p("| pgx floor (baseline) | %s | %s | %s | %s | 1.00 |\n", num(f.RunsPerS), num(f.NsPerOp), num(f.BytesPerOp), num(f.AllocsPerOp))
		}
		if st := s.Store; st != nil {
			ratio := "n/a"
			if s.StoreToFloor > 0 {
				ratio = fmt.Sprintf("%.2f", s.StoreToFloor)
			}
			p("| store `Runs.Create` | %s | %s | %s | %s | %s |\n", num(st.RunsPerS), num(st.NsPerOp), num(st.BytesPerOp), num(st.AllocsPerOp), ratio)
		}
		p("\n")
	}

	if in := r.Ingest; in != nil {
		p("## HTTP ingest: `POST /v1/runs`\n\n")
		p("Each request creates one run with 10 steps and 10 tool calls (client-supplied ids, unique per request), ")
		p("on PostgreSQL, memory limiter with `RATE_LIMIT_MAX` out of reach. %s.\n\n", loadDesc(in.Load))
		p("| req/s | p50 ms | p90 ms | p99 ms | max ms | requests | failed | ratio to store runs/s |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		ratio := "n/a"
		if in.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", in.Ratio)
		}
		l := in.Latency
		p("| %s | %s | %s | %s | %s | %d | %d | %s |\n\n", num(in.RPS), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), in.Requests, in.Errors+in.Unexpected, ratio)
		p("Status codes: %s.", statuses(in.Status))
		if w := strings.Fields(m["ingest_written"]); len(w) == 3 {
			p(" Written by the run's %d requests (warm-up included): %s runs, %s steps, %s tool calls.", in.TotalRequests, w[0], w[1], w[2])
		}
		p("\n\n")
	}

	if ls := r.List; ls != nil {
		p("## List: `GET /v1/runs?limit=50`\n\n")
		p("The first page of one tenant's %s runs (seeded with one `INSERT ... SELECT generate_series`, then `ANALYZE`). %s.\n\n",
			orDefault(m["list_seeded_runs"], "100000"), loadDesc(ls.Load))
		p("| req/s | runs/s returned | p50 ms | p90 ms | p99 ms | max ms | requests | failed |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		l := ls.Latency
		p("| %s | %s | %s | %s | %s | %s | %d | %d |\n\n", num(ls.RPS), num(ls.RPS*50), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ls.Requests, ls.Errors+ls.Unexpected)
		p("Status codes: %s.\n\n", statuses(ls.Status))
	}

	if lim := r.Limiter; lim != nil && len(lim.Configs) > 0 {
		p("## Rate limiter overhead: `%s`\n\n", orDefault(lim.Route, "a cheap authenticated route"))
		first := lim.Configs[0].Rounds[0]
		p("A cheap authenticated route (token verified, limiter consulted, one primary-key lookup, 404) on three servers that differ only in their limiter; ")
		p("every limit is out of reach, so every request is counted and none is refused. ")
		p("%d clients; %d round(s) of %s measured after %s warm-up per configuration, the configurations interleaved within each round ",
			first.Concurrency, len(lim.Configs[0].Rounds), secs(fmt.Sprint(first.DurationS)), secs(fmt.Sprint(first.WarmupS)))
		p("so that background load hits them alike. req/s adds up the rounds; p50 and p99 are the medians of the rounds.\n\n")
		p("| limiter | req/s | p50 ms | p99 ms | max ms | ratio to no limiter | req/s per round | ratio per round (median) | failed |\n|---|---:|---:|---:|---:|---:|---|---|---:|\n")
		for _, c := range lim.Configs {
			ratio := "n/a"
			if c.RatioToNone > 0 {
				ratio = fmt.Sprintf("%.2f", c.RatioToNone)
			}
			per := make([]string, len(c.Rounds))
			for i, rd := range c.Rounds {
				per[i] = num(rd.RPS)
			}
			rr := make([]string, len(c.RoundRatios))
			for i, v := range c.RoundRatios {
				rr[i] = fmt.Sprintf("%.2f", v)
			}
			perRatio := "n/a"
			if len(rr) > 0 {
				perRatio = fmt.Sprintf("%s (%.2f)", strings.Join(rr, ", "), c.MedianRoundRatio)
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", orDefault(limiterTitles[c.Name], c.Name), num(c.RPS), ms(c.P50), ms(c.P99), ms(c.Max),
				ratio, strings.Join(per, ", "), perRatio, c.Errors)
		}
		p("\n")
		if rc := lim.Redis; rc != nil {
			if rc.Requests > 0 {
				p("**Redis commands per request** (`INFO commandstats` deltas around the Redis rounds, divided by the %d requests those rounds sent, warm-up included; ", rc.Requests)
				p("`INFO` itself excluded): %.3f in all, of which EVALSHA %.3f. By command: %s. ", rc.PerRequest, rc.EvalshaPerRequest, counts(rc.ByCommand))
				p("commandstats also counts the commands a Lua script runs inside Redis, which cost no round trip.\n\n")
			}
			if s := rc.Sample; s != nil {
				p("**Redis round trips per request** (`MONITOR` during %d more requests to the Redis server): ", s.Requests)
				p("%.3f command(s) received from the network per request (%s), an upper bound on round trips; ", s.ClientPerRequest, counts(s.Client))
				p("%.3f run inside the limiter's Lua script (%s).\n\n", s.ScriptPerRequest, counts(s.Script))
			}
		}
		if lim.RedisCost != nil {
			verdict := "**met**"
			if !*lim.MeetsTarget {
				verdict = "**not met**"
			}
			p("**Target** (the Redis limiter costs at most %.0f%% of throughput): over all rounds the Redis limiter costs %.1f%% — %s",
				lim.TargetMaxCost*100, *lim.RedisCost*100, verdict)
			if lim.RedisCostMedian != nil {
				p(" (the median of the per-round ratios puts its cost at %.1f%%)", *lim.RedisCostMedian*100)
			}
			p(".\n\n")
		}
	}

	if ws := r.WS; ws != nil {
		wsMarkdown(p, ws)
	}
	if sc := r.Scale; sc != nil {
		scaleMarkdown(p, sc, m)
	}
	if lg := r.Legacy; lg != nil {
		legacyMarkdown(p, lg)
	}
	return b.String()
}

// scaleMarkdown renders the routes over one tenant with many rows.
func scaleMarkdown(p func(string, ...any), sc *ScaleResults, m map[string]string) {
	p("## Scale: list and aggregates over %s runs\n\n", orDefault(m["scale_seeded_runs"], "1000000"))
	p("One tenant's %s runs spread over the last 30 days (5 agents; 5%% failed, 2%% running) and %s usage rows over the same days, ",
		orDefault(m["scale_seeded_runs"], "1000000"), orDefault(m["scale_seeded_usage"], "1000000"))
	p("each seeded with one `INSERT ... SELECT generate_series` then `VACUUM (ANALYZE)`")
	if s := m["scale_seed_s"]; s != "" {
		p(" (%s, not measured)", secs(s))
	}
	p("; a fresh server on the same database. The aggregates cover the whole tenant (`from` = %s, 30 days before the run). ",
		orDefault(m["scale_from"], "30 days ago"))
	p("The ratio compares the list with the list of %s runs above, measured in the same run. ", orDefault(m["list_seeded_runs"], "100000"))
	p("Each aggregate reads every row of the window on every request; the one-client rows give the time of a request alone.\n\n")
	p("| route | clients | measured | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | failed | ratio to the %s-run list (req/s, p99) |\n",
		orDefault(m["list_seeded_runs"], "100000"))
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range []struct {
		route string
		s     *HTTPScenario
	}{
		{"`GET /v1/runs?limit=50`", sc.List},
		{"`GET /v1/runs?status=failed&limit=50`", sc.Failed},
		{"`GET /v1/runs/stats?groupBy=status&from=…`", sc.Stats},
		{"`GET /v1/usage/summary?groupBy=day&from=…`", sc.Usage},
		{"`GET /v1/runs/stats?groupBy=status&from=…`", sc.StatsSolo},
		{"`GET /v1/usage/summary?groupBy=day&from=…`", sc.UsageSolo},
	} {
		s := c.s
		if s == nil {
			continue
		}
		ratio := "n/a"
		if s.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", s.Ratio)
			if s == sc.List && sc.ListP99Ratio > 0 {
				ratio += fmt.Sprintf(", %.2f", sc.ListP99Ratio)
			}
		}
		l := s.Latency
		p("| %s | %d | %s | %s | %s | %s | %s | %s | %d | %d | %s |\n", c.route, s.Concurrency, secs(fmt.Sprint(s.DurationS)), num(s.RPS),
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), s.Requests, s.Errors+s.Unexpected, ratio)
	}
	p("\n")
}

// legacyMarkdown renders the legacy import.
func legacyMarkdown(p func(string, ...any), lg *LegacyResults) {
	p("## Legacy import: `agentstore legacy import`\n\n")
	p("A fresh database of the same cluster: the part of Supabase the fixtures need (roles, `auth.users`, `auth.jwt()`), ")
	p("`testdata/fixtures/legacy/schema.sql` and `seed.sql` with `runs=%d`", lg.RunsParam)
	if lg.SeedS > 0 {
		p(" (seeded in %s, not measured)", secs(fmt.Sprint(lg.SeedS)))
	}
	cmd := "`legacy import` (default flags)"
	if lg.Flags != "" {
		cmd = "`legacy import " + lg.Flags + "`"
	}
	p(", `migrate apply`, then %s timed from start to exit, then `legacy verify`. ", cmd)
	p("Peak RSS: %s. Legacy rows by table: %s.\n\n", orDefault(lg.RSSSource, "n/a"), counts(lg.RowsByTable))
	q := "n/a"
	if lg.Quarantined != nil {
		q = fmt.Sprint(*lg.Quarantined)
	}
	vf := "passed"
	if lg.VerifyExit != 0 {
		vf = fmt.Sprintf("**failed** (exit %d)", lg.VerifyExit)
	}
	p("| legacy rows | quarantined | wall time | rows/s | peak RSS MiB | verify | target | verdict |\n|---:|---:|---:|---:|---:|---|---:|---|\n")
	p("| %d | %s | %s | %s | %.1f | %s in %s | ≤ %.0f s | %s |\n\n", lg.Rows, q, secs(fmt.Sprint(lg.WallS)), num(lg.RowsPerS),
		float64(lg.MaxRSSKiB)/1024, vf, secs(fmt.Sprint(lg.VerifyS)), lg.TargetWallS, verdict(lg.MeetsTarget))
	p("**Target**: the whole import in at most %.0f s, with `legacy verify` passing. ", lg.TargetWallS)
	if lg.RunsParam < legacyTargetRuns {
		p("This run seeded runs=%d, fewer than the %d (about 1.7M rows) the target is meant for: the verdict says little.", lg.RunsParam, legacyTargetRuns)
	} else {
		p("Measured on runs=%d (%d legacy rows).", lg.RunsParam, lg.Rows)
	}
	p("\n\n")
}

// wsMarkdown renders the WebSocket scenarios.
func wsMarkdown(p func(string, ...any), ws *WSResults) {
	p("## WebSocket fan-out: `GET /v1/ws`\n\n")
	if lats := ws.latencies(); len(lats) > 0 {
		p("`tools/wsbench`, a separate process: N connections subscribe to one channel of one tenant, then events are sent ")
		p("at a fixed rate, each carrying its send time; every subscriber computes receive time − send time for every event, ")
		p("and the percentiles are over every (subscriber, event) pair of the measured window. The events come from one of two sources. ")
		p("*Run created*: the subscribers are on the tenant's `runs` channel and each event is a run created through `POST /v1/runs` ")
		p("(a small body; the send time, taken before the request, in the run's metadata), received as `run.created`: ")
		p("the latency runs from before the POST to the receipt, so it includes the HTTP request and a durable PostgreSQL commit ")
		p("(the run's transaction commits before the event is published), then the fan-out and the client's read. ")
		p("*Client publish*: wsbench creates one run, the subscribers are on its channel `run:<id>`, and one more WebSocket client ")
		p("sends `publish` frames (`wsbench.tick`, the send time, taken before the write, in the payload): the latency runs from that ")
		p("client's publish frame to the subscribers' receipt, the hub alone. ")
		p("*One instance*: in-process hub, no Redis. *Two instances*: both on the same Redis, subscribers on the first, runs created ")
		p("(or the publishing client connected) on the second, so every event crosses Redis pub/sub. ")
		p("HTTP rate limiting off (`RATE_LIMIT_DISABLED=true`) on these servers; client publishes stay under `WS_BROADCAST_MAX` (200/s by default). ")
		p("The subscribers, the servers and the databases share the machine's CPUs: the CPU row says how busy it was.\n\n")
		p("| scenario | events | subscribers | events/s (achieved) | delivered / expected | complete subscribers | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | POST p50 / p99 ms | target p99 | verdict |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, c := range lats {
			l := c.l
			lt := l.Latency
			post := "n/a"
			if pl := l.PostLatency; pl != nil {
				post = ms(pl.P50) + " / " + ms(pl.P99)
			}
			p("| %s | %s | %d | %s (%s) | %d / %d | %d | %s | %s | %s | %s | %s | %s | ≤ %.0f ms | %s |\n", c.name, sourceTitle(l.Source), l.Subscribers,
				num(l.Rate), num(l.AchievedRate), l.Delivered, l.Expected, l.CompleteSubscribers,
				ms(lt.P50), ms(lt.P90), ms(lt.P99), ms(lt.P999), ms(lt.Max), post, l.TargetP99Ms, verdict(l.MeetsTarget))
		}
		p("\n")
		for _, c := range lats {
			l := c.l
			name := strings.ToUpper(c.name[:1]) + c.name[1:] + ", " + sourceTitle(l.Source)
			if l.Source == benchresult.SourceWS {
				p("- %s: %d events published in %s after %s warm-up (%d refused or not sent; %s), the latest publish %s ms behind its schedule; ",
					name, l.EventsOK, secs(fmt.Sprint(l.DurationS)), secs(fmt.Sprint(l.WarmupS)), l.EventsFailed, counts(l.PostStatus), ms(l.PublishLagMaxMs))
			} else {
				p("- %s: %d runs created in %s after %s warm-up (%d failed), the latest POST %s ms behind its schedule; ",
					name, l.EventsOK, secs(fmt.Sprint(l.DurationS)), secs(fmt.Sprint(l.WarmupS)), l.EventsFailed, ms(l.PublishLagMaxMs))
			}
			last := "POST answered"
			if l.Source == benchresult.SourceWS {
				last = "publish was written"
			}
			p("%d subscribers connected in %s; %d missing, %d duplicate deliveries, %d connections dropped; last delivery %s after the last %s.",
				l.Subscribers, secs(fmt.Sprint(l.ConnectS)), l.Missing, l.Duplicates, l.Disconnected, secs(fmt.Sprint(l.DrainS)), last)
			if c := l.CPU; c != nil && c.WindowS > 0 {
				p(" CPU over %s: wsbench %s s (%.0f%% of a CPU), server(s) %s s (%.0f%%); the whole machine %.0f%% busy (%d CPUs).",
					secs(fmt.Sprint(c.WindowS)), num(c.ClientS), 100*c.ClientS/c.WindowS, num(c.ServerS), 100*c.ServerS/c.WindowS, c.MachineBusyPct, c.NProc)
				if l.Delivered > 0 {
					p(" Server CPU per delivery: %.1f µs.", c.ServerS/float64(l.Delivered)*1e6)
				}
			}
			p("\n")
		}
		p("\n")
	}
	if id := ws.Idle; id != nil {
		sub := "not subscribed"
		if id.Subscribed {
			sub = "each subscribed to `runs`"
		}
		p("### Idle connections: server memory\n\n")
		p("%d idle WebSocket connections (%s) opened by wsbench to a fresh server (in-process hub) in %s, held %s then sampled every second for %s. ",
			id.Connections, sub, secs(fmt.Sprint(id.ConnectS)), secs(fmt.Sprint(id.SettleS)), secs(fmt.Sprint(id.HoldS)))
		p("Per connection: the growth of the server's resident memory (`VmRSS` of `/proc/PID/status`; the median sample over the hold minus the baseline) over the connections; ")
		p("the Go heap in use and the goroutines from its `/metrics`.\n\n")
		p("| connections | RSS before KiB | RSS held KiB (max) | RSS after closing KiB | KiB RSS per connection | KiB Go heap per connection | goroutines per connection | dropped | target | verdict |\n")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		heap, gor := "n/a", "n/a"
		if id.MetricsUnavailable == "" {
			heap, gor = fmt.Sprintf("%.1f", id.HeapKiBPerConn), fmt.Sprintf("%.2f", id.GoroutinesPerConn)
		}
		p("| %d | %d | %d (%d) | %d | %.1f | %s | %s | %d | ≤ %.0f KiB | %s |\n\n", id.Connections, id.RSSBeforeKiB, id.RSSHeldKiB, id.RSSMaxKiB,
			id.RSSAfterCloseKiB, id.KiBPerConn, heap, gor, id.Disconnected, id.TargetKiBPerConn, verdict(id.MeetsTarget))
	}
	p("**Targets**: p99 publish-to-receive ≤ 50 ms on one instance and ≤ 60 ms across instances through Redis, with every subscriber receiving every event, ")
	p("applied to both sources (run created and client publish); ")
	p("≤ 30 KiB of server memory per idle connection.\n\n")
}

// sourceTitle names a wsbench event source in the report.
func sourceTitle(source string) string {
	if source == benchresult.SourceWS {
		return "client publish"
	}
	return "run created"
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

// loadDesc describes a load run's shape.
func loadDesc(l benchresult.Load) string {
	return fmt.Sprintf("%d clients, %s measured after %s warm-up, %d connection(s) opened",
		l.Concurrency, secs(fmt.Sprint(l.DurationS)), secs(fmt.Sprint(l.WarmupS)), l.Connections)
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func ms(v float64) string { return fmt.Sprintf("%.2f", v) }

func secs(s string) string {
	if s == "" {
		return ""
	}
	var v float64
	if _, err := fmt.Sscan(s, &v); err != nil {
		return s
	}
	return fmt.Sprintf("%.1fs", v)
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func statuses(m map[string]int64) string { return counts(m) }

// counts renders a count map as "k=v, ..." sorted by key.
func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
