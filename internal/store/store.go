// Package store owns agentstore's database: the ent client, transactions,
// and one repository per aggregate. It is the only package that turns ent
// and driver errors into derrors categories.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/privacy"
	_ "github.com/agentstore/agentstore/ent/runtime" // registers the schema's policies and hooks
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/policy"
	"github.com/agentstore/agentstore/internal/tenant"
)

// maxTxAttempts bounds how often WithTx runs a transaction that failed on a
// serialization failure, a deadlock or a busy SQLite database.
const maxTxAttempts = 5

// Store is agentstore's database. Its repositories share one ent client.
type Store struct {
	client   *ent.Client
	db       *sql.DB
	dialect  string
	pgSchema string // "" on SQLite
	log      *slog.Logger

	// Runs holds agent runs with their steps and tool calls.
	Runs *Runs
	// Audit holds the append-only audit log.
	Audit *Audit
	// Usage holds billing records of model usage.
	Usage *Usage
	// Health holds checks of the system's components.
	Health *Health
}

// New returns a Store over db, an open PostgreSQL (dialect.Postgres) or
// SQLite (dialect.SQLite) database. On PostgreSQL every query names schema
// pgSchema explicitly, so no session state is needed and a transaction-mode
// pooler is safe.
func New(db *sql.DB, dialectName, pgSchema string, log *slog.Logger, opts ...Option) *Store {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var drv dialect.Driver = entsql.OpenDB(dialectName, db)
	if o.tenantRLS && dialectName == dialect.Postgres {
		drv = rlsDriver{drv: drv.(*entsql.Driver)}
	}
	return newStore(drv, db, dialectName, pgSchema, log)
}

// Option configures New.
type Option func(*options)

type options struct{ tenantRLS bool }

// WithTenantRLS(true) is DB_TENANT_RLS=on: on PostgreSQL every statement
// runs in a transaction whose first statement is
// set_config('app.tenant_id', <the viewer's tenant>, true), for the
// row-level security policies of the migrations. A statement outside
// WithTx gets a transaction of its own. The setting is transaction-local,
// so nothing carries over to the next user of a pooled connection; a
// viewer without a tenant (the system) sets "" and so sees no tenant rows,
// only system_health. The database role must not bypass RLS (not the
// owner-with-BYPASSRLS postgres role of Supabase: a separate role).
func WithTenantRLS(on bool) Option { return func(o *options) { o.tenantRLS = on } }

func newStore(drv dialect.Driver, db *sql.DB, dialectName, pgSchema string, log *slog.Logger) *Store {
	opts := []ent.Option{ent.Driver(drv)}
	if dialectName == dialect.Postgres {
		opts = append(opts, ent.AlternateSchema(schemaConfig(pgSchema)))
	}
	if dialectName != dialect.Postgres {
		pgSchema = ""
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{client: ent.NewClient(opts...), db: db, dialect: dialectName, pgSchema: pgSchema, log: log}
	s.Runs = &Runs{s: s}
	s.Audit = &Audit{s: s}
	s.Usage = &Usage{s: s}
	s.Health = &Health{s: s}
	return s
}

// schemaConfig places every table in schema name. It fills the generated
// struct's fields by reflection, so a new entity cannot be forgotten.
func schemaConfig(name string) ent.SchemaConfig {
	var cfg ent.SchemaConfig
	v := reflect.ValueOf(&cfg).Elem()
	for i := range v.NumField() {
		v.Field(i).SetString(name)
	}
	return cfg
}

// Client returns the ent client, for callers that build their own queries.
// Queries through it are still filtered by the viewer's tenant.
func (s *Store) Client() *ent.Client { return s.client }

// Dialect returns dialect.Postgres or dialect.SQLite.
func (s *Store) Dialect() string { return s.dialect }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return derrors.New(derrors.Unavailable, "database unavailable: %v", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.client.Close() }

// WithTx runs fn in a transaction and commits it when fn returns nil. It
// rolls back when fn returns an error or panics (the panic goes on), and
// runs fn again, a bounded number of times, when the database reports a
// serialization failure or a deadlock. Callers publish side effects, such
// as realtime events, only after WithTx returns nil.
func (s *Store) WithTx(ctx context.Context, fn func(ctx context.Context, tx *ent.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = s.runTx(ctx, fn)
		if err == nil || attempt == maxTxAttempts || !retryable(err) {
			break
		}
		backoff := time.Duration(attempt*attempt)*5*time.Millisecond + rand.N(5*time.Millisecond)
		s.log.DebugContext(ctx, "retrying transaction", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return translate(ctx.Err())
		case <-time.After(backoff):
		}
	}
	return translate(err)
}

func (s *Store) runTx(ctx context.Context, fn func(ctx context.Context, tx *ent.Tx) error) (err error) {
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(ctx, tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			s.log.WarnContext(ctx, "rollback failed", "err", rerr)
		}
		return err
	}
	return tx.Commit()
}

