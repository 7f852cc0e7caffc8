package dbmigrate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/schema"
)

// The revisions table mirrors the one the Atlas CLI manages through its
// internal Ent schema (ariga/atlas cmd/atlas/internal/migrate/ent/schema/revision.go,
// generated as cmd/atlas/internal/migrate/ent/migrate/schema.go), so that
// `atlas migrate status --url "postgres://...?search_path=<schema>"` reads it:
// when the URL is bound to a schema and --revisions-schema is not given, the
// CLI looks for the table inside that schema.
//
// Column types follow Ent's PostgreSQL mapping of those fields (string ->
// character varying, int/uint/int64 -> bigint, time -> timestamptz,
// text -> text, JSON -> jsonb). If the layout drifted, the CLI would "fix" the
// table on its next run (it migrates the table with drop-column enabled).
const (
	revisionTable = "atlas_schema_revisions"

	// cloudIdentifierVersion is the version key of the single non-revision row
	// the Atlas CLI may store in the table: it holds a UUID (in description)
	// identifying the revisions table for Atlas Cloud reporting. The CLI writes
	// it lazily and idempotently, so we never write it, and like the CLI we
	// hide it from reads and refuse to write or delete it.
	cloudIdentifierVersion = ".atlas_cloud_identifier"

	revisionColumns = `"version", "description", "type", "applied", "total", "executed_at", ` +
		`"execution_time", "error", "error_stmt", "hash", "partial_hashes", "operator_version"`
)

// createRevisionTableSQL returns the idempotent DDL for the revisions table in
// the given (unquoted) schema.
func createRevisionTableSQL(schemaName string) string {
	return `CREATE TABLE IF NOT EXISTS ` + qualifiedRevisionTable(schemaName) + ` (
	"version" character varying NOT NULL,
	"description" character varying NOT NULL,
	"type" bigint NOT NULL DEFAULT 2,
	"applied" bigint NOT NULL DEFAULT 0,
	"total" bigint NOT NULL DEFAULT 0,
	"executed_at" timestamptz NOT NULL,
	"execution_time" bigint NOT NULL,
	"error" text NULL,
	"error_stmt" text NULL,
	"hash" character varying NOT NULL,
	"partial_hashes" jsonb NULL,
	"operator_version" character varying NOT NULL,
	PRIMARY KEY ("version")
)`
}

// qualifiedRevisionTable returns the quoted, schema-qualified table name.
func qualifiedRevisionTable(schemaName string) string {
	return quoteIdent(schemaName) + "." + quoteIdent(revisionTable)
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// revisions implements migrate.RevisionReadWriter on top of the Atlas CLI
// compatible revisions table inside schemaName. All statements are schema
// qualified, so they do not depend on the session search_path.
type revisions struct {
	q      schema.ExecQuerier
	schema string
}

var _ migrate.RevisionReadWriter = (*revisions)(nil)

// ensureTable creates the revisions table if it does not exist yet.
func (r *revisions) ensureTable(ctx context.Context) error {
	if _, err := r.q.ExecContext(ctx, createRevisionTableSQL(r.schema)); err != nil {
		return fmt.Errorf("create revisions table %s: %w", qualifiedRevisionTable(r.schema), err)
	}
	return nil
}

// Ident implements migrate.RevisionReadWriter.
func (r *revisions) Ident() *migrate.TableIdent {
	return &migrate.TableIdent{Name: revisionTable, Schema: r.schema}
}

// tableExists reports whether the revisions table exists. Reads on a database
// that was never migrated (e.g. from Status) must not fail.
func (r *revisions) tableExists(ctx context.Context) (bool, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, qualifiedRevisionTable(r.schema))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var ok bool
	if rows.Next() {
		if err := rows.Scan(&ok); err != nil {
			return false, err
		}
	}
	return ok, rows.Err()
}

// ReadRevisions implements migrate.RevisionReadWriter. Revisions are ordered
// by version, the Atlas CLI's cloud identifier row is skipped.
func (r *revisions) ReadRevisions(ctx context.Context) ([]*migrate.Revision, error) {
	if ok, err := r.tableExists(ctx); err != nil || !ok {
		return nil, err
	}
	return r.query(ctx, `SELECT `+revisionColumns+` FROM `+qualifiedRevisionTable(r.schema)+
		` WHERE "version" <> $1 ORDER BY "version"`, cloudIdentifierVersion)
}

