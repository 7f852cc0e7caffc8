#!/usr/bin/env bash
# bench-lifecycle.sh — the data-lifecycle benchmarks of `make bench` (section
# h of scripts/bench.sh), also runnable alone:
#
#   scripts/services.sh --durable -- scripts/bench-lifecycle.sh
#
# Needs the PostgreSQL and Redis of scripts/services.sh (AGENTSTORE_TEST_PG_URL,
# AGENTSTORE_TEST_PG_BIN). On a fresh database it measures:
#
#   1. retention under ingest: BENCH_LIFECYCLE_RUNS runs created 200 days ago
#      (each with BENCH_LIFECYCLE_CHILDREN steps and as many tool calls and a
#      usage row) are seeded; HTTP ingest (POST /v1/runs, 10 steps + 10 tool
#      calls, BENCH_CLIENTS clients) runs for BENCH_DURATION alone, then again
#      while `agentstore retention run` (RETENTION_DAYS=30: the same pass as
#      the job in serve, at its default pace) deletes the expired runs.
#      Reported: ingest throughput and p99 with retention over without
#      (targets >= 0.9 and <= 1.2) and the deletion rate (runs and rows per
#      second, over the whole pass).
#   2. export: `agentstore export` of a tenant of BENCH_LIFECYCLE_EXPORT_RUNS
#      runs (same children) to a .ndjson.gz file: rows (runs + steps + tool
#      calls) per second and peak RSS (/usr/bin/time -v; target <= 100 MiB).
#
# Writes $BENCH_OUT/raw/lifecycle/ (loadgen results, outputs, lifecycle.env).
# Knobs: BENCH_OUT (bench), BENCH_LIFECYCLE_RUNS (100000; the issue's full
# scale is 1000000), BENCH_LIFECYCLE_EXPORT_RUNS (BENCH_LIFECYCLE_RUNS),
# BENCH_LIFECYCLE_CHILDREN (2), BENCH_CLIENTS (16), BENCH_DURATION (20s),
# BENCH_WARMUP (3s), BENCH_LOG_LEVEL (info).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${AGENTSTORE_TEST_PG_URL:?run through scripts/services.sh --durable -- scripts/bench-lifecycle.sh}"
PG_BIN=${AGENTSTORE_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
GO=${GO:-go}
OUT=${BENCH_OUT:-bench}
RUNS=${BENCH_LIFECYCLE_RUNS:-100000}
EXPORT_RUNS=${BENCH_LIFECYCLE_EXPORT_RUNS:-$RUNS}
CHILDREN=${BENCH_LIFECYCLE_CHILDREN:-2}
CLIENTS=${BENCH_CLIENTS:-16}
DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-3s}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
case "$AGENTSTORE_TEST_PG_URL" in postgres://*@127.0.0.1:*) ;; *) die "AGENTSTORE_TEST_PG_URL must point at 127.0.0.1" ;; esac
[ -x /usr/bin/time ] || die "/usr/bin/time is needed for the peak RSS (Debian package time)"

