package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/httpapi"
	"github.com/agentstore/agentstore/internal/lifecycle"
	"github.com/agentstore/agentstore/internal/store"
)

const retentionUsage = `usage: server retention run [--dry-run]

  run   one retention pass, as the job inside serve does (for cron): delete the
        runs created before their tenant's cut-off (RETENTION_DAYS,
        RETENTION_TENANT_OVERRIDES) with their steps and tool calls, in batches
        at a bounded rate, and print what was deleted per tenant. Usage rows
        stay (runId null), audit logs and rollups stay. On PostgreSQL it skips
        the pass while another instance holds the retention lock.
    --dry-run   delete nothing; print what would be deleted
`

// retentionConfig is the job's configuration from cfg.
func retentionConfig(cfg config.Config) lifecycle.RetentionConfig {
	return lifecycle.RetentionConfig{
		Days: cfg.Retention.Days, TenantOverrides: cfg.Retention.TenantOverrides, Interval: cfg.Retention.Interval,
	}
}

// retentionCommand runs `retention run [--dry-run]`; args are the words
// after "retention".
func retentionCommand(ctx context.Context, cfg config.Config, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, retentionUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprint(stderr, retentionUsage)
		return errors.New("retention: the subcommand is run")
	}
	fs := flag.NewFlagSet("retention run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, retentionUsage) }
	dryRun := fs.Bool("dry-run", false, "delete nothing; print what would be deleted")
	if help, err := parseFlags(fs, "retention run", args[1:]); help || err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer st.Close()
	rc := retentionConfig(cfg)
	rep, err := lifecycle.NewRetention(st, rc, log, nil).Pass(ctx, *dryRun)
	printRetention(stdout, rc, rep)
	return err
}

// printRetention prints a pass's report, one line per tenant and a total.
func printRetention(w io.Writer, rc lifecycle.RetentionConfig, rep lifecycle.Report) {
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
		fmt.Fprintln(w, "retention: dry run, nothing is deleted")
	}
	fmt.Fprintf(w, "retention: RETENTION_DAYS=%d, %d tenant override(s)\n", rc.Days, len(rc.TenantOverrides))
	if rep.Skipped {
		fmt.Fprintln(w, "retention: skipped: another instance holds the retention lock")
		return
	}
	line := func(r store.Removed) string {
		return fmt.Sprintf("%s %d runs, %d steps, %d tool calls; %d usage rows kept with runId null",
			verb, r.Runs, r.Steps, r.ToolCalls, r.UsageUnlinked)
	}
	for _, t := range rep.Tenants {
		fmt.Fprintf(w, "tenant %s: %d days, cut-off %s: %s\n", t.TenantID, t.Days, t.Cutoff.Format(time.RFC3339), line(t.Removed))
	}
	fmt.Fprintf(w, "total: %d tenant(s): %s\n", len(rep.Tenants), line(rep.Removed))
}

const exportUsage = `usage: server export --tenant UUID [--from TIME] [--to TIME] --out FILE

  Write the tenant's runs created in [--from, --to) (RFC 3339; both optional)
  to FILE as NDJSON, exactly as GET /v1/export/runs streams them: one run per
  line, oldest first, with its steps and tool calls, a checkpoint line
  {"nextCursor":...} after every page and {"nextCursor":null} last. FILE is
  gzip-compressed when its name ends in .gz. Progress is kept in FILE.state
  after every page: run the same command again after a crash and it resumes
  there (the file is cut back to the last checkpoint); FILE.state is removed
  when the export is complete.
`

