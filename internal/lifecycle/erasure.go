package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Defaults of the erasure worker.
const (
	// DefaultErasurePoll is how often the worker looks for unfinished
	// jobs when nobody tells it of a new one.
	DefaultErasurePoll = 10 * time.Second
	// maxErasureAttempts is how many failed steps in a row fail a job
	// for good.
	maxErasureAttempts = 5
	// erasureQueue is how many unfinished jobs one look takes.
	erasureQueue = 20
)

// Eraser is the erasure worker: it finds pending and running erasures of
// every tenant (those of a previous process included) and works each to
// the end, in batches. Workers of several instances may work one job at
// once: its batches take turns on the job's row and never delete a run
// twice, so its counts stay exact.
type Eraser struct {
	st   *store.Store
	log  *slog.Logger
	m    *Metrics
	pace Pace
	poll time.Duration
	kick chan struct{}
}

// NewEraser returns the worker over st; m may be nil, poll 0 is
// DefaultErasurePoll.
func NewEraser(st *store.Store, pace Pace, poll time.Duration, log *slog.Logger, m *Metrics) *Eraser {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if poll <= 0 {
		poll = DefaultErasurePoll
	}
	return &Eraser{st: st, log: log, m: m, pace: pace, poll: poll, kick: make(chan struct{}, 1)}
}

// Notify tells the worker that a job was recorded, so that it looks now.
func (e *Eraser) Notify() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run works unfinished jobs until ctx ends, looking at start, after every
// Notify and every poll interval.
func (e *Eraser) Run(ctx context.Context) {
	t := time.NewTicker(e.poll)
	defer t.Stop()
	for {
		if err := e.Drain(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("erasure worker", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-t.C:
		}
	}
}

// Drain works every unfinished job it finds until none is left or one
// fails a step (which is recorded on the job, and retried at the next
// look).
func (e *Eraser) Drain(ctx context.Context) error {
	for ctx.Err() == nil {
		jobs, err := e.st.Erasures.Unfinished(tenant.SystemContext(ctx), erasureQueue)
		if err != nil || len(jobs) == 0 {
			return err
		}
		progressed := false
		for _, job := range jobs {
			done, err := e.work(ctx, job)
			if err != nil {
				return err
			}
			progressed = progressed || done
		}
		if !progressed {
			return nil // every job is waiting to be retried
		}
	}
	return ctx.Err()
}

// work works job until it is finished, and reports whether it is. A failed
// step is recorded on the job and ends the work for now.
func (e *Eraser) work(ctx context.Context, job *ent.Erasure) (bool, error) {
	wctx := store.WorkContext(ctx, job)
	last := *job
	for ctx.Err() == nil {
		start := time.Now()
		got, err := e.st.Erasures.Work(wctx, job.ID, e.pace.batch())
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			e.log.Warn("erasure step failed", "erasure_id", job.ID, "tenant_id", job.TenantID, "err", err)
			failed, ferr := e.st.Erasures.Failed(wctx, job.ID, publicCause(err), maxErasureAttempts)
			if ferr != nil {
				return false, errors.Join(err, ferr)
			}
			return string(failed.Status) == store.ErasureFailed, nil
		}
		removed := store.Removed{Runs: got.Runs - last.Runs, Steps: got.Steps - last.Steps, ToolCalls: got.ToolCalls - last.ToolCalls}
		e.m.deleted(store.ReasonErasure, removed)
		last = *got
		switch string(got.Status) {
		case store.ErasureDone:
			e.log.Info("erasure done", "erasure_id", got.ID, "tenant_id", got.TenantID,
				"runs", got.Runs, "steps", got.Steps, "tool_calls", got.ToolCalls)
			return true, nil
		case store.ErasureFailed:
			return true, nil
		}
		e.pace.wait(ctx, removed.Rows(), time.Since(start))
	}
	return false, ctx.Err()
}

// publicCause is what the job's error says of err: the client's message of
// a categorized error, never internal detail.
func publicCause(err error) string {
	var de *derrors.Error
	if errors.As(err, &de) && de.Category != nil {
		return de.Message
	}
	return "internal error; see the service's log"
}
