#!/usr/bin/env bash
# HTTP load benchmark of the decision service (`portcullis serve`) and of the Cerbos PDP on an
# equivalent role policy. Not run in CI: it takes about a quarter of an hour and needs two CPUs.
#
#   bench/http/run.sh                      # everything, writes bench/http/results.md
#   DURATION=5 RUNS=1 CONNECTIONS=64 bench/http/run.sh     # a quick look
#
# Knobs (environment): DURATION (s, default 15), RUNS (3), WARMUP (s, 5),
# CONNECTIONS ("16 64 256"), WORKLOADS ("nginx-allow nginx-deny check check-audit-off check-jwt
# cerbos"; `check-audit-off` is `check` on a second server with `[audit] enabled = false`),
# SERVER_CPU (0), LOAD_CPU (1), CERBOS_VERSION (0.55.0), RESULTS (bench/http/results.md),
# SKIP_BUILD=1 to use the existing target/release/portcullis; OTHER_MAX (CPUs, 0.10),
# MAX_ATTEMPTS (5) and QUIET_WAIT (s, 600) for runs disturbed by other work on the machine.
#
# The server under test is pinned to SERVER_CPU and wrk (one thread) to LOAD_CPU, so neither
# steals the other's core. Raw wrk output, server logs and the figures are kept under
# bench/.cache/http-raw/<timestamp>/ (git-ignored).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=bench/http
CACHE=bench/.cache

DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-"16 64 256"}
WORKLOADS=${WORKLOADS:-"nginx-allow nginx-deny check check-audit-off check-jwt cerbos"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CERBOS_VERSION=${CERBOS_VERSION:-0.55.0}
RESULTS=${RESULTS:-$HERE/results.md}
OTHER_MAX=${OTHER_MAX:-0.10}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-5}
QUIET_WAIT=${QUIET_WAIT:-600}

PORTCULLIS_URL=http://127.0.0.1:9780
PORTCULLIS_ADMIN=127.0.0.1:9781
CERBOS_URL=http://127.0.0.1:9782
OFFICE_IP=172.16.3.4
OUTSIDE_IP=203.0.113.9

RAW=$CACHE/http-raw/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RAW"
TSV=$RAW/results.tsv
META=$RAW/meta.env
: >"$META"

. bench/lib.sh

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
if [[ " $WORKLOADS " == *" cerbos "* ]] && [ ! -x "$CERBOS_BIN" ]; then
  command -v npm >/dev/null || die "npm is required to install Cerbos"
  say "installing Cerbos $CERBOS_VERSION from npm into $CERBOS_DIR"
  mkdir -p "$CERBOS_DIR"
  npm install --no-audit --no-fund --prefix "$CERBOS_DIR" "@cerbos/cerbos-linux-x64@$CERBOS_VERSION"
fi

build_portcullis
PORTCULLIS_BIN=$BIN

ports_free 9780 9781 9782 9783

# Every run starts from an empty data folder (store, keys, audit trail), so that one run's
# records do not become the next run's startup work.
rm -rf "$CACHE/http-data"

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
printf 'server\tworkload\tconns\trun\trequests\trps\tp50_us\tp75_us\tp90_us\tp99_us\tp999_us\tmax_us\tnon2xx\tsocket_errors\tserver_cpu\tload_cpu\tother_cpu\tattempts\n' >"$TSV"

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

wait_for() { # URL
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited; see $RAW"
    sleep 0.1
  done
  die "$1 did not answer"
}

status_kb() { # PID FIELD
  awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"
}

# ------------------------------------------------------------------------------ load

# wrk_run SERVER WORKLOAD CONNS RUN SECONDS SCRIPT URL [ENV=VALUE...]
# Waits for the machine to be quiet, runs wrk under cpu_guard.py, and repeats a run during
# which other processes used more than OTHER_MAX CPUs (up to MAX_ATTEMPTS times; the last
# attempt is kept and its interference shows in the results).
wrk_run() {
  local server=$1 workload=$2 conns=$3 run=$4 seconds=$5 script=$6 url=$7
  shift 7
  local log=$RAW/$workload-c$conns-$run.txt attempt other
  for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
    python3 $HERE/cpu_guard.py quiet "$SERVER_PID" "$OTHER_MAX" "$QUIET_WAIT" >"$log"
    env "$@" python3 $HERE/cpu_guard.py run "$SERVER_PID" -- \
      taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${seconds}s" --latency -s "$script" "$url" \
      >>"$log" 2>&1 || die "wrk failed; see $log"
    other=$(sed -n 's/^CPU .*other_cpu=\([0-9.]*\).*/\1/p' "$log")
    if awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o <= m) }'; then
      break
    fi
    printf '    %-12s c=%-4s run %s: other processes used %s CPUs (attempt %s of %s)\n' \
      "$workload" "$conns" "$run" "$other" "$attempt" "$MAX_ATTEMPTS" >&2
    cp "$log" "$log.disturbed-$attempt"
  done
  [ "$run" = warmup ] && return 0
  python3 - "$log" "$server" "$workload" "$conns" "$run" "$attempt" >>"$TSV" <<'PY'
