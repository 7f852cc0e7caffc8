package main

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

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

// collectStore reads the output of the store benchmarks at path; nil
// when it is missing or holds neither benchmark.
func collectStore(path string) (*StoreResults, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
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
	if st.Store == nil && st.Floor == nil {
		return nil, nil
	}
	return st, nil
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
