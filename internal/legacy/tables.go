package legacy

import (
	"fmt"
	"strings"
)

// Tables are the six legacy tables in import order: a table comes after
// the ones its rows refer to.
var Tables = []string{"agent_runs", "agent_steps", "tool_calls", "audit_logs", "usage_metrics", "system_health"}

// Reason codes of quarantined rows (legacy_quarantine.code). The reason
// column says the same in words, with the ids involved.
const (
	// ReasonNoTenant: tenant_id is NULL and neither the run nor the user's
	// app_metadata gives one (runs, audit system rows, usage).
	ReasonNoTenant = "no_tenant"
	// ReasonUnknownStatus: the status is not in RunStatuses/HealthStatuses.
	ReasonUnknownStatus = "unknown_status"
	// ReasonInvalidValue: a required text is empty (agent_name, service).
	ReasonInvalidValue = "invalid_value"
	// ReasonOrphan: the run the row belongs to does not exist.
	ReasonOrphan = "orphan"
	// ReasonParentQuarantined: the run exists but was quarantined itself.
	ReasonParentQuarantined = "parent_quarantined"
	// ReasonTenantMismatch: the row's tenant_id differs from its run's.
	ReasonTenantMismatch = "tenant_mismatch"
	// ReasonInvalidSeq: step_index is zero or negative.
	ReasonInvalidSeq = "invalid_seq"
	// ReasonDuplicateSeq: another step of the run has the same step_index
	// and comes first by (created_at, id); that one keeps the seq.
	ReasonDuplicateSeq = "duplicate_seq"
	// ReasonDanglingStep: the tool call's step_id names no step.
	ReasonDanglingStep = "dangling_step"
	// ReasonStepQuarantined: the tool call's step exists but was quarantined.
	ReasonStepQuarantined = "step_quarantined"
	// ReasonStepOtherRun: the tool call's step belongs to another run.
	ReasonStepOtherRun = "step_other_run"
	// ReasonConflict: the target already holds another row with the same
	// unique key (for steps: (run_id, seq)), e.g. one the service wrote.
	ReasonConflict = "conflict"
)

// note is an adjustment or anomaly counted per pass on imported rows.
type note struct {
	key, label, expr string
}

// tableSpec is how one legacy table is imported.
type tableSpec struct {
	name string
	// m is the SELECT producing, from the batch src, one row per source row
	// with the target columns, present (already imported), qr (NULL or
	// ARRAY[code, reason]), src_row (the legacy row, turned into jsonb only
	// when quarantined) and the note columns.
	m string
	// cols are the target columns, all of them in m.
	cols []string
	// mutable are the columns a later pass updates on rows already imported;
	// empty for append-only tables. status keeps the old value when the new
	// one is unknown.
	mutable []string
	notes   []note
}

// uuidRE matches a textual UUID.
const uuidRE = `'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'`

// userTenantSQL is the tenant in auth.users.raw_app_meta_data of the user
// joined as u, NULL when absent or not a UUID.
const userTenantSQL = `(CASE WHEN (u.raw_app_meta_data ->> 'tenant_id') ~ ` + uuidRE + ` THEN (u.raw_app_meta_data ->> 'tenant_id')::uuid END)`

// noTenantReason explains, for a row whose own and run tenant are unknown,
// why its user (column userCol, joined as u) did not give one.
func noTenantReason(what, userCol string) string {
	return `CASE WHEN ` + userCol + ` IS NULL THEN '` + what + ` and there is no user'
	             WHEN u.id IS NULL THEN '` + what + ` and user ' || ` + userCol + ` || ' does not exist in auth.users'
	             ELSE '` + what + ` and user ' || ` + userCol + ` || ' has no tenant_id in raw_app_meta_data' END`
}