import sys
log, server, workload, conns, run, attempts = sys.argv[1:]
lines = open(log).read().splitlines()
f = {}
for prefix in ("RESULT ", "CPU "):
    line = next(l for l in lines if l.startswith(prefix))
    f.update(kv.split("=") for kv in line.split()[1:])
socket_errors = sum(int(f[k]) for k in ("connect_err", "read_err", "write_err", "timeout_err"))
print("\t".join([server, workload, conns, run, f["requests"], f["rps"], f["p50_us"], f["p75_us"],
                 f["p90_us"], f["p99_us"], f["p999_us"], f["max_us"], f["non2xx"], str(socket_errors),
                 f["server_cpu"], f["load_cpu"], f["other_cpu"], attempts]))
PY
  tail -1 "$TSV" | awk -F'\t' '{ printf "    %-12s c=%-4s run %s: %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  p99.9 %6.3f ms  cpu server %.2f wrk %.2f other %.2f\n", $2, $3, $4, $6, $7/1000, $10/1000, $11/1000, $15, $16, $17 }' >&2
}

# measure SERVER WORKLOAD SCRIPT URL [ENV=VALUE...]
measure() {
  local server=$1 workload=$2 script=$3 url=$4
  shift 4
  for conns in $CONNECTIONS; do
    wrk_run "$server" "$workload" "$conns" warmup "$WARMUP" "$script" "$url" "$@"
    for run in $(seq 1 "$RUNS"); do
      wrk_run "$server" "$workload" "$conns" "$run" "$DURATION" "$script" "$url" "$@"
    done
  done
}

wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }

# expect NAME PATTERN TEXT: fail unless TEXT matches PATTERN (grep -E).
expect() {
  grep -Eq "$2" <<<"$3" || die "pre-flight $1: expected /$2/, got:
$3"
}

# ------------------------------------------------------------------------------ Portcullis

if wants nginx-allow || wants nginx-deny || wants check || wants check-jwt; then
  say "starting portcullis serve on CPU $SERVER_CPU"
  taskset -c "$SERVER_CPU" "$PORTCULLIS_BIN" serve --config "$HERE/portcullis.toml" \
    >"$RAW/portcullis.log" 2>&1 &
  SERVER_PID=$!
  wait_for "$PORTCULLIS_URL/readyz"
  meta PORTCULLIS_RSS_IDLE_KB "$(status_kb "$SERVER_PID" VmRSS)"

  say "pre-flight: each workload gets the answer it is meant to measure"
  nginx_headers=(-H "X-Original-URI: /ops/apps/payments/logs/x" -H "X-Original-Method: GET"
    -H "X-Forwarded-Host: ops.acme.example" -H "X-Tenant-ID: acme"
    -H "Authorization: Bearer $BOB_TOKEN")
  expect nginx-allow '^HTTP/1.1 200.*x-portcullis-user: bob' "$(curl -sS -i "${nginx_headers[@]}" \
    -H "X-Forwarded-For: $OFFICE_IP" "$PORTCULLIS_URL/v1/authz/nginx" | tr -d '\r' | tr '\n' ' ')"
  expect nginx-deny '^HTTP/1.1 403.*"cause":"strategy_failed"' "$(curl -sS -i "${nginx_headers[@]}" \
    -H "X-Forwarded-For: $OUTSIDE_IP" "$PORTCULLIS_URL/v1/authz/nginx" | tr -d '\r' | tr '\n' ' ')"
  check_body='{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download","resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'
  expect check '^HTTP/1.1 200.*"decision":"allow"' "$(curl -sS -i -H 'Content-Type: application/json' \
    -d "$check_body" "$PORTCULLIS_URL/v1/check" | tr -d '\r' | tr '\n' ' ')"
  expect check-jwt '^HTTP/1.1 200.*"decision":"allow"' "$(curl -sS -i -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $BOB_TOKEN" -H "Host: ops.acme.example" -d "$check_body" "$PORTCULLIS_URL/v1/check" | tr -d '\r' | tr '\n' ' ')"

  if wants nginx-allow; then
    say "nginx forward-auth, allow"
    measure portcullis nginx-allow "$HERE/nginx.lua" "$PORTCULLIS_URL" \
      BENCH_TOKEN="$BOB_TOKEN" NGINX_CLIENT_IP="$OFFICE_IP"
  fi
  if wants nginx-deny; then
    say "nginx forward-auth, deny"
    measure portcullis nginx-deny "$HERE/nginx.lua" "$PORTCULLIS_URL" \
      BENCH_TOKEN="$BOB_TOKEN" NGINX_CLIENT_IP="$OUTSIDE_IP"
  fi
  if wants check; then
    say "POST /v1/check"
    measure portcullis check "$HERE/check.lua" "$PORTCULLIS_URL" BENCH_TOKEN=
  fi
  if wants check-jwt; then
    say "POST /v1/check with a bearer token"
    measure portcullis check-jwt "$HERE/check.lua" "$PORTCULLIS_URL" BENCH_TOKEN="$BOB_TOKEN"
  fi
  meta PORTCULLIS_RSS_AFTER_KB "$(status_kb "$SERVER_PID" VmRSS)"
  meta PORTCULLIS_HWM_AFTER_KB "$(status_kb "$SERVER_PID" VmHWM)"
  meta PORTCULLIS_THREADS "$(status_kb "$SERVER_PID" Threads)"
  curl -fsS "$PORTCULLIS_URL/metrics" >"$RAW/portcullis-metrics.txt" || true
  stop_server
