#!/usr/bin/env bash
# HTTP load benchmark of the decision service (`portcullis serve`) against this machine's own
# floor (a bare hyper server answering 204, the `floor` binary of crates/bench) and against the
# Cerbos PDP on an equivalent role policy. Not run in CI: it takes about half an hour and needs
# two CPUs.
#
#   bench/http/run.sh                      # everything, writes bench/http/results.md
#   DURATION=5 RUNS=1 CONNECTIONS=64 bench/http/run.sh     # a quick look
#
# Knobs (environment): DURATION (s, default 15), RUNS (3), WARMUP (s, 5),
# CONNECTIONS ("16 64 256"), WORKLOADS ("floor nginx-allow nginx-allow-audit-off nginx-deny
# check check-audit-off check-jwt authzen cerbos"; `authzen` asks check's question as an AuthZEN
# evaluation; the `-audit-off` workloads go to a second server with
# `[audit] enabled = false`), SERVER_CPU (0), LOAD_CPU (1), CERBOS_VERSION (0.55.0), RESULTS
# (bench/http/results.md), SKIP_BUILD=1 to use the binaries already built; OTHER_MAX (CPUs,
# 0.10), MAX_ATTEMPTS (5) and QUIET_WAIT (s, 600) for runs disturbed by other work on the
# machine.
#
# The servers under test are pinned to SERVER_CPU and wrk (one thread) to LOAD_CPU, so neither
# steals the other's core. The Portcullis workloads and the floor are measured in alternating
# runs with all the servers up (floor, W1, floor, W2, floor, ..., one round per measured run), so
# that each Portcullis run has a floor run just before and just after it, and a slow spell of
# the machine falls on both. Ports 9780-9786 must be free. Raw wrk output, server logs and the
# figures are kept under bench/.cache/http-raw/<timestamp>/ (git-ignored).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=bench/http
CACHE=bench/.cache

DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-"16 64 256"}
WORKLOADS=${WORKLOADS:-"floor nginx-allow nginx-allow-audit-off nginx-deny check check-audit-off check-jwt authzen cerbos"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CERBOS_VERSION=${CERBOS_VERSION:-0.55.0}
RESULTS=${RESULTS:-$HERE/results.md}
OTHER_MAX=${OTHER_MAX:-0.10}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-5}
QUIET_WAIT=${QUIET_WAIT:-600}

# The servers: Portcullis with the audit trail on (bench/http/portcullis.toml), the same without
# it, the floor, and Cerbos (bench/cerbos/config.yaml; its gRPC port is 9783).
declare -A URLS=(
  [on]=http://127.0.0.1:9780
  [off]=http://127.0.0.1:9784
  [floor]=http://127.0.0.1:9786
  [cerbos]=http://127.0.0.1:9782
)
OFFICE_IP=172.16.3.4
OUTSIDE_IP=203.0.113.9

# The Portcullis workloads, in the order of a round: forward-auth and `/v1/check`, each with
# auditing on and off, then the rest. Every workload wanted is measured in every round.
PORTCULLIS_WORKLOADS="nginx-allow nginx-allow-audit-off check check-audit-off nginx-deny check-jwt authzen"

RAW=$CACHE/http-raw/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RAW"
TSV=$RAW/results.tsv
META=$RAW/meta.env
: >"$META"

. bench/lib.sh

wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }

for workload in $WORKLOADS; do
  [[ " floor $PORTCULLIS_WORKLOADS cerbos " == *" $workload "* ]] ||
    die "unknown workload $workload (known: floor $PORTCULLIS_WORKLOADS cerbos)"
done
ROUND=()
for workload in $PORTCULLIS_WORKLOADS; do
  if wants "$workload"; then ROUND+=("$workload"); fi
done
wants_any() { # WORKLOAD...: whether any of them is wanted
  local workload
  for workload in "$@"; do
    if wants "$workload"; then return 0; fi
  done
  return 1
}

# ------------------------------------------------------------------------------ prerequisites

[ "$(nproc)" -ge 2 ] || die "needs at least two CPUs (server and load generator on separate cores)"
for tool in curl python3 taskset; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

if ! command -v wrk >/dev/null; then
  say "installing wrk from Debian packages"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y wrk || { $SUDO apt-get update && $SUDO apt-get install -y wrk; }
fi

