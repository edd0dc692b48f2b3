#!/usr/bin/env bash
# Instructions per request of `portcullis gateway`, counted by valgrind's callgrind: the same
# count for the same binary and load whatever else the machine is doing, so two builds compare
# without alternating timed runs (see bench/http/instructions.sh, which does the same for the
# decision service). Not run in CI.
#
#   [FLOOR_BIN=PATH] bench/gateway/instructions.sh BINARY [BINARY...]
#
# For each BINARY (a build of `portcullis`) and each configuration of CONFIGS ("on off":
# gateway-on.toml, every stage; gateway-off.toml, the upstream only), the gateway is started
# under callgrind on SERVER_CPU (0) in front of the `floor` binary of crates/bench (FLOOR_BIN,
# built when not given; bare hyper answering 204, on the same core), warmed up for 3 s with instrumentation off, then
# loaded with gateway.lua (the signed-in product search of run.sh) by wrk (one thread, 4
# connections, on LOAD_CPU, 1) for DURATION seconds (8) with instrumentation on. Printed per
# binary and configuration: the requests answered, instructions per request in all and on the
# runtime thread that serves requests. Under valgrind SHA-256 runs without the CPU's SHA
# instructions, so the audit writer's share (the difference) is far above its native cost.
# Profiles are kept under bench/.cache/gateway-instructions/ for `callgrind_annotate`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=$ROOT/bench/gateway
OUT=$ROOT/bench/.cache/gateway-instructions/$(date -u +%Y%m%dT%H%M%SZ)
CONFIGS=${CONFIGS:-"on off"}
DURATION=${DURATION:-8}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
UPSTREAM_PORT=9793

. bench/lib.sh
[ $# -ge 1 ] || die "usage: [FLOOR_BIN=PATH] bench/gateway/instructions.sh BINARY [BINARY...]"
if [ -n "${FLOOR_BIN:-}" ]; then [ -x "$FLOOR_BIN" ] || die "$FLOOR_BIN is missing"; else build_floor; fi
for tool in valgrind callgrind_control callgrind_annotate wrk curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
mkdir -p "$OUT"

export GATEWAY_BENCH_SECRET=${GATEWAY_BENCH_SECRET:-gateway-bench-secret-0123456789abcdef}

taskset -c "$SERVER_CPU" "$FLOOR_BIN" --listen "127.0.0.1:$UPSTREAM_PORT" >"$OUT/floor.log" 2>&1 &
FLOOR=$!
trap 'kill "$FLOOR" 2>/dev/null || true' EXIT


measure() {
  local binary=$1 config=$2 name port server profile requests total runtime
  name=$(basename "$binary")-$config
  port=$(grep -m1 -E '^listen = "127.0.0.1:97' "$HERE/gateway-$config.toml" | grep -oE '97[0-9]+')
  GATEWAY_BENCH_TOKEN=$("$binary" token --secret-env GATEWAY_BENCH_SECRET \
    --issuer https://idp.bench.example --subject bench-user --tenant shop --ttl 86400)
  export GATEWAY_BENCH_TOKEN
  rm -rf "$ROOT/bench/.cache/gateway-data-$config"
  (cd "$HERE" && exec taskset -c "$SERVER_CPU" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$OUT/$name.%p" "$binary" gateway --config "gateway-$config.toml") \
    >"$OUT/$name.log" 2>&1 &
  server=$!
  local up=
  for _ in $(seq 1 240); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then up=1; break; fi
    sleep 0.5
  done
  [ -n "$up" ] || { kill "$server" 2>/dev/null; die "$name: the gateway did not start (see $OUT/$name.log)"; }
  taskset -c "$LOAD_CPU" wrk -t1 -c4 -d3s -s "$HERE/gateway.lua" "http://127.0.0.1:$port" >/dev/null
  callgrind_control -z "$server" >/dev/null 2>&1
  callgrind_control -i on "$server" >/dev/null 2>&1
  taskset -c "$LOAD_CPU" wrk -t1 -c4 -d"${DURATION}s" -s "$HERE/gateway.lua" \
    "http://127.0.0.1:$port" >"$OUT/$name.wrk"
  callgrind_control -d "$server" >/dev/null 2>&1
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  requests=$(grep -o 'RESULT requests=[0-9]*' "$OUT/$name.wrk" | cut -d= -f2)
  [ -n "$requests" ] && [ "$requests" -gt 0 ] || die "$name: wrk completed no request"
  grep -qE 'non2xx=0( |$)' "$OUT/$name.wrk" || die "$name: some answers were not 2xx (see $OUT/$name.wrk)"
  profile=$(ls "$OUT/$name".*.1 | head -n1)
  callgrind_annotate --inclusive=yes "$profile" 2>/dev/null >"$profile.txt"
  total=$(inclusive "$profile.txt" 'PROGRAM TOTALS')
  runtime=$(inclusive "$profile.txt" ':portcullis::commands::(serve|run|gateway)( |$)')
  printf '| %s | %s | %d | %d | %d |\n' "$(basename "$binary")" "$config" "$requests" \
    $((total / requests)) $(( ${runtime:-0} / requests ))
}

echo "| binary | stages | requests | instructions / request | runtime thread |"
echo "|---|---|---:|---:|---:|"
for config in $CONFIGS; do
  for binary in "$@"; do
    [ -x "$binary" ] || die "$binary is not an executable"
    measure "$binary" "$config"
  done
done
echo "profiles: $OUT" >&2
