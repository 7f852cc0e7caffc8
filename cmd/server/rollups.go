package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/store"
)

const rollupsUsage = `usage: server rollups rebuild [--tenant UUID] [--from TIME] [--to TIME]
       server rollups verify  [--tenant UUID] [--from TIME] [--to TIME]

  rebuild  recompute the rollups of GET /v1/runs/stats and GET /v1/usage/summary
           from the raw rows, one (tenant, UTC day) per transaction, in set-based
           SQL. Safe while the service runs. Each day printed is done; after an
           interruption run it again (with --from the first day not printed).
  verify   compare the rollups with a raw scan of the same days; exits non-zero on
           any difference in a count or a sum, or a percentile beyond 1%.

    --tenant UUID  one tenant (default: every tenant)
    --from TIME    first day: the UTC day holding TIME, RFC 3339 (default: the first with rows)
    --to TIME      end: the UTC day holding TIME is the last unless TIME is midnight
                   (default: the last day with rows)
`

// rollupsFoldInterval is how often serve folds rollup deltas.
const rollupsFoldInterval = time.Second

// rollupsCommand runs `rollups rebuild|verify`; args are the words after
// "rollups".
func rollupsCommand(ctx context.Context, cfg config.Config, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rollupsUsage)
		return errors.New("rollups: missing subcommand (rebuild or verify)")
	}
	switch args[0] {
	case "rebuild", "verify":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, rollupsUsage)
		return nil
	default:
		fmt.Fprint(stderr, rollupsUsage)
		return fmt.Errorf("rollups: unknown subcommand %q", args[0])
	}
	fs := flag.NewFlagSet("rollups "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rollupsUsage) }
	tenantID := fs.String("tenant", "", "one tenant's UUID")
	from := fs.String("from", "", "first day (RFC 3339)")
	to := fs.String("to", "", "end (RFC 3339)")
	if help, err := parseFlags(fs, "rollups "+args[0], args[1:]); help || err != nil {
		return err
	}
	opts := store.RebuildOptions{Progress: stdout}
	if *tenantID != "" {
		id, err := uuid.Parse(*tenantID)
		if err != nil {
			return fmt.Errorf("rollups %s: --tenant: %w", args[0], err)
		}
		opts.Tenant = &id
	}
	for _, f := range []struct {
		name, value string
		dst         *time.Time
	}{{"from", *from, &opts.From}, {"to", *to, &opts.To}} {
		if f.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.value)
		if err != nil {
			return fmt.Errorf("rollups %s: --%s: want RFC 3339, such as 2026-03-01T00:00:00Z", args[0], f.name)
		}
		*f.dst = t
	}
	st, err := openStore(ctx, cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer st.Close()
	if args[0] == "rebuild" {
		began := time.Now()
		rep, err := st.Rollups.Rebuild(ctx, opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rollups rebuild: %d tenant(s), %d day(s) in %s\n", rep.Tenants, rep.Days, time.Since(began).Round(time.Millisecond))
		return nil
	}
	opts.Progress = nil
	rep, err := st.Rollups.Verify(ctx, opts)
	if err != nil {
		return err
	}
	for _, d := range rep.Differences {
		fmt.Fprintln(stdout, "DIFF", d)
	}
	fmt.Fprintf(stdout, "rollups verify: %d tenant(s), %d day(s), %d row(s), %d difference(s)\n", rep.Tenants, rep.Days, rep.Rows, len(rep.Differences))
	if !rep.OK() {
		return fmt.Errorf("rollups verify: %d difference(s)", len(rep.Differences))
	}
	return nil
}