// specs returns the table specs for source schema src, target schema dst
// and the users table.
func specs(src, dst, users string) []tableSpec {
	runStatus := caseSQL("s.status", RunStatuses)
	r := func(s string) string {
		return strings.NewReplacer("{src}", src, "{dst}", dst, "{users}", users).Replace(s)
	}
	return []tableSpec{
		{
			name: "agent_runs",
			m: r(`SELECT s.id, coalesce(s.tenant_id, ` + userTenantSQL + `) AS tenant_id, s.created_at,
	s.agent_name, ` + runStatus + ` AS status, s.input, s.output,
	CASE WHEN s.error IS NULL AND ` + normSQL("s.status") + ` IN ` + inListSQL(lossyRunStatuses) + `
	     THEN 'legacy status: ' || ` + normSQL("s.status") + ` ELSE s.error END AS error,
	s.metadata, s.model, s.user_id, s.started_at, s.finished_at AS ended_at,
	coalesce(s.updated_at, s.created_at) AS updated_at,
	t.id IS NOT NULL AS present,
	CASE WHEN t.id IS NOT NULL THEN NULL
	     WHEN s.tenant_id IS NULL AND ` + userTenantSQL + ` IS NULL
	       THEN ARRAY['no_tenant', ` + noTenantReason("tenant_id is NULL", "s.user_id") + `]
	     WHEN ` + runStatus + ` IS NULL THEN ARRAY['unknown_status', 'status ' || quote_nullable(s.status) || ' has no mapping']
	     WHEN btrim(s.agent_name) = '' THEN ARRAY['invalid_value', 'agent_name is empty']
	END AS qr,
	s AS src_row,
	s.tenant_id IS NULL AS n_tenant_from_user,
	s.finished_at < s.started_at AS n_ended_before_started,
	s.error IS NULL AND ` + normSQL("s.status") + ` IN ` + inListSQL(lossyRunStatuses) + ` AS n_error_from_status
FROM src s
LEFT JOIN LATERAL (SELECT u.id, u.raw_app_meta_data FROM {users} u WHERE s.tenant_id IS NULL AND u.id = s.user_id OFFSET 0) u ON true
LEFT JOIN {dst}.agent_runs t ON t.id = s.id`),
			cols:    []string{"id", "tenant_id", "created_at", "agent_name", "status", "input", "output", "error", "metadata", "model", "user_id", "started_at", "ended_at", "updated_at"},
			mutable: []string{"agent_name", "status", "input", "output", "error", "metadata", "model", "user_id", "started_at", "ended_at", "updated_at"},
			notes: []note{
				{"tenant_from_user", "tenant_id NULL, taken from the user's app_metadata", "n_tenant_from_user"},
				{"ended_before_started", "finished_at before started_at, kept as ended_at", "n_ended_before_started"},
				{"error_from_status", "error NULL on a lossy status (timeout), set to 'legacy status: …'", "n_error_from_status"},
			},
		},
		{
			name: "agent_steps",
			m: r(`SELECT s.id, coalesce(s.tenant_id, r.tenant_id) AS tenant_id, s.created_at, s.run_id,
	s.step_index::bigint AS seq,
	coalesce(nullif(` + normSQL("s.kind") + `, ''), 'unknown') AS type, s.name,
	CASE WHEN s.status IS NULL THEN 'succeeded' ELSE ` + caseSQL("s.status", RunStatuses) + ` END AS status,
	CASE WHEN jsonb_typeof(s.content) = 'object' AND s.content ?| ARRAY['input', 'output'] THEN s.content -> 'input' END AS input,
	CASE WHEN jsonb_typeof(s.content) = 'object' AND s.content ?| ARRAY['input', 'output'] THEN s.content -> 'output' ELSE s.content END AS output,
	CASE WHEN jsonb_typeof(s.content) = 'object' THEN s.content ->> 'error' END AS error,
	s.started_at, s.finished_at AS ended_at,
	t.id IS NOT NULL AS present,
	CASE WHEN t.id IS NOT NULL THEN NULL
	     WHEN r.id IS NULL AND lr.id IS NULL THEN ARRAY['orphan', 'run ' || s.run_id || ' does not exist']
	     WHEN r.id IS NULL THEN ARRAY['parent_quarantined', 'run ' || s.run_id || ' was not imported (quarantined)']
	     WHEN s.tenant_id IS NOT NULL AND s.tenant_id <> r.tenant_id
	       THEN ARRAY['tenant_mismatch', 'tenant_id ' || s.tenant_id || ' differs from tenant ' || r.tenant_id || ' of run ' || s.run_id]
	     WHEN s.step_index <= 0 THEN ARRAY['invalid_seq', 'step_index ' || s.step_index || ' is not positive']
	     WHEN d.id IS NOT NULL
	       THEN ARRAY['duplicate_seq', 'step_index ' || s.step_index || ' repeats step ' || d.first_id || ' of run ' || s.run_id || ', which comes first by (created_at, id) and keeps it']
	     WHEN s.status IS NOT NULL AND ` + caseSQL("s.status", RunStatuses) + ` IS NULL
	       THEN ARRAY['unknown_status', 'status ' || quote_nullable(s.status) || ' has no mapping']
	END AS qr,
	s AS src_row,
	s.tenant_id IS NULL AS n_tenant_from_run,
	s.status IS NULL AS n_status_default,
	s.kind <> ` + normSQL("s.kind") + ` AS n_kind_normalized
FROM src s
LEFT JOIN {dst}.agent_runs r ON r.id = s.run_id
LEFT JOIN LATERAL (SELECT lr.id FROM {src}.agent_runs lr WHERE r.id IS NULL AND lr.id = s.run_id OFFSET 0) lr ON true
LEFT JOIN {dst}.legacy_import_step_dups d ON d.id = s.id
LEFT JOIN {dst}.agent_steps t ON t.id = s.id`),
			cols:    []string{"id", "tenant_id", "created_at", "run_id", "seq", "type", "name", "status", "input", "output", "error", "started_at", "ended_at"},
			mutable: []string{"type", "name", "status", "input", "output", "error", "started_at", "ended_at"},
			notes: []note{
				{"tenant_from_run", "tenant_id NULL, taken from the run", "n_tenant_from_run"},
				{"status_default", "status NULL, imported as succeeded", "n_status_default"},
				{"kind_normalized", "kind lower-cased/trimmed into type", "n_kind_normalized"},
			},
		},
		{
			name: "tool_calls",
			m: r(`SELECT s.id, coalesce(s.tenant_id, r.tenant_id) AS tenant_id, s.created_at, s.run_id, s.step_id,
	s.tool_name, s.args AS arguments, s.result,
	CASE WHEN s.success THEN 'succeeded' WHEN NOT s.success THEN 'failed'
	     WHEN s.error IS NOT NULL THEN 'failed' ELSE 'succeeded' END AS status,
	s.error,
	CASE WHEN s.duration_ms >= 0 THEN s.duration_ms::bigint END AS duration_ms,
	t.id IS NOT NULL AS present,
	CASE WHEN t.id IS NOT NULL THEN NULL
	     WHEN r.id IS NULL AND lr.id IS NULL THEN ARRAY['orphan', 'run ' || s.run_id || ' does not exist']
	     WHEN r.id IS NULL THEN ARRAY['parent_quarantined', 'run ' || s.run_id || ' was not imported (quarantined)']
	     WHEN s.tenant_id IS NOT NULL AND s.tenant_id <> r.tenant_id
	       THEN ARRAY['tenant_mismatch', 'tenant_id ' || s.tenant_id || ' differs from tenant ' || r.tenant_id || ' of run ' || s.run_id]
	     WHEN s.step_id IS NOT NULL AND st.id IS NULL AND ls.id IS NULL
	       THEN ARRAY['dangling_step', 'step ' || s.step_id || ' does not exist']
	     WHEN s.step_id IS NOT NULL AND st.id IS NULL
	       THEN ARRAY['step_quarantined', 'step ' || s.step_id || ' was not imported (quarantined)']
	     WHEN st.run_id <> s.run_id
	       THEN ARRAY['step_other_run', 'step ' || s.step_id || ' belongs to run ' || st.run_id || ', not to run ' || s.run_id]
	END AS qr,
	s AS src_row,
	s.tenant_id IS NULL AS n_tenant_from_run,
	s.duration_ms < 0 AS n_negative_duration,
	s.success IS NULL AS n_success_inferred
FROM src s
LEFT JOIN {dst}.agent_runs r ON r.id = s.run_id
LEFT JOIN LATERAL (SELECT lr.id FROM {src}.agent_runs lr WHERE r.id IS NULL AND lr.id = s.run_id OFFSET 0) lr ON true
LEFT JOIN {dst}.agent_steps st ON st.id = s.step_id
LEFT JOIN LATERAL (SELECT ls.id FROM {src}.agent_steps ls WHERE st.id IS NULL AND ls.id = s.step_id OFFSET 0) ls ON true
LEFT JOIN {dst}.tool_calls t ON t.id = s.id`),
			cols:    []string{"id", "tenant_id", "created_at", "run_id", "step_id", "tool_name", "arguments", "result", "status", "error", "duration_ms"},
			mutable: []string{"tool_name", "arguments", "result", "status", "error", "duration_ms"},
			notes: []note{
				{"tenant_from_run", "tenant_id NULL, taken from the run", "n_tenant_from_run"},
				{"negative_duration", "negative duration_ms, imported as NULL", "n_negative_duration"},
				{"success_inferred", "success NULL, status inferred from error", "n_success_inferred"},
			},
		},
		{
			name: "audit_logs",
			m: r(`SELECT s.id, coalesce(s.tenant_id, ` + userTenantSQL + `) AS tenant_id, s.created_at,
	s.user_id::text AS actor_id, 'legacy' AS actor_role, s.action,
	coalesce(nullif(btrim(s.entity), ''), 'unknown') AS resource_type,
	coalesce(s.entity_id, '') AS resource_id,
	NULL::text AS request_id,
	CASE WHEN s.ip IS NULL THEN NULL
	     WHEN masklen(s.ip) = CASE family(s.ip) WHEN 4 THEN 32 ELSE 128 END THEN host(s.ip)
	     ELSE text(s.ip) END AS ip,
	s.user_agent, s.details AS changes,
	t.id IS NOT NULL AS present,
	CASE WHEN t.id IS NOT NULL THEN NULL
	     WHEN s.tenant_id IS NULL AND ` + userTenantSQL + ` IS NULL
	       THEN ARRAY['no_tenant', ` + noTenantReason("tenant_id is NULL (system row)", "s.user_id") + `]
	END AS qr,
	s AS src_row,
	s.tenant_id IS NULL AS n_tenant_from_user,
	nullif(btrim(s.entity), '') IS NULL AS n_entity_unknown
FROM src s
LEFT JOIN LATERAL (SELECT u.id, u.raw_app_meta_data FROM {users} u WHERE s.tenant_id IS NULL AND u.id = s.user_id OFFSET 0) u ON true
LEFT JOIN {dst}.audit_logs t ON t.id = s.id`),
			cols: []string{"id", "tenant_id", "created_at", "actor_id", "actor_role", "action", "resource_type", "resource_id", "request_id", "ip", "user_agent", "changes"},
			notes: []note{
				{"tenant_from_user", "tenant_id NULL, taken from the user's app_metadata", "n_tenant_from_user"},
				{"entity_unknown", "entity NULL or empty, resource_type 'unknown'", "n_entity_unknown"},
			},
		},
		{
			name: "usage_metrics",
			m: r(`SELECT s.id, coalesce(s.tenant_id, r.tenant_id, ` + userTenantSQL + `) AS tenant_id,
	CASE WHEN r.id IS NOT NULL AND r.tenant_id = coalesce(s.tenant_id, r.tenant_id) THEN s.run_id END AS run_id,
	coalesce(nullif(btrim(s.model), ''), 'unknown') AS model,
	greatest(coalesce(s.prompt_tokens, 0), 0)::bigint AS input_tokens,
	greatest(coalesce(s.completion_tokens, 0), 0)::bigint AS output_tokens,
	0::bigint AS cached_input_tokens,
	greatest(coalesce(s.total_tokens::bigint, coalesce(s.prompt_tokens, 0)::bigint + coalesce(s.completion_tokens, 0)::bigint), 0) AS total_tokens,
	greatest(coalesce(s.cost_usd, 0), 0) AS cost_usd,
	s.created_at AS recorded_at,
	t.id IS NOT NULL AS present,
	CASE WHEN t.id IS NOT NULL THEN NULL
	     WHEN coalesce(s.tenant_id, r.tenant_id, ` + userTenantSQL + `) IS NULL
	       THEN ARRAY['no_tenant', CASE WHEN s.run_id IS NULL THEN 'tenant_id is NULL and there is no run'
	                                    WHEN lr.id IS NULL THEN 'tenant_id is NULL and run ' || s.run_id || ' does not exist'
	                                    ELSE ` + noTenantReason("tenant_id is NULL, run ' || s.run_id || ' has none", "lr.user_id") + ` END]
	END AS qr,
	s AS src_row,
	s.tenant_id IS NULL AS n_tenant_inferred,
	s.run_id IS NOT NULL AND r.id IS NULL AND lr.id IS NULL AS n_run_dangling,
	s.run_id IS NOT NULL AND r.id IS NULL AND lr.id IS NOT NULL AS n_run_quarantined,
	r.id IS NOT NULL AND s.tenant_id <> r.tenant_id AS n_run_other_tenant,
	s.total_tokens IS NULL AS n_total_computed,
	s.cost_usd IS NULL AS n_cost_zero,
	s.prompt_tokens < 0 OR s.completion_tokens < 0 OR s.total_tokens < 0 OR s.cost_usd < 0 AS n_negative_clamped,
	nullif(btrim(s.model), '') IS NULL AS n_model_unknown
FROM src s
LEFT JOIN {dst}.agent_runs r ON r.id = s.run_id
LEFT JOIN LATERAL (SELECT lr.id, lr.user_id FROM {src}.agent_runs lr WHERE r.id IS NULL AND lr.id = s.run_id OFFSET 0) lr ON true
LEFT JOIN LATERAL (SELECT u.id, u.raw_app_meta_data FROM {users} u WHERE s.tenant_id IS NULL AND u.id = lr.user_id OFFSET 0) u ON true
LEFT JOIN {dst}.usage_metrics t ON t.id = s.id`),
			cols:    []string{"id", "tenant_id", "run_id", "model", "input_tokens", "output_tokens", "cached_input_tokens", "total_tokens", "cost_usd", "recorded_at"},
			mutable: []string{"run_id", "model", "input_tokens", "output_tokens", "total_tokens", "cost_usd"},
			notes: []note{
				{"tenant_inferred", "tenant_id NULL, taken from the run or the run's user", "n_tenant_inferred"},
				{"run_dangling", "run_id names no run, imported with run_id NULL", "n_run_dangling"},
				{"run_quarantined", "run was quarantined, imported with run_id NULL", "n_run_quarantined"},
				{"run_other_tenant", "run belongs to another tenant, imported with run_id NULL", "n_run_other_tenant"},
				{"total_computed", "total_tokens NULL, set to input+output", "n_total_computed"},
				{"cost_zero", "cost_usd NULL, set to 0", "n_cost_zero"},
				{"negative_clamped", "negative tokens or cost, clamped to 0", "n_negative_clamped"},
				{"model_unknown", "model NULL or empty, set to 'unknown'", "n_model_unknown"},
			},
		},
		{
			name: "system_health",
			m: r(`SELECT s.id, s.service AS component, ` + caseSQL("s.status", HealthStatuses) + ` AS status,
	CASE WHEN s.latency_ms >= 0 THEN s.latency_ms::bigint END AS latency_ms,
	s.details, s.checked_at,
	t.id IS NOT NULL AS present,
	CASE WHEN t.id IS NOT NULL THEN NULL
	     WHEN btrim(s.service) = '' THEN ARRAY['invalid_value', 'service is empty']
	     WHEN ` + caseSQL("s.status", HealthStatuses) + ` IS NULL THEN ARRAY['unknown_status', 'status ' || quote_nullable(s.status) || ' has no mapping']
	END AS qr,
	s AS src_row,
	s.latency_ms < 0 AS n_negative_latency,
	s.status <> ` + caseSQL("s.status", HealthStatuses) + ` AS n_status_normalized
FROM src s
LEFT JOIN {dst}.system_health t ON t.id = s.id`),
			cols: []string{"id", "component", "status", "latency_ms", "details", "checked_at"},
			notes: []note{
				{"negative_latency", "negative latency_ms, imported as NULL", "n_negative_latency"},
				{"status_normalized", "status spelled differently (e.g. UP, ok), mapped", "n_status_normalized"},
			},
		},
	}
}

