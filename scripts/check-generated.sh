#!/usr/bin/env bash
# check-generated.sh — regenerate ent/ and fail when that changed anything,
# so a stale ent/ never lands.
set -euo pipefail
cd "$(dirname "$0")/.."
snapshot() { find ent -path ent/schema -prune -o -type f -print0 | sort -z | xargs -0 sha256sum; }
before=$(snapshot)
go generate ./ent
after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "ent/ was stale: it has been regenerated; review and commit it." >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "ent/ is up to date with ent/schema"
