package main

import (
	"crypto/md5"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
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
		code, body = s.call(t, "POST", "/v1/usage", writer, `{"runId":"`+created.ID+`","model":"gpt-4o","inputTokens":10,"outputTokens":5,"costUsd":0.25}`)
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

// guide is the parsed migration guide.
type guide struct {
	text     string
	commands []guideCommand // every simple command of the sh blocks, in order
	envNames map[string]int // environment variables the sh blocks and the prose name, with a line
	sql      []guideBlock   // the sql blocks
}

// guideCommand is one simple command of an sh block.
type guideCommand struct {
	line  int
	words []string          // the command and its arguments, unquoted
	env   map[string]string // the exports of the session so far plus its own assignments
}

// guideBlock is one fenced block.
type guideBlock struct {
	lang string
	line int
	text string
}

func parseGuide(t *testing.T) *guide {
	t.Helper()
	b, err := os.ReadFile(guidePath)
	require.NoError(t, err)
	g := &guide{text: string(b), envNames: map[string]int{}}
	session := map[string]string{}
	assignRE := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)
	refRE := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	for _, f := range fencedBlocks(g.text) {
		switch f.lang {
		case "sql":
			g.sql = append(g.sql, f)
			continue
		case "sh":
		default:
			t.Errorf("guide line %d: a %q block; commands go in sh blocks, SQL in sql blocks", f.line, f.lang)
			continue
		}
		for _, m := range refRE.FindAllStringSubmatch(f.text, -1) {
			g.envNames[m[1]] = f.line
		}
		for _, words := range shellCommands(f.text) {
			env := map[string]string{}
			for k, v := range session {
				env[k] = v
			}
			for len(words) > 0 {
				m := assignRE.FindStringSubmatch(words[0])
				if m == nil {
					break
				}
				env[m[1]], g.envNames[m[1]] = m[2], f.line
				words = words[1:]
			}
			if len(words) == 0 {
				continue
			}
			if words[0] == "export" {
				for _, w := range words[1:] {
					m := assignRE.FindStringSubmatch(w)
					require.NotNil(t, m, "guide line %d: export %s", f.line, w)
					session[m[1]], g.envNames[m[1]] = m[2], f.line
				}
				continue
			}
			g.commands = append(g.commands, guideCommand{line: f.line, words: words, env: env})
		}
	}
	// Variables named in the prose, such as `DB_TENANT_RLS=on`.
	for _, m := range regexp.MustCompile("`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`").FindAllStringSubmatchIndex(g.text, -1) {
		g.envNames[g.text[m[2]:m[3]]] = 1 + strings.Count(g.text[:m[0]], "\n")
	}
	require.NotEmpty(t, g.commands)
	return g
}

// fencedBlocks returns the guide's fenced code blocks, also those indented
// in list items.
func fencedBlocks(doc string) []guideBlock {
	var out []guideBlock
	var cur *guideBlock
	var body []string
	indent := 0
	for i, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "```") {
			if cur != nil {
				n := 0
				for n < indent && n < len(line) && line[n] == ' ' {
					n++
				}
				body = append(body, line[n:])
			}
			continue
		}
		if cur == nil {
			cur = &guideBlock{lang: strings.TrimPrefix(trimmed, "```"), line: i + 2}
			indent = len(line) - len(strings.TrimLeft(line, " "))
			body = nil
			continue
		}
		cur.text = strings.Join(body, "\n") + "\n"
		out = append(out, *cur)
		cur = nil
	}
	return out
}

