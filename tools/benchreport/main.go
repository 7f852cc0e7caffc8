// Command benchreport turns the raw output of `make bench`
// (scripts/bench.sh) into one JSON results file, a Markdown report and an
// SVG bar chart. It has two steps:
//
//	benchreport collect -raw bench/raw -out bench/results.json
//	benchreport render -in bench/results.json -md bench/report.md -svg bench/throughput.svg
//
// collect reads, from the raw directory:
//
//	meta.env                 KEY=VALUE lines: date, commit, machine, versions
//	store-bench.txt          the output of `go test -bench CreateRun ./internal/store/`
//	ingest.json, list.json   loadgen -json results
//	limiter/CONFIG-rN.json   loadgen -json results, CONFIG none, memory or redis, round N
//	limiter/redis-rN.before, limiter/redis-rN.after
//	                         `redis-cli INFO commandstats` around redis round N
//	ws/single.json, ws/cross.json
//	                         wsbench -json fan-out latency results, events from
//	                         runs created (-source http): one instance, and two
//	                         instances sharing Redis
//	ws/single-publish.json, ws/cross-publish.json
//	                         the same with events from a WebSocket client's
//	                         publish frames (-source ws)
//	ws/idle.json             wsbench -idle -json: server memory per idle connection
//	scale/*.json             loadgen -json results of list and aggregates on 1M runs
//	legacy/legacy.env        legacy import figures: rows, wall time, peak RSS, verify
//
// Any part may be missing; the report shows what was measured. render needs
// nothing but the results file and uses only the standard library.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  benchreport collect -raw DIR -out results.json
  benchreport render -in results.json -md report.md -svg throughput.svg`

func run(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("benchreport "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch args[0] {
	case "collect":
		raw := fs.String("raw", "bench/raw", "directory of the raw outputs")
		out := fs.String("out", "bench/results.json", "results file to write")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		res, err := Collect(*raw)
		if err != nil {
			return err
		}
		return writeJSON(*out, res)
	case "render":
		in := fs.String("in", "bench/results.json", "results file to read")
		md := fs.String("md", "bench/report.md", "Markdown report to write")
		svg := fs.String("svg", "bench/throughput.svg", "SVG chart to write")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		res, err := readJSON(*in)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*md, []byte(Markdown(res, svgRef(*md, *svg))), 0o644); err != nil {
			return err
		}
		return os.WriteFile(*svg, []byte(SVG(res)), 0o644)
	}
	return errors.New(usage)
}
