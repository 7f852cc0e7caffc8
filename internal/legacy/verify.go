package legacy

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// VerifyReport is the outcome of Verify. OK is false on any mismatch.
type VerifyReport struct {
	// Tables has, per legacy table, source = imported + quarantined.
	Tables []TableCount
	// Checks are the integrity checks; each passes with 0 violations.
	Checks []Check
	// OK is true when every table balances and every check passes.
	OK bool
}

// TableCount balances one legacy table against the import.
type TableCount struct {
	// Table is the legacy (and new) table name.
	Table string
	// Source is the number of legacy rows.
	Source int64
	// Imported is the number of legacy rows whose id is in the new table.
	Imported int64
	// Quarantined is the number of legacy rows in the quarantine.
	Quarantined int64
	// Both is the number of legacy rows both imported and quarantined
	// (must be 0).
	Both int64
	// Missing is the number of legacy rows neither imported nor
	// quarantined (must be 0).
	Missing int64
}

// OK reports whether source = imported + quarantined, each row once.
func (t TableCount) OK() bool { return t.Both == 0 && t.Missing == 0 }

// Check is one integrity check over the new tables.
type Check struct {
	// Name says what is checked; Violations counts the offending rows.
	Name       string
	Violations int64
}

// Failures returns the failed tables and checks, one line each.
func (r VerifyReport) Failures() []string {
	var out []string
	for _, t := range r.Tables {
		if !t.OK() {
			out = append(out, fmt.Sprintf("%s: source %d != imported %d + quarantined %d (missing %d, both %d)",
				t.Table, t.Source, t.Imported, t.Quarantined, t.Missing, t.Both))
		}
	}
	for _, c := range r.Checks {
		if c.Violations != 0 {
			out = append(out, fmt.Sprintf("%s: %d violation(s)", c.Name, c.Violations))
		}
	}
	return out
}

// Print writes the report as two tables.
func (r VerifyReport) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "table\tsource\timported\tquarantined\tmissing\tboth\tresult")
	for _, t := range r.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", t.Table, t.Source, t.Imported, t.Quarantined, t.Missing, t.Both, okText(t.OK()))
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t")
	fmt.Fprintln(tw, "check\tviolations\t\t\t\t\tresult")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%d\t\t\t\t\t%s\n", c.Name, c.Violations, okText(c.Violations == 0))
	}
	_ = tw.Flush()
	if r.OK {
		fmt.Fprintln(w, "verify: OK")
	} else {
		fmt.Fprintf(w, "verify: FAILED (%s)\n", strings.Join(r.Failures(), "; "))
	}
}

func okText(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

// Verify compares the legacy tables with the import: for each table, every
// legacy row must be imported (same id) or quarantined, never both; the
// tenant_id of a legacy row that had one is kept; the new tables hold their
// references (steps, tool calls and usage name existing runs, a tool call's
// step is of the same run) and their tenants agree with their run's; the
// enums and ranges are valid; and the last import pass finished. It prints
// the result to opts.Out and returns it; a mismatch gives OK false, not an
// error (errors are for a failed query). It only reads.
func Verify(ctx context.Context, db *sql.DB, opts Options) (VerifyReport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return VerifyReport{}, err
	}
	src, dst := quoteIdent(opts.SourceSchema), quoteIdent(opts.Schema)
	var rep VerifyReport
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return rep, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var haveQ, haveState bool
	if err := tx.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
		dst+"."+QuarantineTable, dst+"."+StateTable).Scan(&haveQ, &haveState); err != nil {
		return rep, err
	}
	if !haveQ || !haveState {
		return rep, fmt.Errorf("legacy verify: %s has no import (run `legacy import` first)", opts.Schema)
	}
	for _, t := range Tables {
		c := TableCount{Table: t}
		err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*), count(t.id), count(q.source_id),
	count(*) FILTER (WHERE t.id IS NOT NULL AND q.source_id IS NOT NULL),
	count(*) FILTER (WHERE t.id IS NULL AND q.source_id IS NULL)
