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
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"modernc.org/sqlite"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/migrate"
	"github.com/agentstore/agentstore/internal/rollup"
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
	// SQLite stores timestamps as text and has no percentile aggregate;
	// register what the rollups' raw scans (rebuild, verify) need.
	sqlite.MustRegisterDeterministicScalarFunction("agentstore_epoch_us", 1, epochMicros)
	sqlite.MustRegisterDeterministicScalarFunction("agentstore_bucket", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		us, ok := args[0].(int64)
		if !ok {
			return nil, nil
		}
		return int64(rollup.Bucket(us)), nil
	})
	sqlite.MustRegisterFunction("agentstore_pdisc", &sqlite.FunctionImpl{
		NArgs:         2,
		Deterministic: true,
		MakeAggregate: func(sqlite.FunctionContext) (sqlite.AggregateFunction, error) {
			return &pdisc{}, nil
		},
	})
}

// sqliteTimeFormats are the forms a timestamp takes in the SQLite file
// (_time_format=sqlite writes the first).
var sqliteTimeFormats = []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

// epochMicros is agentstore_epoch_us(t): the microseconds since the Unix
// epoch of the timestamp t, NULL for NULL.
func epochMicros(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	var t time.Time
	switch v := args[0].(type) {
	case nil:
		return nil, nil
	case time.Time:
		t = v
	case string:
		var err error
		for _, f := range sqliteTimeFormats {
			if t, err = time.Parse(f, v); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("agentstore_epoch_us: %q is not a timestamp", v)
		}
	default:
		return nil, fmt.Errorf("agentstore_epoch_us: %T is not a timestamp", v)
	}
	return t.UnixMicro(), nil
}

// pdisc is agentstore_pdisc(x, q), PostgreSQL's percentile_disc(q): the
// nearest-rank q-quantile of the non-NULL x.
type pdisc struct {
	xs []float64
	q  float64
}

func (p *pdisc) Step(_ *sqlite.FunctionContext, args []driver.Value) error {
	switch v := args[0].(type) {
	case int64:
		p.xs = append(p.xs, float64(v))
	case float64:
		p.xs = append(p.xs, v)
	}
	if q, ok := args[1].(float64); ok {
		p.q = q
	}
	return nil
}

func (p *pdisc) WindowInverse(*sqlite.FunctionContext, []driver.Value) error {
	return fmt.Errorf("agentstore_pdisc is not a window function")
}

func (p *pdisc) WindowValue(*sqlite.FunctionContext) (driver.Value, error) {
	if len(p.xs) == 0 {
		return nil, nil
	}
	s := slices.Clone(p.xs)
	slices.Sort(s)
	rank := int(math.Ceil(p.q * float64(len(s))))
	return s[max(rank, 1)-1], nil
}

func (p *pdisc) Final(*sqlite.FunctionContext) {}
