package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/httpapi"
	"github.com/agentstore/agentstore/internal/legacy"
	"github.com/agentstore/agentstore/internal/markdown"
)

// cutoverPath is the application cut-over guide that
// TestApplicationCutoverGuide keeps true.
const cutoverPath = "../../docs/development/application-cutover.md"

// cutoverAppVars are the upper-case names the guide may use that the
// service does not read: the application's own flags and settings, and
// CORS_ALLOWED_ORIGINS, which SPEC §13 adds on another branch.
var cutoverAppVars = map[string]bool{
	"AGENTSTORE_READS": true, "AGENTSTORE_WRITES": true, "AGENTSTORE_TOKEN": true, "AGENTSTORE_SERVICE_TOKEN": true,
	"CORS_ALLOWED_ORIGINS": true,
}

// TestApplicationCutoverGuide keeps docs/development/application-cutover.md
// true: its links, the client methods, endpoints, field renames, statuses
// and settings its tables name; then it follows the guide on a scratch
// database holding the legacy fixtures (every sh and sql block, in order,
// as written) and starts the service with the guide's production
// settings. Its TypeScript snippets are compiled by the client's tests
// (clients/typescript/test/docs.test.mjs).
func TestApplicationCutoverGuide(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(cutoverPath)
	require.NoError(t, err)
	doc := string(b)

	t.Run("links", func(t *testing.T) {
		own := headingAnchors(doc)
		for _, m := range regexp.MustCompile(`\]\(([a-z0-9-]*\.md)?(?:#([^)]+))?\)`).FindAllStringSubmatch(doc, -1) {
			file, anchor := m[1], m[2]
			anchors := own
			if file != "" {
				other, err := os.ReadFile(filepath.Join("../../docs/development", file))
				require.NoError(t, err, "the guide links to %s", file)
				anchors = headingAnchors(string(other))
			}
			if anchor != "" {
				assert.True(t, anchors[anchor], "the guide links to %s#%s, which has no such heading", file, anchor)
			}
		}
	})

	calls, ok := markdown.Section(doc, "Calls")
	require.True(t, ok)
	t.Run("client methods and endpoints", func(t *testing.T) {
		methods := clientMethods(t)
		ops := openAPIOps(t)
		rows := markdown.TableRows(calls)
		require.GreaterOrEqual(t, len(rows), 20)
		callRe := regexp.MustCompile(`client\.([a-zA-Z]+)\.([a-zA-Z]+)\(`)
		opRe := regexp.MustCompile(`^(GET|POST|PATCH|PUT|DELETE) (/\S+)$`)
		seenMethods, seenOps := map[string]bool{}, map[string]bool{}
		for _, row := range rows {
			require.Len(t, row, 3, "calls table row %v", row)
			for _, m := range callRe.FindAllStringSubmatch(row[1], -1) {
				name := m[1] + "." + m[2]
				assert.True(t, methods[name], "the guide names client.%s, which the client does not have", name)
				seenMethods[name] = true
			}
			for _, span := range markdown.CodeSpans(row[2]) {
				m := opRe.FindStringSubmatch(span)
				require.NotNil(t, m, "the REST column holds `METHOD /path`: %q", span)
				// GET /v1/ws is the WebSocket, described in realtime-protocol.md rather than OpenAPI.
				documented := ops[m[1]+" "+m[2]] || span == "GET /v1/ws"
				assert.True(t, documented, "the guide names %s, which /openapi.json does not document", span)
				seenOps[m[1]+" "+m[2]] = true
			}
		}
		for name := range methods {
			assert.True(t, seenMethods[name], "the calls table does not show client.%s", name)
		}
		for op := range ops {
			if strings.HasPrefix(op, "GET /v1/") || strings.HasPrefix(op, "POST /v1/") || strings.HasPrefix(op, "PATCH /v1/") {
				assert.True(t, seenOps[op], "the calls table does not show %s", op)
			}
		}
	})

	t.Run("field renames", func(t *testing.T) {
		guide := parseGuide(t)
		schemas := openAPISchemas(t)
		schemaOf := map[string]string{"agent_runs": "Run", "agent_steps": "Step", "tool_calls": "ToolCall",
			"audit_logs": "AuditLog", "usage_metrics": "Usage", "system_health": "Health"}
		// The migration guide's field-by-field tables: legacy column -> new column.
		renames := map[string]string{} // "table.legacy" -> API field, where it is not the legacy name in camelCase
		for _, table := range legacy.Tables {
			for _, row := range markdown.TableRows(guide.section(t, "`"+table+"`")) {
				from, to := markdown.CodeSpans(row[0]), markdown.CodeSpans(row[2])
				if len(from) == 0 || len(to) == 0 {
					continue
				}
				field := camel(to[0])
				if field != camel(from[0]) && schemas[schemaOf[table]][field] {
					renames[table+"."+from[0]] = field
				}
			}
		}
		section, ok := markdown.Section(doc, "Field renames")
		require.True(t, ok)
		listed := map[string]string{}
		for _, row := range markdown.TableRows(section) {
			require.Len(t, row, 3)
			table, col, field := markdown.CodeSpans(row[0]), markdown.CodeSpans(row[1]), markdown.CodeSpans(row[2])
			require.True(t, len(table) == 1 && len(col) == 1 && len(field) == 1, "renames row %v", row)
			listed[table[0]+"."+col[0]] = field[0]
			assert.True(t, schemas[schemaOf[table[0]]][field[0]], "%s is not a field of %s", field[0], schemaOf[table[0]])
		}
		assert.Equal(t, renames, listed, "the guide's renames differ from the migration guide's mapping and the API's fields")
	})

	t.Run("statuses", func(t *testing.T) {
		section, ok := markdown.Section(doc, "Statuses")
		require.True(t, ok)
		targets := map[string]bool{}
		for _, row := range markdown.TableRows(section) {
			to := markdown.CodeSpans(row[1])
			require.Len(t, to, 1)
			targets[to[0]] = true
			for _, from := range markdown.CodeSpans(row[0]) {
				assert.Equal(t, legacy.RunStatuses[from], to[0], "the guide maps %s to %s", from, to[0])
			}
		}
		var enum []string
		for _, v := range openAPIDoc(t).Components.Schemas["RunStatus"].Value.Enum {
			enum = append(enum, v.(string))
		}
		var got []string
		for s := range targets {
			got = append(got, s)
		}
		assert.ElementsMatch(t, enum, got, "the statuses table covers the whole enum")
	})

	t.Run("names", func(t *testing.T) {
		read := map[string]bool{}
		_, _ = config.Load(func(k string) (string, bool) { read[k] = true; return "", false })
		codes := map[string]bool{}
		for _, v := range openAPIDoc(t).Components.Schemas["ErrorCode"].Value.Enum {
			codes[v.(string)] = true
		}
		nameRe := regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b`)
		for _, name := range nameRe.FindAllString(doc, -1) {
			assert.True(t, read[name] || codes[name] || cutoverAppVars[name],
				"the guide names %s, which is neither a setting of the service, an API error code nor one of the app's flags", name)
		}
	})

	t.Run("commands and production settings", func(t *testing.T) {
		cutoverFollow(t, doc)
	})
}

// camel turns a snake_case column name into the API's camelCase.
func camel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

func openAPIDoc(t *testing.T) *openapi3.T {
	t.Helper()
	d, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	require.NoError(t, err)
	return d
}

// openAPIOps returns "METHOD /path" of every documented operation.
func openAPIOps(t *testing.T) map[string]bool {
	ops := map[string]bool{}
	for path, item := range openAPIDoc(t).Paths.Map() {
		for method := range item.Operations() {
			ops[method+" "+path] = true
		}
	}
	return ops
}

// openAPISchemas returns the property names of every schema.
func openAPISchemas(t *testing.T) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for name, s := range openAPIDoc(t).Components.Schemas {
		out[name] = map[string]bool{}
		for p := range s.Value.Properties {
			out[name][p] = true
		}
	}
	return out
}

// clientMethods returns "resource.method" of the TypeScript client's
// AgentstoreClient interface, and realtime.subscribe.
func clientMethods(t *testing.T) map[string]bool {
	b, err := os.ReadFile("../../clients/typescript/src/index.ts")
	require.NoError(t, err)
	src := string(b)
	_, body, ok := strings.Cut(src, "export interface AgentstoreClient {\n")
	require.True(t, ok)
	body, _, _ = strings.Cut(body, "\n}\n")
	out := map[string]bool{}
	resource := ""
	for _, line := range strings.Split(body, "\n") {
		if m := regexp.MustCompile(`^  ([a-zA-Z]+): \{$`).FindStringSubmatch(line); m != nil {
			resource = m[1]
		} else if line == "  };" {
			resource = ""
		} else if m := regexp.MustCompile(`^    ([a-zA-Z]+)[<(]`).FindStringSubmatch(line); m != nil && resource != "" {
			out[resource+"."+m[1]] = true
		}
	}
	require.Contains(t, out, "runs.create")
	rt, err := os.ReadFile("../../clients/typescript/src/realtime.ts")
	require.NoError(t, err)
	require.Contains(t, string(rt), "  subscribe<D = unknown>(channel: string")
	out["realtime.subscribe"] = true
	return out
}

// cutoverFollow runs the guide's sh and sql blocks in order on a scratch
// database that holds the legacy fixtures, the readers the decommission
// must find (a view, a function, a trigger, the supabase_realtime
// publication and a pg_cron job) and, as the guide's phase 0 requires,
// the migrated and imported agentstore schema; then it starts the service
// with the production settings block.
func cutoverFollow(t *testing.T, doc string) {
	admin, err := sql.Open("pgx", dbtest.AdminURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
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
	guidePsql(t, dbURL, nil, `
CREATE VIEW public.failed_runs_today AS SELECT id, agent_name FROM public.agent_runs WHERE status = 'error' AND created_at > now() - interval '1 day';
CREATE FUNCTION public.usage_this_month() RETURNS numeric LANGUAGE sql STABLE AS $$ SELECT sum(cost_usd) FROM public.usage_metrics WHERE created_at > date_trunc('month', now()) $$;
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER touch_agent_runs BEFORE UPDATE ON public.agent_runs FOR EACH ROW EXECUTE FUNCTION public.touch();
CREATE PUBLICATION supabase_realtime FOR TABLE public.agent_runs, public.agent_steps;
CREATE SCHEMA cron;
CREATE TABLE cron.job (jobid bigserial PRIMARY KEY, schedule text NOT NULL, command text NOT NULL);
INSERT INTO cron.job (schedule, command) VALUES ('0 * * * *', 'DELETE FROM public.system_health WHERE checked_at < now() - interval ''30 days''');
`)

	bin := t.TempDir()
	require.NoError(t, os.Symlink(binary, filepath.Join(bin, "agentstore")))
	pgBin := os.Getenv("AGENTSTORE_TEST_PG_BIN")
	require.NotEmpty(t, pgBin, "run through scripts/services.sh")
	work := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(work, "src"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(work, "src", "report.ts"),
		[]byte("const { data } = await supabase.from('usage_metrics').select('*');\n"), 0o644))
	env := append(os.Environ(), "PATH="+bin+":"+pgBin+":"+os.Getenv("PATH"), "DATABASE_URL="+dbURL,
		"SUPABASE_JWT_SECRET="+e2eSecret, "DATA_DIR="+t.TempDir())
	sh := func(line int, script string) string {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "guide line %d:\n%s\n%s", line, script, out)
		return string(out)
	}
	psqlOut := func(line int, script string) string {
		cmd := exec.Command(filepath.Join(pgBin, "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", dbURL)
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "guide line %d:\n%s\n%s", line, script, out)
		return string(out)
	}

	// Phase 0, as the migration guide does it: schema and bulk import.
	sh(0, "agentstore migrate apply && agentstore legacy import")
	legacyBefore := legacyChecksum(t, db)

	var serve *markdown.Block
	var verifies, findReaders int
	for _, blk := range markdown.Blocks(doc) {
		switch blk.Lang {
		case "sh":
			if strings.Contains(blk.Text, "agentstore serve") {
				serve = &blk
				continue
			}
			require.NotContains(t, blk.Text, "<", "guide line %d: a command to run as written has a placeholder", blk.Line)
			out := sh(blk.Line, blk.Text)
			if strings.Contains(blk.Text, "legacy verify") {
				assert.Contains(t, out, "verify: OK", "guide line %d", blk.Line)
				verifies++
			}
			if strings.Contains(blk.Text, "grep -rnE") {
				assert.Contains(t, out, "src/report.ts", "guide line %d: the search finds a supabase-js reader", blk.Line)
				require.NoError(t, os.Remove(filepath.Join(work, "src", "report.ts"))) // the team rewrites it
				assert.Contains(t, sh(blk.Line, blk.Text), "no supabase-js reader left")
			}
			if strings.Contains(blk.Text, "pg_dump") {
				st, err := os.Stat(filepath.Join(work, "legacy-tables.dump"))
				require.NoError(t, err, "guide line %d writes the dump", blk.Line)
				assert.NotZero(t, st.Size())
			}
		case "sql":
			require.NotContains(t, blk.Text, "<", "guide line %d: SQL to run as written has a placeholder", blk.Line)
			out := psqlOut(blk.Line, blk.Text)
			switch {
			case strings.Contains(blk.Text, "-- decommission: find readers"):
				findReaders++
				for _, want := range []string{"view | public.failed_runs_today", "function | public.usage_this_month",
					"trigger | agent_runs: touch_agent_runs", "publication | supabase_realtime: public.agent_runs",
					"publication | supabase_realtime: public.agent_steps", "cron job | 1: DELETE FROM public.system_health"} {
					assert.Contains(t, strings.Join(strings.Fields(out), " "), want, "guide line %d finds every reader", blk.Line)
				}
				// The team rewrites or drops what it found.
				guidePsql(t, dbURL, nil, `DROP VIEW public.failed_runs_today; DROP FUNCTION public.usage_this_month(); DELETE FROM cron.job;`)
			case strings.Contains(blk.Text, "REVOKE INSERT, UPDATE, DELETE, TRUNCATE"):
				var canWrite bool
				require.NoError(t, db.QueryRow(`SELECT has_table_privilege('authenticated', 'public.agent_runs', 'INSERT')`).Scan(&canWrite))
				assert.False(t, canWrite, "guide line %d freezes the legacy writes", blk.Line)
			case strings.Contains(blk.Text, "REVOKE ALL"):
				var canRead bool
				require.NoError(t, db.QueryRow(`SELECT has_table_privilege('authenticated', 'public.agent_runs', 'SELECT')`).Scan(&canRead))
				assert.False(t, canRead, "guide line %d revokes the reads", blk.Line)
				assert.Zero(t, guideCount(t, db, `SELECT count(*) FROM pg_publication_tables WHERE pubname = 'supabase_realtime'`),
					"guide line %d takes the tables out of the publication", blk.Line)
			case strings.Contains(blk.Text, "RENAME TO"):
				assert.Zero(t, guideCount(t, db, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY($1)`, legacy.Tables),
					"guide line %d renames the six tables", blk.Line)
				assert.Equal(t, int64(6), guideCount(t, db, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE '%\_retired'`))
			case strings.HasPrefix(strings.TrimSpace(blk.Text), "DROP TABLE"):
				assert.Zero(t, guideCount(t, db, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE '%\_retired'`),
					"guide line %d drops the retired tables", blk.Line)
			}
		}
		if verifies == 1 && legacyBefore != "" {
			// Passes before the switch read the legacy tables and never write them.
			assert.Equal(t, legacyBefore, legacyChecksum(t, db), "the legacy tables stay untouched")
			legacyBefore = ""
		}
	}
	assert.GreaterOrEqual(t, verifies, 2, "the guide verifies in the shadow phase and at the switch")
	assert.Equal(t, 1, findReaders, "the guide finds the remaining readers")
	assert.NotZero(t, guideCount(t, db, `SELECT count(*) FROM agentstore.agent_runs`), "the agentstore data outlives the legacy tables")

	require.NotNil(t, serve, "the guide shows the production serve settings")
	cutoverServe(t, serve, dbURL)
}

