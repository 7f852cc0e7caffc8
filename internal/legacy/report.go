package legacy

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Report is the outcome of Import. Table counts are those of the whole pass,
// across resumed invocations.
type Report struct {
	// Pass is the number of the pass this import ran or resumed (1 for the
	// first import).
	Pass int
	// DryRun is true when nothing was written.
	DryRun bool
	// Resumed is true when an unfinished pass was continued.
	Resumed bool
	// UpToDate is true when the last pass had finished and Incremental was
	// not set: nothing was done.
	UpToDate bool
	// Tables has one entry per legacy table, in import order.
	Tables []TableReport
	// Quarantine counts the rows in the quarantine table by table and
	// reason code, after the import.
	Quarantine []QuarantineCount
	// Elapsed is the wall time of this invocation.
	Elapsed time.Duration
}

// TableReport counts what a pass did with one legacy table.
// Scanned = Inserted + Updated + Unchanged + Quarantined.
type TableReport struct {
	// Table is the legacy (and new) table name.
	Table string
	// Source is the number of rows in the legacy table when this
	// invocation started the table (0 when it had nothing left to do).
	Source int64
	// Scanned is the number of legacy rows the pass read.
	Scanned int64
	// Inserted rows were new in the target table.
	Inserted int64
	// Updated rows were imported before and had changed.
	Updated int64
	// Unchanged rows were imported before and had not changed.
	Unchanged int64
	// Quarantined rows could not be imported and are in the quarantine.
	Quarantined int64
	// Released rows had been quarantined by an earlier pass and are now
	// imported.
	Released int64
	// Notes count adjustments and anomalies on imported rows.
	Notes []NoteCount
	// Elapsed is the time this invocation spent on the table.
	Elapsed time.Duration
}

// NoteCount is how many imported rows of a pass had one adjustment.
type NoteCount struct {
	// Key identifies the note, Label explains it.
	Key, Label string
	// Rows is the number of rows.
	Rows int64
}

// QuarantineCount is the number of quarantined rows of one table with one
// reason code.
type QuarantineCount struct {
	// Table is the legacy table; Code the reason code (Reason* constants).
	Table, Code string
	// Rows is the number of rows.
	Rows int64
}

// Rows returns the number of legacy rows the pass scanned.
func (r Report) Rows() int64 {
	var n int64
	for _, t := range r.Tables {
		n += t.Scanned
	}
	return n
}

// fillTable sums the parts' counters into tr.
func fillTable(tr *TableReport, spec tableSpec, parts []state) {
	tr.Scanned, tr.Inserted, tr.Updated, tr.Unchanged, tr.Quarantined, tr.Released = 0, 0, 0, 0, 0, 0
	notes := map[string]int64{}
	for _, st := range parts {
		tr.Scanned += st.scanned
		tr.Inserted += st.inserted
		tr.Updated += st.updated
		tr.Unchanged += st.unchanged
		tr.Quarantined += st.quarantined
		tr.Released += st.released
		for k, v := range st.notes {
			notes[k] += v
		}
	}
	tr.Notes = nil
	for _, n := range spec.notes {
		if v := notes[n.key]; v > 0 {
			tr.Notes = append(tr.Notes, NoteCount{Key: n.key, Label: n.label, Rows: v})
		}
	}
}

// quarantineCounts counts the quarantined rows by table and reason code.
func (im *importer) quarantineCounts(ctx context.Context) ([]QuarantineCount, error) {
	var out []QuarantineCount
	err := im.inTx(ctx, func(q querier) error {
		rows, err := q.QueryContext(ctx, "SELECT source_table, code, count(*) FROM "+im.dst+"."+QuarantineTable+" GROUP BY 1, 2 ORDER BY 1, 2")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c QuarantineCount
			if err := rows.Scan(&c.Table, &c.Code, &c.Rows); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// Print writes the report as a table, followed by the adjustments and the
// quarantine by reason.
func (r Report) Print(w io.Writer) {
	if w == nil || w == io.Discard {
		return
	}
	mode := ""
	switch {
	case r.DryRun:
		mode = " (dry run: rolled back, nothing was written)"
	case r.UpToDate:
		mode = " (finished earlier: the counts of that pass)"
	case r.Resumed:
		mode = " (resumed)"
	}
	fmt.Fprintf(w, "legacy import pass %d%s in %s\n", r.Pass, mode, r.Elapsed.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\tscanned\tinserted\tupdated\tunchanged\tquarantined\treleased\t")
	for _, t := range r.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", t.Table, t.Scanned, t.Inserted, t.Updated, t.Unchanged, t.Quarantined, t.Released)
	}
	_ = tw.Flush()
	for _, t := range r.Tables {
		for _, n := range t.Notes {
			fmt.Fprintf(w, "  note %s: %d × %s\n", t.Table, n.Rows, n.Label)
		}
	}
	if len(r.Quarantine) > 0 {
		fmt.Fprintln(w, "quarantine (all passes):")
		for _, q := range r.Quarantine {
			fmt.Fprintf(w, "  %-14s %-18s %d\n", q.Table, q.Code, q.Rows)
		}
	}
}