CERBOS_DIR=$CACHE/cerbos
CERBOS_BIN=$CERBOS_DIR/node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64
if wants cerbos && [ ! -x "$CERBOS_BIN" ]; then
  command -v npm >/dev/null || die "npm is required to install Cerbos"
  say "installing Cerbos $CERBOS_VERSION from npm into $CERBOS_DIR"
  mkdir -p "$CERBOS_DIR"
  npm install --no-audit --no-fund --prefix "$CERBOS_DIR" "@cerbos/cerbos-linux-x64@$CERBOS_VERSION"
fi

build_portcullis
PORTCULLIS_BIN=$BIN
if wants floor; then
  build_floor
fi

ports_free 9780 9781 9782 9783 9784 9785 9786

# Every run starts from empty data folders (store, keys, audit trail), so that one run's
# records do not become the next run's startup work.
rm -rf "$CACHE/http-data" "$CACHE/http-data-audit-off"

# ------------------------------------------------------------------------------ secrets, tokens

bench_secrets

# ------------------------------------------------------------------------------ bookkeeping

meta DATE "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta CPU_MODEL "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
meta NPROC "$(nproc)"
meta MEM_TOTAL "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
meta KERNEL "$(uname -r)"
meta PORTCULLIS_REV "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' + uncommitted changes')"
meta RUSTC "$(rustc --version | cut -d' ' -f1-2)"
meta WRK_VERSION "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
meta SERVER_CPU "$SERVER_CPU"
meta LOAD_CPU "$LOAD_CPU"
meta DURATION "$DURATION"
meta RUNS "$RUNS"
meta WARMUP "$WARMUP"
meta OTHER_MAX "$OTHER_MAX"
meta MAX_ATTEMPTS "$MAX_ATTEMPTS"
meta ROUND "${ROUND[*]}"
meta LOAD_AT_START "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'server\tworkload\tconns\trun\trequests\trps\tp50_us\tp75_us\tp90_us\tp99_us\tp999_us\tmax_us\tnon2xx\tsocket_errors\tserver_cpu\tload_cpu\tother_cpu\tattempts\torder\n' >"$TSV"

declare -A PIDS=()
stop_server() { # NAME
  local pid=${PIDS[$1]:-}
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  unset "PIDS[$1]"
}
stop_servers() {
  local name
  for name in "${!PIDS[@]}"; do
    stop_server "$name"
  done
}
trap stop_servers EXIT

wait_for() { # NAME URL
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
    kill -0 "${PIDS[$1]}" 2>/dev/null || die "the $1 server exited; see $RAW"
    sleep 0.1
  done
  die "$2 did not answer"
}

status_kb() { # PID FIELD
  awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"
}

# spec WORKLOAD: sets SERVER (which of the servers answers it: on, off, floor or cerbos), SCRIPT,
# URL and WRK_ENV (the wrk script's environment). The floor gets the forward-auth request
# itself, headers and token included, so that both read requests of the same size.
spec() {
  case "$1" in
    floor) SERVER=floor SCRIPT=$HERE/nginx.lua WRK_ENV=(BENCH_TOKEN="$BOB_TOKEN" NGINX_CLIENT_IP="$OFFICE_IP") ;;
    nginx-allow) SERVER=on SCRIPT=$HERE/nginx.lua WRK_ENV=(BENCH_TOKEN="$BOB_TOKEN" NGINX_CLIENT_IP="$OFFICE_IP") ;;
    nginx-allow-audit-off) SERVER=off SCRIPT=$HERE/nginx.lua WRK_ENV=(BENCH_TOKEN="$BOB_TOKEN" NGINX_CLIENT_IP="$OFFICE_IP") ;;
    nginx-deny) SERVER=on SCRIPT=$HERE/nginx.lua WRK_ENV=(BENCH_TOKEN="$BOB_TOKEN" NGINX_CLIENT_IP="$OUTSIDE_IP") ;;
    check) SERVER=on SCRIPT=$HERE/check.lua WRK_ENV=(BENCH_TOKEN=) ;;
    check-audit-off) SERVER=off SCRIPT=$HERE/check.lua WRK_ENV=(BENCH_TOKEN=) ;;
    check-jwt) SERVER=on SCRIPT=$HERE/check.lua WRK_ENV=(BENCH_TOKEN="$BOB_TOKEN") ;;
    authzen) SERVER=on SCRIPT=$HERE/authzen.lua WRK_ENV=() ;;
    cerbos) SERVER=cerbos SCRIPT=$HERE/cerbos.lua WRK_ENV=() ;;
    *) die "unknown workload $1" ;;
  esac
  URL=${URLS[$SERVER]}
}