// ReadRevision implements migrate.RevisionReadWriter.
func (r *revisions) ReadRevision(ctx context.Context, version string) (*migrate.Revision, error) {
	if version == cloudIdentifierVersion {
		return nil, errors.New("cannot read revision-table identifier as revision")
	}
	if ok, err := r.tableExists(ctx); err != nil {
		return nil, err
	} else if !ok {
		return nil, migrate.ErrRevisionNotExist
	}
	revs, err := r.query(ctx, `SELECT `+revisionColumns+` FROM `+qualifiedRevisionTable(r.schema)+
		` WHERE "version" = $1`, version)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, migrate.ErrRevisionNotExist
	}
	return revs[0], nil
}

// WriteRevision implements migrate.RevisionReadWriter. Like the Atlas CLI
// (Ent's UpdateNewValues upsert), an existing row keeps its immutable
// description and executed_at columns.
func (r *revisions) WriteRevision(ctx context.Context, rev *migrate.Revision) error {
	if rev.Version == cloudIdentifierVersion {
		return errors.New("writing the revision-table identifier is not allowed")
	}
	// The CLI stores the JSON encoding of the []string, i.e. JSON null when empty.
	partial, err := json.Marshal(rev.PartialHashes)
	if err != nil {
		return err
	}
	_, err = r.q.ExecContext(ctx, `INSERT INTO `+qualifiedRevisionTable(r.schema)+` (`+revisionColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT ("version") DO UPDATE SET
	"type" = EXCLUDED."type",
	"applied" = EXCLUDED."applied",
	"total" = EXCLUDED."total",
	"execution_time" = EXCLUDED."execution_time",
	"error" = EXCLUDED."error",
	"error_stmt" = EXCLUDED."error_stmt",
	"hash" = EXCLUDED."hash",
	"partial_hashes" = EXCLUDED."partial_hashes",
	"operator_version" = EXCLUDED."operator_version"`,
		rev.Version, rev.Description, int64(rev.Type), rev.Applied, rev.Total,
		rev.ExecutedAt, int64(rev.ExecutionTime), rev.Error, rev.ErrorStmt,
		rev.Hash, string(partial), rev.OperatorVersion,
	)
	return err
}

// DeleteRevision implements migrate.RevisionReadWriter.
func (r *revisions) DeleteRevision(ctx context.Context, version string) error {
	if version == cloudIdentifierVersion {
		return errors.New("deleting the revision-table identifier is not allowed")
	}
	_, err := r.q.ExecContext(ctx, `DELETE FROM `+qualifiedRevisionTable(r.schema)+` WHERE "version" = $1`, version)
	return err
}

func (r *revisions) query(ctx context.Context, query string, args ...any) ([]*migrate.Revision, error) {
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var revs []*migrate.Revision
	for rows.Next() {
		var (
			rev                  migrate.Revision
			typ, execTime        int64
			errText, errStmt     sql.NullString
			partial              []byte
			executedAt           time.Time
			applied, total       int64
			description, hash    string
			operatorVersion, ver string
		)
		if err := rows.Scan(&ver, &description, &typ, &applied, &total, &executedAt,
			&execTime, &errText, &errStmt, &hash, &partial, &operatorVersion); err != nil {
			return nil, err
		}
		rev.Version, rev.Description, rev.Type = ver, description, migrate.RevisionType(typ)
		rev.Applied, rev.Total = int(applied), int(total)
		rev.ExecutedAt, rev.ExecutionTime = executedAt, time.Duration(execTime)
		rev.Error, rev.ErrorStmt = errText.String, errStmt.String
		rev.Hash, rev.OperatorVersion = hash, operatorVersion
		if len(partial) > 0 {
			if err := json.Unmarshal(partial, &rev.PartialHashes); err != nil {
				return nil, fmt.Errorf("decode partial_hashes of revision %q: %w", ver, err)
			}
		}
		revs = append(revs, &rev)
	}
	return revs, rows.Err()
}
