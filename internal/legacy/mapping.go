package legacy

import (
	"sort"
	"strings"
)

// RunStatuses maps a legacy run or step status, lower-cased and trimmed, to
// the new status enum (queued, running, succeeded, failed, cancelled). The
// twelve spellings production holds are pending, running, completed,
// Completed, done, success, error, failed, FAILED, cancelled, canceled and
// timeout; the other keys are common synonyms. A status that is not a key is
// unknown: the row is quarantined with reason code "unknown_status".
var RunStatuses = map[string]string{
	"pending":     "queued",
	"queued":      "queued",
	"created":     "queued",
	"waiting":     "queued",
	"running":     "running",
	"in_progress": "running",
	"started":     "running",
	"completed":   "succeeded",
	"complete":    "succeeded",
	"done":        "succeeded",
	"success":     "succeeded",
	"succeeded":   "succeeded",
	"ok":          "succeeded",
	"finished":    "succeeded",
	"error":       "failed",
	"errored":     "failed",
	"failed":      "failed",
	"failure":     "failed",
	"timeout":     "failed",
	"timed_out":   "failed",
	"cancelled":   "cancelled",
	"canceled":    "cancelled",
	"aborted":     "cancelled",
}

// lossyRunStatuses are the legacy statuses whose meaning the new enum does
// not keep; a run with one of them and no error text gets the error
// "legacy status: <status>".
var lossyRunStatuses = []string{"timeout", "timed_out", "aborted"}

// HealthStatuses maps a legacy system_health status, lower-cased and
// trimmed, to the new enum (up, degraded, down). Production holds up, UP,
// ok, degraded and down. Other statuses quarantine the row
// ("unknown_status").
var HealthStatuses = map[string]string{
	"up":        "up",
	"ok":        "up",
	"healthy":   "up",
	"degraded":  "degraded",
	"warn":      "degraded",
	"warning":   "degraded",
	"down":      "down",
	"error":     "down",
	"unhealthy": "down",
}

// MapRunStatus returns the new status of a legacy run or step status and
// whether it is known.
func MapRunStatus(legacy string) (string, bool) {
	s, ok := RunStatuses[normalize(legacy)]
	return s, ok
}

// MapHealthStatus returns the new status of a legacy health status and
// whether it is known.
func MapHealthStatus(legacy string) (string, bool) {
	s, ok := HealthStatuses[normalize(legacy)]
	return s, ok
}

// trimSet is the whitespace both sides trim from a legacy status.
const trimSet = " \t\r\n"

func normalize(s string) string { return strings.ToLower(strings.Trim(s, trimSet)) }

// normSQL is normalize in SQL.
func normSQL(expr string) string { return "lower(btrim(" + expr + `, E' \t\r\n'))` }

// caseSQL renders m as a CASE expression over normSQL(expr); unknown values
// give NULL.
func caseSQL(expr string, m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("(CASE " + normSQL(expr))
	for _, k := range keys {
		b.WriteString(" WHEN " + quoteLit(k) + " THEN " + quoteLit(m[k]))
	}
	b.WriteString(" END)")
	return b.String()
}

// inListSQL renders values as a SQL IN list of literals.
func inListSQL(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = quoteLit(v)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
