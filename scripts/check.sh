#!/usr/bin/env bash
# The full check behind `npm test` and .ci/run: formatting, lint, types,
# documentation lint, publish dry run, then every test (doc examples included).
set -euo pipefail
cd "$(dirname "$0")/.."

entries=(mod.ts $(node -e 'const e=require("./deno.json").exports;console.log(Object.values(e).filter(p=>p!=="./mod.ts").join(" "))'))

echo "== deno fmt --check"; deno fmt --check
echo "== deno lint"; deno lint
echo "== deno check"; deno check . && deno check --doc-only README.md
echo "== deno doc --lint ${entries[*]}"; deno doc --lint "${entries[@]}" >/dev/null
echo "== deno publish --dry-run"; deno publish --dry-run --allow-dirty >/dev/null 2>&1 || deno publish --dry-run --allow-dirty
echo "== deno test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
NO_COLOR=1 deno test -A --doc --parallel 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One plain closing line, whatever deno's own summary looks like.
passed=$(grep -oE '[0-9]+ passed' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '[0-9]+ failed' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
echo "${passed} passed, ${failed} failed"
exit "$status"
