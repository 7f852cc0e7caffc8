// Command migratediff writes the next versioned migration from the ent
// schema (`make migrate-diff name=...`). It needs a throwaway PostgreSQL
// superuser URL in AGENTSTORE_TEST_PG_URL (scripts/services.sh provides one)
// and creates and drops its own scratch database there.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	atlasmigrate "ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql/schema"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/agentstore/agentstore/ent/migrate"
)

func init() {
	// Atlas opens "postgres://" URLs with the database/sql driver named
	// "postgres"; pgx serves it, so no second Postgres driver is linked in.
	sql.Register("postgres", stdlib.GetDefaultDriver())
}

func main() {
	name := flag.String("name", "", "name of the new migration, e.g. add_run_labels")
	dirPath := flag.String("dir", "migrations", "migration directory")
	flag.Parse()
	if err := run(context.Background(), *name, *dirPath, os.Getenv("AGENTSTORE_TEST_PG_URL")); err != nil {
		fmt.Fprintln(os.Stderr, "migratediff:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, name, dirPath, adminURL string) error {
	if name == "" {
		return errors.New("-name is required (make migrate-diff name=...)")
	}
	if adminURL == "" {
		return errors.New("AGENTSTORE_TEST_PG_URL is not set: run through scripts/services.sh")
	}
	dir, err := atlasmigrate.NewLocalDir(dirPath)
	if err != nil {
		return err
	}
	devURL, drop, err := scratchDatabase(ctx, adminURL)
	if err != nil {
		return err
	}
	defer drop()
	before, err := dir.Files()
	if err != nil {
		return err
	}
	if err := diff(ctx, devURL, "agentstore", dir, name); err != nil {
		return err
	}
	after, err := dir.Files()
	if err != nil {
		return err
	}
	if len(after) == len(before) {
		fmt.Println("migratediff: the schema and the migrations agree; nothing written")
		return nil
	}
	written := after[len(after)-1].Name()
	if err := withLockTimeout(dir, written); err != nil {
		return err
	}
	fmt.Println("migratediff: wrote", written)
	return nil
}

// lockTimeout starts every generated file: dbmigrate runs a file in one
// transaction, so a statement that waits for a lock held by live traffic
// fails after it instead of queueing every other query behind it.
const lockTimeout = "SET LOCAL lock_timeout = '5s';\n"

// withLockTimeout prepends lockTimeout to the file name of dir and rewrites
// atlas.sum to match.
func withLockTimeout(dir *atlasmigrate.LocalDir, name string) error {
	b, err := os.ReadFile(filepath.Join(dir.Path(), name))
	if err != nil {
		return err
	}
	if err := dir.WriteFile(name, append([]byte(lockTimeout), b...)); err != nil {
		return err
	}
	sum, err := dir.Checksum()
	if err != nil {
		return err
	}
	return atlasmigrate.WriteSumFile(dir, sum)
}

// scratchDatabase creates an empty database with schema "agentstore" and
// returns its URL and a func that drops it.
func scratchDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return "", nil, err
	}
	name := "agentstore_dev_" + uuid.NewString()[:8]
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		return "", nil, err
	}
	drop := func() {
		_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close()
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		drop()
		return "", nil, err
	}
	u.Path = "/" + name
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		drop()
		return "", nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA agentstore"); err != nil {
		drop()
		return "", nil, err
	}
	return u.String(), drop, nil
}

// diff writes the next migration file, named name, into dir: the statements
// that bring a database holding dir's files up to the ent schema. devURL
// points at an empty throwaway database; the files are replayed there in
// schema devSchema, so the SQL written is unqualified and applies to
// whatever schema DB_SCHEMA names. It writes nothing when the schema and
// the files already agree.
func diff(ctx context.Context, devURL, devSchema string, dir atlasmigrate.Dir, name string) error {
	u, err := url.Parse(devURL)
	if err != nil {
		return fmt.Errorf("dev url: %w", err)
	}
	q := u.Query()
	q.Set("search_path", devSchema)
	u.RawQuery = q.Encode()
	return migrate.NamedDiff(ctx, u.String(), name,
		schema.WithDir(dir),
		schema.WithMigrationMode(schema.ModeReplay),
		schema.WithDialect(dialect.Postgres),
		schema.WithDropColumn(true),
		schema.WithDropIndex(true),
		schema.WithFormatter(atlasmigrate.DefaultFormatter),
	)
}
