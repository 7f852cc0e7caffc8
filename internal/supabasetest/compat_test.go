package supabasetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbmigrate"
	"github.com/agentstore/agentstore/migrations"
)

// supabaseSchemas are the schemas the migrations must never change.
var supabaseSchemas = []string{"auth", "storage", "extensions", "realtime", "public", "graphql", "graphql_public"}

// catalogSQL lists, one text line per object, the catalog entries of the
// schemas in $1 (namespaces, relations, columns, functions, policies,
// triggers, with owners and ACLs) and, when $2, the database-wide ones
// (roles and memberships, default privileges, extensions, event triggers,
// publications, the database's ACL).
const catalogSQL = `
WITH s AS (SELECT oid, nspname FROM pg_namespace WHERE nspname = ANY($1))
SELECT 'namespace ' || nspname || ' owner=' || pg_get_userbyid(nspowner) || ' acl=' || coalesce(nspacl::text, '-')
  FROM pg_namespace WHERE oid IN (SELECT oid FROM s)
UNION ALL
SELECT 'class ' || s.nspname || '.' || c.relname || ' kind=' || c.relkind::text || ' owner=' || pg_get_userbyid(c.relowner)
       || ' acl=' || coalesce(c.relacl::text, '-') || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity
       || ' def=' || CASE WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) ELSE '' END
  FROM pg_class c JOIN s ON s.oid = c.relnamespace
UNION ALL
SELECT 'column ' || s.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' notnull=' || a.attnotnull || ' acl=' || coalesce(a.attacl::text, '-')
       || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN s ON s.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || s.nspname || '.' || co.conname || ' ' || pg_get_constraintdef(co.oid)
  FROM pg_constraint co JOIN s ON s.oid = co.connamespace
UNION ALL
SELECT 'function ' || s.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
       || ' owner=' || pg_get_userbyid(p.proowner) || ' acl=' || coalesce(p.proacl::text, '-')
       || ' src=' || md5(coalesce(p.prosrc, '')) || ' config=' || coalesce(p.proconfig::text, '-') || ' secdef=' || p.prosecdef
  FROM pg_proc p JOIN s ON s.oid = p.pronamespace
UNION ALL
SELECT 'policy ' || s.nspname || '.' || c.relname || '.' || pol.polname || ' cmd=' || pol.polcmd::text
       || ' permissive=' || pol.polpermissive || ' roles=' || pol.polroles::regrole[]::text
       || ' using=' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), '-')
       || ' check=' || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '-')
  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN s ON s.oid = c.relnamespace
UNION ALL
SELECT 'trigger ' || s.nspname || '.' || c.relname || '.' || tg.tgname || ' ' || tg.tgenabled::text
  FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN s ON s.oid = c.relnamespace
UNION ALL
SELECT 'default_acl ' || pg_get_userbyid(d.defaclrole) || ' in=' || coalesce(n.nspname, '*') || ' type=' || d.defaclobjtype::text
       || ' acl=' || d.defaclacl::text
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace WHERE $2
UNION ALL
SELECT 'role ' || rolname || ' ' || concat_ws(',', rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
       rolreplication, rolbypassrls, coalesce(rolconfig::text, '-'))
  FROM pg_roles WHERE $2
UNION ALL
SELECT 'member ' || pg_get_userbyid(roleid) || '>' || pg_get_userbyid(member) || ' admin=' || admin_option
  FROM pg_auth_members WHERE $2
UNION ALL
SELECT 'extension ' || extname || ' ' || extversion || ' in=' || extnamespace::regnamespace::text || ' owner=' || pg_get_userbyid(extowner)
  FROM pg_extension WHERE $2
UNION ALL
SELECT 'event_trigger ' || evtname || ' ' || evtevent || ' ' || evtfoid::regproc::text || ' ' || evtenabled::text
  FROM pg_event_trigger WHERE $2
UNION ALL
SELECT 'publication ' || pubname || ' all=' || puballtables FROM pg_publication WHERE $2
UNION ALL
SELECT 'publication_table ' || pubname || ' ' || schemaname || '.' || tablename FROM pg_publication_tables WHERE $2
UNION ALL
SELECT 'database ' || datname || ' owner=' || pg_get_userbyid(datdba) || ' acl=' || coalesce(datacl::text, '-')
  FROM pg_database WHERE datname = current_database() AND $2
ORDER BY 1`

// catalog snapshots the catalog of schemas (and the database-wide entries
// when global) through db, a superuser connection.
func catalog(t *testing.T, db *sql.DB, schemas []string, global bool) []string {
	t.Helper()
	return lines(t, db, catalogSQL, schemas, global)
}

// TestMigrationsOnSupabase applies the migrations, as the non-superuser
// role postgres, to databases holding the Supabase bootstrap (in both
// default-privilege modes) and the legacy public tables, on PostgreSQL 15
// and 17. A second apply does nothing, nothing outside the service's
// schema changes, and anon and authenticated can reach nothing in it.
func TestMigrationsOnSupabase(t *testing.T) {
	for _, major := range []int{15, 17} {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			c := cluster(t, major)
			for _, m := range Modes {
				t.Run(m.Name, func(t *testing.T) {
					t.Parallel()
					testMigrations(t, c, m)
				})
			}
		})
	}
}

