package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"modernc.org/sqlite"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/migrate"
)

// OpenPostgres opens a PostgreSQL pool through pgx. The URL's own pgx
// settings win; otherwise statements run in pgx's "cache_describe" mode:
// unnamed statements whose parameter types pgx remembers, so no prepared
// statement outlives its round trip and a transaction-mode pooler such as
// Supabase's on port 6543 works.
func OpenPostgres(ctx context.Context, databaseURL string, maxConns int) (*sql.DB, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("DATABASE_URL must be a postgres:// URL")
	}
	q := u.Query()
	if !q.Has("default_query_exec_mode") {
		q.Set("default_query_exec_mode", "cache_describe")
	}
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return db, nil
}

// OpenSQLite opens (creating when missing) the embedded database file at
// path, in WAL mode with foreign keys on, and brings its schema up to date
// with ent's auto-migration.
func OpenSQLite(ctx context.Context, path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_time_format", "sqlite")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	if err := migrateSQLite(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate sqlite: %w", err)
	}
	return db, nil
}

// migrateMu serializes auto-migrations: ent's Schema.Create rewrites the
// generated, package-level table descriptions while it runs.
var migrateMu sync.Mutex

func migrateSQLite(ctx context.Context, db *sql.DB) error {
	migrateMu.Lock()
	defer migrateMu.Unlock()
	c := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.SQLite, db)))
	return c.Schema.Create(ctx, migrate.WithForeignKeys(true))
}

func init() {
	// SQLite has no percentile aggregate; register the one the run stats use.
	sqlite.MustRegisterFunction("agentstore_p95", &sqlite.FunctionImpl{
		NArgs:         1,
		Deterministic: true,
		MakeAggregate: func(sqlite.FunctionContext) (sqlite.AggregateFunction, error) {
			return &p95{}, nil
		},
	})
}

// p95 is the continuous 95th percentile, computed as PostgreSQL's
// percentile_cont(0.95) does: linear interpolation between the two
// nearest ranks.
type p95 struct{ xs []float64 }

func (p *p95) Step(_ *sqlite.FunctionContext, args []driver.Value) error {
	switch v := args[0].(type) {
	case int64:
		p.xs = append(p.xs, float64(v))
	case float64:
		p.xs = append(p.xs, v)
	}
	return nil
}

func (p *p95) WindowInverse(*sqlite.FunctionContext, []driver.Value) error {
	return fmt.Errorf("agentstore_p95 is not a window function")
}

func (p *p95) WindowValue(*sqlite.FunctionContext) (driver.Value, error) {
	return percentile(p.xs, 0.95), nil
}

func (p *p95) Final(*sqlite.FunctionContext) {}

// percentile returns the q-th continuous percentile of xs, or nil when xs
// is empty.
func percentile(xs []float64, q float64) any {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo, hi := math.Floor(pos), math.Ceil(pos)
	return s[int(lo)] + (s[int(hi)]-s[int(lo)])*(pos-lo)
}