# ------------------------------------------------------------------------------ load

ORDER=0

# wrk_run WORKLOAD CONNS RUN SECONDS
# Waits for the machine to be quiet, runs wrk under cpu_guard.py, and repeats a run during
# which other processes used more than OTHER_MAX CPUs (up to MAX_ATTEMPTS times; the last
# attempt is kept and its interference shows in the results). ORDER numbers the measured runs
# in the order they ran, which the report needs to find the floor runs around each run.
wrk_run() {
  local workload=$1 conns=$2 run=$3 seconds=$4
  local log=$RAW/$workload-c$conns-$run.txt attempt other pid label
  spec "$workload"
  pid=${PIDS[$SERVER]}
  for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
    python3 $HERE/cpu_guard.py quiet "$pid" "$OTHER_MAX" "$QUIET_WAIT" >"$log"
    env "${WRK_ENV[@]}" python3 $HERE/cpu_guard.py run "$pid" -- \
      taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${seconds}s" --latency -s "$SCRIPT" "$URL" \
      >>"$log" 2>&1 || die "wrk failed; see $log"
    other=$(sed -n 's/^CPU .*other_cpu=\([0-9.]*\).*/\1/p' "$log")
    if awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o <= m) }'; then
      break
    fi
    printf '    %-21s c=%-4s run %s: other processes used %s CPUs (attempt %s of %s)\n' \
      "$workload" "$conns" "$run" "$other" "$attempt" "$MAX_ATTEMPTS" >&2
    cp "$log" "$log.disturbed-$attempt"
  done
  [ "$run" = warmup ] && return 0
  ORDER=$((ORDER + 1))
  case "$SERVER" in on | off) label=portcullis ;; *) label=$SERVER ;; esac
  python3 - "$log" "$label" "$workload" "$conns" "$run" "$attempt" "$ORDER" >>"$TSV" <<'PY'
import sys
log, server, workload, conns, run, attempts, order = sys.argv[1:]
lines = open(log).read().splitlines()
f = {}
for prefix in ("RESULT ", "CPU "):
    line = next(l for l in lines if l.startswith(prefix))
    f.update(kv.split("=") for kv in line.split()[1:])
socket_errors = sum(int(f[k]) for k in ("connect_err", "read_err", "write_err", "timeout_err"))
print("\t".join([server, workload, conns, run, f["requests"], f["rps"], f["p50_us"], f["p75_us"],
                 f["p90_us"], f["p99_us"], f["p999_us"], f["max_us"], f["non2xx"], str(socket_errors),
                 f["server_cpu"], f["load_cpu"], f["other_cpu"], attempts, order]))
PY
  tail -1 "$TSV" | awk -F'\t' '{ printf "    %-21s c=%-4s run %-2s: %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  p99.9 %6.3f ms  cpu server %.2f wrk %.2f other %.2f\n", $2, $3, $4, $6, $7/1000, $10/1000, $11/1000, $15, $16, $17 }' >&2
}

# floor_step CONNS: the next floor run at CONNS connections (FLOOR_RUN counts them), when the
# floor is wanted.
floor_step() {
  if wants floor; then
    FLOOR_RUN=$((FLOOR_RUN + 1))
    wrk_run floor "$1" "$FLOOR_RUN" "$DURATION"
  fi
}

# measure_rounds: per connection count, a warm-up of the floor and of every workload of the
# round, then RUNS rounds. With the floor wanted, a floor run comes before the first workload
# and after every workload (floor, W1, floor, W2, floor, ...), so that each measured run of a
# workload has a floor run on either side, next to it.
measure_rounds() {
  local conns run workload
  for conns in $CONNECTIONS; do
    say "$conns connections: warm-up, then $RUNS round(s) of ${DURATION} s runs: ${ROUND[*]}$(wants floor && echo ', each run between two floor runs')"
    if wants floor; then wrk_run floor "$conns" warmup "$WARMUP"; fi
    for workload in "${ROUND[@]}"; do
      wrk_run "$workload" "$conns" warmup "$WARMUP"
    done
    FLOOR_RUN=0
    floor_step "$conns"
    for run in $(seq 1 "$RUNS"); do
      for workload in "${ROUND[@]}"; do
        wrk_run "$workload" "$conns" "$run" "$DURATION"
        floor_step "$conns"
      done
      # The floor alone: RUNS runs of it.
      if [ "${#ROUND[@]}" -eq 0 ] && [ "$run" -gt 1 ]; then floor_step "$conns"; fi
    done
  done
}

