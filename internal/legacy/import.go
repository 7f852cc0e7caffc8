package legacy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults of Options.
const (
	// DefaultSchema is the target schema (config.DefaultDBSchema).
	DefaultSchema = "agentstore"
	// DefaultSourceSchema is where the legacy tables are.
	DefaultSourceSchema = "public"
	// DefaultBatchSize is the number of rows per batch and transaction.
	DefaultBatchSize = 5000
	// DefaultWorkers is the number of connections per table.
	DefaultWorkers = 4
	// UsersTable is where a missing tenant is looked up:
	// raw_app_meta_data->>'tenant_id' of the run's (or audit row's) user.
	UsersTable = "auth.users"
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

// Options configure Import and Verify.
type Options struct {
	// Schema is the target schema holding the six new tables (DB_SCHEMA);
	// default "agentstore".
	Schema string
	// SourceSchema holds the legacy tables; default "public". They are only
	// read.
	SourceSchema string
	// BatchSize is the number of legacy rows per batch and transaction;
	// default 5000.
	BatchSize int
	// Workers is the number of connections that import one table at once,
	// each its own slice of the id space; default 4. It is fixed when a
	// pass starts: a resumed pass keeps its own.
	Workers int
	// DryRun runs the whole import in one transaction that is rolled back:
	// the report says what would happen, nothing is written.
	DryRun bool
	// SkipFKTriggers runs the batches with session_replication_role =
	// replica, which skips the foreign-key triggers of the new tables (about
	// a third of the import's time). The import itself only writes rows
	// whose run and step it has just found, and Verify checks every
	// reference afterwards; but a run deleted by the service during the
	// import could leave orphans, so use it before the service takes writes.
	// It needs a superuser or a role granted SET on that parameter
	// (PostgreSQL 15+); Import fails early otherwise.
	SkipFKTriggers bool
	// Incremental starts a new pass when the previous one has finished (the
	// cut-over catch-up); without it a finished import is left as it is. An
	// unfinished pass is always resumed.
	Incremental bool
	// Out receives the progress (a bar on a terminal, "table: n/total"
	// lines otherwise) and the summary; nil discards them.
	Out io.Writer
	// Log receives operational messages; nil discards them.
	Log *slog.Logger
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (o Options) withDefaults() (Options, error) {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.SourceSchema == "" {
		o.SourceSchema = DefaultSourceSchema
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if !identRE.MatchString(o.Schema) || !identRE.MatchString(o.SourceSchema) {
		return o, fmt.Errorf("legacy: schema names must be lower-case SQL identifiers (got %q, %q)", o.Schema, o.SourceSchema)
	}
	if o.Schema == o.SourceSchema {
		return o, fmt.Errorf("legacy: target schema and source schema are both %q", o.Schema)
	}
	return o, nil
}

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

// querier is what a batch needs: a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

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

// checkReplicaRole fails when the role may not set session_replication_role.
func (im *importer) checkReplicaRole(ctx context.Context) error {
	tx, err := im.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // only a check
	if _, err := tx.ExecContext(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return fmt.Errorf("legacy: skipping the foreign-key triggers needs permission to set session_replication_role: %w", err)
	}
	return nil
}

// advisoryKey serializes the importers' set-up of a schema.
const advisoryKey = 7262031

func (im *importer) setup(ctx context.Context, q querier) error {
	if _, err := q.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryKey); err != nil {
		return err
	}
	var missing []string
	check := func(schema, table string) error {
		var ok bool
		if err := q.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+"."+table).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			missing = append(missing, schema+"."+table)
		}
		return nil
	}
	for _, t := range Tables {
		if err := check(im.src, t); err != nil {
			return err
		}
		if err := check(im.dst, t); err != nil {
			return err
		}
	}
	if err := check("auth", "users"); err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("legacy: missing tables %s (the target needs `migrate apply` first)", strings.Join(missing, ", "))
	}
	// The import writes every tenant's rows: row-level security on the
	// target tables (DB_TENANT_RLS, FORCEd on the owner too) would refuse
	// them unless the role bypasses it, as Supabase's postgres does.
	var rls, bypass bool
	if err := q.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		        WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relrowsecurity),
		(SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)`,
		im.opts.Schema, Tables).Scan(&rls, &bypass); err != nil {
		return err
	}
	if rls && !bypass {
		return errors.New("legacy: the target tables have row-level security and the current role does not bypass it; run the import as a role with BYPASSRLS (Supabase's postgres)")
	}
	_, err := q.ExecContext(ctx, strings.ReplaceAll(`
