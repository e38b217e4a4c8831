#!/usr/bin/env bash
# Install the Node packages the interop and browser tests run (from their lock files), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
for project in tests/interop/node tests/interop/better_auth examples/node-api examples/nextjs-app tests/e2e; do
  if [ -f "$project/package-lock.json" ]; then
    npm ci --prefix "$project" --no-audit --no-fund --loglevel=error
  fi
done
exec uv run pytest "$@"