# expect NAME PATTERN TEXT: fail unless TEXT matches PATTERN (grep -E).
expect() {
  grep -Eq "$2" <<<"$3" || die "pre-flight $1: expected /$2/, got:
$3"
}

# ------------------------------------------------------------------------------ servers

# start_portcullis NAME CONFIG [ARGUMENT...]
start_portcullis() {
  local name=$1 config=$2
  shift 2
  taskset -c "$SERVER_CPU" "$PORTCULLIS_BIN" serve --config "$config" "$@" >"$RAW/portcullis-$name.log" 2>&1 &
  PIDS[$name]=$!
  wait_for "$name" "${URLS[$name]}/readyz"
}

if wants_any nginx-allow nginx-deny check check-jwt authzen; then
  say "starting portcullis serve on CPU $SERVER_CPU (${URLS[on]})"
  start_portcullis on "$HERE/portcullis.toml"
  meta PORTCULLIS_RSS_IDLE_KB "$(status_kb "${PIDS[on]}" VmRSS)"
fi

# The same configuration with the audit trail switched off, in a data folder of its own: the
# cost of recording every decision (masked, chained, group-committed with fsync) is the
# difference between the two servers.
if wants_any nginx-allow-audit-off check-audit-off; then
  say "starting portcullis serve without auditing on CPU $SERVER_CPU (${URLS[off]})"
  OFF_CONFIG=$HERE/.portcullis-audit-off.toml
  { sed -e 's|^data_dir = .*|data_dir = "../.cache/http-data-audit-off"|' "$HERE/portcullis.toml"
    printf '\n[audit]\nenabled = false\n'; } >"$OFF_CONFIG"
  grep -q '^data_dir = "../.cache/http-data-audit-off"' "$OFF_CONFIG" ||
    die "$HERE/portcullis.toml no longer has the data_dir line this script replaces"
  start_portcullis off "$OFF_CONFIG" --listen "${URLS[off]#http://}" --admin-listen 127.0.0.1:9785
fi

if wants floor; then
  say "starting the floor server on CPU $SERVER_CPU (${URLS[floor]})"
  taskset -c "$SERVER_CPU" "$FLOOR_BIN" --listen "${URLS[floor]#http://}" >"$RAW/floor.log" 2>&1 &
  PIDS[floor]=$!
  wait_for floor "${URLS[floor]}/"
fi

# ------------------------------------------------------------------------------ pre-flight