tmp=$(mktemp -d /tmp/agentstore-bench-lc.XXXXXX)
db="agentstore_bench_lc_$$"
children=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${children[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  "$PG_BIN/psql" -q -X "$AGENTSTORE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  [ "$rc" = 0 ] || log "lifecycle: failed (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

raw=$OUT/raw/lifecycle
rm -rf "$raw"
mkdir -p "$raw" bin
$GO build -o bin/agentstore ./cmd/server
$GO build -o "$tmp/loadgen" ./tools/loadgen

"$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 "$AGENTSTORE_TEST_PG_URL" -c "CREATE DATABASE $db"
DB_URL=$(printf '%s' "$AGENTSTORE_TEST_PG_URL" | sed -E "s#^(postgres://[^/]+)/[^?]*#\1/$db#")
psql_db() { "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }
uuid() { cat /proc/sys/kernel/random/uuid; }
json_num() { grep -m1 -o "\"$1\": [0-9.e+-]*" "$2" | sed 's/.*: //'; }
now_ns() { date +%s%N; }

unset REDIS_URL RATE_LIMIT_DISABLED RATE_LIMIT_TENANT_OVERRIDES RETENTION_DAYS RETENTION_TENANT_OVERRIDES APP_ENV
export DATABASE_URL=$DB_URL DB_SCHEMA=agentstore LOG_LEVEL=$LOG_LEVEL ADDR=127.0.0.1:0 DATA_DIR=$tmp/data
SUPABASE_JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export SUPABASE_JWT_SECRET RATE_LIMIT_MAX=1000000000 RATE_LIMIT_WINDOW_MS=60000
bin/agentstore migrate apply >"$raw/migrate.txt"

# seed TENANT N AGE: N runs of TENANT created AGE ago, with their children.
seed() {
  psql_db <<SQL
INSERT INTO agentstore.agent_runs (id, tenant_id, created_at, updated_at, agent_name, status, input, model, started_at, ended_at)
SELECT gen_random_uuid(), '$1', now() - interval '$3' + make_interval(secs => g / 1000.0), now(), 'bench-agent', 'succeeded',
  '{"prompt":"hello"}', 'gpt-4o-mini', now() - interval '$3', now() - interval '$3' + interval '1 second'
FROM generate_series(1, $2) g;
INSERT INTO agentstore.agent_steps (id, tenant_id, created_at, run_id, seq, type, status, input, output)
SELECT gen_random_uuid(), r.tenant_id, r.created_at, r.id, s, 'llm', 'succeeded', '{"prompt":"hello"}', '{"text":"hi there"}'
FROM agentstore.agent_runs r, generate_series(1, $CHILDREN) s WHERE r.tenant_id = '$1';
INSERT INTO agentstore.tool_calls (id, tenant_id, created_at, run_id, tool_name, status, arguments, result, duration_ms)
SELECT gen_random_uuid(), r.tenant_id, r.created_at, r.id, 'search', 'succeeded', '{"query":"weather"}', '{"hits":3}', 12
FROM agentstore.agent_runs r, generate_series(1, $CHILDREN) s WHERE r.tenant_id = '$1';
INSERT INTO agentstore.usage_metrics (id, tenant_id, run_id, model, input_tokens, output_tokens, total_tokens, recorded_at)
SELECT gen_random_uuid(), r.tenant_id, r.id, 'gpt-4o-mini', 10, 5, 15, r.created_at FROM agentstore.agent_runs r WHERE r.tenant_id = '$1';
SQL
}

expired_tenant=$(uuid) export_tenant=$(uuid) ingest_tenant=$(uuid)
log "lifecycle: seeding $RUNS expired runs and $EXPORT_RUNS runs to export, $CHILDREN steps and tool calls each"
seed "$expired_tenant" "$RUNS" "200 days"
seed "$export_tenant" "$EXPORT_RUNS" "1 hour"
psql_db -c 'VACUUM ANALYZE'
ingest_token=$(bin/agentstore token --tenant "$ingest_tenant" --ttl 2h)

# The ingest payload of bench.sh section b: 10 steps and 10 tool calls.
{
  printf '{"id":"{{uuid}}","agentName":"bench-agent","status":"running","input":{"prompt":"hello"},'
  printf '"metadata":{"source":"bench"},"model":"gpt-4o-mini","startedAt":"{{now}}","steps":['
  for i in $(seq 1 10); do
    [ "$i" = 1 ] || printf ','
    printf '{"id":"{{uuid:s%d}}","seq":%d,"type":"llm","name":"step-%d","status":"succeeded","input":{"prompt":"hello"},' "$i" "$i" "$i"
    printf '"output":{"text":"hi there","tokens":3},"startedAt":"{{now}}","endedAt":"{{now}}"}'
  done
  printf '],"toolCalls":['
  for i in $(seq 1 10); do
    [ "$i" = 1 ] || printf ','
    printf '{"id":"{{uuid}}","stepId":"{{uuid:s%d}}","toolName":"search","arguments":{"query":"weather in paris"},' "$i"
    printf '"result":{"hits":3,"top":"sunny"},"status":"succeeded","durationMs":12,"startedAt":"{{now}}","endedAt":"{{now}}"}'
  done
  printf ']}\n'
} >"$tmp/run.json"

env setsid bin/agentstore serve >"$tmp/serve.out" 2>"$tmp/serve.log" &
serve_pid=$!
children+=("$serve_pid")
url=""
for _ in $(seq 1 300); do
  line=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$tmp/serve.out" 2>/dev/null || true)
  [ -n "$line" ] && { url=${line#listening on }; break; }
  kill -0 "$serve_pid" 2>/dev/null || { tail -n 20 "$tmp/serve.log" >&2; die "serve exited"; }
  sleep 0.1
done
[ -n "$url" ] || die "serve did not listen"

ingest() {
  "$tmp/loadgen" -json -label "$1" -max-failures 0.01 -url "$url/v1/runs" -method POST -body-file "$tmp/run.json" \
    -body-template -token "$ingest_token" -c "$CLIENTS" -d "$DURATION" -warmup "$WARMUP" -expect 201 >"$raw/$1.json" ||
    { cat "$raw/$1.json" >&2; die "ingest $1 failed"; }
  printf 'bench: %-26s %8.1f req/s  p50 %7.2fms  p99 %7.2fms\n' "$1" \
    "$(json_num rps "$raw/$1.json")" "$(json_num p50 "$raw/$1.json")" "$(json_num p99 "$raw/$1.json")" >&2
}

log "lifecycle: 1. ingest alone, $CLIENTS clients, $DURATION"
ingest ingest-alone
log "lifecycle: 1. ingest while retention deletes $RUNS expired runs"
expired() { psql_db -tA -c "SELECT count(*) FROM agentstore.agent_runs WHERE tenant_id = '$expired_tenant'"; }
ret_start=$(now_ns)
RETENTION_DAYS=30 setsid bin/agentstore retention run >"$raw/retention.txt" 2>"$raw/retention.log" &
ret_pid=$!
children+=("$ret_pid")
ingest ingest-with-retention
left_after_load=$(expired)
wait "$ret_pid" || { tail -n 20 "$raw/retention.log" >&2; die "retention run failed"; }
ret_ns=$(($(now_ns) - ret_start))
cat "$raw/retention.txt" >&2
[ "$(expired)" = 0 ] || die "retention left expired runs"
kill -TERM -- "-$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true

log "lifecycle: 2. export of $EXPORT_RUNS runs"
export_start=$(now_ns)
/usr/bin/time -v -o "$raw/export-time.txt" bin/agentstore export --tenant "$export_tenant" --out "$tmp/export.ndjson.gz" \
  >"$raw/export.txt" 2>"$raw/export.log" || { tail -n 20 "$raw/export.log" >&2; die "export failed"; }
export_ns=$(($(now_ns) - export_start))
export_rss_kib=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): *//p' "$raw/export-time.txt")
export_lines=$(zcat "$tmp/export.ndjson.gz" | wc -l)
export_bytes=$(stat -c %s "$tmp/export.ndjson.gz")

awk -v a="$(json_num rps "$raw/ingest-alone.json")" -v b="$(json_num rps "$raw/ingest-with-retention.json")" \
  -v pa="$(json_num p99 "$raw/ingest-alone.json")" -v pb="$(json_num p99 "$raw/ingest-with-retention.json")" \
  -v runs="$RUNS" -v ch="$CHILDREN" -v rns="$ret_ns" -v left="$left_after_load" \
  -v eruns="$EXPORT_RUNS" -v ens="$export_ns" -v rss="$export_rss_kib" -v lines="$export_lines" -v bytes="$export_bytes" '
BEGIN {
  rows = runs * (1 + 2 * ch); erows = eruns * (1 + 2 * ch)
  printf "retention_runs=%d\nretention_rows=%d\nretention_s=%.3f\n", runs, rows, rns / 1e9
  printf "retention_runs_per_s=%.1f\nretention_rows_per_s=%.1f\n", runs / (rns / 1e9), rows / (rns / 1e9)
  printf "retention_left_after_load=%d\n", left
  printf "ingest_alone_rps=%s\ningest_with_retention_rps=%s\ningest_throughput_ratio=%.3f\n", a, b, b / a
  printf "ingest_alone_p99_ms=%s\ningest_with_retention_p99_ms=%s\ningest_p99_ratio=%.3f\n", pa, pb, pb / pa
  printf "export_runs=%d\nexport_rows=%d\nexport_lines=%d\nexport_bytes_gz=%d\nexport_s=%.3f\n", eruns, erows, lines, bytes, ens / 1e9
  printf "export_rows_per_s=%.1f\nexport_peak_rss_mib=%.1f\n", erows / (ens / 1e9), rss / 1024
}' >"$raw/lifecycle.env"
cat "$raw/lifecycle.env" >&2