func testMigrations(t *testing.T, c *Cluster, m Mode) {
	ctx := context.Background()
	name := c.NewDatabase(t, m, true)
	admin := c.Open(t, "supabase_admin", name)
	pg := c.Open(t, "postgres", name)

	var version string
	require.NoError(t, admin.QueryRow("SHOW server_version_num").Scan(&version))
	require.Equal(t, fmt.Sprint(c.Major), version[:2], "server version")
	var super, bypass bool
	require.NoError(t, pg.QueryRow("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&super, &bypass))
	require.False(t, super, "the migrations must run as a non-superuser")

	before := catalog(t, admin, supabaseSchemas, true)
	require.NotEmpty(t, before)

	require.Equal(t, migrationFiles(t), migrate(t, pg), "first apply runs every file")
	ours := catalog(t, admin, []string{schemaName}, false)
	revs := lines(t, admin, "SELECT version || ' ' || hash || ' ' || applied || '/' || total FROM "+qualified("atlas_schema_revisions")+" ORDER BY 1")
	require.Len(t, revs, migrationFiles(t))

	require.Equal(t, 0, migrate(t, pg), "second apply does nothing")
	assertSameLines(t, ours, catalog(t, admin, []string{schemaName}, false), "second apply changed the schema")
	assert.Equal(t, revs, lines(t, admin, "SELECT version || ' ' || hash || ' ' || applied || '/' || total FROM "+qualified("atlas_schema_revisions")+" ORDER BY 1"))
	dir, err := dbmigrate.Dir(migrations.FS)
	require.NoError(t, err)
	rep, err := dbmigrate.Status(ctx, pg, schemaName, dir)
	require.NoError(t, err)
	assert.Empty(t, rep.Pending)

	assertSameLines(t, before, catalog(t, admin, supabaseSchemas, true), "the migrations changed Supabase's schemas or global objects")

	// Every object of the schema belongs to postgres.
	owners := lines(t, admin, `SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1`, schemaName)
	assert.Equal(t, []string{"postgres"}, owners)

	assertNoAPIAccess(t, pg)
}

// apiRoles are Supabase's PostgREST roles, which must reach nothing of the
// service's schema.
var apiRoles = []string{"anon", "authenticated"}

// assertNoAPIAccess checks through db (role postgres, a member of the API
// roles and owner of the schema) that anon and authenticated hold no
// privilege on the schema's tables (the revisions table included) and
// sequences, and that reading any of them fails with 42501 — also when
// somebody granted USAGE on the schema.
func assertNoAPIAccess(t *testing.T, db *sql.DB) {
	ctx := context.Background()
	rels := lines(t, db, `SELECT c.relkind::text || ' ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') ORDER BY 1`, schemaName)
	var tables []string
	for _, r := range rels {
		if r[0] != 'S' {
			tables = append(tables, r[2:])
		}
	}
	for _, want := range []string{"agent_runs", "agent_steps", "tool_calls", "audit_logs", "usage_metrics",
		"system_health", "idempotency_keys", "atlas_schema_revisions"} {
		require.Contains(t, tables, want)
	}
	for _, role := range apiRoles {
		var usage bool
		require.NoError(t, db.QueryRow("SELECT has_schema_privilege($1, $2, 'USAGE, CREATE')", role, schemaName).Scan(&usage))
		assert.False(t, usage, "%s has a privilege on schema %s", role, schemaName)
		for _, r := range rels {
			kind, rel := r[0], r[2:]
			var has bool
			if kind == 'S' {
				require.NoError(t, db.QueryRow("SELECT has_sequence_privilege($1, $2, 'USAGE, SELECT, UPDATE')", role, qualified(rel)).Scan(&has))
			} else {
				require.NoError(t, db.QueryRow("SELECT has_table_privilege($1, $2, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
					role, qualified(rel)).Scan(&has))
			}
			assert.False(t, has, "%s has a privilege on %s", role, rel)

			query := "SELECT 1 FROM " + qualified(rel) + " LIMIT 1"
			if kind == 'S' {
				query = "SELECT nextval('" + qualified(rel) + "')"
			}
			for _, grantUsage := range []bool{false, true} {
				err := asRole(ctx, db, role, grantUsage, query)
				var pgErr *pgconn.PgError
				if assert.True(t, errors.As(err, &pgErr), "%s reading %s (schema usage %v): %v", role, rel, grantUsage, err) {
					assert.Equal(t, "42501", pgErr.Code, "%s reading %s (schema usage %v): %v", role, rel, grantUsage, err)
				}
			}
		}
	}
}

// asRole runs query as role in a transaction that it rolls back, after
// granting role USAGE on the schema when grantUsage.
func asRole(ctx context.Context, db *sql.DB, role string, grantUsage bool, query string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	if grantUsage {
		if _, err := tx.ExecContext(ctx, "GRANT USAGE ON SCHEMA "+quoteIdent(schemaName)+" TO "+quoteIdent(role)); err != nil {
			return fmt.Errorf("grant: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "SET LOCAL ROLE "+quoteIdent(role)); err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// assertSameLines reports the lines that after adds to or removes from before.
func assertSameLines(t *testing.T, before, after []string, msg string) {
	t.Helper()
	in := func(xs []string) map[string]int {
		m := map[string]int{}
		for _, x := range xs {
			m[x]++
		}
		return m
	}
	b, a := in(before), in(after)
	var added, removed []string
	for _, x := range after {
		if b[x] == 0 {
			added = append(added, x)
		}
	}
	for _, x := range before {
		if a[x] == 0 {
			removed = append(removed, x)
		}
	}
	if len(added) > 0 || len(removed) > 0 || len(before) != len(after) {
		t.Errorf("%s:\nadded:\n  %s\nremoved:\n  %s", msg, strings.Join(added, "\n  "), strings.Join(removed, "\n  "))
	}
}
