#!/usr/bin/env bash
# Fuzzes the running API from its own OpenAPI document with schemathesis and fails on any
# server error (5xx) or a response that breaks its documented schema.
# usage: scripts/fuzz-api.sh [path to the nve binary]
#   FUZZ_EXAMPLES  examples per operation (default 25)
#   FUZZ_SEED      hypothesis seed; fixed by default so the test command is repeatable,
#                  FUZZ_SEED=random explores new inputs on every run
#   FUZZ_WORKERS   concurrent requests (default 2; concurrency finds races)
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/.."
NVE=${1:-target/debug/nve}
VENV=${FUZZ_VENV:-$HOME/.cache/nve/schemathesis-venv}
if [ ! -x "$VENV/bin/st" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'schemathesis>=4,<5'
fi

DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE="http://127.0.0.1:$PORT"
NVE_LOG__LEVEL=warn NVE_UI__DIST_DIR="$DIR/no-ui" "$NVE" serve --bind "127.0.0.1:$PORT" --data-dir "$DIR/data" >"$DIR/serve.log" 2>&1 &
SERVER=$!
cleanup() {
  local rc=$?
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  if [ "$rc" != 0 ] && grep -q '"level":"ERROR"' "$DIR/serve.log" 2>/dev/null; then
    echo "server errors:" >&2
    grep -E '"level":"(ERROR|WARN)"' "$DIR/serve.log" | head -20 >&2
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  curl -sf "$BASE/healthz" >/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 0.1
done
curl -sf "$BASE/healthz" >/dev/null || { echo "nve did not start:" >&2; cat "$DIR/serve.log" >&2; exit 1; }

json() { curl -sf -H 'content-type: application/json' "$@"; }
json -X POST "$BASE/v1/auth/register" -d '{"email":"fuzz@example.org","password":"fuzz password","display_name":"Fuzz"}' >/dev/null
TOKEN=$(json -X POST "$BASE/v1/auth/login" -d '{"email":"fuzz@example.org","password":"fuzz password"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# A project so that project-scoped operations have something real to hit.
json -X POST "$BASE/v1/projects" -H "authorization: Bearer $TOKEN" -d '{"name":"fuzz"}' >/dev/null

SEED=${FUZZ_SEED:-20261130}
SEED_ARGS=""
if [ "$SEED" != random ]; then SEED_ARGS="--seed $SEED"; fi
# schemathesis keeps a cache in its working directory; keep it out of the repository.
HOOKS_DIR=$(pwd)/scripts
cd "$DIR"
PYTHONPATH="$HOOKS_DIR${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=fuzz_hooks "$VENV/bin/st" run "$BASE/openapi.json" --url "$BASE/v1" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "${FUZZ_EXAMPLES:-25}" --workers "${FUZZ_WORKERS:-2}" --no-color $SEED_ARGS
if grep -q '"level":"ERROR"' "$DIR/serve.log"; then
  echo "the server logged errors while being fuzzed:" >&2
  grep '"level":"ERROR"' "$DIR/serve.log" | head -20 >&2
  exit 1
fi
