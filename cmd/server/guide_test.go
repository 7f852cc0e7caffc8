package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/legacy"
)

// guidePath is the operators' migration guide that
// TestMigrationGuideCommandsWork keeps true.
const guidePath = "../../docs/development/migration-guide.md"

// guideToolVars are the environment variables the guide may name besides
// those config.Load reads, each with the file that documents it.
var guideToolVars = map[string]struct{ file, mention string }{
	"ATLAS_DEV_URL":          {"../../atlas.hcl", `getenv("ATLAS_DEV_URL")`},
	"AGENTSTORE_TEST_PG_URL": {"../../scripts/services.sh", "AGENTSTORE_TEST_PG_URL"},
}

// TestMigrationGuideCommandsWork follows docs/development/migration-guide.md
// on a scratch database holding the legacy fixtures: it runs every
// `agentstore` command of the guide's sh blocks (in the order of the
// procedure, with the environment the guide's shell session gives it), the
// SQL checks, the write freeze and the rollback copy of its sql blocks, and
// checks that every make target, atlas env and environment variable it
// names exists, that migrations and the import use port 5432 and serve
// port 6543, and that its mapping tables match the two schemas and the
// importer's status maps.
func TestMigrationGuideCommandsWork(t *testing.T) {
	t.Parallel()
	g := parseGuide(t)
	runs := g.invocations(t)

	t.Run("make targets", func(t *testing.T) {
		makefile, err := os.ReadFile("../../Makefile")
		require.NoError(t, err)
		targets := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^([A-Za-z0-9_.-]+):`).FindAllStringSubmatch(string(makefile), -1) {
			targets[m[1]] = true
		}
		named := map[string]bool{}
		for _, m := range regexp.MustCompile("`make ([a-z][a-z0-9-]*)").FindAllStringSubmatch(g.text, -1) {
			named[m[1]] = true
		}
		for _, c := range g.commands {
			if c.words[0] != "make" {
				continue
			}
			for _, w := range c.words[1:] {
				if name, _, ok := strings.Cut(w, "="); ok {
					assert.Contains(t, string(makefile), "$("+name+")", "guide line %d passes make variable %s, which the Makefile does not use", c.line, name)
				} else if !strings.HasPrefix(w, "-") {
					named[w] = true
				}
			}
		}
		for _, want := range []string{"build", "test", "generate", "migrate-diff", "migrate-lint", "migrate-hash"} {
			assert.True(t, named[want], "the guide does not name `make %s`", want)
		}
		for target := range named {
			assert.True(t, targets[target], "the guide names `make %s`, which the Makefile does not define", target)
		}
	})

	t.Run("environment variables", func(t *testing.T) {
		read := map[string]bool{}
		_, _ = config.Load(func(k string) (string, bool) { read[k] = true; return "", false })
		require.NotEmpty(t, read)
		for name, doc := range guideToolVars {
			b, err := os.ReadFile(doc.file)
			require.NoError(t, err)
			require.Contains(t, string(b), doc.mention, "%s no longer documents %s", doc.file, name)
			read[name] = true
		}
		require.NotEmpty(t, g.envNames)
		for name, line := range g.envNames {
			assert.True(t, read[name], "guide line %d names %s, which neither the service nor a documented tool reads", line, name)
		}
	})

	t.Run("atlas envs", func(t *testing.T) {
		hcl, err := os.ReadFile("../../atlas.hcl")
		require.NoError(t, err)
		n := 0
		for _, c := range g.commands {
			if c.words[0] != "atlas" {
				continue
			}
			i := slices.Index(c.words, "--env")
			require.True(t, i > 0 && i+1 < len(c.words), "guide line %d: atlas without --env", c.line)
			assert.Contains(t, string(hcl), fmt.Sprintf("env %q", c.words[i+1]), "guide line %d: atlas.hcl has no env %s", c.line, c.words[i+1])
			n++
		}
		assert.NotZero(t, n, "the guide shows the Atlas CLI alternative")
	})

	t.Run("connections", func(t *testing.T) {
		for _, c := range g.commands {
			bin := isBinary(c.words[0])
			sub := ""
			if bin && len(c.words) > 1 {
				sub = c.words[1]
			}
			dbURL, hasURL := c.env["DATABASE_URL"]
			switch {
			case bin && (sub == "migrate" || sub == "legacy"), !bin && (c.words[0] == "pg_dump" || c.words[0] == "psql") && hasURL:
				require.True(t, hasURL, "guide line %d: %s runs without DATABASE_URL", c.line, strings.Join(c.words, " "))
				user, port := guideURLParts(dbURL)
				assert.Equal(t, "5432", port, "guide line %d: %s must use the direct or session connection (5432): %s", c.line, strings.Join(c.words, " "), dbURL)
				assert.Equal(t, "postgres", user, "guide line %d: %s must run as postgres", c.line, strings.Join(c.words, " "))
			case bin && sub == "serve":
				user, port := guideURLParts(dbURL)
				assert.Equal(t, "6543", port, "guide line %d: serve goes through the transaction pooler", c.line)
				assert.Equal(t, "agentstore_app", user, "guide line %d: serve connects as agentstore_app", c.line)
				assert.Equal(t, "on", c.env["DB_TENANT_RLS"], "guide line %d: serve runs with DB_TENANT_RLS=on", c.line)
			}
		}
	})

	t.Run("status maps and reasons", func(t *testing.T) {
		assert.Equal(t, legacy.RunStatuses, g.statusMap(t, "Run and step statuses"), "the guide's run status map differs from internal/legacy/mapping.go")
		assert.Equal(t, legacy.HealthStatuses, g.statusMap(t, "Health statuses"), "the guide's health status map differs from internal/legacy/mapping.go")
		for _, code := range []string{legacy.ReasonNoTenant, legacy.ReasonUnknownStatus, legacy.ReasonInvalidValue, legacy.ReasonOrphan,
			legacy.ReasonParentQuarantined, legacy.ReasonTenantMismatch, legacy.ReasonInvalidSeq, legacy.ReasonDuplicateSeq,
			legacy.ReasonDanglingStep, legacy.ReasonStepQuarantined, legacy.ReasonStepOtherRun, legacy.ReasonConflict} {
			assert.Contains(t, g.text, "| `"+code+"` |", "the guide's quarantine table lacks %s", code)
		}
	})

	// The scratch database: Supabase's auth subset, the legacy tables and
	// their seed; the service's role is created by the guide's own SQL.
	role := "agentstore_app_guide_" + randomHex(t, 4)
	admin, err := sql.Open("pgx", dbtest.AdminURL(t))
	require.NoError(t, err)
	t.Cleanup(func() {
		// Runs after the database is dropped (cleanups run last-in first-out).
		_, _ = admin.Exec("DROP ROLE IF EXISTS " + role)
		admin.Close()
	})
	_, err = admin.Exec(`DO $$ DECLARE r text; BEGIN
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    BEGIN EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
  END LOOP;
END $$`)
	require.NoError(t, err)
	dbURL := dbtest.NewDatabase(t)
	db, err := sql.Open("pgx", dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.Exec(guideAuthSQL)
	require.NoError(t, err)
	fixtures := filepath.Join("..", "..", "testdata", "fixtures", "legacy")
	guidePsql(t, dbURL, nil, "", "-f", filepath.Join(fixtures, "schema.sql"))
	guidePsql(t, dbURL, nil, "", "-v", "runs=200", "-f", filepath.Join(fixtures, "seed.sql"))

	tenantA, tenantB, run1 := md5UUID("tenant1"), md5UUID("tenant2"), md5UUID("run1")
	appURL, err := url.Parse(dbURL)
	require.NoError(t, err)
	appURL.User = url.User(role)
	e := &guideEnv{dbURL: dbURL, role: role, appURL: appURL.String(), placeholders: map[string]string{
		"<tenant-uuid>": tenantA, "<run-uuid>": run1, "<app-password>": "guide-app-password",
	}}

	migrated := t.Run("migrate", func(t *testing.T) {
		for _, r := range runs.of("help") {
			out, err := e.run(t, r)
			require.NoError(t, err, out)
			assert.Contains(t, out, "migrate apply")
		}
		statuses, applies := runs.of("migrate status"), runs.of("migrate apply")
		require.NotEmpty(t, statuses, "the guide shows `agentstore migrate status`")
		require.NotEmpty(t, applies, "the guide shows `agentstore migrate apply`")
		for _, r := range statuses {
			out, err := e.run(t, r)
			require.NoError(t, err, "guide line %d: %s", r.line, out)
			assert.Contains(t, out, "PENDING", "guide line %d: before apply", r.line)
		}
		for i, r := range applies {
			out, err := e.run(t, r)
			require.NoError(t, err, "guide line %d: %s", r.line, out)
			want := migrationFiles(t)
			if i > 0 {
				want = 0
			}
			assert.Contains(t, out, fmt.Sprintf("applied %d migration(s) to schema agentstore", want), "guide line %d", r.line)
		}
		for _, r := range statuses {
			out, err := e.run(t, r)
			require.NoError(t, err, "guide line %d: %s", r.line, out)
			assert.Contains(t, out, "status:          OK", "guide line %d: after apply", r.line)
		}
	})
	require.True(t, migrated, "the rest of the guide needs the migrated schema")

	t.Run("mapping tables match the schemas", func(t *testing.T) {
		for _, table := range legacy.Tables {
			legacyCols, newCols := g.mappingTable(t, table)
			assert.ElementsMatch(t, columns(t, db, "public", table), legacyCols, "legacy columns of %s in the guide", table)
			assert.ElementsMatch(t, columns(t, db, "agentstore", table), newCols, "new columns of %s in the guide", table)
		}
	})

	imported := t.Run("legacy", func(t *testing.T) {
		usage, _ := command(t, nil, "help")
		if !strings.Contains(usage, "legacy import") || !strings.Contains(usage, "legacy verify") {
			t.Fatalf("`agentstore legacy import|verify` is not wired into cmd/server/main.go (its usage does not list them), "+
				"so the guide's data-handling commands cannot run; usage was:\n%s", usage)
		}
		before := legacyChecksum(t, db)
		dryRuns, imports, incrementals := runs.legacyImports()
		verifies := runs.of("legacy verify")
		require.NotEmpty(t, dryRuns, "the guide shows `legacy import --dry-run`")
		require.NotEmpty(t, imports, "the guide shows `legacy import`")
		require.NotEmpty(t, incrementals, "the guide shows `legacy import --incremental`")
		require.NotEmpty(t, verifies, "the guide shows `legacy verify`")

		for _, r := range dryRuns {
			out, err := e.run(t, r)
			require.NoError(t, err, "guide line %d: %s", r.line, out)
			assert.Contains(t, out, "dry run", "guide line %d", r.line)
			assert.Contains(t, out, "agent_runs", "guide line %d: the report lists the tables", r.line)
			var quarantine sql.NullString
			require.NoError(t, db.QueryRow(`SELECT to_regclass('agentstore.legacy_quarantine')::text`).Scan(&quarantine))
			assert.False(t, quarantine.Valid, "guide line %d: a dry run writes nothing", r.line)
			assert.Zero(t, guideCount(t, db, `SELECT count(*) FROM agentstore.agent_runs`), "guide line %d: a dry run writes nothing", r.line)
		}
		for i, r := range imports {
			out, err := e.run(t, r)
			require.NoError(t, err, "guide line %d: %s", r.line, out)
			if i == 0 {
				assert.Contains(t, out, "legacy import pass 1", "guide line %d", r.line)
			}
		}
		assert.NotZero(t, guideCount(t, db, `SELECT count(*) FROM agentstore.agent_runs`), "the import wrote runs")
		assert.NotZero(t, guideCount(t, db, `SELECT count(*) FROM agentstore.legacy_quarantine`), "the seed's dirt is quarantined")
		e.verify(t, verifies)

		for _, b := range g.sqlOf(t, "check") {
			guidePsql(t, dbURL, []string{"PGOPTIONS=-c default_transaction_read_only=on"}, e.sql(t, b))
		}
		for _, b := range g.sqlOf(t, "analyze") {
			guidePsql(t, dbURL, nil, e.sql(t, b))
		}
		freeze := g.sqlOf(t, "freeze")
		require.NotEmpty(t, freeze, "the guide freezes legacy writes at cut-over")
		for _, b := range freeze {
			guidePsql(t, dbURL, nil, e.sql(t, b))
		}
		var canWrite bool
		require.NoError(t, db.QueryRow(`SELECT has_table_privilege('authenticated', 'public.agent_runs', 'INSERT')`).Scan(&canWrite))
		assert.False(t, canWrite, "the freeze revokes the API roles' writes")

		for _, r := range incrementals {
			out, err := e.run(t, r)
			require.NoError(t, err, "guide line %d: %s", r.line, out)
			assert.Contains(t, out, "legacy import pass 2", "guide line %d: the incremental pass is a new pass", r.line)
		}
		e.verify(t, verifies)
		assert.Equal(t, before, legacyChecksum(t, db), "the legacy tables stay untouched")
	})

	t.Run("serve, spot checks and rollback", func(t *testing.T) {
		require.True(t, imported, "these steps need the imported data of the legacy subtest, which failed")
		roleSQL := g.sqlOf(t, "role")
		require.Len(t, roleSQL, 1, "the guide creates agentstore_app once")
		guidePsql(t, dbURL, nil, e.sql(t, roleSQL[0]))

		tokens := runs.of("token")
		require.NotEmpty(t, tokens, "the guide mints a token for the API spot checks")
		var token string
		for _, r := range tokens {
			out, err := e.run(t, r)
			require.NoError(t, err, "guide line %d: %s", r.line, out)
			token = strings.TrimSpace(out)
			require.Len(t, strings.Split(token, "."), 3, "guide line %d prints a JWT: %s", r.line, out)
		}
		serves := runs.of("serve")
		require.Len(t, serves, 1, "the guide starts the service once")
		serveEnv, serveArgs := e.prepare(t, serves[0])
		require.Equal(t, []string{"serve"}, serveArgs)
		s := start(t, serveEnv...)
		code, body := s.get(t, "/readyz")
		require.Equal(t, http.StatusOK, code, body)

		// The API spot checks of the guide, as the app role under RLS.
		code, body = s.call(t, "GET", "/v1/runs?limit=5", token, "")
		require.Equal(t, http.StatusOK, code, body)
		var list struct {
			Data []struct {
				TenantID string `json:"tenantId"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		require.NotEmpty(t, list.Data, "the tenant's imported runs are visible through the API")
		for _, r := range list.Data {
			assert.Equal(t, tenantA, r.TenantID)
		}
		code, body = s.call(t, "GET", "/v1/runs/"+run1+"?include=steps,toolCalls", token, "")
		require.Equal(t, http.StatusOK, code, body)
		assert.Contains(t, body, `"steps"`)
		other := mintFor(t, tenantB)
		code, _ = s.call(t, "GET", "/v1/runs/"+run1, other, "")
		assert.Equal(t, http.StatusNotFound, code, "another tenant's run is 404")

		// Clients switch: the service writes new rows and finishes a run
		// that was running at cut-over.
		cutOver := time.Now().UTC().Add(-time.Second)
		e.placeholders["<cut-over-time>"] = cutOver.Format(time.RFC3339Nano)
		var running, runningTenant string
		require.NoError(t, db.QueryRow(`SELECT id, tenant_id FROM agentstore.agent_runs WHERE status = 'running' ORDER BY id LIMIT 1`).Scan(&running, &runningTenant))
		writer := mintFor(t, runningTenant)
		code, body = s.call(t, "POST", "/v1/runs", writer, `{"agentName":"guide","steps":[{"type":"llm","output":{"text":"hi"}}],"toolCalls":[{"toolName":"web_search","status":"succeeded","durationMs":12}]}`)
		require.Equal(t, http.StatusCreated, code, body)
		var created struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &created))
		billing, err := auth.Mint([]byte(e2eSecret), auth.MintOptions{Subject: "billing", Role: "service_role", TTL: 10 * time.Minute})
		require.NoError(t, err)
		code, body = s.callFor(t, "POST", "/v1/usage", billing, runningTenant, `{"runId":"`+created.ID+`","model":"gpt-4o","inputTokens":10,"outputTokens":5,"costUsd":0.25}`)
		require.Equal(t, http.StatusCreated, code, body)
		code, body = s.call(t, "PATCH", "/v1/runs/"+running, writer, `{"status":"succeeded","output":{"answer":"after cut-over"}}`)
		require.Equal(t, http.StatusOK, code, body)
		require.NoError(t, s.stop(t))

		// Rollback: copy back what the service wrote, lift the freeze.
		usageBefore := guideCount(t, db, `SELECT count(*) FROM public.usage_metrics`)
		copyBack := g.sqlOf(t, "rollback copy")
		require.Len(t, copyBack, 1, "the guide's rollback copies post-cut-over rows back")
		guidePsql(t, dbURL, nil, e.sql(t, copyBack[0]))
		for _, b := range g.sqlOf(t, "unfreeze") {
			guidePsql(t, dbURL, nil, e.sql(t, b))
		}
		var status string
		require.NoError(t, db.QueryRow(`SELECT status FROM public.agent_runs WHERE id = $1`, created.ID).Scan(&status))
		assert.Equal(t, "pending", status, "the new run is back in the legacy table, in the old spelling")
		require.NoError(t, db.QueryRow(`SELECT status FROM public.agent_runs WHERE id = $1`, running).Scan(&status))
		assert.Equal(t, "completed", status, "the run finished after cut-over is finished in the legacy table too")
		assert.Equal(t, int64(1), guideCount(t, db, `SELECT count(*) FROM public.agent_steps WHERE run_id = $1`, created.ID))
		assert.Equal(t, int64(1), guideCount(t, db, `SELECT count(*) FROM public.tool_calls WHERE run_id = $1 AND success`, created.ID))
		assert.Equal(t, usageBefore+1, guideCount(t, db, `SELECT count(*) FROM public.usage_metrics`), "the billing row is back")
		assert.NotZero(t, guideCount(t, db, `SELECT count(*) FROM public.audit_logs WHERE entity_id = $1`, created.ID), "the audit rows are back")
		var canWrite bool
		require.NoError(t, db.QueryRow(`SELECT has_table_privilege('authenticated', 'public.agent_runs', 'INSERT')`).Scan(&canWrite))
		assert.True(t, canWrite, "the rollback lifts the freeze")

		// Dropping the schema and the role leaves the legacy tables.
		drop := g.sqlOf(t, "drop")
		require.Len(t, drop, 1, "the guide shows how to drop the agentstore schema")
		guidePsql(t, dbURL, nil, e.sql(t, drop[0]))
		assert.Zero(t, guideCount(t, db, `SELECT count(*) FROM pg_namespace WHERE nspname = 'agentstore'`))
		assert.Zero(t, guideCount(t, db, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, role))
		assert.NotZero(t, guideCount(t, db, `SELECT count(*) FROM public.agent_runs`))
	})
}

// guideAuthSQL is the part of Supabase the legacy schema and seed need:
// auth.users (bootstrap.sql's column subset) and auth.jwt().
const guideAuthSQL = `
CREATE SCHEMA auth;
CREATE TABLE auth.users (
  id uuid PRIMARY KEY, aud text, role text, email text UNIQUE, raw_app_meta_data jsonb,
  raw_user_meta_data jsonb, created_at timestamptz, updated_at timestamptz, instance_id uuid);
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE SET search_path = '' AS $$
  select nullif(current_setting('request.jwt.claims', true), '')::jsonb $$;
`