if [ "${#ROUND[@]}" -gt 0 ] || wants floor; then
  say "pre-flight: each workload gets the answer it is meant to measure"
  nginx_headers=(-H "X-Original-URI: /ops/apps/payments/logs/x" -H "X-Original-Method: GET"
    -H "X-Forwarded-Host: ops.acme.example" -H "X-Tenant-ID: acme"
    -H "Authorization: Bearer $BOB_TOKEN")
  check_body='{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download","resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'
  authzen_body='{"subject":{"type":"user","id":"bob"},"action":{"name":"logs.download"},"resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'
  for workload in floor "${ROUND[@]}"; do
    wants "$workload" || continue
    spec "$workload"
    case "$workload" in
      floor)
        expect "$workload" '^HTTP/1.1 204' "$(curl -sS -i "${nginx_headers[@]}" \
          -H "X-Forwarded-For: $OFFICE_IP" "$URL/v1/authz/nginx" | tr -d '\r' | tr '\n' ' ')" ;;
      nginx-allow | nginx-allow-audit-off)
        expect "$workload" '^HTTP/1.1 200.*x-portcullis-user: bob' "$(curl -sS -i "${nginx_headers[@]}" \
          -H "X-Forwarded-For: $OFFICE_IP" "$URL/v1/authz/nginx" | tr -d '\r' | tr '\n' ' ')" ;;
      nginx-deny)
        expect "$workload" '^HTTP/1.1 403.*"cause":"strategy_failed"' "$(curl -sS -i "${nginx_headers[@]}" \
          -H "X-Forwarded-For: $OUTSIDE_IP" "$URL/v1/authz/nginx" | tr -d '\r' | tr '\n' ' ')" ;;
      check | check-audit-off)
        expect "$workload" '^HTTP/1.1 200.*"decision":"allow"' "$(curl -sS -i -H 'Content-Type: application/json' \
          -d "$check_body" "$URL/v1/check" | tr -d '\r' | tr '\n' ' ')" ;;
      check-jwt)
        expect "$workload" '^HTTP/1.1 200.*"decision":"allow"' "$(curl -sS -i -H 'Content-Type: application/json' \
          -H "Authorization: Bearer $BOB_TOKEN" -H "Host: ops.acme.example" -d "$check_body" "$URL/v1/check" \
          | tr -d '\r' | tr '\n' ' ')" ;;
      authzen)
        expect "$workload" '^HTTP/1.1 200.*"decision":true' "$(curl -sS -i -H 'Content-Type: application/json' \
          -H 'Host: ops.acme.example' -d "$authzen_body" "$URL/access/v1/evaluation" | tr -d '\r' | tr '\n' ' ')" ;;
    esac
  done
  # The audit trail is written by a thread of its own; give it a moment before looking.
  sleep 0.5
  if [ -n "${PIDS[on]:-}" ]; then
    [ -d "$CACHE/http-data/audit/acme" ] || die "the server with auditing on keeps no trail for acme"
  fi
  if [ -n "${PIDS[off]:-}" ]; then
    [ ! -e "$CACHE/http-data-audit-off/audit" ] || die "the server with auditing off keeps a trail"
  fi

  measure_rounds

  if [ -n "${PIDS[on]:-}" ]; then
    meta PORTCULLIS_RSS_AFTER_KB "$(status_kb "${PIDS[on]}" VmRSS)"
    meta PORTCULLIS_HWM_AFTER_KB "$(status_kb "${PIDS[on]}" VmHWM)"
    meta PORTCULLIS_THREADS "$(status_kb "${PIDS[on]}" Threads)"
    curl -fsS "${URLS[on]}/metrics" >"$RAW/portcullis-metrics.txt" || true
  fi
  stop_servers
  rm -f "$HERE/.portcullis-audit-off.toml"
fi

# ------------------------------------------------------------------------------ Cerbos

if wants cerbos; then
  meta CERBOS_VERSION "$(CERBOS_NO_TELEMETRY=1 "$CERBOS_BIN" --version | head -1)"
  say "checking the Cerbos policy against its tests"
  CERBOS_NO_TELEMETRY=1 "$CERBOS_BIN" compile bench/cerbos/policies >"$RAW/cerbos-compile.txt" 2>&1 ||
    die "the Cerbos policy failed its tests; see $RAW/cerbos-compile.txt"
  say "starting cerbos server on CPU $SERVER_CPU"
  CERBOS_NO_TELEMETRY=1 taskset -c "$SERVER_CPU" "$CERBOS_BIN" server \
    --config=bench/cerbos/config.yaml --log-level=warn >"$RAW/cerbos.log" 2>&1 &
  PIDS[cerbos]=$!
  wait_for cerbos "${URLS[cerbos]}/_cerbos/health"
  meta CERBOS_RSS_IDLE_KB "$(status_kb "${PIDS[cerbos]}" VmRSS)"
  cerbos_body='{"requestId":"bench","principal":{"id":"bob","roles":["viewer"]},"resources":[{"resource":{"kind":"app","id":"payments"},"actions":["logs.download"]}]}'
  expect cerbos '^HTTP/1.1 200.*"logs.download":"EFFECT_ALLOW"' "$(curl -sS -i -H 'Content-Type: application/json' \
    -d "$cerbos_body" "${URLS[cerbos]}/api/check/resources" | tr -d '\r' | tr '\n' ' ')"
  say "Cerbos POST /api/check/resources"
  for conns in $CONNECTIONS; do
    wrk_run cerbos "$conns" warmup "$WARMUP"
    for run in $(seq 1 "$RUNS"); do
      wrk_run cerbos "$conns" "$run" "$DURATION"
    done
  done
  meta CERBOS_RSS_AFTER_KB "$(status_kb "${PIDS[cerbos]}" VmRSS)"
  meta CERBOS_HWM_AFTER_KB "$(status_kb "${PIDS[cerbos]}" VmHWM)"
  stop_server cerbos
fi

meta LOAD_AT_END "$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------------------ report

python3 "$HERE/report.py" "$RAW" "$RESULTS"
say "results written to $RESULTS (raw output in $RAW)"
cat "$RESULTS"
