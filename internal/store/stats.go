package store

import (
	"context"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"

	"github.com/agentstore/agentstore/ent/agentrun"
	"github.com/agentstore/agentstore/ent/toolcall"
	"github.com/agentstore/agentstore/internal/derrors"
)

// Window is a half-open time range [From, To); zero ends are open.
type Window struct {
	From, To time.Time
}

// RunStats is one group of GET /v1/runs/stats.
type RunStats struct {
	Key                 string
	Runs                int64
	MeanDurationMs      *float64
	P95DurationMs       *float64
	ToolCalls           int64
	FailedToolCalls     int64
	ToolCallFailureRate *float64
}

// Stats groups the tenant's runs created in w by groupBy ("status" or
// "agentName"): how many, their mean and 95th-percentile duration (from
// startedAt to endedAt, for runs that have both), and the share of their
// tool calls that failed.
func (r *Runs) Stats(ctx context.Context, w Window, groupBy string) (_ []RunStats, err error) {
	defer derrors.Wrap(&err, "Runs.Stats")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	var keyCol string
	switch groupBy {
	case "status":
		keyCol = agentrun.FieldStatus
	case "agentName":
		keyCol = agentrun.FieldAgentName
	default:
		return nil, derrors.Field("groupBy", "must be status or agentName")
	}
	d := r.s.dialectSQL()
	var groups []struct {
		Key  string          `sql:"key"`
		Runs int64           `sql:"runs"`
		Mean sql.NullFloat64 `sql:"mean"`
		P95  sql.NullFloat64 `sql:"p95"`
	}
	q := r.s.client.AgentRun.Query().Where(agentrun.TenantID(tenantID))
	if !w.From.IsZero() {
		q.Where(agentrun.CreatedAtGTE(w.From))
	}
	if !w.To.IsZero() {
		q.Where(agentrun.CreatedAtLT(w.To))
	}
	err = q.Modify(func(s *sql.Selector) {
		key := s.C(keyCol)
		dur := d.durationMs(s.C(agentrun.FieldStartedAt), s.C(agentrun.FieldEndedAt))
		s.Select(
			sql.As(key, "key"),
			sql.As(sql.Count("*"), "runs"),
			sql.As("AVG("+dur+")", "mean"),
			sql.As(d.p95(dur), "p95"),
		).GroupBy(key).OrderBy(key)
	}).Scan(ctx, &groups)
	if err != nil {
		return nil, translate(err)
	}

	var calls []struct {
		Key    string `sql:"key"`
		Total  int64  `sql:"total"`
		Failed int64  `sql:"failed"`
	}
	tq := r.s.client.ToolCall.Query().Where(toolcall.TenantID(tenantID))
	err = tq.Modify(func(s *sql.Selector) {
		runs := sql.Table(agentrun.Table).Schema(r.s.pgSchema).As("r")
		s.Join(runs).On(s.C(toolcall.FieldRunID), runs.C(agentrun.FieldID))
		s.Where(sql.EQ(runs.C(agentrun.FieldTenantID), tenantID))
		if !w.From.IsZero() {
			s.Where(sql.GTE(runs.C(agentrun.FieldCreatedAt), w.From))
		}
		if !w.To.IsZero() {
			s.Where(sql.LT(runs.C(agentrun.FieldCreatedAt), w.To))
		}
		key := runs.C(keyCol)
		s.Select(
			sql.As(key, "key"),
			sql.As(sql.Count("*"), "total"),
			sql.As("SUM(CASE WHEN "+s.C(toolcall.FieldStatus)+" = 'failed' THEN 1 ELSE 0 END)", "failed"),
		).GroupBy(key)
	}).Scan(ctx, &calls)
	if err != nil {
		return nil, translate(err)
	}
	byKey := make(map[string]int, len(calls))
	for i, c := range calls {
		byKey[c.Key] = i
	}
	out := make([]RunStats, len(groups))
	for i, g := range groups {
		st := RunStats{Key: g.Key, Runs: g.Runs, MeanDurationMs: nullFloat(g.Mean), P95DurationMs: nullFloat(g.P95)}
		if j, ok := byKey[g.Key]; ok {
			st.ToolCalls, st.FailedToolCalls = calls[j].Total, calls[j].Failed
			rate := float64(st.FailedToolCalls) / float64(st.ToolCalls)
			st.ToolCallFailureRate = &rate
		}
		out[i] = st
	}
	return out, nil
}

func nullFloat(f sql.NullFloat64) *float64 {
	if !f.Valid {
		return nil
	}
	return &f.Float64
}

// dialectSQL is the little SQL that differs between PostgreSQL and SQLite.
type dialectSQL struct{ name string }

func (s *Store) dialectSQL() dialectSQL { return dialectSQL{name: s.dialect} }

// durationMs is the SQL for the milliseconds between two timestamps.
func (d dialectSQL) durationMs(start, end string) string {
	if d.name == dialect.Postgres {
		return "(EXTRACT(EPOCH FROM (" + end + " - " + start + ")) * 1000)"
	}
	return "((julianday(" + end + ") - julianday(" + start + ")) * 86400000.0)"
}

// p95 is the SQL for the continuous 95th percentile of expr.
func (d dialectSQL) p95(expr string) string {
	if d.name == dialect.Postgres {
		return "percentile_cont(0.95) WITHIN GROUP (ORDER BY " + expr + ")"
	}
	return "agentstore_p95(" + expr + ")"
}

// day is the SQL that groups timestamps by UTC calendar day, and the SQL
// of the group's key (YYYY-MM-DD). On PostgreSQL the rows are grouped by
// a date, which sorts cheaper than its text, and only each group's key is
// formatted.
func (d dialectSQL) day(expr string) (group, key string) {
	if d.name == dialect.Postgres {
		group = "((" + expr + " AT TIME ZONE 'UTC')::date)"
		return group, "to_char(" + group + ", 'YYYY-MM-DD')"
	}
	group = "strftime('%Y-%m-%d', " + expr + ")"
	return group, group
}
