#!/usr/bin/env bash
# soak.sh — `make soak`: a long, moderate, mixed load on one agentstore
# server, checking that its memory, goroutines, open files and database
# connections do not grow with time. Not part of `make test`.
#
#   scripts/services.sh -- scripts/soak.sh
#   SOAK_DURATION=90s scripts/services.sh -- scripts/soak.sh   # a quick check
#
# Needs the PostgreSQL and Redis that scripts/services.sh starts and
# exports (AGENTSTORE_TEST_PG_URL, AGENTSTORE_TEST_REDIS_URL,
# AGENTSTORE_TEST_PG_BIN). It builds the server and tools/soak
# into a temporary directory, creates a fresh database, applies the
# migrations, starts `agentstore serve` on PostgreSQL with REDIS_URL (Redis
# rate limiter and realtime hub; limits out of reach), and runs the soak
# tool against it: REST (runs created with steps, steps and tool calls
# appended, runs patched, listed, fetched, stats) and WebSocket clients
# connecting, subscribing, publishing and disconnecting, for
# SOAK_DURATION, sampling the server every SOAK_SAMPLE. The tool prints
# the samples and, per metric, the mean of the last third of the samples
# after the warm-up against the first third; the exit status is 1 on a
# trend (more than SOAK_MAX_GROWTH, plus a small absolute slack) or when
# the load failed. Everything only ever targets 127.0.0.1, and every
# process the script starts is stopped on every exit.
#
# Knobs (environment): SOAK_DURATION (10m), SOAK_SAMPLE (10s), SOAK_WARMUP
# (a sixth of the duration), SOAK_RATE (20 REST requests/s), SOAK_WORKERS
# (8), SOAK_WS_CLIENTS (20 connections at a time), SOAK_PUBLISH_RATE (5
# client events/s), SOAK_MAX_GROWTH (0.20), SOAK_LOG_LEVEL (info),
# SOAK_OUT (unset: nothing kept; else a directory that receives
# soak.json, soak.txt and the server's log).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${AGENTSTORE_TEST_PG_URL:?run through scripts/services.sh -- scripts/soak.sh (make soak)}"
: "${AGENTSTORE_TEST_REDIS_URL:?run through scripts/services.sh -- scripts/soak.sh (make soak)}"
PG_BIN=${AGENTSTORE_TEST_PG_BIN:-/usr/lib/postgresql/15/bin}
GO=${GO:-go}
DURATION=${SOAK_DURATION:-10m}
SAMPLE=${SOAK_SAMPLE:-10s}
WARMUP=${SOAK_WARMUP:-0s}
RATE=${SOAK_RATE:-20}
WORKERS=${SOAK_WORKERS:-8}
WS_CLIENTS=${SOAK_WS_CLIENTS:-20}
PUBLISH_RATE=${SOAK_PUBLISH_RATE:-5}
MAX_GROWTH=${SOAK_MAX_GROWTH:-0.20}
LOG_LEVEL=${SOAK_LOG_LEVEL:-info}
OUT=${SOAK_OUT:-}

log() { printf 'soak: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Only this machine: both services must listen on 127.0.0.1.
case "$AGENTSTORE_TEST_PG_URL" in postgres://*@127.0.0.1:*) ;; *) die "AGENTSTORE_TEST_PG_URL must point at 127.0.0.1" ;; esac
case "$AGENTSTORE_TEST_REDIS_URL" in redis://127.0.0.1:*) ;; *) die "AGENTSTORE_TEST_REDIS_URL must point at 127.0.0.1" ;; esac
case "$OUT" in / | . | ..) die "SOAK_OUT=$OUT is not a usable output directory" ;; esac

# The whole run is bounded: the tool's own duration plus this much for
# building, starting and stopping, after which it is stopped.
duration_s=$(printf '%s' "$DURATION" | awk '/^[0-9]+s$/ {print $0+0; exit} /^[0-9]+m$/ {print $0*60; exit} /^[0-9]+h$/ {print $0*3600; exit} {print -1}')
[ "$duration_s" -gt 0 ] || die "SOAK_DURATION=$DURATION: use a whole number of s, m or h (90s, 10m, 1h)"
[ "$duration_s" -le 7200 ] || die "SOAK_DURATION=$DURATION: at most 2h"

