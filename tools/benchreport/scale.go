package main

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/agentstore/agentstore/tools/benchresult"
)

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
		var l benchresult.Load
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
