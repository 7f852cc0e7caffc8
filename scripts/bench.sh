#!/usr/bin/env bash
# bench.sh — `make bench`: every benchmark of agentstore in one run, so that
# the ratios between them compare like with like on a noisy machine.
#
#   scripts/services.sh --durable -- scripts/bench.sh
#
# Needs the PostgreSQL (fsync on) and Redis that scripts/services.sh starts
# and exports (AGENTSTORE_TEST_PG_URL, AGENTSTORE_TEST_REDIS_URL,
# AGENTSTORE_TEST_PG_BIN). It builds bin/agentstore, creates a fresh
# database, applies the migrations, then measures:
#
#   a. store: go test -bench CreateRun (Runs.Create and its raw pgx floor)
#   b. HTTP ingest: POST /v1/runs (10 steps + 10 tool calls), 16 clients
#   b2. OTLP: POST /v1/traces (OTLP JSON) of 100 spans (10 traces), 16
#      clients (spans/s), and of 1,000 spans, one client (p99); batches:
#      POST /v1/ingest of 100 run.create items vs the same items as single
#      POST /v1/runs, 16 clients (items/s and their ratio)
#   c. list: GET /v1/runs?limit=50 over one tenant's 100k seeded runs, 16 clients
#   d. limiter overhead: GET /v1/runs/<unknown id> (404), 32 clients, on three
#      servers — no limiter (RATE_LIMIT_DISABLED=true), memory limiter, Redis
#      limiter — in interleaved rounds, with the Redis commands per request
#      from INFO commandstats, and the round trips per request from a short
#      sample under MONITOR
#   e. WebSocket (tools/wsbench, its own process): publish-to-receive
#      latency to 1,000 subscribers at 100 events/s from two sources — run
#      created (run.created on "runs" while runs are created through
#      POST /v1/runs: includes the HTTP request and a durable commit) and
#      client publish (wsbench.tick on "run:<id>", publish frames of one
#      WebSocket client: the hub alone) — on one server (in-process hub),
#      then on two servers sharing Redis with the events sent on the
#      second; and the server memory per idle connection (5,000
#      connections, VmRSS)
#   f. scale: one tenant's 1M seeded runs and 1M usage rows (30 days), 16
#      clients: GET /v1/runs?limit=50, GET /v1/runs?status=failed&limit=50,
#      GET /v1/runs/stats?groupBy=status&from=-30d and
#      GET /v1/usage/summary?groupBy=day&from=-30d, the two aggregates
#      also with one client (the time of a request alone); the list
#      against c.
#   g. legacy import: a fresh database of the same cluster with the minimal
#      Supabase auth schema, testdata/fixtures/legacy seeded (100k runs,
#      about 1.7M rows; not timed), `migrate apply`, then `legacy import`
#      timed (wall time, peak RSS from /usr/bin/time -v) and `legacy verify`
#      (must pass), against its target (whole import <= 60 s)
#   h. lifecycle (scripts/bench-lifecycle.sh): retention deleting expired runs
#      while HTTP ingest runs (throughput and p99 against ingest alone, the
#      deletion rate), and `agentstore export` (rows/s, peak RSS); knobs
#      BENCH_LIFECYCLE_RUNS (100000), BENCH_LIFECYCLE_EXPORT_RUNS,
#      BENCH_LIFECYCLE_CHILDREN (2)
#
# and writes to $BENCH_OUT (default bench/): raw/ (every raw output),
# results.json, report.md and throughput.svg (tools/benchreport).
# HTTP load comes from tools/loadgen, WebSocket load from
# tools/wsbench; both only ever target 127.0.0.1. Every process
# the script starts is stopped on every exit.
#
# Knobs (environment): BENCH_OUT, BENCH_STORE_BENCHTIME (10s),
# BENCH_DURATION (20s), BENCH_WARMUP (3s), BENCH_CLIENTS (16),
# BENCH_LIST_RUNS (100000), BENCH_LIMITER_CLIENTS (32),
# BENCH_LIMITER_ROUNDS (5), BENCH_LIMITER_DURATION (6s),
# BENCH_LIMITER_WARMUP (2s), BENCH_MONITOR_REQUESTS (500), BENCH_LOG_LEVEL
# (info: the server logs one line per request, as in production),
# BENCH_WS_SUBSCRIBERS (1000), BENCH_WS_RATE (100 events/s; at most 200,
# the servers' WS_BROADCAST_MAX, for the client-publish runs),
# BENCH_WS_DURATION (20s), BENCH_WS_WARMUP (3s), BENCH_WS_IDLE (5000
# connections), BENCH_WS_IDLE_SETTLE (5s), BENCH_WS_IDLE_HOLD (20s),
# BENCH_SCALE_RUNS (1000000), BENCH_SCALE_USAGE (usage rows, as many as
# runs), BENCH_SCALE_SMALL_RUNS (10000: the second tenant whose one-client
# aggregates are the baseline; both tenants' rollups come from a timed
# `rollups rebuild`, its peak RSS too), BENCH_SCALE_DURATION (BENCH_DURATION: the two list routes),
# BENCH_SCALE_AGG_DURATION (15s) and BENCH_SCALE_AGG_WARMUP (5s) (the two
# aggregates, each a scan of the whole tenant), BENCH_LEGACY_RUNS (100000),
# BENCH_LEGACY_IMPORT_FLAGS (none: e.g. --skip-fk-triggers). The
# open-file limit is raised to what the connections need (each server and
# wsbench hold one descriptor per connection).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${AGENTSTORE_TEST_PG_URL:?run through scripts/services.sh --durable -- scripts/bench.sh (make bench)}"
: "${AGENTSTORE_TEST_REDIS_URL:?run through scripts/services.sh --durable -- scripts/bench.sh (make bench)}"
PG_BIN=${AGENTSTORE_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
GO=${GO:-go}
OUT=${BENCH_OUT:-bench}
STORE_BENCHTIME=${BENCH_STORE_BENCHTIME:-10s}
DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-3s}
CLIENTS=${BENCH_CLIENTS:-16}
LIST_RUNS=${BENCH_LIST_RUNS:-100000}
LIMITER_CLIENTS=${BENCH_LIMITER_CLIENTS:-32}
LIMITER_ROUNDS=${BENCH_LIMITER_ROUNDS:-5}
LIMITER_DURATION=${BENCH_LIMITER_DURATION:-6s}
LIMITER_WARMUP=${BENCH_LIMITER_WARMUP:-2s}
MONITOR_REQUESTS=${BENCH_MONITOR_REQUESTS:-500}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
WS_SUBSCRIBERS=${BENCH_WS_SUBSCRIBERS:-1000}
WS_RATE=${BENCH_WS_RATE:-100}
WS_DURATION=${BENCH_WS_DURATION:-20s}
WS_WARMUP=${BENCH_WS_WARMUP:-3s}
WS_IDLE=${BENCH_WS_IDLE:-5000}
WS_IDLE_SETTLE=${BENCH_WS_IDLE_SETTLE:-5s}
WS_IDLE_HOLD=${BENCH_WS_IDLE_HOLD:-20s}
SCALE_RUNS=${BENCH_SCALE_RUNS:-1000000}
SCALE_USAGE=${BENCH_SCALE_USAGE:-$SCALE_RUNS}
SCALE_SMALL_RUNS=${BENCH_SCALE_SMALL_RUNS:-10000}
SCALE_DURATION=${BENCH_SCALE_DURATION:-$DURATION}
SCALE_AGG_DURATION=${BENCH_SCALE_AGG_DURATION:-15s}
SCALE_AGG_WARMUP=${BENCH_SCALE_AGG_WARMUP:-5s}
LEGACY_RUNS=${BENCH_LEGACY_RUNS:-100000}
LEGACY_IMPORT_FLAGS=${BENCH_LEGACY_IMPORT_FLAGS:-}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Only this machine: both services must listen on 127.0.0.1.
case "$AGENTSTORE_TEST_PG_URL" in postgres://*@127.0.0.1:*) ;; *) die "AGENTSTORE_TEST_PG_URL must point at 127.0.0.1" ;; esac
case "$AGENTSTORE_TEST_REDIS_URL" in redis://127.0.0.1:*) ;; *) die "AGENTSTORE_TEST_REDIS_URL must point at 127.0.0.1" ;; esac
case "$OUT" in "" | / | . | ..) die "BENCH_OUT=$OUT is not a usable output directory" ;; esac