// shellCommands splits an sh block into simple commands of unquoted words.
// It knows what the guide uses: single and double quotes, backslash
// escapes and line continuations, comments, and the separators ;, &&, ||
// and |.
func shellCommands(block string) [][]string {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for i := 0; i < len(block); i++ {
		c := block[i]
		switch {
		case c == '\\' && i+1 < len(block):
			i++
			if block[i] != '\n' {
				w.WriteByte(block[i])
				inWord = true
			}
		case c == '\'':
			j := strings.IndexByte(block[i+1:], '\'')
			if j < 0 {
				j = len(block) - i - 1
			}
			w.WriteString(block[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			for i++; i < len(block) && block[i] != '"'; i++ {
				if block[i] == '\\' && i+1 < len(block) && strings.IndexByte(`"\$`+"`", block[i+1]) >= 0 {
					i++
				}
				w.WriteByte(block[i])
			}
			inWord = true
		case c == '#' && !inWord:
			for i+1 < len(block) && block[i+1] != '\n' {
				i++
			}
		case c == '\n' || c == ';' || c == '&' || c == '|':
			endCmd()
		case c == ' ' || c == '\t':
			endWord()
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

// isBinary reports whether a command word is the agentstore binary.
func isBinary(word string) bool {
	return word == "agentstore" || word == "bin/agentstore" || word == "./bin/agentstore"
}

// guideURLParts returns the role (without Supavisor's ".<project-ref>")
// and the port of a guide's postgres URL, which may hold placeholders.
func guideURLParts(u string) (user, port string) {
	m := regexp.MustCompile(`^postgres(?:ql)?://([^:@/]+)(?::[^@]*)?@[^/]*:(\d+)/`).FindStringSubmatch(u)
	if m == nil {
		return "", ""
	}
	user, _, _ = strings.Cut(m[1], ".")
	return user, m[2]
}

// sqlOf returns the guide's sql blocks of one kind: "role" (creates
// agentstore_app), "freeze" and "unfreeze" (legacy write privileges),
// "rollback copy" (copies rows back into public), "drop" (removes the
// schema and the role), "analyze", "check" (read-only queries) or
// "example" (migration files and hand-run DDL, which the test does not
// run).
func (g *guide) sqlOf(t *testing.T, kind string) []guideBlock {
	t.Helper()
	var out []guideBlock
	for _, b := range g.sql {
		if sqlKind(b.text) == kind {
			out = append(out, b)
		}
	}
	return out
}

func sqlKind(text string) string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			lines = append(lines, l)
		}
	}
	s := strings.ToUpper(strings.Join(lines, " "))
	switch {
	case strings.Contains(s, "CREATE ROLE AGENTSTORE_APP "):
		return "role"
	case strings.Contains(s, "DROP SCHEMA"):
		return "drop"
	case strings.Contains(s, "INSERT INTO PUBLIC."):
		return "rollback copy"
	case strings.HasPrefix(s, "REVOKE ") && strings.Contains(s, " ON PUBLIC."):
		return "freeze"
	case strings.HasPrefix(s, "GRANT ") && strings.Contains(s, " ON PUBLIC."):
		return "unfreeze"
	case strings.HasPrefix(s, "ANALYZE "):
		return "analyze"
	}
	for _, stmt := range strings.Split(s, ";") {
		if stmt = strings.TrimSpace(stmt); stmt == "" {
			continue
		}
		if !strings.HasPrefix(stmt, "SELECT ") && !strings.HasPrefix(stmt, "EXPLAIN ") && !strings.HasPrefix(stmt, "WITH ") {
			return "example"
		}
	}
	return "check"
}

// section returns the text under the heading title, up to the next
// heading.
func (g *guide) section(t *testing.T, title string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^#+ ` + regexp.QuoteMeta(title) + `\n`).FindStringIndex(g.text)
	require.NotNil(t, m, "the guide has no section %q", title)
	rest := g.text[m[1]:]
	if end := regexp.MustCompile(`(?m)^#`).FindStringIndex(rest); end != nil {
		rest = rest[:end[0]]
	}
	return rest
}

// tableRows returns the cells of the markdown table rows of text, header
// and separator left out.
func tableRows(text string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) > 0 {
		rows = rows[1:]
	}
	return rows
}

var codeSpanRE = regexp.MustCompile("`([^`]+)`")

// statusMap reads a "| legacy statuses | new status |" table.
func (g *guide) statusMap(t *testing.T, title string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, row := range tableRows(g.section(t, title)) {
		require.Len(t, row, 2, "status table %q", title)
		to := codeSpanRE.FindStringSubmatch(row[1])
		require.NotNil(t, to, "status table %q: %v", title, row)
		for _, from := range codeSpanRE.FindAllStringSubmatch(row[0], -1) {
			out[from[1]] = to[1]
		}
	}
	return out
}

// mappingTable reads the field-by-field table of one table: the legacy and
// the new columns it names.
func (g *guide) mappingTable(t *testing.T, table string) (legacyCols, newCols []string) {
	t.Helper()
	for _, row := range tableRows(g.section(t, "`"+table+"`")) {
		require.Len(t, row, 5, "mapping table of %s", table)
		if m := codeSpanRE.FindStringSubmatch(row[0]); m != nil {
			legacyCols = append(legacyCols, m[1])
		}
		if m := codeSpanRE.FindStringSubmatch(row[2]); m != nil {
			newCols = append(newCols, m[1])
		}
	}
	return legacyCols, newCols
}

func columns(t *testing.T, db *sql.DB, schema, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, schema, table)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		out = append(out, c)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, out, "%s.%s has no columns", schema, table)
	return out
}