// variant selects the form of a batch statement.
type variant struct {
	// first: the batch starts at the part's lower bound $1 (inclusive)
	// rather than after the last id $1.
	first bool
	// upper: the part has an upper bound $3 (exclusive).
	upper bool
	// safe: INSERT … ON CONFLICT DO NOTHING, quarantining the rows it
	// skipped ("conflict"). The fast form has no ON CONFLICT: a batch that
	// hits a unique violation is rolled back and retried in the safe form.
	safe bool
	// release: delete from the quarantine the rows now imported. Only passes
	// after the first can have them: within one pass every row is seen once.
	release bool
}

// batchSQL returns the statement that imports one batch of t: at most
// limit rows of the source table in keyset order from $1 (see variant),
// with $2 the pass number. It returns one row: scanned, last id, inserted,
// updated, present, released, then one count per note.
func (t tableSpec) batchSQL(src, dst string, limit int, v variant) string {
	keyset := "s.id > $1"
	if v.first {
		keyset = "s.id >= $1"
	}
	if v.upper {
		keyset += " AND s.id < $3"
	}
	q := dst + ".legacy_quarantine"
	var b strings.Builder
	fmt.Fprintf(&b, "WITH src AS (\n  SELECT s.* FROM %s.%s s WHERE %s ORDER BY s.id LIMIT %d\n),\n", src, t.name, keyset, limit)
	fmt.Fprintf(&b, "m AS (\n%s\n),\n", t.m)
	if len(t.mutable) > 0 {
		var set, old, new []string
		for _, c := range t.mutable {
			v := "m." + c
			if c == "status" {
				v = "coalesce(m.status, t.status)"
			}
			set = append(set, c+" = "+v)
			old = append(old, "t."+c)
			new = append(new, v)
		}
		fmt.Fprintf(&b, "upd AS (\n  UPDATE %s.%s t SET %s\n  FROM m WHERE m.present AND t.id = m.id AND (%s) IS DISTINCT FROM (%s)\n  RETURNING t.id\n),\n",
			dst, t.name, strings.Join(set, ", "), strings.Join(old, ", "), strings.Join(new, ", "))
	} else {
		b.WriteString("upd AS (SELECT NULL::uuid AS id WHERE false),\n")
	}
	onConflict, skipped, placed := "", "m.qr IS NOT NULL", "m.present OR m.qr IS NULL"
	if v.safe {
		onConflict = "\n  ON CONFLICT DO NOTHING"
		skipped = "(m.qr IS NOT NULL OR m.id NOT IN (SELECT id FROM ins))"
		placed = "m.present OR m.id IN (SELECT id FROM ins)"
	}
	fmt.Fprintf(&b, "ins AS (\n  INSERT INTO %s.%s (%s)\n  SELECT %s FROM m WHERE NOT m.present AND m.qr IS NULL%s\n  RETURNING id\n),\n",
		dst, t.name, strings.Join(t.cols, ", "), strings.Join(t.cols, ", "), onConflict)
	fmt.Fprintf(&b, `quar AS (
  INSERT INTO %[1]s AS x (source_table, source_id, code, reason, "row", pass)
  SELECT %[2]s, m.id, coalesce(m.qr[1], 'conflict'),
         coalesce(m.qr[2], 'another row with the same unique key is already in %[3]s.%[4]s'), to_jsonb(m.src_row), $2
  FROM m WHERE NOT m.present AND %[5]s
  ON CONFLICT (source_table, source_id) DO UPDATE
    SET code = excluded.code, reason = excluded.reason, "row" = excluded."row", pass = excluded.pass, quarantined_at = now()
    WHERE (x.code, x.reason, x."row") IS DISTINCT FROM (excluded.code, excluded.reason, excluded."row")
  RETURNING 1
),
`, q, quoteLit(t.name), dst, t.name, skipped)
	if v.release {
		fmt.Fprintf(&b, `rel AS (
  DELETE FROM %s x WHERE x.source_table = %s
    AND x.source_id = ANY (ARRAY(SELECT m.id FROM m WHERE (%[3]s)
      AND EXISTS (SELECT 1 FROM %[1]s y WHERE y.source_table = %[2]s AND y.source_id = m.id)))
  RETURNING 1
)
`, q, quoteLit(t.name), placed)
	} else {
		b.WriteString("rel AS (SELECT 1 WHERE false)\n")
	}
	b.WriteString("SELECT (SELECT count(*) FROM src), (SELECT id FROM src ORDER BY id DESC LIMIT 1),\n")
	b.WriteString("  (SELECT count(*) FROM ins), (SELECT count(*) FROM upd), (SELECT count(*) FROM m WHERE m.present), (SELECT count(*) FROM rel)")
	if len(t.notes) > 0 {
		var f []string
		for _, n := range t.notes {
			f = append(f, fmt.Sprintf("count(*) FILTER (WHERE %s)", n.expr))
		}
		fmt.Fprintf(&b, ",\n  n.*\nFROM (SELECT %s FROM m WHERE %s) n", strings.Join(f, ", "), placed)
	}
	return b.String()
}
