package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/tenant"
)

// Both benchmarks write the same rows per run, built by benchRun: one run,
// benchSteps steps, benchToolCalls tool calls and one audit row, from
// benchWriters concurrent writers over a pool of benchPoolSize
// connections. Run them against a durable server:
//
//	scripts/services.sh --durable -- go test -run '^$' -bench CreateRun -benchtime 5s ./internal/store/
const (
	benchWriters   = 16
	benchPoolSize  = 20
	benchSteps     = 10
	benchToolCalls = 10
	benchAgent     = "bench-agent"
	benchUser      = "bench-user"
	benchRole      = "authenticated"
)

var benchModel = "gpt-4o-mini"

// benchViewer is the tenant both benchmarks write as.
func benchViewer() tenant.Viewer {
	return tenant.Viewer{TenantID: uuid.Must(uuid.NewV7()), UserID: benchUser, Role: benchRole}
}

// setBenchParallelism makes b.RunParallel start benchWriters goroutines
// (exactly, when GOMAXPROCS divides benchWriters).
func setBenchParallelism(b *testing.B) {
	b.SetParallelism(max(1, benchWriters/runtime.GOMAXPROCS(0)))
}

func newID() *uuid.UUID {
	id := uuid.Must(uuid.NewV7())
	return &id
}

func ptr[T any](v T) *T { return &v }

// benchRun returns one run's payload, with every id and timestamp set
// client-side, so that both benchmarks write exactly the same values.
func benchRun() store.NewRun {
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	run := store.NewRun{
		ID:        newID(),
		AgentName: benchAgent,
		Status:    store.StatusRunning,
		Input:     json.RawMessage(`{"prompt":"hello"}`),
		Metadata:  json.RawMessage(`{"source":"bench"}`),
		Model:     &benchModel,
		StartedAt: &t0,
		Steps:     make([]store.NewStep, benchSteps),
		ToolCalls: make([]store.NewToolCall, benchToolCalls),
	}
	for i := range run.Steps {
		start := t0.Add(time.Duration(i) * time.Millisecond)
		end := start.Add(500 * time.Microsecond)
		run.Steps[i] = store.NewStep{
			ID:        newID(),
			Seq:       ptr(i + 1),
			Type:      "llm",
			Name:      ptr(fmt.Sprintf("step-%d", i+1)),
			Status:    "succeeded",
			Input:     json.RawMessage(`{"prompt":"hello"}`),
			Output:    json.RawMessage(`{"text":"hi there","tokens":3}`),
			StartedAt: &start,
			EndedAt:   &end,
		}
	}
	for i := range run.ToolCalls {
		step := run.Steps[i%benchSteps]
		start := step.StartedAt.Add(100 * time.Microsecond)
		end := start.Add(200 * time.Microsecond)
		run.ToolCalls[i] = store.NewToolCall{
			ID:         newID(),
			StepID:     step.ID,
			ToolName:   "search",
			Arguments:  json.RawMessage(`{"query":"weather in paris"}`),
			Result:     json.RawMessage(`{"hits":3,"top":"sunny"}`),
			Status:     "succeeded",
			DurationMs: ptr(int64(12)),
			StartedAt:  &start,
			EndedAt:    &end,
		}
	}
	return run
}

// reportRuns reports the throughput and checks that exactly b.N runs, with
// their steps, tool calls and audit rows, reached the database.
func reportRuns(b *testing.B, db *sql.DB) {
	b.Helper()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	if b.Failed() {
		return
	}
	var runs, steps, calls, audits int
	err := db.QueryRow(`SELECT
		(SELECT count(*) FROM agentstore.agent_runs),
		(SELECT count(*) FROM agentstore.agent_steps),
		(SELECT count(*) FROM agentstore.tool_calls),
		(SELECT count(*) FROM agentstore.audit_logs)`).Scan(&runs, &steps, &calls, &audits)
	if err != nil {
		b.Fatalf("count rows: %v", err)
	}
	n := b.N
	if runs != n || steps != n*benchSteps || calls != n*benchToolCalls || audits != n {
		b.Fatalf("wrote runs=%d steps=%d toolCalls=%d audit=%d, want %d/%d/%d/%d",
			runs, steps, calls, audits, n, n*benchSteps, n*benchToolCalls, n)
	}
}

// BenchmarkCreateRunStore measures Runs.Create: 16 writers each creating
// runs of 10 steps and 10 tool calls through the ent store.
func BenchmarkCreateRunStore(b *testing.B) {
	ctx := context.Background()
	url := dbtest.Postgres(b)
	db, err := store.OpenPostgres(ctx, url, benchPoolSize)
	if err != nil {
		b.Fatal(err)
	}
	s := store.New(db, "postgres", "agentstore", nil)
	b.Cleanup(func() { s.Close() })
	ctx = tenant.NewContext(ctx, benchViewer())

	setBenchParallelism(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Runs.Create(ctx, benchRun()); err != nil {
				b.Errorf("create run: %v", err)
				return
			}
		}
	})
	reportRuns(b, db)
}

