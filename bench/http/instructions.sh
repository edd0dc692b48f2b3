#!/usr/bin/env bash
# Instructions per request of the decision service, counted by valgrind's callgrind: the same
# count for the same binary and load whatever else the machine is doing, so two builds can be
# compared on this machine, whose speed drifts by a third within an hour, without alternating
# timed runs. Not run in CI.
#
#   bench/http/instructions.sh BINARY [BINARY...]
#
# Each BINARY is a build of `portcullis` (or of the `floor` binary of crates/bench, recognised
# by its name). For each workload of WORKLOADS ("nginx check"; also "nginx-deny",
# "nginx-audit-off" and "authzen", check's question as an AuthZEN evaluation) the server is
# started under callgrind on SERVER_CPU (0) with the benchmark configuration
# (bench/http/portcullis.toml, a fresh data folder), warmed up for 3 s with instrumentation
# off, then loaded by wrk (one thread, 4 connections, on LOAD_CPU, 1) for DURATION seconds (15)
# with instrumentation on; the counts are dumped and divided by the
# requests wrk completed. Printed per binary and workload: instructions per request in all,
# on the runtime thread that serves the requests (tokio's scheduler) and on the audit writer's
# thread. Under valgrind SHA-256 runs without the CPU's SHA instructions, so the writer's
# figure (mostly the audit chain's hashing) is far above what it costs natively; compare the
# runtime thread's figures between builds. Profiles are kept under bench/.cache/instructions/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=$ROOT/bench/http
OUT=$ROOT/bench/.cache/instructions/$(date -u +%Y%m%dT%H%M%SZ)
WORKLOADS=${WORKLOADS:-"nginx check"}
DURATION=${DURATION:-15}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=9787

. bench/lib.sh
[ $# -ge 1 ] || die "usage: bench/http/instructions.sh BINARY [BINARY...]"
for tool in valgrind callgrind_control callgrind_annotate wrk python3 curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
mkdir -p "$OUT"

export BENCH_JWT_SECRET=${BENCH_JWT_SECRET:-instructions-secret-0123456789abcdef01}
export BENCH_ADMIN_TOKEN=${BENCH_ADMIN_TOKEN:-instructions-admin-token-0123}
TOKEN=$(python3 "$HERE/mint_jwt.py" bob)


measure() {
  local binary=$1 workload=$2 name data config script client_ip=172.16.3.4 token=$TOKEN
  name=$(basename "$binary")-$workload
  data=$OUT/$name-data
  mkdir -p "$data"
  config=$data/portcullis.toml
  # The service on PORT, the admin listener on any free port.
  sed -e 's|^listen = "127.0.0.1:9781"|listen = "127.0.0.1:0"|' \
      -e "0,/^listen = /s|^listen = .*|listen = \"127.0.0.1:$PORT\"|" \
      -e "s|^data_dir = .*|data_dir = \"$data/store\"|" \
      -e "s|^bundles = .*|bundles = [\"$ROOT/examples/demo/bundles\"]|" \
      "$HERE/portcullis.toml" >"$config"
  case $workload in
    nginx) script=$HERE/nginx.lua ;;
    nginx-deny) script=$HERE/nginx.lua; client_ip=203.0.113.9 ;;
    nginx-audit-off) script=$HERE/nginx.lua; printf '\n[audit]\nenabled = false\n' >>"$config" ;;
    check) script=$HERE/check.lua; token= ;;
    authzen) script=$HERE/authzen.lua; token= ;;
    *) die "unknown workload $workload" ;;
  esac
  local args=(serve --config "$config")
  if [ "$(basename "$binary")" = floor ] || [[ $(basename "$binary") == *-floor ]]; then
    [ "$workload" = nginx ] || return 0
    args=(--listen "127.0.0.1:$PORT")
  fi
  taskset -c "$SERVER_CPU" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$OUT/$name.%p" "$binary" "${args[@]}" >"$data/server.log" 2>&1 &
  local server=$!
  local up=
  for _ in $(seq 1 240); do
    if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then up=1; break; fi
    sleep 0.5
  done
  [ -n "$up" ] || { kill "$server" 2>/dev/null; die "$name: the server did not start (see $data/server.log)"; }
  BENCH_TOKEN=$token NGINX_CLIENT_IP=$client_ip taskset -c "$LOAD_CPU" \
    wrk -t1 -c4 -d3s -s "$script" "http://127.0.0.1:$PORT" >/dev/null
  callgrind_control -z "$server" >/dev/null 2>&1
  callgrind_control -i on "$server" >/dev/null 2>&1
  BENCH_TOKEN=$token NGINX_CLIENT_IP=$client_ip taskset -c "$LOAD_CPU" \
    wrk -t1 -c4 -d"${DURATION}s" -s "$script" "http://127.0.0.1:$PORT" >"$data/wrk.out"
  callgrind_control -d "$server" >/dev/null 2>&1
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  local requests profile total runtime writer
  requests=$(grep -o 'RESULT requests=[0-9]*' "$data/wrk.out" | cut -d= -f2)
  [ -n "$requests" ] && [ "$requests" -gt 0 ] || die "$name: wrk completed no request"
  profile=$(ls "$OUT/$name".*.1 | head -n1)
  callgrind_annotate --inclusive=yes "$profile" 2>/dev/null >"$profile.txt"
  total=$(inclusive "$profile.txt" 'PROGRAM TOTALS')
  runtime=$(inclusive "$profile.txt" ':(portcullis::commands::(serve|run)|floor::main)( |$)')
  writer=$(inclusive "$profile.txt" 'writer::Writer::run$')
  printf '| %s | %s | %d | %d | %d | %d |\n' "$(basename "$binary")" "$workload" "$requests" \
    $((total / requests)) $(( ${runtime:-0} / requests )) $(( ${writer:-0} / requests ))
}

echo "| binary | workload | requests | instructions / request | runtime thread | audit writer |"
echo "|---|---|---:|---:|---:|---:|"
for workload in $WORKLOADS; do
  for binary in "$@"; do
    [ -x "$binary" ] || die "$binary is not an executable"
    measure "$binary" "$workload"
  done
done
echo "profiles: $OUT" >&2