start_s=$(date +%s)
tmp=$(mktemp -d /tmp/agentstore-bench.XXXXXX)
db="agentstore_bench_$$"
legacy_db="${db}_legacy"
children=() # process ids (each its own process group, through setsid) still running

# forget PID drops PID from children once it has exited.
forget() {
  local keep=() p
  for p in "${children[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  children=("${keep[@]}")
}

# stop PID stops one child: SIGTERM to its process group, then waits.
stop() {
  kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${children[@]}"; do stop "$p"; done
  "$PG_BIN/psql" -q -X "$AGENTSTORE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  "$PG_BIN/psql" -q -X "$AGENTSTORE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS $legacy_db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  [ "$rc" = 0 ] || log "failed (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run OUTFILE CMD... runs CMD in its own process group with stdout to
# OUTFILE, waiting for it in a way a signal interrupts (the trap then stops it).
run() {
  local out=$1 pid rc=0
  shift
  setsid "$@" >"$out" &
  pid=$!
  children+=("$pid")
  wait "$pid" || rc=$?
  forget "$pid"
  return "$rc"
}

psql_db() { "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }
redis() { redis-cli -u "$AGENTSTORE_TEST_REDIS_URL" "$@"; }
uuid() { cat /proc/sys/kernel/random/uuid; }

# ---------------------------------------------------------------- build
log "building bin/agentstore, loadgen, wsbench, benchreport and the store test binary"
mkdir -p bin
$GO build -o bin/agentstore ./cmd/server
$GO build -o "$tmp/loadgen" ./tools/loadgen
$GO build -o "$tmp/wsbench" ./tools/wsbench
$GO build -o "$tmp/benchreport" ./tools/benchreport
$GO test -c -o "$tmp/store.test" ./internal/store/

rm -rf "$OUT/raw"
mkdir -p "$OUT/raw/limiter" "$OUT/raw/ws" "$OUT/raw/scale" "$OUT/raw/legacy"
raw=$OUT/raw

# ---------------------------------------------------------------- meta
git_commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then git_commit="$git_commit (+ uncommitted changes)"; fi
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit=$git_commit"
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "kernel=$(uname -sr)"
  echo "go=$($GO env GOVERSION)"
  echo "postgres=$("$PG_BIN/psql" -X -tA "$AGENTSTORE_TEST_PG_URL" -c 'SHOW server_version') (fsync $("$PG_BIN/psql" -X -tA "$AGENTSTORE_TEST_PG_URL" -c 'SHOW fsync'))"
  echo "redis=$(redis INFO server | tr -d '\r' | sed -n 's/^redis_version://p')"
  echo "log_level=$LOG_LEVEL"
  echo "store_benchtime=$STORE_BENCHTIME"
  echo "list_seeded_runs=$LIST_RUNS"
  echo "scale_seeded_runs=$SCALE_RUNS"
  echo "scale_seeded_usage=$SCALE_USAGE"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$raw/meta.env"

# ---------------------------------------------------------------- database
log "creating database $db and applying the migrations"
"$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 "$AGENTSTORE_TEST_PG_URL" -c "CREATE DATABASE $db"
DB_URL=$(printf '%s' "$AGENTSTORE_TEST_PG_URL" | sed -E "s#^(postgres://[^/]+)/[^?]*#\1/$db#")

# The servers' environment: nothing inherited that could change what is
# measured, a fresh JWT secret, rate limits out of reach.
unset REDIS_URL RATE_LIMIT_DISABLED RATE_LIMIT_TENANT_OVERRIDES RATE_LIMIT_FAIL_MODE TRUSTED_PROXIES \
  SUPABASE_JWKS_URL JWT_ISSUER JWT_AUDIENCE JWT_TENANT_CLAIM APP_ENV WS_ALLOWED_ORIGINS
export DATABASE_URL=$DB_URL DB_SCHEMA=agentstore LOG_LEVEL=$LOG_LEVEL ADDR=127.0.0.1:0 DATA_DIR=$tmp/data
export SUPABASE_JWT_SECRET
SUPABASE_JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export RATE_LIMIT_MAX=1000000000 RATE_LIMIT_WINDOW_MS=60000
bin/agentstore migrate apply >"$raw/migrate.txt"

ingest_tenant=$(uuid)
list_tenant=$(uuid)
ingest_token=$(bin/agentstore token --tenant "$ingest_tenant" --ttl 2h)
list_token=$(bin/agentstore token --tenant "$list_tenant" --ttl 2h)

# start_server NAME [VAR=VALUE...] starts `agentstore serve` with the extra
# environment and sets SERVER_URL and SERVER_PID once it listens.
start_server() {
  local name=$1 pid line
  shift
  env "$@" setsid bin/agentstore serve >"$tmp/$name.out" 2>"$tmp/$name.log" &
  pid=$!
  children+=("$pid")
  for _ in $(seq 1 300); do
    line=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$tmp/$name.out" 2>/dev/null || true)
    if [ -n "$line" ]; then
      SERVER_URL=${line#listening on }
      SERVER_PID=$pid
      log "server $name on $SERVER_URL"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$tmp/$name.log" >&2
      die "server $name exited before listening"
    fi
    sleep 0.1
  done
  die "server $name did not listen within 30s"
}

# load NAME OUTFILE LOADGEN-ARGS... runs loadgen -json into OUTFILE.
load() {
  local name=$1 out=$2
  shift 2
  run "$out" "$tmp/loadgen" -json -label "$name" -max-failures 0.01 "$@" ||
    { cat "$out" >&2; die "load $name failed"; }
  printf 'bench: %-22s %8.1f req/s  p50 %7.2fms  p99 %7.2fms  (%s requests)\n' "$name" \
    "$(json_num rps "$out")" "$(json_num p50 "$out")" "$(json_num p99 "$out")" "$(json_num requests "$out")" >&2
}

# json_num KEY FILE prints the first number under KEY in a loadgen result.
json_num() { grep -m1 -o "\"$1\": [0-9.e+-]*" "$2" | sed 's/.*: //'; }

# ---------------------------------------------------------------- a. store
log "a. store benchmarks (CreateRun, -benchtime $STORE_BENCHTIME each)"
run "$raw/store-bench.txt" env -C internal/store "$tmp/store.test" \
  -test.run '^$' -test.bench CreateRun -test.benchtime "$STORE_BENCHTIME"
grep -E '^Benchmark' "$raw/store-bench.txt" >&2 || die "no benchmark result in $raw/store-bench.txt"

# ---------------------------------------------------------------- b. ingest
# The same payload as the store benchmarks: 10 steps and 10 tool calls,
# every id client-supplied (and unique per request through the template).
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
cp "$tmp/run.json" "$raw/ingest-body.json"

log "b. HTTP ingest: POST /v1/runs, $CLIENTS clients, $DURATION"
start_server api
api_url=$SERVER_URL api_pid=$SERVER_PID
load ingest "$raw/ingest.json" -url "$api_url/v1/runs" -method POST -body-file "$tmp/run.json" -body-template \
  -token "$ingest_token" -c "$CLIENTS" -d "$DURATION" -warmup "$WARMUP" -expect 201
written=$(psql_db -tA -F' ' -c "SELECT (SELECT count(*) FROM agentstore.agent_runs WHERE tenant_id = '$ingest_tenant'),
  (SELECT count(*) FROM agentstore.agent_steps WHERE tenant_id = '$ingest_tenant'),
  (SELECT count(*) FROM agentstore.tool_calls WHERE tenant_id = '$ingest_tenant')")
echo "ingest_written=$written" >>"$raw/meta.env"
log "ingest wrote runs/steps/tool calls: $written (loadgen sent $(json_num total_requests "$raw/ingest.json") requests)"

# ---------------------------------------------------------------- b2. OTLP and batches
# OTLP: POST /v1/traces in OTLP JSON (the slower of the two decoders), as
# service_role so that LLM spans record usage. A request of 100 spans is 10
# traces of 10 spans (an agent root; 4 chat spans with tokens, each a step
# and a usage record; 3 tool calls; a chain and a retriever step), every id
# fresh per request through the template; 1,000 spans is 100 such traces.
# Batches: POST /v1/ingest with 100 run.create items against the same
# items sent one per POST /v1/runs.
otlp_trace() { # otlp_trace N: the 10 spans of trace N, without a trailing comma
  local t="{{traceid:t$1}}" r="{{spanid:t$1r}}" i
  span() { # span ID PARENT NAME ATTRS
    printf '{"traceId":"%s","spanId":"%s","parentSpanId":"%s","name":"%s","kind":1,"startTimeUnixNano":"{{nowns}}","endTimeUnixNano":"{{nowns}}","attributes":[%s]}' \
      "$t" "$1" "$2" "$3" "$4"
  }
  kv() { printf '{"key":"%s","value":{"stringValue":"%s"}}' "$1" "$2"; }
  span "$r" "" "invoke_agent planner" "$(kv gen_ai.operation.name invoke_agent),$(kv gen_ai.agent.name planner)"
  for i in 1 2 3 4; do
    printf ','
    span "{{spanid:t$1c$i}}" "$r" "chat gpt-4o" "$(kv gen_ai.operation.name chat),$(kv gen_ai.response.model gpt-4o),"'{"key":"gen_ai.usage.input_tokens","value":{"intValue":"120"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"40"}}'
  done
  for i in 1 2 3; do
    printf ','
    span "{{spanid:t$1x$i}}" "$r" "execute_tool search" "$(kv gen_ai.operation.name execute_tool),$(kv gen_ai.tool.name search),$(kv gen_ai.tool.call.arguments '{\"q\":\"weather\"}')"
  done
  printf ','
  span "{{spanid:t$1h}}" "$r" "RunnableSequence" "$(kv openinference.span.kind CHAIN)"
  printf ','
  span "{{spanid:t$1v}}" "$r" "VectorStoreRetriever" "$(kv openinference.span.kind RETRIEVER)"
}
otlp_body() { # otlp_body TRACES
  local n
  printf '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"bench"}}]},"scopeSpans":[{"spans":['
  for n in $(seq 1 "$1"); do
    [ "$n" = 1 ] || printf ','
    otlp_trace "$n"
  done
  printf ']}]}]}\n'
}
otlp_body 10 >"$tmp/otlp-100.json"
otlp_body 100 >"$tmp/otlp-1000.json"
cp "$tmp/otlp-100.json" "$raw/otlp-100-body.json"
otlp_tenant=$(uuid)
otlp_token=$(bin/agentstore token --tenant "$otlp_tenant" --role service_role --ttl 2h)
mkdir -p "$raw/otlp"
log "b2. OTLP: POST /v1/traces, 100 spans per request, $CLIENTS clients, $DURATION"
load otlp-100 "$raw/otlp/spans-100.json" -url "$api_url/v1/traces" -method POST -body-file "$tmp/otlp-100.json" -body-template \
  -token "$otlp_token" -header "X-Tenant-ID:$otlp_tenant" -header "Content-Type:application/json" \
  -c "$CLIENTS" -d "$DURATION" -warmup "$WARMUP" -expect 200
log "b2. OTLP: POST /v1/traces, 1,000 spans per request, 1 client, $DURATION"
load otlp-1000 "$raw/otlp/spans-1000.json" -url "$api_url/v1/traces" -method POST -body-file "$tmp/otlp-1000.json" -body-template \
  -token "$otlp_token" -header "X-Tenant-ID:$otlp_tenant" -header "Content-Type:application/json" \
  -c 1 -d "$DURATION" -warmup "$WARMUP" -timeout 30s -expect 200
otlp_written=$(psql_db -tA -F' ' -c "SELECT (SELECT count(*) FROM agentstore.agent_steps WHERE tenant_id = '$otlp_tenant'),
  (SELECT count(*) FROM agentstore.tool_calls WHERE tenant_id = '$otlp_tenant'),
  (SELECT count(*) FROM agentstore.usage_metrics WHERE tenant_id = '$otlp_tenant')")
echo "otlp_written=$otlp_written" >>"$raw/meta.env"
item='{"agentName":"bench-agent","status":"running","input":{"prompt":"hello"},"model":"gpt-4o-mini","startedAt":"{{now}}"}'
printf '%s\n' "$item" >"$tmp/ingest-single.json"
{
  printf '{"batch":['
  for i in $(seq 1 100); do
    [ "$i" = 1 ] || printf ','
    printf '{"id":"{{uuid}}","type":"run.create","body":%s}' "$item"
  done
  printf ']}\n'
} >"$tmp/ingest-batch.json"
log "b2. batches: POST /v1/ingest (100 run.create items) vs POST /v1/runs, $CLIENTS clients, $DURATION each"
load ingest-batch "$raw/otlp/ingest-batch.json" -url "$api_url/v1/ingest" -method POST -body-file "$tmp/ingest-batch.json" -body-template \
  -token "$ingest_token" -c "$CLIENTS" -d "$DURATION" -warmup "$WARMUP" -timeout 30s -expect 207
load ingest-single "$raw/otlp/ingest-single.json" -url "$api_url/v1/runs" -method POST -body-file "$tmp/ingest-single.json" -body-template \
  -token "$ingest_token" -c "$CLIENTS" -d "$DURATION" -warmup "$WARMUP" -expect 201
awk -v a="$(json_num rps "$raw/otlp/spans-100.json")" -v p="$(json_num p99 "$raw/otlp/spans-1000.json")" \
  -v b="$(json_num rps "$raw/otlp/ingest-batch.json")" -v s="$(json_num rps "$raw/otlp/ingest-single.json")" 'BEGIN {
  printf "bench: otlp                   %8.0f spans/s at 16 clients x 100 spans (target >= 5000); p99 of a 1,000-span request %.1f ms (target <= 300)\n", a * 100, p
  printf "bench: ingest                 %8.0f items/s in 100-item batches vs %.0f as single requests: %.1fx\n", b * 100, s, (s > 0 ? b * 100 / s : 0)
}' | tee -a "$raw/otlp/summary.txt" >&2

# ---------------------------------------------------------------- c. list
log "c. list: seeding $LIST_RUNS runs for one tenant"
psql_db <<SQL
INSERT INTO agentstore.agent_runs
  (id, tenant_id, created_at, agent_name, status, input, metadata, model, started_at, ended_at, updated_at)
SELECT gen_random_uuid(), '$list_tenant', now() - make_interval(secs => g), 'bench-agent', 'succeeded',
  '{"prompt":"hello"}', '{"source":"bench"}', 'gpt-4o-mini',
  now() - make_interval(secs => g), now() - make_interval(secs => g) + interval '1 second', now() - make_interval(secs => g)
FROM generate_series(1, $LIST_RUNS) AS g;
ANALYZE agentstore.agent_runs;
SQL
log "c. list: GET /v1/runs?limit=50, $CLIENTS clients, $DURATION"
load list "$raw/list.json" -url "$api_url/v1/runs?limit=50" -token "$list_token" \
  -c "$CLIENTS" -d "$DURATION" -warmup "$WARMUP" -expect 200
stop "$api_pid"

# ---------------------------------------------------------------- d. limiter
route="/v1/runs/$(uuid)" # no such run: 404 after auth, the limiter and one lookup
echo "limiter_route=GET /v1/runs/{unknown id} (404)" >>"$raw/meta.env"
log "d. limiter overhead: GET $route, $LIMITER_CLIENTS clients, $LIMITER_ROUNDS round(s) of $LIMITER_DURATION per configuration"
start_server none RATE_LIMIT_DISABLED=true
url_none=$SERVER_URL
start_server memory
url_memory=$SERVER_URL
start_server redis REDIS_URL="$AGENTSTORE_TEST_REDIS_URL"
url_redis=$SERVER_URL
configs=(none memory redis)
for r in $(seq 1 "$LIMITER_ROUNDS"); do
  for k in 0 1 2; do
    cfg=${configs[$(((r - 1 + k) % 3))]} # rotate the order from round to round
    url_var=url_$cfg
    if [ "$cfg" = redis ]; then redis INFO commandstats >"$raw/limiter/redis-r$r.before"; fi
    load "limiter-$cfg-r$r" "$raw/limiter/$cfg-r$r.json" -url "${!url_var}$route" -token "$ingest_token" \
      -c "$LIMITER_CLIENTS" -d "$LIMITER_DURATION" -warmup "$LIMITER_WARMUP" -expect 404
    if [ "$cfg" = redis ]; then redis INFO commandstats >"$raw/limiter/redis-r$r.after"; fi
  done
done

# Round trips: INFO commandstats also counts the commands a Lua script runs
# inside Redis, so a short sample under MONITOR (which marks those "lua")
# tells the commands the server sent over the network per request.
log "d. Redis round trips: MONITOR during $MONITOR_REQUESTS requests"
setsid stdbuf -oL redis-cli -u "$AGENTSTORE_TEST_REDIS_URL" MONITOR >"$raw/limiter/monitor.txt" 2>/dev/null &
monitor_pid=$!
children+=("$monitor_pid")
sleep 0.5
load monitor-sample "$raw/limiter/monitor-sample.json" -url "$url_redis$route" -token "$ingest_token" \
  -c 4 -n "$MONITOR_REQUESTS" -d 60s -warmup 0s -expect 404
sleep 0.5
stop "$monitor_pid"
for p in "${children[@]}"; do stop "$p"; done

# ---------------------------------------------------------------- e. WebSocket
# Each server and wsbench hold one descriptor per connection: raise the
# soft limit (inherited by the servers started below) when it is short.
need_fds=$((WS_IDLE > WS_SUBSCRIBERS ? WS_IDLE : WS_SUBSCRIBERS))
need_fds=$((need_fds + 1024))
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need_fds" ]; then
  ulimit -Sn "$need_fds" 2>/dev/null || ulimit -n "$need_fds" 2>/dev/null ||
    die "the WebSocket scenarios need $need_fds open files; RLIMIT_NOFILE is $(ulimit -Sn) (hard $(ulimit -Hn))"
fi
ws_tenant=$(uuid)
ws_token=$(bin/agentstore token --tenant "$ws_tenant" --ttl 2h)
{
  echo "ws_subscribers=$WS_SUBSCRIBERS"
  echo "ws_rate=$WS_RATE"
  echo "ws_idle=$WS_IDLE"
  echo "nofile=$(ulimit -Sn)"
} >>"$raw/meta.env"

# wsbench_run NAME OUTFILE WSBENCH-ARGS... runs wsbench -json into OUTFILE.
wsbench_run() {
  local name=$1 out=$2
  shift 2
  run "$out" "$tmp/wsbench" -json -label "$name" "$@" || { cat "$out" >&2; die "wsbench $name failed"; }
}

# ws_line NAME FILE prints the figures of a wsbench latency result.
ws_line() {
  printf 'bench: %-22s p50 %7.2fms  p99 %7.2fms  delivered %s of %s\n' "$1" "$(json_num p50 "$2")" \
    "$(json_num p99 "$2")" "$(json_num delivered "$2")" "$(json_num expected "$2")" >&2
}

# server_pid PID checks that PID is the server itself (setsid did not
# fork), whose memory and CPU time wsbench reads.
server_pid() {
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = agentstore ] || die "process $1 is not agentstore"
  echo "$1"
}

# Each latency scenario runs twice on the same servers: events from runs
# created (-source http), then from a WebSocket client's publish frames
# (-source ws).
log "e. WebSocket, one instance: $WS_SUBSCRIBERS subscribers, $WS_RATE events/s, $WS_DURATION after $WS_WARMUP"
start_server ws-single RATE_LIMIT_DISABLED=true
pid=$(server_pid "$SERVER_PID")
wsbench_run ws-single "$raw/ws/single.json" -ws "$SERVER_URL" -token "$ws_token" -server-pid "$pid" \
  -subscribers "$WS_SUBSCRIBERS" -rate "$WS_RATE" -d "$WS_DURATION" -warmup "$WS_WARMUP" -source http
ws_line ws-single "$raw/ws/single.json"
wsbench_run ws-single-publish "$raw/ws/single-publish.json" -ws "$SERVER_URL" -token "$ws_token" -server-pid "$pid" \
  -subscribers "$WS_SUBSCRIBERS" -rate "$WS_RATE" -d "$WS_DURATION" -warmup "$WS_WARMUP" -source ws
ws_line ws-single-publish "$raw/ws/single-publish.json"
stop "$pid"

log "e. WebSocket, two instances sharing Redis: subscribers on the first, events sent on the second"
start_server ws-a RATE_LIMIT_DISABLED=true REDIS_URL="$AGENTSTORE_TEST_REDIS_URL"
url_a=$SERVER_URL pid_a=$(server_pid "$SERVER_PID")
start_server ws-b RATE_LIMIT_DISABLED=true REDIS_URL="$AGENTSTORE_TEST_REDIS_URL"
url_b=$SERVER_URL pid_b=$(server_pid "$SERVER_PID")
wsbench_run ws-cross "$raw/ws/cross.json" -ws "$url_a" -api "$url_b" -token "$ws_token" -server-pid "$pid_a,$pid_b" \
  -subscribers "$WS_SUBSCRIBERS" -rate "$WS_RATE" -d "$WS_DURATION" -warmup "$WS_WARMUP" -source http
ws_line ws-cross "$raw/ws/cross.json"
wsbench_run ws-cross-publish "$raw/ws/cross-publish.json" -ws "$url_a" -api "$url_b" -token "$ws_token" -server-pid "$pid_a,$pid_b" \
  -subscribers "$WS_SUBSCRIBERS" -rate "$WS_RATE" -d "$WS_DURATION" -warmup "$WS_WARMUP" -source ws
ws_line ws-cross-publish "$raw/ws/cross-publish.json"
stop "$pid_a"
stop "$pid_b"

log "e. WebSocket, idle connections: $WS_IDLE held for $WS_IDLE_HOLD on a fresh server"
start_server ws-idle RATE_LIMIT_DISABLED=true
pid=$(server_pid "$SERVER_PID")
wsbench_run ws-idle "$raw/ws/idle.json" -idle "$WS_IDLE" -ws "$SERVER_URL" -token "$ws_token" -server-pid "$pid" \
  -settle "$WS_IDLE_SETTLE" -hold "$WS_IDLE_HOLD"
printf 'bench: %-22s %s KiB RSS per connection (%s connections)\n' ws-idle "$(json_num kib_per_conn "$raw/ws/idle.json")" \
  "$(json_num connections "$raw/ws/idle.json")" >&2
stop "$pid"

# ---------------------------------------------------------------- f. scale
# One tenant's SCALE_RUNS runs spread over the last 30 days (5 agents, 5%
# failed, 2% running) and SCALE_USAGE usage rows over the same days, each
# seeded with one INSERT ... SELECT generate_series, then VACUUM ANALYZE
# (the steady state autovacuum would reach). After the WebSocket scenarios,
# so that the extra rows do not weigh on them.
scale_tenant=$(uuid)
scale_token=$(bin/agentstore token --tenant "$scale_tenant" --ttl 2h)
log "f. scale: seeding $SCALE_RUNS runs and $SCALE_USAGE usage rows for one tenant"
seed_start=$(date +%s)
psql_db <<SQL
INSERT INTO agentstore.agent_runs
  (id, tenant_id, created_at, agent_name, status, input, output, error, metadata, model, started_at, ended_at, updated_at)
SELECT gen_random_uuid(), '$scale_tenant', ts, (ARRAY['support-bot','researcher','coder','planner','summarizer'])[1 + g % 5],
  CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 50 = 1 THEN 'running' ELSE 'succeeded' END,
  '{"prompt":"hello"}', CASE WHEN g % 20 <> 0 AND g % 50 <> 1 THEN '{"text":"hi there"}'::jsonb END,
  CASE WHEN g % 20 = 0 THEN 'tool failure' END, '{"source":"bench"}',
  (ARRAY['gpt-4o','gpt-4o-mini','claude-sonnet-4','llama-3.1-70b'])[1 + g % 4],
  ts, CASE WHEN g % 50 <> 1 THEN ts + make_interval(secs => g % 600) END, ts
FROM (SELECT g, now() - (g * interval '30 days') / $SCALE_RUNS AS ts FROM generate_series(1, $SCALE_RUNS) AS g) AS s;
INSERT INTO agentstore.usage_metrics
  (id, tenant_id, model, input_tokens, output_tokens, cached_input_tokens, total_tokens, cost_usd, recorded_at)
SELECT gen_random_uuid(), '$scale_tenant', (ARRAY['gpt-4o','gpt-4o-mini','claude-sonnet-4','llama-3.1-70b'])[1 + g % 4],
  100 + g % 900, 50 + g % 400, g % 100, 150 + g % 900 + g % 400, ((g % 1000) / 100000.0)::numeric(18,6),
  now() - (g * interval '30 days') / $SCALE_USAGE
FROM generate_series(1, $SCALE_USAGE) AS g;
SQL
psql_db -c 'VACUUM (ANALYZE) agentstore.agent_runs' -c 'VACUUM (ANALYZE) agentstore.usage_metrics'
echo "scale_seed_s=$(($(date +%s) - seed_start))" >>"$raw/meta.env"
# The same shape at SCALE_SMALL_RUNS for a second tenant: the one-client
# aggregates there are the baseline of the ones at SCALE_RUNS (SPEC 15:
# the rollups' cost does not grow with the rows).
small_tenant=$(uuid)
small_token=$(bin/agentstore token --tenant "$small_tenant" --ttl 2h)
psql_db <<SQL
INSERT INTO agentstore.agent_runs (id, tenant_id, created_at, agent_name, status, started_at, ended_at, updated_at)
SELECT gen_random_uuid(), '$small_tenant', ts, (ARRAY['support-bot','researcher','coder','planner','summarizer'])[1 + g % 5],
  CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 50 = 1 THEN 'running' ELSE 'succeeded' END,
  ts, CASE WHEN g % 50 <> 1 THEN ts + make_interval(secs => g % 600) END, ts
FROM (SELECT g, now() - (g * interval '30 days') / $SCALE_SMALL_RUNS AS ts FROM generate_series(1, $SCALE_SMALL_RUNS) AS g) AS s;
INSERT INTO agentstore.usage_metrics (id, tenant_id, model, input_tokens, output_tokens, total_tokens, cost_usd, recorded_at)
SELECT gen_random_uuid(), '$small_tenant', (ARRAY['gpt-4o','gpt-4o-mini','claude-sonnet-4','llama-3.1-70b'])[1 + g % 4],
  100, 50, 150, 0.001, now() - (g * interval '30 days') / $SCALE_SMALL_RUNS
FROM generate_series(1, $SCALE_SMALL_RUNS) AS g;
SQL
# The rollups of the seeded rows, as after a bulk load: `rollups rebuild`,
# timed with its peak RSS.
log "f. scale: rollups rebuild"
rebuild_start=$(date +%s%N)
if [ -x /usr/bin/time ]; then
  /usr/bin/time -v -o "$raw/scale/rebuild-time.txt" bin/agentstore rollups rebuild >"$raw/scale/rebuild.txt" 2>"$raw/scale/rebuild.log" ||
    die "rollups rebuild failed"
  echo "scale_rebuild_rss_kib=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): *//p' "$raw/scale/rebuild-time.txt")" >>"$raw/meta.env"
else
  bin/agentstore rollups rebuild >"$raw/scale/rebuild.txt" 2>"$raw/scale/rebuild.log" || die "rollups rebuild failed"
fi
echo "scale_rebuild_ms=$((($(date +%s%N) - rebuild_start) / 1000000))" >>"$raw/meta.env"
psql_db -c 'VACUUM (ANALYZE) agentstore.run_rollups' -c 'VACUUM (ANALYZE) agentstore.usage_rollups'
since=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)
echo "scale_from=$since" >>"$raw/meta.env"
start_server scale
scale_url=$SERVER_URL
log "f. scale: list routes, $CLIENTS clients, $SCALE_DURATION; aggregates $SCALE_AGG_DURATION"
load scale-list "$raw/scale/list.json" -url "$scale_url/v1/runs?limit=50" -token "$scale_token" \
  -c "$CLIENTS" -d "$SCALE_DURATION" -warmup "$WARMUP" -expect 200
load scale-failed "$raw/scale/failed.json" -url "$scale_url/v1/runs?status=failed&limit=50" -token "$scale_token" \
  -c "$CLIENTS" -d "$SCALE_DURATION" -warmup "$WARMUP" -expect 200
load scale-stats "$raw/scale/stats.json" -url "$scale_url/v1/runs/stats?groupBy=status&from=$since" -token "$scale_token" \
  -c "$CLIENTS" -d "$SCALE_AGG_DURATION" -warmup "$SCALE_AGG_WARMUP" -timeout 60s -expect 200
load scale-usage "$raw/scale/usage.json" -url "$scale_url/v1/usage/summary?groupBy=day&from=$since" -token "$scale_token" \
  -c "$CLIENTS" -d "$SCALE_AGG_DURATION" -warmup "$SCALE_AGG_WARMUP" -timeout 60s -expect 200
# The same aggregates one request at a time: how long one takes alone.
load scale-stats-1 "$raw/scale/stats-1.json" -url "$scale_url/v1/runs/stats?groupBy=status&from=$since" -token "$scale_token" \
  -c 1 -d "$SCALE_AGG_DURATION" -warmup 2s -timeout 60s -expect 200
load scale-usage-1 "$raw/scale/usage-1.json" -url "$scale_url/v1/usage/summary?groupBy=day&from=$since" -token "$scale_token" \
  -c 1 -d "$SCALE_AGG_DURATION" -warmup 2s -timeout 60s -expect 200
load scale-small-stats-1 "$raw/scale/small-stats-1.json" -url "$scale_url/v1/runs/stats?groupBy=status&from=$since" -token "$small_token" \
  -c 1 -d "$SCALE_AGG_DURATION" -warmup 2s -timeout 60s -expect 200
load scale-small-usage-1 "$raw/scale/small-usage-1.json" -url "$scale_url/v1/usage/summary?groupBy=day&from=$since" -token "$small_token" \
  -c 1 -d "$SCALE_AGG_DURATION" -warmup 2s -timeout 60s -expect 200
# One answer of each aggregate, to show what was computed.
curl -fsS -H "Authorization: Bearer $scale_token" "$scale_url/v1/runs/stats?groupBy=status&from=$since" >"$raw/scale/stats-body.json" || true
curl -fsS -H "Authorization: Bearer $scale_token" "$scale_url/v1/usage/summary?groupBy=day&from=$since" >"$raw/scale/usage-body.json" || true
stop "$SERVER_PID"

# ---------------------------------------------------------------- g. legacy import
# A fresh database of the same cluster: the part of Supabase the legacy
# fixtures need (roles, auth.users, auth.jwt()), the legacy schema and its
# seed (not timed), the migrations, then `legacy import` timed and
# `legacy verify`, which must pass.
log "g. legacy import: database $legacy_db, seeding $LEGACY_RUNS legacy runs"
"$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 "$AGENTSTORE_TEST_PG_URL" -c "CREATE DATABASE $legacy_db"
LEGACY_URL=$(printf '%s' "$AGENTSTORE_TEST_PG_URL" | sed -E "s#^(postgres://[^/]+)/[^?]*#\1/$legacy_db#")
psql_legacy() { "$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 "$LEGACY_URL" "$@"; }
psql_legacy <<'SQL'
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END $$;
CREATE SCHEMA auth;
CREATE TABLE auth.users (
  instance_id uuid, id uuid PRIMARY KEY, aud varchar(255), role varchar(255),
  email varchar(255) UNIQUE, raw_app_meta_data jsonb, raw_user_meta_data jsonb,
  created_at timestamptz, updated_at timestamptz);
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE SET search_path = '' AS $$
  select nullif(current_setting('request.jwt.claims', true), '')::jsonb $$;
SQL
seed_start=$(date +%s)
psql_legacy -f testdata/fixtures/legacy/schema.sql
psql_legacy -v runs="$LEGACY_RUNS" -f testdata/fixtures/legacy/seed.sql
psql_legacy -c 'ANALYZE'
legacy_seed_s=$(($(date +%s) - seed_start))
legacy_counts=$(psql_legacy -tA -F' ' -c "SELECT (SELECT count(*) FROM public.agent_runs), (SELECT count(*) FROM public.agent_steps),
  (SELECT count(*) FROM public.tool_calls), (SELECT count(*) FROM public.audit_logs), (SELECT count(*) FROM public.usage_metrics),
  (SELECT count(*) FROM public.system_health)")
read -r n_runs n_steps n_tools n_audit n_usage n_health <<<"$legacy_counts"
legacy_rows=$((n_runs + n_steps + n_tools + n_audit + n_usage + n_health))
log "g. legacy import: seeded $legacy_rows legacy rows in ${legacy_seed_s}s; migrate apply"
DATABASE_URL=$LEGACY_URL bin/agentstore migrate apply >"$raw/legacy/migrate.txt"

# Peak RSS: /usr/bin/time -v (Debian package time, installed when missing
# and possible), else the importer's VmHWM read from /proc while it runs.
if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing the Debian package time"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >&2; } || true
fi
log "g. legacy import: legacy import ${LEGACY_IMPORT_FLAGS:-(default flags)}"
# shellcheck disable=SC2086 # LEGACY_IMPORT_FLAGS is a list of flags
import_cmd=(env DATABASE_URL="$LEGACY_URL" bin/agentstore legacy import $LEGACY_IMPORT_FLAGS)
rss_source=
import_start=$(date +%s%N)
if [ -x /usr/bin/time ]; then
  rss_source="/usr/bin/time -v"
  run "$raw/legacy/import.txt" /usr/bin/time -v -o "$raw/legacy/time.txt" "${import_cmd[@]}" 2>"$raw/legacy/import.log" ||
    { tail -n 20 "$raw/legacy/import.log" >&2; die "legacy import failed"; }
  max_rss_kib=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): *//p' "$raw/legacy/time.txt")
else
  rss_source="VmHWM of /proc/PID/status, sampled every 0.1s"
  setsid "${import_cmd[@]}" >"$raw/legacy/import.txt" 2>"$raw/legacy/import.log" &
  import_pid=$!
  children+=("$import_pid")
  max_rss_kib=0
  while kill -0 "$import_pid" 2>/dev/null; do
    # env execs the server: the process keeps its id.
    hwm=$(sed -n 's/^VmHWM: *\([0-9]*\) kB/\1/p' "/proc/$import_pid/status" 2>/dev/null || true)
    if [ -n "$hwm" ] && [ "$hwm" -gt "$max_rss_kib" ]; then max_rss_kib=$hwm; fi
    sleep 0.1
  done
  rc=0
  wait "$import_pid" || rc=$?
  forget "$import_pid"
  [ "$rc" = 0 ] || { tail -n 20 "$raw/legacy/import.log" >&2; die "legacy import failed (exit $rc)"; }
fi
import_ns=$(($(date +%s%N) - import_start))
verify_start=$(date +%s%N)
verify_rc=0
run "$raw/legacy/verify.txt" env DATABASE_URL="$LEGACY_URL" bin/agentstore legacy verify 2>"$raw/legacy/verify.log" || verify_rc=$?
verify_ns=$(($(date +%s%N) - verify_start))
quarantined=$(psql_legacy -tA -c "SELECT count(*) FROM agentstore.legacy_quarantine" 2>/dev/null || echo "")
{
  echo "runs_param=$LEGACY_RUNS"
  echo "flags=$LEGACY_IMPORT_FLAGS"
  echo "seed_s=$legacy_seed_s"
  echo "rows=$legacy_rows"
  echo "rows_agent_runs=$n_runs"
  echo "rows_agent_steps=$n_steps"
  echo "rows_tool_calls=$n_tools"
  echo "rows_audit_logs=$n_audit"
  echo "rows_usage_metrics=$n_usage"
  echo "rows_system_health=$n_health"
  echo "quarantined=$quarantined"
  echo "wall_s=$(awk -v n="$import_ns" 'BEGIN { printf "%.3f", n / 1e9 }')"
  echo "max_rss_kib=$max_rss_kib"
  echo "rss_source=$rss_source"
  echo "verify_s=$(awk -v n="$verify_ns" 'BEGIN { printf "%.3f", n / 1e9 }')"
  echo "verify_exit=$verify_rc"
} >"$raw/legacy/legacy.env"
printf 'bench: %-22s %s rows in %ss, peak RSS %s KiB, verify exit %s\n' legacy-import "$legacy_rows" \
  "$(sed -n 's/^wall_s=//p' "$raw/legacy/legacy.env")" "$max_rss_kib" "$verify_rc" >&2
[ "$verify_rc" = 0 ] || { cat "$raw/legacy/verify.txt" >&2; die "legacy verify failed (exit $verify_rc)"; }
"$PG_BIN/psql" -q -X "$AGENTSTORE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS $legacy_db WITH (FORCE)"

# ---------------------------------------------------------------- h. lifecycle
# Retention under ingest and export (scripts/bench-lifecycle.sh, its own
# database; results in raw/lifecycle/lifecycle.env).
log "h. lifecycle: retention under ingest, export"
BENCH_OUT=$OUT BENCH_CLIENTS=$CLIENTS BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_LOG_LEVEL=$LOG_LEVEL \
  scripts/bench-lifecycle.sh

# ---------------------------------------------------------------- i. report
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/meta.env"
echo "wall_s=$(($(date +%s) - start_s))" >>"$raw/meta.env"
"$tmp/benchreport" collect -raw "$raw" -out "$OUT/results.json"
"$tmp/benchreport" render -in "$OUT/results.json" -md "$OUT/report.md" -svg "$OUT/throughput.svg"
log "wrote $OUT/report.md, $OUT/throughput.svg and $OUT/results.json in $(($(date +%s) - start_s))s"
cat "$OUT/report.md"