tmp=$(mktemp -d /tmp/agentstore-soak.XXXXXX)
db="agentstore_soak_$$"
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
  if [ -n "$OUT" ] && [ -f "$tmp/server.log" ]; then cp "$tmp/server.log" "$OUT/server.log" 2>/dev/null || true; fi
  "$PG_BIN/psql" -q -X "$AGENTSTORE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  [ "$rc" = 0 ] || log "failed (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
log "building the server and the soak tool"
$GO build -o "$tmp/agentstore" ./cmd/server
$GO build -o "$tmp/soak" ./tools/soak
[ -z "$OUT" ] || mkdir -p "$OUT"

# ---------------------------------------------------------------- database
log "creating database $db and applying the migrations"
"$PG_BIN/psql" -q -X -v ON_ERROR_STOP=1 "$AGENTSTORE_TEST_PG_URL" -c "CREATE DATABASE $db"
DB_URL=$(printf '%s' "$AGENTSTORE_TEST_PG_URL" | sed -E "s#^(postgres://[^/]+)/[^?]*#\1/$db#")

# The server's environment: nothing inherited that could change what is
# measured, a fresh JWT secret, rate limits out of reach.
unset RATE_LIMIT_DISABLED RATE_LIMIT_TENANT_OVERRIDES RATE_LIMIT_FAIL_MODE TRUSTED_PROXIES \
  SUPABASE_JWKS_URL JWT_ISSUER JWT_AUDIENCE JWT_TENANT_CLAIM APP_ENV WS_ALLOWED_ORIGINS
export DATABASE_URL=$DB_URL DB_SCHEMA=agentstore LOG_LEVEL=$LOG_LEVEL ADDR=127.0.0.1:0 DATA_DIR=$tmp/data
export REDIS_URL=$AGENTSTORE_TEST_REDIS_URL
export SUPABASE_JWT_SECRET
SUPABASE_JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export RATE_LIMIT_MAX=1000000000 RATE_LIMIT_WINDOW_MS=60000
"$tmp/agentstore" migrate apply >"$tmp/migrate.txt" 2>&1 || { cat "$tmp/migrate.txt" >&2; die "migrate apply failed"; }
token=$("$tmp/agentstore" token --tenant "$(cat /proc/sys/kernel/random/uuid)" --ttl "$((duration_s + 3600))s")

# ---------------------------------------------------------------- server
setsid "$tmp/agentstore" serve >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
children+=("$server_pid")
server_url=
for _ in $(seq 1 300); do
  line=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$tmp/server.out" 2>/dev/null || true)
  if [ -n "$line" ]; then server_url=${line#listening on }; break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 20 "$tmp/server.log" >&2
    die "the server exited before listening"
  fi
  sleep 0.1
done
[ -n "$server_url" ] || die "the server did not listen within 30s"
# The tool reads this process's memory: it must be the server itself.
[ "$(cat "/proc/$server_pid/comm" 2>/dev/null)" = agentstore ] || die "process $server_pid is not the server"
log "server $server_pid on $server_url (PostgreSQL database $db, Redis)"

# ---------------------------------------------------------------- soak
json_out=()
[ -z "$OUT" ] || json_out=(-json-out "$OUT/soak.json")
rc=0
setsid timeout --signal=TERM --kill-after=30s "$((duration_s + 300))s" \
  "$tmp/soak" -url "$server_url" -token "$token" -server-pid "$server_pid" -db-url "$DB_URL" \
  -d "$DURATION" -sample "$SAMPLE" -warmup "$WARMUP" -rate "$RATE" -workers "$WORKERS" \
  -ws-clients "$WS_CLIENTS" -publish-rate "$PUBLISH_RATE" -max-growth "$MAX_GROWTH" "${json_out[@]}" >"$tmp/soak.txt" &
soak_pid=$!
children+=("$soak_pid")
wait "$soak_pid" || rc=$?
forget "$soak_pid"
cat "$tmp/soak.txt"
[ -z "$OUT" ] || cp "$tmp/soak.txt" "$OUT/soak.txt"

if ! kill -0 "$server_pid" 2>/dev/null; then
  tail -n 20 "$tmp/server.log" >&2
  die "the server died during the soak"
fi
if grep -q '"level":"ERROR"' "$tmp/server.log"; then
  log "the server logged $(grep -c '"level":"ERROR"' "$tmp/server.log") error(s); the first:"
  grep -m1 '"level":"ERROR"' "$tmp/server.log" >&2
fi
stop "$server_pid"
exit "$rc"
