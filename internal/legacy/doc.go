// Package legacy moves the six internal tables of the earlier supabase-js
// platform (schema public: agent_runs, agent_steps, tool_calls, audit_logs,
// usage_metrics, system_health) into the service's schema (DB_SCHEMA,
// default agentstore), keeping every id and tenant_id, and verifies the
// result. The legacy tables are only ever read: they stay the rollback path.
//
// # How it runs
//
// Import walks the legacy tables in dependency order (runs, steps, tool
// calls, audit, usage, health). Each table's id space is cut into
// Options.Workers slices (by the first 32 bits of the UUID), walked
// concurrently, each by keyset on the primary key in batches of
// Options.BatchSize rows. One batch is one set-based SQL statement (INSERT …
// SELECT with data-modifying CTEs) that maps the rows, inserts the new ones,
// updates changed ones, and writes the rows that cannot be placed to
// <schema>.legacy_quarantine; the batch and its slice's checkpoint in
// <schema>.legacy_import_state commit in one transaction. Killed at any
// point (kill -9 included), a re-run continues after the last committed
// batch of every slice; batches check their checkpoint under a row lock, so
// a second importer running at the same time fails (ErrConcurrentImport)
// instead of interleaving.
//
// Speed: the statement does index lookups only (the batch transaction turns
// off sequential scans, hash and merge joins and JIT: the target tables
// grow during a phase, so statistics are always stale), the INSERT has no
// ON CONFLICT clause (a batch that hits a unique violation is rolled back
// and retried with ON CONFLICT DO NOTHING, quarantining the rows it
// skipped as "conflict"), and the first pass skips the quarantine clean-up
// that only later passes need. The foreign keys of the new tables stay
// enforced unless Options.SkipFKTriggers: their triggers are about a third
// of the cost of steps and tool calls.
//
// A pass is one such walk over all six tables. A finished pass is left
// alone by a plain re-run (idempotent: nothing changes). Options.Incremental
// starts a new pass, the cut-over catch-up: it walks all rows again and
//
//   - inserts legacy rows that are new since the last pass;
//   - updates imported rows whose mutable columns differ from the mapped
//     legacy values (UPDATE … WHERE (old) IS DISTINCT FROM (new): unchanged
//     rows are not written). Immutable columns (id, tenant_id, run_id, seq,
//     step_id, created_at, recorded_at) keep their first imported value, and
//     audit_logs and system_health, append-only, are never updated;
//   - re-examines quarantined rows: one that can now be placed (its run was
//     imported, its status got a mapping, ...) is imported and released from
//     the quarantine;
//   - does not propagate deletions from the legacy tables.
//
// Only the legacy created_at/updated_at of runs would allow a time filter,
// and steps or tool calls are updated in place without one, so the pass
// compares content instead of timestamps. The cut-over: run the import while
// the old platform still writes; stop the old writers; run
// `legacy import --incremental` (it reads everything but writes only what
// changed); run `legacy verify`; switch traffic. An incremental pass after
// the service itself has changed imported rows would overwrite their
// mutable columns with the legacy values.
//
// Options.DryRun runs the same pass inside one transaction that is rolled
// back (slices one after the other, each batch under a savepoint), so later
// tables see the earlier tables' would-be rows and the report is exact;
// nothing is written, not even the state or quarantine tables.
//
// The import writes every tenant's rows, so it must run as a role that
// bypasses row-level security (Supabase's postgres; with DB_TENANT_RLS the
// tables FORCE it on their owner): Import refuses to start otherwise.
//
// # Mapping
//
//	legacy                                 new
//	agent_runs.status (lower-cased, trimmed):
//	  pending, queued, created, waiting    queued
//	  running, in_progress, started        running
//	  completed, Completed, done, success, succeeded
//	    succeeded, ok, finished, complete
//	  error, failed, FAILED, failure,      failed (timeout without error text
//	    errored, timeout, timed_out          gets error "legacy status: timeout")
//	  cancelled, canceled, aborted         cancelled
//	  anything else                        quarantine unknown_status
//	agent_runs.tenant_id NULL              auth.users.raw_app_meta_data->>'tenant_id'
//	                                       of user_id; none: quarantine no_tenant
//	agent_runs.finished_at                 ended_at (kept even when before
//	                                       started_at; counted as a note)
//	agent_runs.updated_at NULL             created_at
//	agent_steps.kind                       type, lower-cased and trimmed ('LLM' → 'llm')
//	agent_steps.step_index                 seq (see duplicates below)
//	agent_steps.content                    output; when it is an object with an
//	                                       "input" or "output" key, those keys go
//	                                       to input and output; content->>'error'
//	                                       to error
//	agent_steps.status                     as runs (ok → succeeded, error → failed);
//	                                       NULL → succeeded (the column default)
//	agent_steps/tool_calls.tenant_id NULL  the run's (imported) tenant
//	tool_calls.args                        arguments
//	tool_calls.success                     true → succeeded, false → failed, NULL →
//	                                       failed when error is set, else succeeded
//	tool_calls.duration_ms < 0             NULL (counted as a note)
//	audit_logs.user_id                     actor_id (text), actor_role 'legacy'
//	audit_logs.entity / entity_id          resource_type ('unknown' when NULL) /
//	                                       resource_id (verbatim text, '' when NULL)
//	audit_logs.details                     changes; ip as text without /32
//	audit_logs.tenant_id NULL              the user's app_metadata tenant; none
//	                                       (system rows): quarantine no_tenant
//	usage_metrics.prompt/completion_tokens input_tokens/output_tokens (NULL → 0)
//	usage_metrics.total_tokens NULL        input + output
//	usage_metrics.cost_usd NULL            0 (negative tokens or cost → 0)
//	usage_metrics.created_at               recorded_at
//	usage_metrics.tenant_id NULL           the run's tenant, else the run's user's
//	                                       app_metadata tenant; none: quarantine
//	usage_metrics.run_id dangling          imported with run_id NULL (also when
//	                                       the run is quarantined or of another
//	                                       tenant): billing rows survive
//	system_health.service                  component
//	system_health.status                   up, UP, ok, healthy → up; degraded,
//	                                       warn, warning → degraded; down, error,
//	                                       unhealthy → down; else quarantine
//	system_health.latency_ms < 0           NULL
//
// # Quarantine
//
// A row that cannot be placed is written, whole (as jsonb), to
// <schema>.legacy_quarantine (source_table, source_id, code, reason, row,
// pass, quarantined_at; unique (source_table, source_id)) with one of the
// Reason* codes: no_tenant, unknown_status, invalid_value, orphan (its run
// does not exist), parent_quarantined (its run was quarantined),
// tenant_mismatch (a step's or tool call's tenant differs from its run's),
// invalid_seq (step_index <= 0), duplicate_seq, dangling_step (a tool call's
// step does not exist), step_quarantined, step_other_run, conflict (the
// target already holds the unique key). No row is dropped silently: Verify
// proves source = imported + quarantined for every table.
//
// Duplicate step_index within a run (client retries): the first step by
// (created_at, id) keeps the seq, the others are quarantined as
// duplicate_seq (no renumbering: a retry is a copy, and renumbering would
// shift the steps after it). A tool call whose step is quarantined
// (step_quarantined) or does not exist (dangling_step) is quarantined too,
// rather than imported with its step link cut.
//
// Adjustments that do not prevent the import (a tenant taken from the run
// or the user, a negative duration dropped, a total computed, ...) are
// counted per pass in Report.Tables[].Notes.
package legacy
