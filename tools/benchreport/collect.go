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
	"strings"

	"github.com/agentstore/agentstore/tools/benchresult"
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

// HTTPScenario is one HTTP load run (a loadgen -json result) and its
// ratio to its baseline.
type HTTPScenario struct {
	benchresult.Load
	// Baseline names what Ratio divides by; empty when there is none.
	Baseline string  `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
}

// Collect reads the raw directory (see the package comment). Each section
// is read by its own file: store.go, limiter.go, websocket.go, scale.go and
// legacy.go; the ingest and list loads here.
func Collect(raw string) (*Results, error) {
	if _, err := os.Stat(raw); err != nil {
		return nil, err
	}
	res := &Results{Meta: map[string]string{}}
	if err := readEnv(filepath.Join(raw, "meta.env"), res.Meta); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	var err error
	if res.Store, err = collectStore(filepath.Join(raw, "store-bench.txt")); err != nil {
		return nil, err
	}

	for _, s := range []struct {
		file string
		dst  **HTTPScenario
	}{{"ingest.json", &res.Ingest}, {"list.json", &res.List}} {
		var l benchresult.Load
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

	if res.Limiter, err = collectLimiter(filepath.Join(raw, "limiter"), res.Meta["limiter_route"]); err != nil {
		return nil, err
	}

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

// readLoad reads a loadgen -json result.
func readLoad(path string, l *benchresult.Load) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, l); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
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

// median is the median of xs; 0 when xs is empty.
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

// writeJSON writes res to path, indented.
func writeJSON(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// readJSON reads a results file written by writeJSON.
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
