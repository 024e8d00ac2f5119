#!/usr/bin/env bash
# Runs the OCI conformance suite against a distribution registry binary,
# directly and through a registry-relay binary, with the harness's split
# front in between (GET/HEAD -> relay, writes -> registry). Anonymous
# upstream only; token auth is covered by the in-process harness
# (go run -tags e2e ./internal/e2e/conformance/harness).
#
#   BIN=./bin internal/e2e/conformance/run-binaries.sh [OUT_DIR]
#
# BIN must hold: registry (distribution v3.1.2), registry-relay, conformance.
# PROFILE=full|pull (default pull: push only as the suite's setup, no deletes).
set -euo pipefail

BIN=${BIN:-./bin}
OUT=${1:-$(mktemp -d /tmp/relay-conformance-bin.XXXXXX)}
PROFILE=${PROFILE:-pull}
REG_PORT=${REG_PORT:-25000} RELAY_PORT=${RELAY_PORT:-25080} ADMIN_PORT=${ADMIN_PORT:-25090} FRONT_PORT=${FRONT_PORT:-25081}
BIN=$(cd "$BIN" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
export OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

start_registry() { # fresh in-memory registry for every run
  cat > "$OUT/registry.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {inmemory: {}, delete: {enabled: true}, maintenance: {uploadpurging: {enabled: false}}}
http: {addr: 127.0.0.1:$REG_PORT, secret: conformance}
EOF
  "$BIN/registry" serve "$OUT/registry.yml" > "$OUT/registry-$1.log" 2>&1 &
  REG_PID=$!; pids+=("$REG_PID")
  wait_http "http://127.0.0.1:$REG_PORT/v2/"
}

suite_env=(OCI_TLS=disabled OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 OCI_LOG=warn)
case $PROFILE in
  full) ;;
  pull) suite_env+=(OCI_API_BLOBS_DELETE=false OCI_API_MANIFESTS_DELETE=false OCI_API_TAGS_DELETE=false) ;;
  *) echo "PROFILE=$PROFILE: want full or pull" >&2; exit 2 ;;
esac

run_suite() { # run_suite NAME HOST:PORT
  mkdir -p "$OUT/$1"
  (cd "$OUT/$1" && env $(env | grep -o '^OCI_[A-Z0-9_]*' | sed 's/^/-u /') \
      "${suite_env[@]}" OCI_REGISTRY="$2" OCI_RESULTS_DIR="$OUT/$1/results" \
      "$BIN/conformance" > out.txt 2> err.txt) || true
  printf '%-7s ' "$1"; grep -A6 '^OCI Conformance Result' "$OUT/$1/out.txt" | tr -s ' .' ' ' | paste -sd' '
}

# direct
start_registry direct
run_suite direct "127.0.0.1:$REG_PORT"
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true

# through the relay
start_registry relay
RELAY_LISTEN=127.0.0.1:$RELAY_PORT RELAY_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT RELAY_LOG_FORMAT=text \
  K8S_ACCESS_DOMAIN=127.0.0.1 K8S_UPSTREAM=http://127.0.0.1:$REG_PORT \
  "$BIN/registry-relay" > "$OUT/relay.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$RELAY_PORT/v2/"
(cd "$HERE/../../.." && go build -tags e2e -o "$OUT/harness" ./internal/e2e/conformance/harness)
"$OUT/harness" -front-only -listen 127.0.0.1:$FRONT_PORT \
  -relay http://127.0.0.1:$RELAY_PORT -upstream http://127.0.0.1:$REG_PORT > "$OUT/front.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$FRONT_PORT/v2/"
run_suite relay "127.0.0.1:$FRONT_PORT"
echo "outputs: $OUT"
