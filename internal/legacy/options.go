package legacy

import (
	"fmt"
	"io"
	"log/slog"
	"regexp"
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
