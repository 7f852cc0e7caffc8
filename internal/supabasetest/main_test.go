package supabasetest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbmigrate"
	"github.com/agentstore/agentstore/migrations"
)

// schemaName is the service's schema in these tests (DB_SCHEMA's default).
const schemaName = "agentstore"

// clusters are started on first use, one per major version, shared by the
// tests of this package and stopped by TestMain.
var clusters struct {
	sync.Mutex
	m    map[int]*Cluster
	errs map[int]error
}

// cluster returns the shared cluster of PostgreSQL major, starting it on
// first use. A cluster that failed to start fails every test that needs it.
func cluster(t *testing.T, major int) *Cluster {
	t.Helper()
	clusters.Lock()
	defer clusters.Unlock()
	if clusters.m == nil {
		clusters.m, clusters.errs = map[int]*Cluster{}, map[int]error{}
	}
	if c, ok := clusters.m[major]; ok {
		return c
	}
	if err, ok := clusters.errs[major]; ok {
		t.Fatalf("PostgreSQL %d: %v", major, err)
	}
	c, err := Start(t, major)
	if err != nil {
		clusters.errs[major] = err
		t.Fatalf("PostgreSQL %d: %v", major, err)
	}
	clusters.m[major] = c
	return c
}

func TestMain(m *testing.M) {
	code := m.Run()
	clusters.Lock()
	for _, c := range clusters.m {
		c.Stop()
	}
	clusters.Unlock()
	os.Exit(code)
}

// migrate applies the embedded migrations to schemaName as db's role and
// returns the number of files applied.
func migrate(t *testing.T, db *sql.DB) int {
	t.Helper()
	dir, err := dbmigrate.Dir(migrations.FS)
	require.NoError(t, err)
	n, err := dbmigrate.Apply(context.Background(), db, schemaName, dir, nil)
	require.NoError(t, err)
	return n
}

// migrationFiles returns the number of migration files.
func migrationFiles(t *testing.T) int {
	t.Helper()
	dir, err := dbmigrate.Dir(migrations.FS)
	require.NoError(t, err)
	files, err := dir.Files()
	require.NoError(t, err)
	return len(files)
}

// lines runs query and returns its single text column, one string a row.
func lines(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		require.NoError(t, rows.Scan(&s))
		out = append(out, s.String)
	}
	require.NoError(t, rows.Err())
	return out
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// qualified returns schemaName.name, quoted.
func qualified(name string) string {
	return fmt.Sprintf("%s.%s", quoteIdent(schemaName), quoteIdent(name))
}
