#!/usr/bin/env bash
# services.sh — run a command with a throwaway PostgreSQL and Redis.
#
#   scripts/services.sh [--durable] -- CMD [ARGS...]
#
# Installs the Debian packages (PostgreSQL, Redis, pgbouncer, npm, Chromium) when missing, starts both
# servers on free loopback ports under a temporary directory, exports
#   AGENTSTORE_TEST_PG_URL     superuser URL of the maintenance database
#   AGENTSTORE_TEST_REDIS_URL  redis://127.0.0.1:PORT/0
#   AGENTSTORE_TEST_PG_BIN     the PostgreSQL bin directory
# runs CMD, and stops both servers and removes the directory on every exit,
# failure and interrupt included. --durable keeps PostgreSQL's default
# durability (fsync on) for benchmarks; tests run with fsync off.
set -euo pipefail

durable=0
while [ $# -gt 0 ]; do
  case "$1" in
    --durable) durable=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--durable] -- CMD [ARGS...]" >&2; exit 2; }

PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}

need=()
[ -x "$PG_BIN/initdb" ] || need+=("postgresql-$PG_MAJOR")
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
# npm installs squawk and PostgreSQL 17 for the tests (into .cache/).
command -v npm >/dev/null 2>&1 || need+=(npm)
# The run viewer's browser test drives Debian's Chromium (headless).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "services: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "services: no free port" >&2; return 1
}

work=$(mktemp -d /tmp/agentstore-services.XXXXXX)
chmod 755 "$work"
chown postgres:postgres "$work"
pg_port=$(free_port)
redis_port=$(free_port)

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  as_postgres "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  if [ -f "$work/redis.pid" ]; then kill "$(cat "$work/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_postgres "$PG_BIN/initdb" -D "$work/pg" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
opts="-k $work -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=256MB"
if [ "$durable" = 0 ]; then
  opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
# A start can fail when another process takes the port between free_port
# and the bind (several harnesses on one machine): say why and try once
# more on another port.
if ! as_postgres "$PG_BIN/pg_ctl" -D "$work/pg" -o "-p $pg_port $opts" -l "$work/pg.log" -w start >/dev/null; then
  echo "services: postgres did not start on :$pg_port; its log:" >&2
  cat "$work/pg.log" >&2 || true
  pg_port=$(free_port)
  as_postgres "$PG_BIN/pg_ctl" -D "$work/pg" -o "-p $pg_port $opts" -l "$work/pg.log" -w start >/dev/null
fi

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" --dir "$work"
for _ in $(seq 1 50); do
  [ -f "$work/redis.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
  sleep 0.1
done

export AGENTSTORE_TEST_PG_URL="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
export AGENTSTORE_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export AGENTSTORE_TEST_PG_BIN="$PG_BIN"
echo "services: postgres $PG_MAJOR on :$pg_port (durable=$durable), redis on :$redis_port" >&2
"$@"
