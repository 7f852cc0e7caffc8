package supabasetest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"ariga.io/atlas/schemahcl"
	atlasmigrate "ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	"ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlclient"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/agentstore/agentstore/internal/dbmigrate"
	"github.com/agentstore/agentstore/internal/dbtest"
)

// atlasProject mirrors the part of the Atlas CLI's project configuration
// (cmd/atlas/internal/cmdapi/project.go) that atlas.hcl relies on.
type atlasProject struct {
	Envs []*atlasEnv `spec:"env"`
}

type atlasEnv struct {
	Name      string          `spec:"name,name"`
	URL       string          `spec:"url"`
	Dev       string          `spec:"dev"`
	Src       string          `spec:"src"`
	Schemas   []string        `spec:"schemas"`
	Migration *atlasMigration `spec:"migration"`
	schemahcl.DefaultExtension
}

type atlasMigration struct {
	Dir             string `spec:"dir"`
	RevisionsSchema string `spec:"revisions_schema"`
	TxMode          string `spec:"tx_mode"`
	schemahcl.DefaultExtension
}

// evalAtlasHCL evaluates atlas.hcl as the Atlas CLI does (same HCL engine
// and functions, getenv included) with the process environment, and
// returns its envs by name.
func evalAtlasHCL(t *testing.T) map[string]*atlasEnv {
	t.Helper()
	getenv := function.New(&function.Spec{
		Params: []function.Parameter{{Name: "key", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(os.Getenv(args[0].AsString())), nil
		},
	})
	var p atlasProject
	state := schemahcl.New(schemahcl.WithFunctions(map[string]function.Function{"getenv": getenv}))
	require.NoError(t, state.EvalFiles([]string{filepath.Join(RepoRoot(t), "atlas.hcl")}, &p, nil))
	envs := map[string]*atlasEnv{}
	for _, e := range p.Envs {
		envs[e.Name] = e
	}
	return envs
}

// TestAtlasHCL evaluates atlas.hcl and checks that every env that has a
// target database is bound to the service's schema, with the revisions
// table inside it, and that every dev database is bound to public, the
// schema an empty database has.
func TestAtlasHCL(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://postgres:secret@db.example.supabase.co:5432/postgres?sslmode=require")
	t.Setenv("ATLAS_DEV_URL", "postgres://postgres@127.0.0.1:5432/dev?sslmode=disable")
	envs := evalAtlasHCL(t)
	require.Len(t, envs, 3)
	for _, name := range []string{"local", "ci", "supabase"} {
		e := envs[name]
		require.NotNil(t, e, "env %s", name)
		t.Run(name, func(t *testing.T) {
			dev, err := url.Parse(e.Dev)
			require.NoError(t, err)
			assert.Equal(t, "postgres", dev.Scheme)
			assert.Equal(t, "127.0.0.1:5432", dev.Host, "the dev database is ATLAS_DEV_URL")
			assert.Equal(t, "public", dev.Query().Get("search_path"), "the dev database is bound to public")
			assert.Empty(t, e.Schemas, "the URLs scope every env; a schemas list would contradict the dev database's public")
			require.NotNil(t, e.Migration)
			assert.Equal(t, "file://migrations", e.Migration.Dir)
			if name == "ci" {
				assert.Empty(t, e.URL, "ci lints on the dev database only")
				return
			}
			u, err := url.Parse(e.URL)
			require.NoError(t, err)
			assert.Equal(t, "postgres", u.Scheme)
			assert.Equal(t, schemaName, u.Query().Get("search_path"), "the target is bound to the schema")
			assert.Equal(t, "db.example.supabase.co:5432", u.Host, "DATABASE_URL is kept, with its own parameters")
			assert.Equal(t, "require", u.Query().Get("sslmode"))
			assert.Equal(t, schemaName, e.Migration.RevisionsSchema)
		})
	}
	assert.Equal(t, "ent://ent/schema", envs["local"].Src)
	assert.Equal(t, "file", envs["supabase"].Migration.TxMode)
}

var registerPostgresDriver sync.Once

// openAtlas opens u with Atlas's client, as the CLI opens --url and
// --dev-url. The CLI's "postgres" database/sql driver is lib/pq; pgx
// stands in for it (both take the URL, search_path included, as is).
func openAtlas(t *testing.T, u string) *sqlclient.Client {
	t.Helper()
	registerPostgresDriver.Do(func() { sql.Register(postgres.DriverName, stdlib.GetDefaultDriver()) })
	c, err := sqlclient.Open(context.Background(), u)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// repoMigrations returns the repository's migration directory, validated
// against its atlas.sum as the CLI does first.
func repoMigrations(t *testing.T) atlasmigrate.Dir {
	t.Helper()
	dir, err := atlasmigrate.NewLocalDir(filepath.Join(RepoRoot(t), "migrations"))
	require.NoError(t, err)
	require.NoError(t, atlasmigrate.Validate(dir))
	return dir
}

// tablesOf returns the tables of schema s.
func tablesOf(t *testing.T, c *sqlclient.Client, s string) []string {
	t.Helper()
	sch, err := c.InspectSchema(context.Background(), s, &schema.InspectOptions{Mode: schema.InspectTables})
	if schema.IsNotExistError(err) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, tb := range sch.Tables {
		names = append(names, tb.Name)
	}
	return names
}

// lintLikeAtlas does with Atlas's library what `atlas migrate lint` does
// with its dev database before analyzing anything (the CLI's
// migratelint.DevLoader): lock, snapshot (which requires a clean dev
// database and inspects the bound schema), replay every migration file
// statement by statement, inspecting after each, then restore. It returns
// the tables the replay created.
func lintLikeAtlas(t *testing.T, devURL string) []string {
	t.Helper()
	ctx := context.Background()
	dev := openAtlas(t, devURL)
	unlock, err := dev.Lock(ctx, "atlas_lint_"+dev.URL.Schema, 0)
	require.NoError(t, err)
	defer func() { require.NoError(t, unlock()) }()
	restore, err := dev.Driver.(atlasmigrate.Snapshoter).Snapshot(ctx)
	require.NoError(t, err, "taking the dev database snapshot (atlas migrate lint's first step)")
	inspect := func() *schema.Realm {
		r, err := dev.InspectRealm(ctx, &schema.InspectRealmOption{Schemas: []string{dev.URL.Schema}})
		require.NoError(t, err)
		return r
	}
	current := inspect()
	files, err := repoMigrations(t).Files()
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		stmts, err := atlasmigrate.FileStmtDecls(dev.Driver, f)
		require.NoError(t, err, f.Name())
		for _, s := range stmts {
			_, err := dev.ExecContext(ctx, s.Text)
			require.NoError(t, err, "%s: %s", f.Name(), s.Text)
			next := inspect()
			_, err = dev.RealmDiff(current, next)
			require.NoError(t, err)
			current = next
		}
	}
	tables := tablesOf(t, dev, dev.URL.Schema)
	require.NoError(t, restore(ctx), "restoring the dev database")
	assert.Empty(t, tablesOf(t, dev, dev.URL.Schema), "Atlas leaves the dev database empty")
	return tables
}

// TestAtlasHCLOnEmptyDatabases runs, with Atlas's Go library, what the
// README's Atlas CLI commands do with the URLs atlas.hcl gives them, on
// empty databases: ATLAS_DEV_URL is a fresh database, DATABASE_URL a fresh
// Supabase-like database where the migrations run as the non-superuser
// postgres role. The CLI itself is not run (it is not installed here): its
// command-line layer, the ent:// loader of `migrate diff` and the
// analyzers' report are not exercised.
func TestAtlasHCLOnEmptyDatabases(t *testing.T) {
	ctx := context.Background()
	devURL := dbtest.NewDatabase(t)
	c := cluster(t, 15)
	target := c.URL("postgres", c.NewDatabase(t, Modes[0], false))
	t.Setenv("ATLAS_DEV_URL", devURL)
	t.Setenv("DATABASE_URL", target)
	envs := evalAtlasHCL(t)
	want := []string{"agent_runs", "agent_steps", "audit_logs", "erasures", "idempotency_keys", "run_removals", "system_health", "tool_calls", "usage_metrics",
		"run_rollups", "run_rollup_deltas", "usage_rollups", "usage_rollup_deltas", "usage_run_marks"}

	// atlas migrate lint --env ci --git-base origin/main (and the local env's
	// dev database, which `migrate diff` replays the same way).
	for _, name := range []string{"ci", "local"} {
		t.Run("lint "+name, func(t *testing.T) {
			assert.ElementsMatch(t, want, lintLikeAtlas(t, envs[name].Dev))
		})
	}

	// What the issue saw: a dev URL bound to the service's schema fails on
	// an empty database at the snapshot, before anything runs.
	t.Run("dev bound to the service schema", func(t *testing.T) {
		u, err := url.Parse(devURL)
		require.NoError(t, err)
		q := u.Query()
		q.Set("search_path", schemaName)
		u.RawQuery = q.Encode()
		_, err = openAtlas(t, u.String()).Driver.(atlasmigrate.Snapshoter).Snapshot(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `schema "`+schemaName+`" was not found`)
	})

	// atlas migrate apply --env supabase on a database without the schema:
	// the CLI creates the revisions schema (revisions_schema, the bound
	// schema) before it runs the files, one transaction each (none for a
	// file with -- atlas:txmode none).
	t.Run("apply supabase", func(t *testing.T) {
		e := envs["supabase"]
		client := openAtlas(t, e.URL)
		assert.Equal(t, schemaName, client.URL.Schema)
		unlock, err := client.Lock(ctx, "atlas_migrate_execute", 0)
		require.NoError(t, err)
		defer func() { require.NoError(t, unlock()) }()
		public := tablesOf(t, client, "public") // Supabase's own tables
		rs := e.Migration.RevisionsSchema
		_, err = client.InspectSchema(ctx, rs, &schema.InspectOptions{Mode: schema.InspectSchemas})
		require.True(t, schema.IsNotExistError(err), "the target has no %s schema yet: %v", rs, err)
		require.NoError(t, client.ApplyChanges(ctx, []schema.Change{&schema.AddSchema{S: &schema.Schema{Name: rs}}}))

		dir := repoMigrations(t)
		ex, err := atlasmigrate.NewExecutor(client.Driver, dir, atlasmigrate.NopRevisionReadWriter{})
		require.NoError(t, err)
		pending, err := ex.Pending(ctx)
		require.NoError(t, err, "the bound schema is clean")
		files, err := dir.Files()
		require.NoError(t, err)
		require.Len(t, pending, len(files))
		for _, f := range pending {
			// A file whose header says -- atlas:txmode none runs without a
			// transaction, statement by statement, as the CLI runs it.
			mode, err := dbmigrate.FileTxMode(f)
			require.NoError(t, err)
			if mode == dbmigrate.TxModeNone {
				ex, err := atlasmigrate.NewExecutor(client.Driver, dir, atlasmigrate.NopRevisionReadWriter{})
				require.NoError(t, err)
				require.NoError(t, ex.Execute(ctx, f), f.Name())
				continue
			}
			tx, err := client.Tx(ctx, nil)
			require.NoError(t, err)
			ex, err := atlasmigrate.NewExecutor(tx.Driver, dir, atlasmigrate.NopRevisionReadWriter{})
			require.NoError(t, err)
			require.NoError(t, ex.Execute(ctx, f), f.Name())
			require.NoError(t, tx.Commit())
		}
		assert.ElementsMatch(t, want, tablesOf(t, client, schemaName), "the files land in the bound schema")
		assert.Equal(t, public, tablesOf(t, client, "public"), "nothing lands in public")
	})
}