CREATE TABLE IF NOT EXISTS {dst}.legacy_quarantine (
  source_table   text NOT NULL,
  source_id      uuid NOT NULL,
  code           text NOT NULL,
  reason         text NOT NULL,
  "row"          jsonb NOT NULL,
  pass           integer NOT NULL,
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_table, source_id)
);
CREATE TABLE IF NOT EXISTS {dst}.legacy_import_state (
  source_table text NOT NULL,
  part         integer NOT NULL,
  parts        integer NOT NULL,
  pass         integer NOT NULL,
  last_id      uuid,
  done         boolean NOT NULL DEFAULT false,
  scanned      bigint NOT NULL DEFAULT 0,
  inserted     bigint NOT NULL DEFAULT 0,
  updated      bigint NOT NULL DEFAULT 0,
  unchanged    bigint NOT NULL DEFAULT 0,
  quarantined  bigint NOT NULL DEFAULT 0,
  released     bigint NOT NULL DEFAULT 0,
  notes        jsonb NOT NULL DEFAULT '{}',
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_table, part)
);
CREATE UNLOGGED TABLE IF NOT EXISTS {dst}.legacy_import_step_dups (
  id       uuid PRIMARY KEY,
  first_id uuid NOT NULL
)`, "{dst}", im.dst))
	return err
}

// state is one row of the state table: the checkpoint of one part of one
// table in one pass.
type state struct {
	table                                                        string
	part, parts, pass                                            int
	lastID                                                       uuid.NullUUID
	done                                                         bool
	scanned, inserted, updated, unchanged, quarantined, released int64
	notes                                                        map[string]int64
}

const stateCols = "source_table, part, parts, pass, last_id, done, scanned, inserted, updated, unchanged, quarantined, released, notes"

func scanState(sc interface{ Scan(...any) error }) (state, error) {
	var s state
	var notes []byte
	err := sc.Scan(&s.table, &s.part, &s.parts, &s.pass, &s.lastID, &s.done, &s.scanned, &s.inserted, &s.updated, &s.unchanged, &s.quarantined, &s.released, &notes)
	if err == nil {
		err = json.Unmarshal(notes, &s.notes)
	}
	if s.notes == nil {
		s.notes = map[string]int64{}
	}
	return s, err
}

// bounds returns the key range of part k of n: [lo, hi), hi invalid for
// the last part. Parts split the UUID space evenly by its first 32 bits.
func bounds(k, n int) (lo, hi uuid.NullUUID) {
	at := func(i int) uuid.UUID {
		var u uuid.UUID
		v := uint32((uint64(i) << 32) / uint64(n))
		u[0], u[1], u[2], u[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		return u
	}
	lo = uuid.NullUUID{UUID: at(k), Valid: true}
	if k+1 < n {
		hi = uuid.NullUUID{UUID: at(k + 1), Valid: true}
	}
	return lo, hi
}

// loadStates returns the state rows by table, ordered by part.
func (im *importer) loadStates(ctx context.Context, q querier) (map[string][]state, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+stateCols+" FROM "+im.dst+"."+StateTable+" ORDER BY source_table, part")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]state{}
	for rows.Next() {
		s, err := scanState(rows)
		if err != nil {
			return nil, err
		}
		out[s.table] = append(out[s.table], s)
	}
	return out, rows.Err()
}

// complete reports whether the parts of a table form a finished pass.
func complete(parts []state, pass int) bool {
	if len(parts) == 0 || len(parts) != parts[0].parts {
		return false
	}
	for _, s := range parts {
		if s.pass != pass || !s.done {
			return false
		}
	}
	return true
}

// choosePass picks the pass to run: the unfinished one, else a new one when
// there was none or Incremental is set; work is false when everything is
// done.
func (im *importer) choosePass(ctx context.Context, q querier, rep *Report) (states map[string][]state, work bool, err error) {
	if _, err := q.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryKey); err != nil {
		return nil, false, err
	}
	if states, err = im.loadStates(ctx, q); err != nil {
		return nil, false, err
	}
	last := 0
	for _, parts := range states {
		for _, s := range parts {
			last = max(last, s.pass)
		}
	}
	unfinished := false
	for _, t := range Tables {
		if last > 0 && !complete(states[t], last) {
			unfinished = true
		}
	}
	rep.Pass = last
	reset := func(t string, pass int) error {
		if _, err := q.ExecContext(ctx, "DELETE FROM "+im.dst+"."+StateTable+" WHERE source_table = $1", t); err != nil {
			return err
		}
		for k := 0; k < im.opts.Workers; k++ {
			if _, err := q.ExecContext(ctx, "INSERT INTO "+im.dst+"."+StateTable+" (source_table, part, parts, pass) VALUES ($1, $2, $3, $4)",
				t, k, im.opts.Workers, pass); err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case unfinished:
		rep.Resumed = true
		for _, t := range Tables {
			parts := states[t]
			if len(parts) > 0 && parts[0].pass == last && len(parts) == parts[0].parts {
				continue // this table's parts of the pass are all there
			}
			if err := reset(t, last); err != nil {
				return nil, false, err
			}
		}
	case last == 0 || im.opts.Incremental:
		rep.Pass = last + 1
		for _, t := range Tables {
			if err := reset(t, rep.Pass); err != nil {
				return nil, false, err
			}
		}
	default:
		rep.UpToDate = true
		return states, false, nil
	}
	states, err = im.loadStates(ctx, q)
	return states, true, err
}

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