// cutoverServe starts the service with the guide's production settings,
// the placeholders pointing at test doubles of the outside world: a JWKS
// endpoint with an ES256 key, the test's Redis.
func cutoverServe(t *testing.T, blk *markdown.Block, dbURL string) {
	cmds := markdown.ShellCommands(blk.Text)
	require.Len(t, cmds, 1, "guide line %d: one serve command", blk.Line)
	words := cmds[0]
	require.Equal(t, []string{"agentstore", "serve"}, words[len(words)-2:])
	settings := map[string]string{}
	for _, w := range words[:len(words)-2] {
		k, v, ok := strings.Cut(w, "=")
		require.True(t, ok, "guide line %d: %q", blk.Line, w)
		settings[k] = v
	}
	for _, k := range []string{"APP_ENV", "ADDR", "TRUSTED_PROXIES", "WS_ALLOWED_ORIGINS", "CORS_ALLOWED_ORIGINS", "SUPABASE_JWKS_URL", "REDIS_URL"} {
		require.Contains(t, settings, k, "guide line %d: the production settings name %s", blk.Line, k)
	}
	assert.Equal(t, "production", settings["APP_ENV"])
	assert.True(t, strings.HasPrefix(settings["ADDR"], "0.0.0.0:"), "behind a load balancer the service listens on every interface")

	// The project's JWKS: one ES256 key.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	key, err := jwk.FromRaw(priv)
	require.NoError(t, err)
	require.NoError(t, key.Set(jwk.KeyIDKey, "guide-key"))
	require.NoError(t, key.Set(jwk.AlgorithmKey, jwa.ES256))
	pub, err := jwk.PublicKeyOf(key)
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/auth/v1/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(jwks.Close)

	project := "https://<project-ref>.supabase.co"
	tenant := uuid.NewString()
	replace := strings.NewReplacer(project, jwks.URL, "<jwt-secret>", e2eSecret, "<tenant-uuid>", tenant)
	var env []string
	for k, v := range settings {
		switch k {
		case "ADDR":
			v = "127.0.0.1:0"
		case "REDIS_URL":
			v = os.Getenv("AGENTSTORE_TEST_REDIS_URL")
		default:
			v = replace.Replace(v)
		}
		require.NotContains(t, v, "<", "setting %s has a placeholder this test does not know", k)
		env = append(env, k+"="+v)
	}
	issuer := jwks.URL + "/auth/v1"
	require.Equal(t, issuer, replace.Replace(settings["JWT_ISSUER"]))
	s := start(t, append(env, "DATABASE_URL="+dbURL)...)
	code, body := s.get(t, "/readyz")
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"status":"ready","checks":{"db":"up","redis":"up"}}`, body)

	// A user session signed by the project's asymmetric key.
	tok, err := jwt.NewBuilder().Audience([]string{"authenticated"}).Issuer(issuer).Subject(uuid.NewString()).
		Expiration(time.Now().Add(10*time.Minute)).Claim("role", "authenticated").
		Claim("app_metadata", map[string]any{"tenant_id": tenant}).Build()
	require.NoError(t, err)
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key))
	require.NoError(t, err)
	code, body = s.call(t, "POST", "/v1/runs", string(signed), `{"agentName":"cutover"}`)
	require.Equal(t, http.StatusCreated, code, body)
	// An HS256 service token still works beside it, with the issuer.
	svc, err := auth.Mint([]byte(e2eSecret), auth.MintOptions{Tenant: uuid.MustParse(tenant), Role: "service_role", Issuer: issuer, TTL: time.Minute})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(context.Background(), "GET", s.base+"/v1/runs", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+svc)
	req.Header.Set("X-Tenant-ID", tenant)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// Browsers connect from the listed origins only.
	origins := strings.Split(settings["WS_ALLOWED_ORIGINS"], ",")
	wsURL := strings.Replace(s.base, "http://", "ws://", 1) + "/v1/ws?access_token=" + string(signed)
	for origin, want := range map[string]int{origins[0]: http.StatusSwitchingProtocols, "https://evil.example": http.StatusForbidden} {
		c, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {origin}})
		require.NotNil(t, resp, "origin %s: %v", origin, err)
		assert.Equal(t, want, resp.StatusCode, "origin %s", origin)
		if c != nil {
			c.Close()
		}
	}
	assert.True(t, slices.Contains(origins, "https://app.example.com"))
}