// rlsDriver is the ent driver of WithTenantRLS. It deliberately has no
// QueryContext/ExecContext passthrough, which would skip set_config.
type rlsDriver struct{ drv *entsql.Driver }

func (d rlsDriver) Dialect() string { return d.drv.Dialect() }
func (d rlsDriver) Close() error    { return d.drv.Close() }

func (d rlsDriver) Tx(ctx context.Context) (dialect.Tx, error) { return d.BeginTx(ctx, nil) }

// BeginTx begins a transaction and sets app.tenant_id in it.
func (d rlsDriver) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	tx, err := d.drv.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	tenantID := ""
	if v, ok := tenant.FromContext(ctx); ok && v.TenantID != uuid.Nil {
		tenantID = v.TenantID.String()
	}
	if err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", []any{tenantID}, nil); err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// Exec runs a statement outside a transaction in one of its own.
func (d rlsDriver) Exec(ctx context.Context, query string, args, v any) error {
	tx, err := d.Tx(ctx)
	if err != nil {
		return err
	}
	if err := tx.Exec(ctx, query, args, v); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Query runs a query outside a transaction in one of its own, which ends
// when the rows are closed.
func (d rlsDriver) Query(ctx context.Context, query string, args, v any) error {
	tx, err := d.Tx(ctx)
	if err != nil {
		return err
	}
	if err := tx.Query(ctx, query, args, v); err != nil {
		_ = tx.Rollback()
		return err
	}
	rows := v.(*entsql.Rows) // tx.Query accepts nothing else
	rows.ColumnScanner = &txRows{ColumnScanner: rows.ColumnScanner, tx: tx}
	return nil
}

// txRows commits its transaction when closed.
type txRows struct {
	entsql.ColumnScanner
	tx   dialect.Tx
	done bool
}

func (r *txRows) Close() error {
	err := r.ColumnScanner.Close()
	if r.done {
		return err
	}
	r.done = true
	if err != nil {
		return errors.Join(err, r.tx.Rollback())
	}
	return r.tx.Commit()
}

// retryable reports whether a transaction that failed with err may succeed
// when run again from the start.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		code := sqErr.Code() & 0xff
		return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
	}
	return false
}

// translate turns ent and driver errors into derrors categories. Errors
// that already have a category pass through unchanged.
func translate(err error) error {
	if err == nil || derrors.Category(err) != nil {
		return err
	}
	switch {
	case ent.IsNotFound(err):
		return &derrors.Error{Category: derrors.NotFound, Message: "not found", Cause: err}
	case ent.IsValidationError(err):
		var verr *ent.ValidationError
		errors.As(err, &verr)
		return fromValidation(verr)
	case errors.Is(err, policy.ErrTenantMismatch):
		return &derrors.Error{Category: derrors.InvalidArgument, Message: "tenantId may not name another tenant", Cause: err}
	case errors.Is(err, privacy.Deny):
		return &derrors.Error{Category: derrors.Forbidden, Message: "not allowed", Cause: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &derrors.Error{Category: derrors.Unavailable, Message: "request cancelled or timed out", Cause: err}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505":
			return &derrors.Error{Category: derrors.Conflict, Message: "already exists", Cause: err}
		case pgErr.Code == "23503":
			return &derrors.Error{Category: derrors.InvalidArgument, Message: "references a resource that does not exist", Cause: err}
		case pgErr.Code == "23514", pgErr.Code == "23502", pgErr.Code[:2] == "22":
			return &derrors.Error{Category: derrors.InvalidArgument, Message: "value out of range or malformed", Cause: err}
		case pgErr.Code == "40001", pgErr.Code == "40P01", pgErr.Code == "55P03", pgErr.Code == "57014",
			pgErr.Code[:2] == "08", pgErr.Code[:2] == "53", pgErr.Code[:2] == "57":
			return &derrors.Error{Category: derrors.Unavailable, Message: "database busy or unavailable", Cause: err}
		}
		return err
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &derrors.Error{Category: derrors.Conflict, Message: "already exists", Cause: err}
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return &derrors.Error{Category: derrors.InvalidArgument, Message: "references a resource that does not exist", Cause: err}
		}
		if code := sqErr.Code() & 0xff; code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED {
			return &derrors.Error{Category: derrors.Unavailable, Message: "database busy", Cause: err}
		}
		return err
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	if errors.As(err, &netErr) || errors.As(err, &connErr) || errors.Is(err, sql.ErrConnDone) ||
		err.Error() == "sql: database is closed" ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return &derrors.Error{Category: derrors.Unavailable, Message: "database unavailable", Cause: err}
	}
	return fmt.Errorf("store: %w", err)
}