// exportState is FILE.state: the export it belongs to and where it is.
type exportState struct {
	Tenant uuid.UUID `json:"tenant"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Cursor string    `json:"cursor"` // the last checkpoint's nextCursor
	Offset int64     `json:"offset"` // FILE's size after that checkpoint
	Runs   int64     `json:"runs"`
}

// exportCommand runs `export`; args are the words after "export".
func exportCommand(ctx context.Context, cfg config.Config, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, exportUsage) }
	tenantFlag := fs.String("tenant", "", "tenant UUID")
	fromFlag := fs.String("from", "", "first creation time, RFC 3339 (inclusive)")
	toFlag := fs.String("to", "", "last creation time, RFC 3339 (exclusive)")
	out := fs.String("out", "", "output file; gzip when it ends in .gz")
	if help, err := parseFlags(fs, "export", args); help || err != nil {
		return err
	}
	tenantID, err := uuid.Parse(*tenantFlag)
	if err != nil {
		fs.Usage()
		return errors.New("export: --tenant must be a tenant UUID")
	}
	var w store.Window
	for _, f := range []struct {
		name, value string
		t           *time.Time
	}{{"--from", *fromFlag, &w.From}, {"--to", *toFlag, &w.To}} {
		if f.value == "" {
			continue
		}
		if *f.t, err = time.Parse(time.RFC3339Nano, f.value); err != nil {
			return fmt.Errorf("export: %s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", f.name)
		}
	}
	if *out == "" {
		fs.Usage()
		return errors.New("export: --out is required")
	}
	want := exportState{Tenant: tenantID, From: *fromFlag, To: *toFlag}
	st, err := openStore(ctx, cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := exportToFile(store.ForTenant(ctx, tenantID), st, w, want, *out)
	if err != nil {
		return err
	}
	if rep.resumed {
		fmt.Fprintf(stdout, "export: resumed at byte %d after %d runs\n", rep.from, rep.before)
	}
	fmt.Fprintf(stdout, "export: %d runs of tenant %s written to %s (%d bytes)\n", rep.runs, tenantID, *out, rep.size)
	return nil
}

// exportReport is what exportToFile did.
type exportReport struct {
	resumed      bool
	from, size   int64 // bytes: where it resumed, the final size
	before, runs int64 // runs written before the resume, in all
}

// exportToFile writes the export of w to path, resuming the one its state
// file describes. ctx acts for the tenant.
func exportToFile(ctx context.Context, st *store.Store, w store.Window, want exportState, path string) (exportReport, error) {
	var rep exportReport
	statePath := path + ".state"
	state := want
	if b, err := os.ReadFile(statePath); err == nil {
		if err := json.Unmarshal(b, &state); err != nil {
			return rep, fmt.Errorf("export: %s is not an export state: %v; remove it to start over", statePath, err)
		}
		if state.Tenant != want.Tenant || state.From != want.From || state.To != want.To {
			return rep, fmt.Errorf("export: %s belongs to another export (tenant %s, from %q, to %q); remove it to start over",
				statePath, state.Tenant, state.From, state.To)
		}
		rep.resumed, rep.from, rep.before = true, state.Offset, state.Runs
	} else if !errors.Is(err, os.ErrNotExist) {
		return rep, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	// Cut what was written after the last checkpoint: the resume writes it
	// again.
	if err := f.Truncate(state.Offset); err != nil {
		return rep, err
	}
	if _, err := f.Seek(state.Offset, io.SeekStart); err != nil {
		return rep, err
	}
	if !rep.resumed {
		if err := saveState(statePath, state); err != nil {
			return rep, err
		}
	}
	out := &exportFile{f: f, gzip: strings.HasSuffix(path, ".gz"), offset: state.Offset}
	err = httpapi.WriteExport(ctx, st, w, state.Cursor, out, func(cursor *string, runs int) error {
		if err := out.checkpoint(); err != nil {
			return err
		}
		state.Runs += int64(runs)
		if cursor == nil { // complete
			return os.Remove(statePath)
		}
		state.Cursor, state.Offset = *cursor, out.offset
		return saveState(statePath, state)
	})
	if err != nil {
		return rep, err
	}
	rep.runs, rep.size = state.Runs, out.offset
	return rep, nil
}

// exportFile is the export's file. With gzip, every checkpoint ends a gzip
// member, so that the file up to a checkpoint is a complete gzip stream
// (readers such as gzip -d and Go's gzip.Reader read the members as one).
type exportFile struct {
	f      *os.File
	gzip   bool
	gz     *gzip.Writer // the open member
	offset int64        // bytes in f
}

func (e *exportFile) Write(p []byte) (int, error) {
	if !e.gzip {
		n, err := e.f.Write(p)
		e.offset += int64(n)
		return n, err
	}
	if e.gz == nil {
		e.gz = gzip.NewWriter(&offsetWriter{e})
	}
	return e.gz.Write(p)
}

// checkpoint ends the gzip member and makes the file durable.
func (e *exportFile) checkpoint() error {
	if e.gz != nil {
		if err := e.gz.Close(); err != nil {
			return err
		}
		e.gz = nil
	}
	return e.f.Sync()
}

// offsetWriter writes a gzip member's bytes to the file, counting them.
type offsetWriter struct{ e *exportFile }

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.e.f.Write(p)
	o.e.offset += int64(n)
	return n, err
}

// saveState writes s to path atomically and durably.
func saveState(path string, s exportState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
