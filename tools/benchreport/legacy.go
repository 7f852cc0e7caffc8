package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

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
	// TargetWallS is the bound on the whole import (set by collect:
	// targetLegacyWallS); MeetsTarget says the import took at most that
	// and verify passed.
	TargetWallS float64 `json:"target_wall_s"`
	MeetsTarget bool    `json:"meets_target"`
}

// targetLegacyWallS is the target the benchmark holds `legacy import` to:
// the whole import of the legacyTargetRuns fixture in at most 60 s.
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
