package legacy

import (
	"fmt"
	"io"
	"os"
	"sync"
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