fi

# ------------------------------------------------------------------------------ auditing off

# The same server and workload as `check`, with the audit trail switched off: the cost of
# recording every decision (masked, chained, group-committed with fsync) is the difference.
if wants check-audit-off; then
  say "starting portcullis serve without auditing on CPU $SERVER_CPU"
  OFF_CONFIG=$HERE/.portcullis-audit-off.toml
  { cat "$HERE/portcullis.toml"; printf '\n[audit]\nenabled = false\n'; } >"$OFF_CONFIG"
  taskset -c "$SERVER_CPU" "$PORTCULLIS_BIN" serve --config "$OFF_CONFIG" \
    >"$RAW/portcullis-audit-off.log" 2>&1 &
  SERVER_PID=$!
  wait_for "$PORTCULLIS_URL/readyz"
  check_body='{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download","resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'
  expect check-audit-off '^HTTP/1.1 200.*"decision":"allow"' "$(curl -sS -i -H 'Content-Type: application/json' \
    -d "$check_body" "$PORTCULLIS_URL/v1/check" | tr -d '\r' | tr '\n' ' ')"
  say "POST /v1/check, auditing off"
  measure portcullis check-audit-off "$HERE/check.lua" "$PORTCULLIS_URL" BENCH_TOKEN=
  stop_server
  rm -f "$OFF_CONFIG"
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
  SERVER_PID=$!
  wait_for "$CERBOS_URL/_cerbos/health"
  meta CERBOS_RSS_IDLE_KB "$(status_kb "$SERVER_PID" VmRSS)"
  cerbos_body='{"requestId":"bench","principal":{"id":"bob","roles":["viewer"]},"resources":[{"resource":{"kind":"app","id":"payments"},"actions":["logs.download"]}]}'
  expect cerbos '^HTTP/1.1 200.*"logs.download":"EFFECT_ALLOW"' "$(curl -sS -i -H 'Content-Type: application/json' \
    -d "$cerbos_body" "$CERBOS_URL/api/check/resources" | tr -d '\r' | tr '\n' ' ')"
  say "Cerbos POST /api/check/resources"
  measure cerbos cerbos "$HERE/cerbos.lua" "$CERBOS_URL"
  meta CERBOS_RSS_AFTER_KB "$(status_kb "$SERVER_PID" VmRSS)"
  meta CERBOS_HWM_AFTER_KB "$(status_kb "$SERVER_PID" VmHWM)"
  stop_server
fi

# ------------------------------------------------------------------------------ report

python3 "$HERE/report.py" "$RAW" "$RESULTS"
say "results written to $RESULTS (raw output in $RAW)"
cat "$RESULTS"
