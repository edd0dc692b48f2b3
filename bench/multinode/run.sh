#!/usr/bin/env bash
# Convergence latency between two `portcullis serve` nodes sharing one PostgreSQL database:
# from a run-time role assignment acknowledged by node A to node B deciding accordingly, with
# LISTEN/NOTIFY working, with the notification path silently stalled (poll only), and with the
# listening connections terminated before each write. Not run in CI (about five minutes).
#
#   bench/multinode/run.sh                         # writes bench/multinode/results.md
#   ITERATIONS=20 MODES=notify bench/multinode/run.sh    # a quick look
#
# Knobs (environment): ITERATIONS (200), MODES ("notify stalled terminated"), POLL_MS (1000,
# the nodes' fallback poll), PROBE_MS (1, how often node B is asked), PSQL ("psql -h 127.0.0.1
# -U postgres": a superuser on the PostgreSQL server the nodes use), PG_HOST/PG_PORT
# (127.0.0.1:5432), RESULTS (bench/multinode/results.md), SKIP_BUILD=1 to use the existing
# target/release/portcullis, LOAD_MAX (0.5) and QUIET_WAIT (900 s): wait until the one-minute
# load average is below LOAD_MAX before measuring; LOG_LEVEL (warn) for the nodes' logs;
# URL_PARAMS (empty) appended to the nodes' store URLs, such as "?sslmode=disable".
#
# The "stalled" mode stops PostgreSQL's listening backends with SIGSTOP, so it must run as root
# or as the user PostgreSQL runs as, on the database's machine. Every run uses a new database
# (portcullis_bench_<random>), dropped at the end; ports 9790-9793 must be free. Node logs and
# raw samples stay in bench/.cache/multinode-raw/<timestamp>/ (git-ignored).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=bench/multinode
CACHE=bench/.cache

ITERATIONS=${ITERATIONS:-200}
MODES=${MODES:-"notify stalled terminated"}
POLL_MS=${POLL_MS:-1000}
PROBE_MS=${PROBE_MS:-1}
PSQL=${PSQL:-"psql -h 127.0.0.1 -U postgres"}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
RESULTS=${RESULTS:-$HERE/results.md}
LOAD_MAX=${LOAD_MAX:-0.5}
QUIET_WAIT=${QUIET_WAIT:-900}
LOG_LEVEL=${LOG_LEVEL:-warn}
URL_PARAMS=${URL_PARAMS:-}

RAW=$CACHE/multinode-raw/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RAW"
RAW=$(cd "$RAW" && pwd)
META=$RAW/meta.env
: >"$META"

. bench/lib.sh
sql() { $PSQL -X -q -At -d "$1" -c "$2"; }

for tool in curl python3 psql; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
sql postgres "SELECT 1" >/dev/null || die "cannot reach PostgreSQL as a superuser with: $PSQL"

build_portcullis

ports_free 9790 9791 9792 9793

DB=portcullis_bench_$(python3 -c 'import secrets; print(secrets.token_hex(6))')
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # A listening backend left stopped by an interrupted "stalled" mode would hold up the drop.
  for pid in $(sql postgres "SELECT pid FROM pg_stat_activity WHERE datname = '$DB'" 2>/dev/null); do
    kill -CONT "$pid" 2>/dev/null || true
  done
  sql postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
sql postgres "CREATE DATABASE $DB" >/dev/null

meta DATE "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta CPU_MODEL "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
meta NPROC "$(nproc)"
meta KERNEL "$(uname -r)"
meta POSTGRES "$(sql postgres 'SHOW server_version' | cut -d' ' -f1)"
meta PORTCULLIS_REV "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' + uncommitted changes')"
meta RUSTC "$(rustc --version | cut -d' ' -f1-2)"

# Two nodes: their own ports, data folders and copies of the system bundle (admin
# authorization); one store and one key ring. The tenant measured (acme) is uploaded by the
# driver through node A, so it lives only in the store.
python3 -c 'import secrets; print("k1 = " + secrets.token_hex(32)); print("current = k1")' >"$RAW/master.keys"
node() { # NAME LISTEN ADMIN
  mkdir -p "$RAW/bundles-$1"
  cp -r examples/demo/bundles/system "$RAW/bundles-$1/"
  cat >"$RAW/$1.toml" <<EOF
listen = "$2"
bundles = ["bundles-$1"]
data_dir = "data-$1"
[store]
url = "postgres://portcullis_service@$PG_HOST:$PG_PORT/$DB$URL_PARAMS"
migrate_url = "postgres://postgres@$PG_HOST:$PG_PORT/$DB$URL_PARAMS"
poll_ms = $POLL_MS
[encryption]
keys_file = "master.keys"
[reload]
watch = false
[admin]
listen = "$3"
[[admin.tokens]]
name = "ops"
token_env = "BENCH_ADMIN_TOKEN"
[log]
level = "$LOG_LEVEL"
EOF
  BENCH_ADMIN_TOKEN=$TOKEN "$BIN" serve --config "$RAW/$1.toml" >"$RAW/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$2/readyz" 2>/dev/null && return 0
    kill -0 "${PIDS[-1]}" 2>/dev/null || die "node $1 exited; see $RAW/$1.log"
    sleep 0.1
  done
  die "node $1 did not start; see $RAW/$1.log"
}
say "starting node A (127.0.0.1:9790, admin :9791) and node B (127.0.0.1:9792, admin :9793) on database $DB"
node a 127.0.0.1:9790 127.0.0.1:9791
node b 127.0.0.1:9792 127.0.0.1:9793

say "waiting for the machine to be quiet (1-minute load average < $LOAD_MAX, at most $QUIET_WAIT s)"
waited=0
while awk -v max="$LOAD_MAX" '{ exit !($1 >= max) }' /proc/loadavg; do
  [ "$waited" -ge "$QUIET_WAIT" ] && { say "still busy after $QUIET_WAIT s: $(cut -d' ' -f1-3 /proc/loadavg); measuring anyway"; break; }
  sleep 10
  waited=$((waited + 10))
done
meta LOAD_AT_START "$(cut -d' ' -f1-3 /proc/loadavg)"

COMMAND="bench/multinode/run.sh"
[ "$ITERATIONS" != 200 ] && COMMAND="ITERATIONS=$ITERATIONS $COMMAND"
[ "$MODES" != "notify stalled terminated" ] && COMMAND="MODES=\"$MODES\" $COMMAND"
[ "$POLL_MS" != 1000 ] && COMMAND="POLL_MS=$POLL_MS $COMMAND"
[ "$PROBE_MS" != 1 ] && COMMAND="PROBE_MS=$PROBE_MS $COMMAND"
python3 "$HERE/driver.py" --a-admin http://127.0.0.1:9791 --b-api http://127.0.0.1:9792 \
  --token "$TOKEN" --database "$DB" --iterations "$ITERATIONS" --probe-ms "$PROBE_MS" \
  --poll-ms "$POLL_MS" --modes "$MODES" --psql "$PSQL" --raw "$RAW" --results "$RESULTS" \
  --command "$COMMAND"
say "results written to $RESULTS (raw samples and node logs in $RAW)"