FROM %[1]s.%[3]s s
LEFT JOIN %[2]s.%[3]s t ON t.id = s.id
LEFT JOIN %[2]s.legacy_quarantine q ON q.source_table = %[4]s AND q.source_id = s.id`, src, dst, t, quoteLit(t))).
			Scan(&c.Source, &c.Imported, &c.Quarantined, &c.Both, &c.Missing)
		if err != nil {
			return rep, fmt.Errorf("legacy verify %s: %w", t, err)
		}
		rep.Tables = append(rep.Tables, c)
	}
	runEnum := inListSQL([]string{"queued", "running", "succeeded", "failed", "cancelled"})
	checks := []struct{ name, sql string }{
		{"last import pass finished", `SELECT ` + fmt.Sprint(len(Tables)) + ` - count(*) FROM (SELECT source_table FROM {dst}.legacy_import_state
			GROUP BY source_table HAVING bool_and(done) AND count(*) = max(parts)
			  AND min(pass) = (SELECT max(pass) FROM {dst}.legacy_import_state) AND max(pass) = min(pass)) x`},
		{"tenant_id kept (runs)", `SELECT count(*) FROM {src}.agent_runs s JOIN {dst}.agent_runs t USING (id) WHERE s.tenant_id <> t.tenant_id`},
		{"tenant_id kept (steps)", `SELECT count(*) FROM {src}.agent_steps s JOIN {dst}.agent_steps t USING (id) WHERE s.tenant_id <> t.tenant_id`},
		{"tenant_id kept (tool calls)", `SELECT count(*) FROM {src}.tool_calls s JOIN {dst}.tool_calls t USING (id) WHERE s.tenant_id <> t.tenant_id`},
		{"tenant_id kept (audit)", `SELECT count(*) FROM {src}.audit_logs s JOIN {dst}.audit_logs t USING (id) WHERE s.tenant_id <> t.tenant_id`},
		{"tenant_id kept (usage)", `SELECT count(*) FROM {src}.usage_metrics s JOIN {dst}.usage_metrics t USING (id) WHERE s.tenant_id <> t.tenant_id`},
		{"step run exists", `SELECT count(*) FROM {dst}.agent_steps s WHERE NOT EXISTS (SELECT 1 FROM {dst}.agent_runs r WHERE r.id = s.run_id)`},
		{"tool call run exists", `SELECT count(*) FROM {dst}.tool_calls c WHERE NOT EXISTS (SELECT 1 FROM {dst}.agent_runs r WHERE r.id = c.run_id)`},
		{"tool call step exists", `SELECT count(*) FROM {dst}.tool_calls c WHERE c.step_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {dst}.agent_steps s WHERE s.id = c.step_id)`},
		{"tool call step of the same run", `SELECT count(*) FROM {dst}.tool_calls c JOIN {dst}.agent_steps s ON s.id = c.step_id WHERE s.run_id <> c.run_id`},
		{"usage run exists", `SELECT count(*) FROM {dst}.usage_metrics u WHERE u.run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {dst}.agent_runs r WHERE r.id = u.run_id)`},
		{"step tenant = run tenant", `SELECT count(*) FROM {dst}.agent_steps s JOIN {dst}.agent_runs r ON r.id = s.run_id WHERE s.tenant_id <> r.tenant_id`},
		{"tool call tenant = run tenant", `SELECT count(*) FROM {dst}.tool_calls c JOIN {dst}.agent_runs r ON r.id = c.run_id WHERE c.tenant_id <> r.tenant_id`},
		{"usage tenant = run tenant", `SELECT count(*) FROM {dst}.usage_metrics u JOIN {dst}.agent_runs r ON r.id = u.run_id WHERE u.tenant_id <> r.tenant_id`},
		{"run status valid", `SELECT count(*) FROM {dst}.agent_runs WHERE status NOT IN ` + runEnum},
		{"step status valid", `SELECT count(*) FROM {dst}.agent_steps WHERE status NOT IN ` + runEnum},
		{"step seq positive and unique per run", `SELECT (SELECT count(*) FROM {dst}.agent_steps WHERE seq <= 0)
			+ (SELECT count(*) FROM (SELECT 1 FROM {dst}.agent_steps GROUP BY run_id, seq HAVING count(*) > 1) d)`},
		{"tool call status valid", `SELECT count(*) FROM {dst}.tool_calls WHERE status NOT IN ('succeeded', 'failed')`},
		{"tool call duration_ms >= 0", `SELECT count(*) FROM {dst}.tool_calls WHERE duration_ms < 0`},
		{"usage tokens and cost >= 0", `SELECT count(*) FROM {dst}.usage_metrics
			WHERE input_tokens < 0 OR output_tokens < 0 OR cached_input_tokens < 0 OR total_tokens < 0 OR cost_usd < 0`},
		{"health status valid", `SELECT count(*) FROM {dst}.system_health WHERE status NOT IN ('up', 'degraded', 'down') OR latency_ms < 0`},
	}
	r := strings.NewReplacer("{src}", src, "{dst}", dst)
	for _, c := range checks {
		ch := Check{Name: c.name}
		if err := tx.QueryRowContext(ctx, r.Replace(c.sql)).Scan(&ch.Violations); err != nil {
			return rep, fmt.Errorf("legacy verify %q: %w", c.name, err)
		}
		rep.Checks = append(rep.Checks, ch)
	}
	rep.OK = len(rep.Failures()) == 0
	if opts.Out != nil {
		rep.Print(opts.Out)
	}
	return rep, nil
}