// guideRun is one distinct invocation of the binary in the guide.
type guideRun struct {
	line int
	args []string
	env  map[string]string
}

// guideRuns are the guide's binary invocations, deduplicated.
type guideRuns []guideRun

// invocations returns the guide's distinct binary invocations, failing on
// a command this test does not know how to check.
func (g *guide) invocations(t *testing.T) guideRuns {
	t.Helper()
	var out guideRuns
	seen := map[string]bool{}
	for _, c := range g.commands {
		if !isBinary(c.words[0]) {
			continue
		}
		r := guideRun{line: c.line, args: c.words[1:], env: c.env}
		require.NotEmpty(t, r.args, "guide line %d: agentstore without a command", c.line)
		require.NotEqual(t, "?", r.kind(), "guide line %d: `agentstore %s` is a command this test does not know how to check; teach it",
			c.line, strings.Join(r.args, " "))
		key := strings.Join(r.args, " ") + "\x00" + fmt.Sprint(r.env)
		if !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	return out
}

func (r guideRun) kind() string {
	a := strings.Join(r.args, " ")
	switch {
	case a == "help", a == "migrate status", a == "migrate apply", a == "legacy verify", a == "serve":
		return a
	case strings.HasPrefix(a, "legacy import"):
		return "legacy import"
	case r.args[0] == "token":
		return "token"
	}
	return "?"
}

// of returns the invocations of one kind (see guideRun.kind), distinct by
// arguments: the staging and the production run of a command are one run
// on the scratch database.
func (rs guideRuns) of(kind string) guideRuns {
	var out guideRuns
	seen := map[string]bool{}
	for _, r := range rs {
		if key := strings.Join(r.args, " "); r.kind() == kind && !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	return out
}

// legacyImports splits the `legacy import` runs into dry runs, plain
// imports and incremental passes.
func (rs guideRuns) legacyImports() (dry, plain, incremental guideRuns) {
	for _, r := range rs.of("legacy import") {
		switch {
		case slices.Contains(r.args, "--dry-run"):
			dry = append(dry, r)
		case slices.Contains(r.args, "--incremental"):
			incremental = append(incremental, r)
		default:
			plain = append(plain, r)
		}
	}
	return dry, plain, incremental
}

// guideEnv turns the guide's placeholders and production settings into
// test values.
type guideEnv struct {
	dbURL        string // the scratch database as the superuser (postgres)
	role         string // the test's stand-in for agentstore_app
	appURL       string // the scratch database as role
	placeholders map[string]string
}

var placeholderRE = regexp.MustCompile(`<[a-z][a-z0-9-]*>`)

// fill replaces the placeholders of s, failing on one without a test value.
func (e *guideEnv) fill(t *testing.T, line int, s string) string {
	t.Helper()
	for k, v := range e.placeholders {
		s = strings.ReplaceAll(s, k, v)
	}
	if m := placeholderRE.FindString(s); m != "" {
		t.Fatalf("guide line %d: no test value for the placeholder %s", line, m)
	}
	return s
}

var appRoleRE = regexp.MustCompile(`\bagentstore_app\b`)

// sql returns the text of an sql block with its placeholders filled and
// the test's role in place of agentstore_app.
func (e *guideEnv) sql(t *testing.T, b guideBlock) string {
	t.Helper()
	return appRoleRE.ReplaceAllString(e.fill(t, b.line, b.text), e.role)
}

// prepare returns the environment and the arguments of a run: the
// guide's, with the connections, secrets, addresses and placeholder values
// of the test.
func (e *guideEnv) prepare(t *testing.T, r guideRun) (env, args []string) {
	t.Helper()
	for k, v := range r.env {
		switch k {
		case "DATABASE_URL":
			if _, port := guideURLParts(v); port == "6543" {
				v = e.appURL
			} else {
				v = e.dbURL
			}
		case "REDIS_URL":
			v = dbtest.RedisURL(t)
		case "SUPABASE_JWT_SECRET":
			v = e2eSecret
		case "ADDR":
			v = "127.0.0.1:0"
		case "DATA_DIR":
			v = t.TempDir()
		default:
			v = e.fill(t, r.line, v)
		}
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	for _, a := range r.args {
		args = append(args, e.fill(t, r.line, a))
	}
	return env, args
}

// run runs r to completion and returns its output.
func (e *guideEnv) run(t *testing.T, r guideRun) (string, error) {
	t.Helper()
	env, args := e.prepare(t, r)
	return command(t, env, args...)
}

// verify runs the guide's `legacy verify` commands and expects OK.
func (e *guideEnv) verify(t *testing.T, runs guideRuns) {
	t.Helper()
	for _, r := range runs {
		out, err := e.run(t, r)
		require.NoError(t, err, "guide line %d: %s", r.line, out)
		assert.Contains(t, out, "verify: OK", "guide line %d", r.line)
		assert.Contains(t, out, "usage_metrics", "guide line %d: verify lists the tables", r.line)
	}
}

// mintFor mints a token for another tenant the way the guide's token
// command does, without another run of the binary.
func mintFor(t *testing.T, tenantID string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(e2eSecret), auth.MintOptions{Tenant: uuid.MustParse(tenantID), Subject: uuid.NewString(), TTL: 10 * time.Minute})
	require.NoError(t, err)
	return tok
}

// guidePsql runs psql as the superuser on dbURL with ON_ERROR_STOP: the
// script from stdin, or the given arguments.
func guidePsql(t *testing.T, dbURL string, env []string, script string, args ...string) {
	t.Helper()
	bin := "psql"
	if dir := os.Getenv("AGENTSTORE_TEST_PG_BIN"); dir != "" {
		bin = filepath.Join(dir, "psql")
	}
	cmd := exec.Command(bin, append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbURL}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if script != "" {
		cmd.Stdin = strings.NewReader(script)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "psql %v\n%s\n%s", args, script, out)
}

// legacyChecksum digests the six legacy tables.
func legacyChecksum(t *testing.T, db *sql.DB) string {
	t.Helper()
	var parts []string
	for _, table := range legacy.Tables {
		var sum string
		require.NoError(t, db.QueryRow(`SELECT md5(coalesce(string_agg(md5(t::text), '' ORDER BY t.id), '')) FROM public.`+table+` t`).Scan(&sum))
		parts = append(parts, table+"="+sum)
	}
	return strings.Join(parts, " ")
}

func guideCount(t *testing.T, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRow(query, args...).Scan(&n), query)
	return n
}

// md5UUID is PostgreSQL's md5(s)::uuid, the seed's ids.
func md5UUID(s string) string { return uuid.UUID(md5.Sum([]byte(s))).String() }

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
