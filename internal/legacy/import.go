package legacy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// Tables the importer creates in the target schema when missing.
const (
	// QuarantineTable holds every legacy row that could not be imported,
	// with its reason and the row itself; unique (source_table, source_id).
	QuarantineTable = "legacy_quarantine"
	// StateTable holds the checkpoint of the current pass, one row per
	// legacy table and slice of its id space.
	StateTable = "legacy_import_state"
	// stepDupsTable lists the steps whose (run_id, step_index) repeats an
	// earlier step; rebuilt from the legacy table when the steps phase
	// starts.
	stepDupsTable = "legacy_import_step_dups"
)

// ErrConcurrentImport is returned when the checkpoint moved under the
// importer: another import of the same schema is running.
var ErrConcurrentImport = errors.New("legacy import: the checkpoint changed under this import (is another import running?)")

// querier is what a batch needs: a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// importer is one invocation of Import: its options, quoted schema
// names, table specs and, in a dry run, the one transaction.
type importer struct {
	db       *sql.DB
	opts     Options
	src, dst string // quoted schema names
	dry      *sql.Tx
	specs    []tableSpec
}

// Import copies the legacy tables of opts.SourceSchema into opts.Schema,
// keeping every id and tenant_id, in batches of opts.BatchSize, each in its
// own transaction together with its checkpoint. Rows that cannot be placed
// go to the quarantine table with a reason; none is dropped. An
// interrupted import continues where it stopped when run again; a finished
// one is left alone unless opts.Incremental asks for a new pass, which
// imports new rows, updates changed ones and re-examines quarantined ones.
// The legacy tables are only read. See the package documentation for the
// mapping.
func Import(ctx context.Context, db *sql.DB, opts Options) (Report, error) {
	start := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	im := &importer{db: db, opts: opts, src: quoteIdent(opts.SourceSchema), dst: quoteIdent(opts.Schema)}
	im.specs = specs(im.src, im.dst, UsersTable)
	if opts.DryRun {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return Report{}, err
		}
		defer tx.Rollback() //nolint:errcheck // a dry run never commits
		im.dry = tx
	}
	rep, err := im.run(ctx)
	rep.DryRun = opts.DryRun
	rep.Elapsed = time.Since(start)
	if err != nil {
		return rep, err
	}
	rep.Print(opts.Out)
	return rep, nil
}

