package legacy

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// checkReplicaRole fails when the role may not set session_replication_role.
func (im *importer) checkReplicaRole(ctx context.Context) error {
	tx, err := im.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // only a check
	if _, err := tx.ExecContext(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return fmt.Errorf("legacy: skipping the foreign-key triggers needs permission to set session_replication_role: %w", err)
	}
	return nil
}

// advisoryKey serializes the importers' set-up of a schema.
const advisoryKey = 7262031

// setup checks that the legacy tables, the target tables and auth.users
// exist and that the role may write every tenant's rows, then creates the
// importer's own tables (quarantine, state, step duplicates) when missing.
func (im *importer) setup(ctx context.Context, q querier) error {
	if _, err := q.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryKey); err != nil {
		return err
	}
	var missing []string
	check := func(schema, table string) error {
		var ok bool
		if err := q.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+"."+table).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			missing = append(missing, schema+"."+table)
		}
		return nil
	}
	for _, t := range Tables {
		if err := check(im.src, t); err != nil {
			return err
		}
		if err := check(im.dst, t); err != nil {
			return err
		}
	}
	if err := check("auth", "users"); err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("legacy: missing tables %s (the target needs `migrate apply` first)", strings.Join(missing, ", "))
	}
	// The import writes every tenant's rows: row-level security on the
	// target tables (DB_TENANT_RLS, FORCEd on the owner too) would refuse
	// them unless the role bypasses it, as Supabase's postgres does.
	var rls, bypass bool
	if err := q.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		        WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relrowsecurity),
		(SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)`,
		im.opts.Schema, Tables).Scan(&rls, &bypass); err != nil {
		return err
	}
	if rls && !bypass {
		return errors.New("legacy: the target tables have row-level security and the current role does not bypass it; run the import as a role with BYPASSRLS (Supabase's postgres)")
	}
	_, err := q.ExecContext(ctx, strings.ReplaceAll(`
CREATE TABLE IF NOT EXISTS {dst}.legacy_quarantine (
  source_table   text NOT NULL,
  source_id      uuid NOT NULL,
  code           text NOT NULL,
  reason         text NOT NULL,
  "row"          jsonb NOT NULL,
  pass           integer NOT NULL,
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_table, source_id)
);
CREATE TABLE IF NOT EXISTS {dst}.legacy_import_state (
  source_table text NOT NULL,
  part         integer NOT NULL,
  parts        integer NOT NULL,
  pass         integer NOT NULL,
  last_id      uuid,
  done         boolean NOT NULL DEFAULT false,
  scanned      bigint NOT NULL DEFAULT 0,
  inserted     bigint NOT NULL DEFAULT 0,
  updated      bigint NOT NULL DEFAULT 0,
  unchanged    bigint NOT NULL DEFAULT 0,
  quarantined  bigint NOT NULL DEFAULT 0,
  released     bigint NOT NULL DEFAULT 0,
  notes        jsonb NOT NULL DEFAULT '{}',
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_table, part)
);
CREATE UNLOGGED TABLE IF NOT EXISTS {dst}.legacy_import_step_dups (
  id       uuid PRIMARY KEY,
  first_id uuid NOT NULL
)`, "{dst}", im.dst))
	return err
}
