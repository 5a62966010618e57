#!/usr/bin/env bash
# Installs the exact Node packages the conformance evaluator (evaluate.mjs) needs into
# tests/conformance/node_modules, from package-lock.json. Idempotent: does nothing when node_modules already
# matches the lockfile. Called by scripts/test-deps.sh (`make test-deps`); needs node and npm on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "tests/conformance/setup.sh: node and npm are required (run \`make test-deps\`)" >&2
  exit 1
fi

stamp=node_modules/.hallmark-lock.sha256
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
  && [ -f node_modules/@adobe/json-formula/package.json ] && [ -f node_modules/yaml/package.json ]; then
  exit 0
fi

# --ignore-scripts: nothing here needs install scripts, so none run.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
echo "$want" >"$stamp"