// The floor's statements: one per table, the steps and tool calls as
// arrays expanded by unnest.
const (
	floorInsertRun = `INSERT INTO agentstore.agent_runs
		(id, tenant_id, created_at, agent_name, status, input, metadata, model, started_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $3)`
	floorInsertSteps = `INSERT INTO agentstore.agent_steps
		(id, tenant_id, created_at, run_id, seq, type, name, status, input, output, started_at, ended_at)
		SELECT u.id, $2, $3, $4, u.seq, u.type, u.name, u.status, u.input, u.output, u.started_at, u.ended_at
		FROM unnest($1::uuid[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::jsonb[],
			$11::timestamptz[], $12::timestamptz[])
			AS u(id, seq, type, name, status, input, output, started_at, ended_at)`
	floorInsertToolCalls = `INSERT INTO agentstore.tool_calls
		(id, tenant_id, created_at, run_id, step_id, tool_name, arguments, result, status, duration_ms, started_at, ended_at)
		SELECT u.id, $2, $3, $4, u.step_id, u.tool_name, u.arguments, u.result, u.status, u.duration_ms, u.started_at, u.ended_at
		FROM unnest($1::uuid[], $5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[], $9::text[], $10::int8[],
			$11::timestamptz[], $12::timestamptz[])
			AS u(id, step_id, tool_name, arguments, result, status, duration_ms, started_at, ended_at)`
	floorInsertAudit = `INSERT INTO agentstore.audit_logs
		(id, tenant_id, created_at, actor_id, actor_role, action, resource_type, resource_id, changes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
)

// floorCreate writes run as Runs.Create would, in one transaction whose
// four INSERTs go to the server as one pipelined batch.
func floorCreate(ctx context.Context, pool *pgxpool.Pool, v tenant.Viewer, run store.NewRun) error {
	now := time.Now().UTC().Truncate(time.Microsecond)

	st := run.Steps
	stepID := make([]uuid.UUID, len(st))
	seq := make([]int64, len(st))
	typ := make([]string, len(st))
	name := make([]*string, len(st))
	stepStatus := make([]string, len(st))
	in := make([]string, len(st))
	out := make([]string, len(st))
	stepStart := make([]time.Time, len(st))
	stepEnd := make([]time.Time, len(st))
	for i, s := range st {
		stepID[i], seq[i], typ[i], name[i], stepStatus[i] = *s.ID, int64(*s.Seq), s.Type, s.Name, s.Status
		in[i], out[i] = string(s.Input), string(s.Output)
		stepStart[i], stepEnd[i] = *s.StartedAt, *s.EndedAt
	}

	tc := run.ToolCalls
	callID := make([]uuid.UUID, len(tc))
	callStep := make([]uuid.UUID, len(tc))
	tool := make([]string, len(tc))
	args := make([]string, len(tc))
	result := make([]string, len(tc))
	callStatus := make([]string, len(tc))
	dur := make([]int64, len(tc))
	callStart := make([]time.Time, len(tc))
	callEnd := make([]time.Time, len(tc))
	for i, c := range tc {
		callID[i], callStep[i], tool[i] = *c.ID, *c.StepID, c.ToolName
		args[i], result[i], callStatus[i], dur[i] = string(c.Arguments), string(c.Result), c.Status, *c.DurationMs
		callStart[i], callEnd[i] = *c.StartedAt, *c.EndedAt
	}

	changes, err := json.Marshal(map[string]any{
		"agentName": run.AgentName, "status": run.Status, "steps": len(st), "toolCalls": len(tc),
	})
	if err != nil {
		return err
	}

	var batch pgx.Batch
	batch.Queue(floorInsertRun, *run.ID, v.TenantID, now, run.AgentName, run.Status,
		string(run.Input), string(run.Metadata), run.Model, *run.StartedAt)
	batch.Queue(floorInsertSteps, stepID, v.TenantID, now, *run.ID,
		seq, typ, name, stepStatus, in, out, stepStart, stepEnd)
	batch.Queue(floorInsertToolCalls, callID, v.TenantID, now, *run.ID,
		callStep, tool, args, result, callStatus, dur, callStart, callEnd)
	batch.Queue(floorInsertAudit, uuid.Must(uuid.NewV7()), v.TenantID, now, v.UserID, v.Role,
		"run.create", "run", run.ID.String(), string(changes))

	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// BenchmarkCreateRunPgxFloor writes the same rows as
// BenchmarkCreateRunStore with raw pgx: BEGIN, one pipelined batch of four
// INSERTs, COMMIT. It is the floor the store is measured against.
func BenchmarkCreateRunPgxFloor(b *testing.B) {
	ctx := context.Background()
	url := dbtest.Postgres(b)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchPoolSize
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	v := benchViewer()

	setBenchParallelism(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := floorCreate(ctx, pool, v, benchRun()); err != nil {
				b.Errorf("create run: %v", err)
				return
			}
		}
	})
	reportRuns(b, db)
}