// inTx runs fn in a new transaction, or in the dry run's one.
func (im *importer) inTx(ctx context.Context, fn func(q querier) error) error {
	if im.dry != nil {
		// A savepoint stands in for the transaction, so that a failed batch
		// can be retried without losing the dry run.
		if _, err := im.dry.ExecContext(ctx, "SAVEPOINT legacy_batch"); err != nil {
			return err
		}
		if err := fn(im.dry); err != nil {
			if _, rerr := im.dry.ExecContext(ctx, "ROLLBACK TO SAVEPOINT legacy_batch"); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
		_, err := im.dry.ExecContext(ctx, "RELEASE SAVEPOINT legacy_batch")
		return err
	}
	tx, err := im.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// run sets up, picks the pass and imports the tables in order.
func (im *importer) run(ctx context.Context) (Report, error) {
	var rep Report
	if im.opts.SkipFKTriggers {
		if err := im.checkReplicaRole(ctx); err != nil {
			return rep, err
		}
	}
	if err := im.inTx(ctx, func(q querier) error { return im.setup(ctx, q) }); err != nil {
		return rep, err
	}
	var states map[string][]state
	var work bool
	err := im.inTx(ctx, func(q querier) error {
		var err error
		states, work, err = im.choosePass(ctx, q, &rep)
		return err
	})
	if err != nil {
		return rep, err
	}
	log := im.opts.Log.With("pass", rep.Pass, "dry_run", im.opts.DryRun)
	if !work {
		log.Info("legacy import is up to date; nothing to do", "hint", "use incremental to run a new pass")
		fmt.Fprintf(im.opts.Out, "legacy import: pass %d finished earlier; nothing to do (run with --incremental for a new pass)\n", rep.Pass)
	} else {
		log.Info("legacy import", "resumed", rep.Resumed, "batch", im.opts.BatchSize, "workers", im.opts.Workers)
	}
	for _, spec := range im.specs {
		parts := states[spec.name]
		tr := TableReport{Table: spec.name}
		if work && !complete(parts, rep.Pass) {
			var err error
			if parts, tr, err = im.phase(ctx, spec, parts); err != nil {
				return rep, fmt.Errorf("legacy import %s: %w", spec.name, err)
			}
		}
		fillTable(&tr, spec, parts)
		if work && tr.Elapsed > 0 {
			log.Info("table imported", "table", spec.name, "scanned", tr.Scanned, "inserted", tr.Inserted,
				"updated", tr.Updated, "quarantined", tr.Quarantined, "elapsed", tr.Elapsed.Round(time.Millisecond).String())
		}
		rep.Tables = append(rep.Tables, tr)
	}
	q, err := im.quarantineCounts(ctx)
	rep.Quarantine = q
	return rep, err
}

// analyze refreshes the planner statistics of the target tables a phase
// reads, which grew during the earlier phases. Failure (e.g. not the owner)
// is only logged.
func (im *importer) analyze(ctx context.Context, tables ...string) {
	for _, t := range tables {
		stmt := "ANALYZE " + im.dst + "." + t
		var err error
		if im.dry != nil {
			if _, err = im.dry.ExecContext(ctx, "SAVEPOINT legacy_analyze"); err == nil {
				if _, err = im.dry.ExecContext(ctx, stmt); err != nil {
					_, _ = im.dry.ExecContext(ctx, "ROLLBACK TO SAVEPOINT legacy_analyze")
				} else {
					_, err = im.dry.ExecContext(ctx, "RELEASE SAVEPOINT legacy_analyze")
				}
			}
		} else {
			_, err = im.db.ExecContext(ctx, stmt)
		}
		if err != nil {
			im.opts.Log.Warn("analyze failed", "table", t, "err", err)
		}
	}
}

// phaseDeps are the target tables each phase looks rows up in.
var phaseDeps = map[string][]string{
	"agent_runs":    {"agent_runs"},
	"agent_steps":   {"agent_runs", "agent_steps", stepDupsTable},
	"tool_calls":    {"agent_runs", "agent_steps", "tool_calls"},
	"audit_logs":    {"audit_logs"},
	"usage_metrics": {"agent_runs", "usage_metrics"},
	"system_health": {"system_health"},
}

// batchResult is what one batch statement returns.
type batchResult struct {
	scanned, inserted, updated, present, released int64
	lastID                                        uuid.NullUUID
	notes                                         []int64
}

// phase imports one table: its unfinished parts, concurrently (one after
// the other in a dry run, whose single transaction cannot be shared).
func (im *importer) phase(ctx context.Context, spec tableSpec, parts []state) ([]state, TableReport, error) {
	start := time.Now()
	tr := TableReport{Table: spec.name}
	err := im.inTx(ctx, func(q querier) error {
		return q.QueryRowContext(ctx, "SELECT count(*) FROM "+im.src+"."+spec.name).Scan(&tr.Source)
	})
	if err != nil {
		return parts, tr, err
	}
	if spec.name == "agent_steps" {
		if err := im.rebuildStepDups(ctx); err != nil {
			return parts, tr, err
		}
	}
	im.analyze(ctx, phaseDeps[spec.name]...)
	var done int64
	for _, st := range parts {
		done += st.scanned
	}
	bar := newProgress(im.opts.Out, spec.name, tr.Source, done)
	defer bar.finish()

	out := make([]state, len(parts))
	copy(out, parts)
	if im.dry != nil {
		for i := range out {
			if err := im.walk(ctx, spec, &out[i], bar); err != nil {
				return out, tr, err
			}
		}
		tr.Elapsed = time.Since(start)
		return out, tr, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(out))
	for i := range out {
		go func() {
			err := im.walk(ctx, spec, &out[i], bar)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range out {
		if err := <-errs; err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	tr.Elapsed = time.Since(start)
	return out, tr, first
}

// walk imports one part batch by batch until it is done.
func (im *importer) walk(ctx context.Context, spec tableSpec, st *state, bar progress) error {
	lo, hi := bounds(st.part, st.parts)
	for !st.done {
		if err := ctx.Err(); err != nil {
			return err
		}
		v := variant{first: !st.lastID.Valid, upper: hi.Valid, release: st.pass > 1}
		var res batchResult
		var err error
		for attempt := 0; ; attempt++ {
			res, err = im.batch(ctx, spec, st, v, lo, hi)
			if err == nil || attempt == 3 || !retryable(err) {
				break
			}
			if isCode(err, "23505") {
				v.safe = true // a unique key taken: the safe form quarantines the row
			}
			im.opts.Log.Info("retrying batch", "table", spec.name, "part", st.part, "err", err, "safe", v.safe)
		}
		if err != nil {
			return err
		}
		bar.add(res.scanned)
	}
	return nil
}

// batch imports one batch of a part and advances its checkpoint, in one
// transaction.
func (im *importer) batch(ctx context.Context, spec tableSpec, st *state, v variant, lo, hi uuid.NullUUID) (batchResult, error) {
	var res batchResult
	var next state
	stmt := spec.batchSQL(im.src, im.dst, im.opts.BatchSize, v)
	from := st.lastID
	if v.first {
		from = lo
	}
	args := []any{from, st.pass}
	if v.upper {
		args = append(args, hi)
	}
	err := im.inTx(ctx, func(q querier) error {
		// Index scans and lookups, whatever the (possibly stale) statistics
		// say: the tables are large or grow during the phase, and a
		// sequential scan, hash or merge join would read them whole for
		// every batch. No JIT: compiling the big statement costs more than
		// running it. No wait for the WAL flush at commit: a batch lost in a
		// server crash loses its checkpoint with it, and is redone.
		if _, err := q.ExecContext(ctx, `SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
			set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
			set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true),
			set_config('synchronous_commit', 'off', true)`); err != nil {
			return err
		}
		if im.opts.SkipFKTriggers {
			if _, err := q.ExecContext(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
				return err
			}
		}
		cur, err := scanState(q.QueryRowContext(ctx, "SELECT "+stateCols+" FROM "+im.dst+"."+StateTable+
			" WHERE source_table = $1 AND part = $2 FOR UPDATE", spec.name, st.part))
		if err != nil {
			return err
		}
		if cur.pass != st.pass || cur.parts != st.parts || cur.done || cur.lastID != st.lastID {
			return ErrConcurrentImport
		}
		res.notes = make([]int64, len(spec.notes))
		dest := []any{&res.scanned, &res.lastID, &res.inserted, &res.updated, &res.present, &res.released}
		for i := range res.notes {
			dest = append(dest, &res.notes[i])
		}
		if err := q.QueryRowContext(ctx, stmt, args...).Scan(dest...); err != nil {
			return err
		}
		cur.scanned += res.scanned
		cur.inserted += res.inserted
		cur.updated += res.updated
		cur.unchanged += res.present - res.updated
		cur.quarantined += res.scanned - res.inserted - res.present
		cur.released += res.released
		for i, n := range spec.notes {
			if res.notes[i] > 0 {
				cur.notes[n.key] += res.notes[i]
			}
		}
		if res.lastID.Valid {
			cur.lastID = res.lastID
		}
		cur.done = res.scanned < int64(im.opts.BatchSize)
		notes, err := json.Marshal(cur.notes)
		if err != nil {
			return err
		}
		if _, err = q.ExecContext(ctx, "UPDATE "+im.dst+"."+StateTable+` SET last_id = $3, done = $4,
			scanned = $5, inserted = $6, updated = $7, unchanged = $8, quarantined = $9, released = $10, notes = $11,
			finished_at = CASE WHEN $4 THEN now() END, updated_at = now()
			WHERE source_table = $1 AND part = $2`, spec.name, st.part, cur.lastID, cur.done,
			cur.scanned, cur.inserted, cur.updated, cur.unchanged, cur.quarantined, cur.released, string(notes)); err != nil {
			return err
		}
		next = cur
		return nil
	})
	if err == nil {
		*st = next
	}
	return res, err
}

// isCode reports whether err is a PostgreSQL error with one of codes.
func isCode(err error, codes ...string) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	for _, c := range codes {
		if pe.Code == c {
			return true
		}
	}
	return false
}

// retryable errors roll the batch back and are worth another try:
// deadlock, serialization failure, unique violation (retried in the safe
// form).
func retryable(err error) bool { return isCode(err, "40P01", "40001", "23505") }

// rebuildStepDups lists the legacy steps that repeat the (run_id,
// step_index) of a step that comes before them by (created_at, id).
func (im *importer) rebuildStepDups(ctx context.Context) error {
	return im.inTx(ctx, func(q querier) error {
		d := im.dst + "." + stepDupsTable
		if _, err := q.ExecContext(ctx, "TRUNCATE "+d); err != nil {
			return err
		}
		_, err := q.ExecContext(ctx, "INSERT INTO "+d+` (id, first_id)
SELECT id, first_id FROM (
  SELECT id, first_value(id) OVER w AS first_id, row_number() OVER w AS rn
  FROM `+im.src+`.agent_steps
  WINDOW w AS (PARTITION BY run_id, step_index ORDER BY created_at, id)
) x WHERE rn > 1`)
		return err
	})
}
