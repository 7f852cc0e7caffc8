package legacy

import (
	"fmt"
	"io"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far a table's phase is.
type progress interface {
	add(n int64)
	finish()
}

// newProgress returns a bar when w is a terminal, plain
// "table: done/total" lines otherwise.
func newProgress(w io.Writer, table string, total, done int64) progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && total > 0 {
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(fmt.Sprintf("%-14s", table)),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		_ = bar.Set64(min(done, total))
		return &barProgress{bar: bar, total: total, done: done}
	}
	return &lineProgress{w: w, table: table, total: total, done: done}
}

type barProgress struct {
	mu          sync.Mutex
	bar         *progressbar.ProgressBar
	total, done int64
}

func (p *barProgress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	_ = p.bar.Set64(min(p.done, p.total))
}

func (p *barProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Finish()
}

type lineProgress struct {
	mu                 sync.Mutex
	w                  io.Writer
	table              string
	total, done        int64
	printedAtLeastOnce bool
}

func (p *lineProgress) add(n int64) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.printedAtLeastOnce = true
	fmt.Fprintf(p.w, "%s: %d/%d\n", p.table, p.done, p.total)
}

func (p *lineProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.printedAtLeastOnce {
		fmt.Fprintf(p.w, "%s: %d/%d\n", p.table, p.done, p.total)
	}
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
