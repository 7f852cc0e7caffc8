#!/usr/bin/env bash
# check-ui.sh — rebuild the run viewer's bundle from ui/src into a temporary
# directory and fail when it differs from the committed
# internal/webui/assets, so a stale bundle never lands; also type-check the
# TypeScript. `make ui` rebuilds the committed bundle.
#
# Installs Debian's nodejs and npm when node is missing (make run never
# needs them: the bundle is committed and embedded).
set -euo pipefail
cd "$(dirname "$0")/../ui"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "check-ui: installing nodejs npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi
# The pinned tools of package-lock.json, installed once (node_modules is
# ignored by git) and again whenever the lock file changes.
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.lock-sha256 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want" > node_modules/.lock-sha256
fi
npx --no-install tsc -p tsconfig.json --noEmit
node build.mjs --check
