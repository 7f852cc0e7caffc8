package main

import (
	"fmt"
	"html"
	"strings"
)

// bar is one row of a chart panel.
type bar struct {
	label string
	value float64
	unit  string
	color string
}

// Colors of the scenario groups.
const (
	colorStore   = "#4e79a7"
	colorIngest  = "#f28e2b"
	colorList    = "#59a14f"
	colorLimiter = "#e15759"
	colorWS      = "#76b7b2"
	colorScale   = "#b07aa1"
)

// Geometry of the chart, in pixels.
const (
	svgWidth   = 880
	labelWidth = 300
	barArea    = 440
	rowHeight  = 26
	barHeight  = 18
	panelGap   = 44
	margin     = 16
)

// SVG renders a bar chart of throughput and p99 latency per scenario, as
// plain SVG text.
func SVG(r *Results) string {
	var tput, p99 []bar
	if s := r.Store; s != nil {
		if s.Floor != nil {
			tput = append(tput, bar{"store: pgx floor", s.Floor.RunsPerS, "runs/s", colorStore})
		}
		if s.Store != nil {
			tput = append(tput, bar{"store: Runs.Create", s.Store.RunsPerS, "runs/s", colorStore})
		}
	}
	if in := r.Ingest; in != nil {
		tput = append(tput, bar{"HTTP ingest: POST /v1/runs", in.RPS, "req/s", colorIngest})
		p99 = append(p99, bar{"HTTP ingest: POST /v1/runs", in.Latency.P99, "ms", colorIngest})
	}
	if ls := r.List; ls != nil {
		tput = append(tput, bar{"HTTP list: GET /v1/runs?limit=50", ls.RPS, "req/s", colorList})
		p99 = append(p99, bar{"HTTP list: GET /v1/runs?limit=50", ls.Latency.P99, "ms", colorList})
	}
	if sc := r.Scale; sc != nil {
		for _, c := range []struct {
			label string
			s     *HTTPScenario
		}{
			{"scale: GET /v1/runs?limit=50", sc.List},
			{"scale: GET /v1/runs?status=failed", sc.Failed},
			{"scale: GET /v1/runs/stats", sc.Stats},
			{"scale: GET /v1/usage/summary", sc.Usage},
		} {
			if c.s != nil {
				tput = append(tput, bar{c.label, c.s.RPS, "req/s", colorScale})
				p99 = append(p99, bar{c.label, c.s.Latency.P99, "ms", colorScale})
			}
		}
	}
	if lim := r.Limiter; lim != nil {
		for _, c := range lim.Configs {
			label := "limiter: " + c.Name
			tput = append(tput, bar{label, c.RPS, "req/s", colorLimiter})
			p99 = append(p99, bar{label, c.P99, "ms", colorLimiter})
		}
	}

	var body strings.Builder
	y := margin
	title := "agentstore benchmarks"
	if d := r.Meta["date"]; d != "" {
		title += " — " + d
	}
	if c := r.Meta["commit"]; c != "" {
		title += " — " + c
	}
	fmt.Fprintf(&body, `<text x="%d" y="%d" font-size="15" font-weight="bold">%s</text>`+"\n", margin, y+12, esc(title))
	y += 30
	y = panel(&body, y, "Throughput per second (higher is better)", tput)
	y += panelGap
	y = panel(&body, y, "p99 latency in ms (lower is better; the limiter rows: median of rounds)", p99)
	if ws := r.WS; ws != nil && len(ws.latencies()) > 0 {
		var wsp99 []bar
		for _, c := range ws.latencies() {
			l := c.l
			wsp99 = append(wsp99, bar{fmt.Sprintf("WS %s, %s (target %.0f)", c.short, sourceTitle(l.Source), l.TargetP99Ms), l.Latency.P99, "ms", colorWS})
		}
		y += panelGap
		y = panel(&body, y, "WebSocket publish-to-receive p99 in ms (lower is better)", wsp99)
	}
	y += margin

	var out strings.Builder
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, y, svgWidth, y)
	fmt.Fprintf(&out, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, y)
	out.WriteString(body.String())
	out.WriteString("</svg>\n")
	return out.String()
}

// panel draws one titled panel of horizontal bars on one linear scale
// from y and returns the y below it.
func panel(b *strings.Builder, y int, title string, bars []bar) int {
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", margin, y+12, esc(title))
	y += 22
	if len(bars) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#666666">no data</text>`+"\n", margin, y+14)
		return y + rowHeight
	}
	top := 0.0
	for _, br := range bars {
		top = max(top, br.value)
	}
	x0 := margin + labelWidth
	for _, br := range bars {
		w := 0.0
		if top > 0 {
			w = br.value / top * barArea
		}
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", x0-8, y+barHeight-4, esc(br.label))
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y, w, barHeight, br.color)
		fmt.Fprintf(b, `<text x="%.1f" y="%d">%s %s</text>`+"\n", float64(x0)+w+6, y+barHeight-4, esc(valueText(br.value, br.unit)), esc(br.unit))
		y += rowHeight
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333333"/>`+"\n", x0, y-rowHeight*len(bars)-4, x0, y-4)
	return y
}

func valueText(v float64, unit string) string {
	if unit == "ms" {
		return fmt.Sprintf("%.2f", v)
	}
	return num(v)
}

func esc(s string) string { return html.EscapeString(s) }
