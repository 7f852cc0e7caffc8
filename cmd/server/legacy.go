package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/legacy"
	"github.com/agentstore/agentstore/internal/store"
)

const legacyUsage = `usage: agentstore legacy import [--dry-run] [--batch N] [--workers N] [--incremental] [--skip-fk-triggers]
       agentstore legacy verify

  import   copy the legacy tables of schema public into DB_SCHEMA, keeping ids and
           tenants; rows that cannot be placed go to DB_SCHEMA.legacy_quarantine.
           Resumable (re-run after a crash continues) and idempotent (re-running a
           finished import does nothing).
    --dry-run      do everything in a transaction that is rolled back: print what
                   would happen, write nothing
    --batch N      legacy rows per batch and transaction (default 5000)
    --workers N    connections importing one table at once (default 4)
    --incremental  after a finished import, run a new pass that imports new rows,
                   updates changed ones and re-examines the quarantine (cut-over)
    --skip-fk-triggers  skip the new tables' foreign-key triggers (about a third
                   faster; needs a superuser or SET on session_replication_role;
                   use before the service takes writes; verify checks references)
  verify   per table, legacy rows = imported + quarantined; references, tenants
           and enums of the new tables; exits non-zero on any mismatch

Run as a role that bypasses row-level security (Supabase's postgres), on a
direct or session-mode connection (DATABASE_URL), after ` + "`migrate apply`" + `.
`

// legacyCommand runs `legacy import|verify`; args are the words after
// "legacy".
func legacyCommand(ctx context.Context, cfg config.Config, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, legacyUsage)
		return errors.New("legacy: missing subcommand (import or verify)")
	}
	fs := flag.NewFlagSet("agentstore legacy "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, legacyUsage) }
	var opts legacy.Options
	switch args[0] {
	case "import":
		fs.BoolVar(&opts.DryRun, "dry-run", false, "roll everything back; print what would happen")
		fs.IntVar(&opts.BatchSize, "batch", legacy.DefaultBatchSize, "legacy rows per batch and transaction")
		fs.IntVar(&opts.Workers, "workers", legacy.DefaultWorkers, "connections importing one table at once")
		fs.BoolVar(&opts.Incremental, "incremental", false, "run a new pass after a finished import")
		fs.BoolVar(&opts.SkipFKTriggers, "skip-fk-triggers", false, "skip the foreign-key triggers (session_replication_role=replica)")
	case "verify":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, legacyUsage)
		return nil
	default:
		fmt.Fprint(stderr, legacyUsage)
		return fmt.Errorf("legacy: unknown subcommand %q", args[0])
	}
	if help, err := parseFlags(fs, "legacy "+args[0], args[1:]); help || err != nil {
		return err
	}
	if args[0] == "import" && (opts.BatchSize <= 0 || opts.Workers <= 0) {
		return errors.New("legacy import: --batch and --workers must be positive")
	}
	if cfg.DatabaseURL == "" {
		return errors.New("legacy needs DATABASE_URL: the legacy tables are in the Supabase PostgreSQL database")
	}
	db, err := sql.Open("pgx", cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	opts.Schema, opts.Out, opts.Log = cfg.DBSchema, stdout, log
	if args[0] == "verify" {
		rep, err := legacy.Verify(ctx, db, opts)
		if err != nil {
			return err
		}
		if !rep.OK {
			return fmt.Errorf("legacy verify: %d mismatch(es)", len(rep.Failures()))
		}
		return nil
	}
	if _, err = legacy.Import(ctx, db, opts); err != nil || opts.DryRun {
		return err
	}
	// The import writes raw rows in set-based batches; the stats and usage
	// rollups of what it wrote are rebuilt from them (every tenant, every
	// day), as `rollups rebuild` does.
	st, err := openStore(ctx, cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.Rollups.Rebuild(ctx, store.RebuildOptions{})
	if err != nil {
		return fmt.Errorf("legacy import: the rows are imported, but rebuilding the rollups failed (run `rollups rebuild`): %w", err)
	}
	fmt.Fprintf(stdout, "rollups rebuilt: %d tenant(s), %d day(s)\n", rep.Tenants, rep.Days)
	return nil
}
