// Package dbtest gives tests real databases: a fresh PostgreSQL database
// per test, cloned from a template that the embedded migrations built, and
// a fresh SQLite file per test. PostgreSQL comes from scripts/services.sh
// through AGENTSTORE_TEST_PG_URL; a test that needs it fails, never skips,
// when it is missing.
package dbtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/agentstore/agentstore/internal/dbmigrate"
	"github.com/agentstore/agentstore/migrations"
)

// Schema is the schema the migrations are applied to in test databases.
const Schema = "agentstore"

// AdminURL returns the superuser URL of the test cluster's maintenance
// database, failing t when there is none.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("AGENTSTORE_TEST_PG_URL")
	if u == "" {
		t.Fatal("AGENTSTORE_TEST_PG_URL is not set: run the tests with `make test` (scripts/services.sh starts PostgreSQL and Redis)")
	}
	return u
}

// RedisURL returns the test Redis URL, failing t when there is none.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("AGENTSTORE_TEST_REDIS_URL")
	if u == "" {
		t.Fatal("AGENTSTORE_TEST_REDIS_URL is not set: run the tests with `make test`")
	}
	return u
}

// WithDatabase returns u pointing at database name.
func WithDatabase(t testing.TB, u, name string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.Path = "/" + name
	return p.String()
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// template returns the name of the migrated template database, building it
// once per cluster and migration set. Test binaries of several packages run
// at once, so the build is serialized with an advisory lock.
func template(t testing.TB, admin *sql.DB) string {
	t.Helper()
	templateOnce.Do(func() {
		templateName, templateErr = buildTemplate(context.Background(), admin, AdminURL(t))
	})
	if templateErr != nil {
		t.Fatalf("build template database: %v", templateErr)
	}
	return templateName
}

func buildTemplate(ctx context.Context, admin *sql.DB, adminURL string) (string, error) {
	sum, err := fs.ReadFile(migrations.FS, "atlas.sum")
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(sum)
	name := "agentstore_tmpl_" + hex.EncodeToString(h[:6])

	conn, err := admin.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7262021)"); err != nil {
		return "", err
	}
	defer conn.ExecContext(ctx, "SELECT pg_advisory_unlock(7262021)") //nolint:errcheck
	var exists bool
	if err := conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	db, err := sql.Open("pgx", withDatabase(adminURL, building))
	if err != nil {
		return "", err
	}
	dir, err := dbmigrate.Dir(migrations.FS)
	if err == nil {
		_, err = dbmigrate.Apply(ctx, db, Schema, dir, nil)
	}
	db.Close()
	if err != nil {
		return "", fmt.Errorf("apply migrations: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", err
	}
	return name, nil
}

func withDatabase(u, name string) string {
	p, _ := url.Parse(u)
	p.Path = "/" + name
	return p.String()
}

// NewDatabase creates an empty database, dropped when t ends, and returns
// its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "")
}

// Postgres returns the URL of a fresh database holding the migrated schema,
// dropped when t ends.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := openAdmin(t)
	return newDatabase(t, template(t, admin))
}

func openAdmin(t testing.TB) *sql.DB {
	t.Helper()
	admin, err := sql.Open("pgx", AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

var dbSeq struct {
	sync.Mutex
	n int
}

func newDatabase(t testing.TB, tmpl string) string {
	t.Helper()
	admin := openAdmin(t)
	dbSeq.Lock()
	dbSeq.n++
	name := fmt.Sprintf("agentstore_test_%d_%d", os.Getpid(), dbSeq.n)
	dbSeq.Unlock()
	stmt := "CREATE DATABASE " + name
	if tmpl != "" {
		stmt += " TEMPLATE " + tmpl
	}
	if _, err := admin.Exec(stmt); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return WithDatabase(t, AdminURL(t), name)
}
