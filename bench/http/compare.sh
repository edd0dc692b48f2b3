#!/usr/bin/env bash
# Two `portcullis serve` variants side by side under the same load, measured in alternating runs
# (A, B, A, B, …) so that a slow spell of the machine does not fall on one variant only.
#
#   bench/http/compare.sh store   # forward-auth `GET /v1/authz/nginx` (allow) on the default
#                                 # SQLite store and on PostgreSQL: decisions never read the
#                                 # database, so the figures must match
#   bench/http/compare.sh audit   # `POST /v1/check` (allow) with the audit trail on (every
#                                 # decision recorded: masked, chained, group-committed with
#                                 # fsync) and off
#   DURATION=5 RUNS=1 bench/http/compare.sh audit      # a quick look
#
# Same method as run.sh: the servers pinned to SERVER_CPU, wrk (one thread) to LOAD_CPU, a
# warm-up and RUNS measured runs per variant, medians. Not run in CI (about three minutes).
#
# Knobs (environment): WORKLOAD ("nginx": forward-auth, the store default; "check":
# `POST /v1/check`, the audit default), DURATION (s, 15), RUNS (3; 5 for audit), WARMUP (s, 5), CONNECTIONS (64),
# SERVER_CPU (0), LOAD_CPU (1), PSQL ("psql -h 127.0.0.1 -U postgres": a superuser on the
# PostgreSQL server, store mode only), PG_HOST/PG_PORT (127.0.0.1:5432), SKIP_BUILD=1 to use the
# existing target/release/portcullis, and as in run.sh OTHER_MAX (0.10 CPUs), MAX_ATTEMPTS (5)
# and QUIET_WAIT (600 s) for runs disturbed by other work on the machine.
#
# Both servers run for the whole comparison (the idle one does nothing but its once-a-second
# revision poll). In store mode the PostgreSQL server uses a new database
# (portcullis_bench_http_<random>), dropped at the end. Ports 9784-9787 must be free. Raw wrk
# output, server logs and the table stay in bench/.cache/compare-<mode>/<timestamp>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=bench/http
CACHE=bench/.cache

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PSQL=${PSQL:-"psql -h 127.0.0.1 -U postgres"}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
OTHER_MAX=${OTHER_MAX:-0.10}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-5}
QUIET_WAIT=${QUIET_WAIT:-600}
OFFICE_IP=172.16.3.4

MODE=${1:-}
case "$MODE" in
  store) A=sqlite B=postgres RUNS=${RUNS:-3} WORKLOAD=${WORKLOAD:-nginx} ;;
  audit) A=audit-on B=audit-off RUNS=${RUNS:-5} WORKLOAD=${WORKLOAD:-check} ;;
  *) printf 'usage: %s store|audit\n' "$0" >&2; exit 2 ;;
esac
RAW=$CACHE/compare-$MODE/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RAW"
RAW=$(cd "$RAW" && pwd)
TSV=$RAW/results.tsv
META=$RAW/meta.env
: >"$META"

. bench/lib.sh
sql() { $PSQL -X -q -At -d "$1" -c "$2"; }

[ "$(nproc)" -ge 2 ] || die "needs at least two CPUs (server and load generator on separate cores)"
for tool in curl python3 taskset wrk; do
  command -v "$tool" >/dev/null || die "$tool is required (bench/http/run.sh installs wrk)"
done
if [ "$MODE" = store ]; then
  command -v psql >/dev/null || die "psql is required"
  sql postgres "SELECT 1" >/dev/null || die "cannot reach PostgreSQL as a superuser with: $PSQL"
fi

build_portcullis

ports_free 9784 9785 9786 9787

bench_secrets
DB=portcullis_bench_http_$(python3 -c 'import secrets; print(secrets.token_hex(6))')

declare -A PID URL
cleanup() {
  for backend in "${!PID[@]}"; do
    kill "${PID[$backend]}" 2>/dev/null || true
    wait "${PID[$backend]}" 2>/dev/null || true
  done
  [ "$MODE" = store ] && { sql postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
}
trap cleanup EXIT
[ "$MODE" = store ] && sql postgres "CREATE DATABASE $DB" >/dev/null

meta DATE "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta CPU_MODEL "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
meta NPROC "$(nproc)"
meta KERNEL "$(uname -r)"
meta MODE "$MODE"
[ "$MODE" = store ] && meta POSTGRES "$(sql postgres 'SHOW server_version' | cut -d' ' -f1)"
meta PORTCULLIS_REV "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' + uncommitted changes')"
meta RUSTC "$(rustc --version | cut -d' ' -f1-2)"
meta WRK_VERSION "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
meta LOAD_AT_START "$(cut -d' ' -f1-3 /proc/loadavg)"
meta OTHER_MAX "$OTHER_MAX"
printf 'variant\trun\trequests\trps\tp50_us\tp90_us\tp99_us\tp999_us\tmax_us\tnon2xx\tsocket_errors\tserver_cpu\tload_cpu\tother_cpu\tattempts\n' >"$TSV"

# The configuration of bench/http/portcullis.toml with its own data folder and ports (the ports
# as command-line overrides), and a table of the variant's own appended: [store] for PostgreSQL
# (the service role; migrations as the owner), [audit] for auditing off.
start() { # VARIANT LISTEN ADMIN [EXTRA_TABLE]
  local backend=$1
  {
    sed -e "s|^data_dir = .*|data_dir = \"data-$backend\"|" \
      -e "s|^bundles = .*|bundles = [\"$ROOT/examples/demo/bundles\"]|" "$HERE/portcullis.toml"
    printf '\n%s\n' "${4:-}"
  } >"$RAW/$backend.toml"
  grep -q "^data_dir = \"data-$backend\"" "$RAW/$backend.toml" &&
    grep -q "^bundles = \[\"$ROOT/" "$RAW/$backend.toml" ||
    die "$HERE/portcullis.toml no longer has the data_dir and bundles lines this script replaces"
  taskset -c "$SERVER_CPU" "$BIN" serve --config "$RAW/$backend.toml" --listen "$2" \
    --admin-listen "$3" >"$RAW/$backend.log" 2>&1 &
  PID[$backend]=$!
  URL[$backend]=http://$2
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://$2/readyz" 2>/dev/null && return 0
    kill -0 "${PID[$backend]}" 2>/dev/null || die "the $backend server exited; see $RAW/$backend.log"
    sleep 0.1
  done
  die "the $backend server did not start; see $RAW/$backend.log"
}

if [ "$MODE" = store ]; then
  say "starting portcullis serve on CPU $SERVER_CPU: SQLite store (:9784) and PostgreSQL store (:9786, database $DB)"
  start sqlite 127.0.0.1:9784 127.0.0.1:9785
  start postgres 127.0.0.1:9786 127.0.0.1:9787 "[store]
url = \"postgres://portcullis_service@$PG_HOST:$PG_PORT/$DB\"
migrate_url = \"postgres://postgres@$PG_HOST:$PG_PORT/$DB\""
else
  say "starting portcullis serve on CPU $SERVER_CPU: audit trail on (:9784) and off (:9786)"
  start audit-on 127.0.0.1:9784 127.0.0.1:9785
  start audit-off 127.0.0.1:9786 127.0.0.1:9787 "[audit]
enabled = false"
fi

say "pre-flight: each server allows the workload's request and runs as it should"
CHECK_BODY='{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download","resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'
for variant in $A $B; do
  if [ "$WORKLOAD" = nginx ]; then
    answer=$(curl -sS -i -H "X-Original-URI: /ops/apps/payments/logs/x" -H "X-Original-Method: GET" \
      -H "X-Forwarded-Host: ops.acme.example" -H "X-Tenant-ID: acme" -H "Authorization: Bearer $BOB_TOKEN" \
      -H "X-Forwarded-For: $OFFICE_IP" "${URL[$variant]}/v1/authz/nginx" | tr -d '\r' | tr '\n' ' ')
    grep -Eq '^HTTP/1.1 200.*x-portcullis-user: bob' <<<"$answer" || die "$variant: expected an allow, got: $answer"
  else
    answer=$(curl -sS -i -H 'Content-Type: application/json' -d "$CHECK_BODY" "${URL[$variant]}/v1/check" \
      | tr -d '\r' | tr '\n' ' ')
    grep -Eq '^HTTP/1.1 200.*"decision":"allow"' <<<"$answer" || die "$variant: expected an allow, got: $answer"
  fi
done
if [ "$MODE" = store ]; then
  [ -s "$RAW/data-sqlite/portcullis.db" ] || die "the SQLite server has no store in $RAW/data-sqlite"
  [ ! -e "$RAW/data-postgres/portcullis.db" ] || die "the PostgreSQL server opened an SQLite store"
  sessions=$(sql postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND usename = 'portcullis_service'")
  [ "$sessions" -gt 0 ] || die "the PostgreSQL server holds no session on $DB"
  meta PG_SESSIONS "$sessions"
else
  sleep 0.5
  [ -d "$RAW/data-audit-on/audit/acme" ] || die "the audit-on server keeps no trail for acme"
  [ ! -e "$RAW/data-audit-off/audit" ] || die "the audit-off server keeps a trail"
fi
case "$WORKLOAD" in
  nginx) SCRIPT=$HERE/nginx.lua WRK_TOKEN=$BOB_TOKEN ;;
  check) SCRIPT=$HERE/check.lua WRK_TOKEN= ;;
  *) die "WORKLOAD must be nginx or check" ;;
esac
meta WORKLOAD "$WORKLOAD"

# wrk_run VARIANT RUN SECONDS: as in run.sh, wait for a quiet machine, run wrk under
# cpu_guard.py, repeat a run disturbed by other processes (up to MAX_ATTEMPTS).
wrk_run() {
  local backend=$1 run=$2 seconds=$3
  local log=$RAW/$backend-$run.txt attempt other
  for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
    python3 $HERE/cpu_guard.py quiet "${PID[$backend]}" "$OTHER_MAX" "$QUIET_WAIT" >"$log"
    BENCH_TOKEN="$WRK_TOKEN" NGINX_CLIENT_IP="$OFFICE_IP" python3 $HERE/cpu_guard.py run "${PID[$backend]}" -- \
      taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency -s "$SCRIPT" "${URL[$backend]}" \
      >>"$log" 2>&1 || die "wrk failed; see $log"
    other=$(sed -n 's/^CPU .*other_cpu=\([0-9.]*\).*/\1/p' "$log")
    if awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o <= m) }'; then
      break
    fi
    printf '    %-8s run %s: other processes used %s CPUs (attempt %s of %s)\n' \
      "$backend" "$run" "$other" "$attempt" "$MAX_ATTEMPTS" >&2
    cp "$log" "$log.disturbed-$attempt"
  done
  [ "$run" = warmup ] && return 0
  python3 - "$log" "$backend" "$run" "$attempt" >>"$TSV" <<'PY'
import sys
log, backend, run, attempts = sys.argv[1:]
lines = open(log).read().splitlines()
f = {}
for prefix in ("RESULT ", "CPU "):
    line = next(l for l in lines if l.startswith(prefix))
    f.update(kv.split("=") for kv in line.split()[1:])
socket_errors = sum(int(f[k]) for k in ("connect_err", "read_err", "write_err", "timeout_err"))
print("\t".join([backend, run, f["requests"], f["rps"], f["p50_us"], f["p90_us"], f["p99_us"],
                 f["p999_us"], f["max_us"], f["non2xx"], str(socket_errors), f["server_cpu"],
                 f["load_cpu"], f["other_cpu"], attempts]))
PY
  tail -1 "$TSV" | awk -F'\t' '{ printf "    %-8s run %s: %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  p99.9 %6.3f ms  cpu server %.2f wrk %.2f other %.2f\n", $1, $2, $4, $5/1000, $7/1000, $8/1000, $12, $13, $14 }' >&2
}

say "$MODE: $CONNECTIONS connections: warm-up, then $RUNS × ${DURATION} s per variant, alternating"
for backend in $A $B; do
  wrk_run "$backend" warmup "$WARMUP"
done
for run in $(seq 1 "$RUNS"); do
  for backend in $A $B; do
    wrk_run "$backend" "$run" "$DURATION"
  done
done
for backend in $A $B; do
  meta "RSS_${backend}_KB" "$(awk '$1 == "VmRSS:" { print $2 }' "/proc/${PID[$backend]}/status")"
done
meta LOAD_AT_END "$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RAW" "$CONNECTIONS" "$DURATION" "$RUNS" "$WARMUP" "$MODE" >"$RAW/compare.md" <<'PY'
import csv, statistics, sys
from pathlib import Path
raw, conns, duration, runs, warmup, mode = sys.argv[1:]
meta = dict(l.split("=", 1) for l in Path(raw, "meta.env").read_text().splitlines() if "=" in l)
rows = list(csv.DictReader(open(Path(raw, "results.tsv")), delimiter="\t"))
if mode == "store":
    variants = ("sqlite", "postgres")
    label = {"sqlite": "SQLite (default: `data_dir/portcullis.db`)", "postgres": "PostgreSQL (`[store] url`, service role)"}
    machine_extra = f"; PostgreSQL {meta['POSTGRES']} on the same machine"
else:
    variants = ("audit-on", "audit-off")
    label = {"audit-on": "auditing on (every decision recorded)", "audit-off": "auditing off (`[audit] enabled = false`)"}
    machine_extra = ""
workload = {
    "nginx": "forward-auth `GET /v1/authz/nginx`, allow (office address, JWT; bench/http/nginx.lua)",
    "check": "`POST /v1/check`, allow (anonymous; bench/http/check.lua)",
}[meta["WORKLOAD"]]
med = {}
print(f"- Run started: {meta['DATE']}; load average {meta['LOAD_AT_START']} at the start, {meta['LOAD_AT_END']} at the end")
print(f"- Machine: {meta['CPU_MODEL']}, {meta['NPROC']} logical CPUs, Linux {meta['KERNEL']}{machine_extra}")
print(f"- Portcullis: {meta['PORTCULLIS_REV']} (release build, {meta['RUSTC']}); {meta['WRK_VERSION']}")
print(f"- Method: {workload}, {conns} connections; "
      f"server pinned to CPU 0, wrk (one thread) to CPU 1; a {warmup} s warm-up per variant, then {runs} × {duration} s "
      "per variant, alternating between the variants; medians of the measured runs, metric by metric.")
print()
print("| variant | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | non-2xx / socket errors | CPUs server / wrk / other | req/s of each run |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for variant in variants:
    group = [r for r in rows if r["variant"] == variant]
    m = lambda k: statistics.median(float(r[k]) for r in group)
    med[variant] = {k: m(k) for k in ("rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "server_cpu", "load_cpu", "other_cpu")}
    errors = f"{sum(int(r['non2xx']) for r in group)} / {sum(int(r['socket_errors']) for r in group)}"
    each = ", ".join(f"{float(r['rps']):,.0f}" for r in group)
    d = med[variant]
    disturbed = " ⚠" if any(float(r["other_cpu"]) > float(meta["OTHER_MAX"]) for r in group) else ""
    print(f"| {label[variant]} | {d['rps']:,.0f} | {d['p50_us']/1000:.2f} | {d['p90_us']/1000:.2f} | {d['p99_us']/1000:.2f} "
          f"| {d['p999_us']/1000:.2f} | {d['max_us']/1000:.2f} | {errors} | {d['server_cpu']:.2f} / {d['load_cpu']:.2f} / {d['other_cpu']:.2f}{disturbed} | {each} |")
a, b = med[variants[0]], med[variants[1]]
print()
if mode == "store":
    print(f"PostgreSQL against SQLite: throughput {100 * (b['rps'] / a['rps'] - 1):+.1f} %, "
          f"p50 {100 * (b['p50_us'] / a['p50_us'] - 1):+.1f} %, p99 {100 * (b['p99_us'] / a['p99_us'] - 1):+.1f} %, "
          f"p99.9 {100 * (b['p999_us'] / a['p999_us'] - 1):+.1f} %.", end=" ")
else:
    on_runs = [float(r["rps"]) for r in rows if r["variant"] == "audit-on"]
    off_runs = [float(r["rps"]) for r in rows if r["variant"] == "audit-off"]
    pairs = [on / off for on, off in zip(on_runs, off_runs)]
    ratio = a["rps"] / b["rps"]
    verdict = "met" if ratio >= 0.85 else "not met"
    print(f"Auditing on against off: throughput {100 * ratio:.1f} % of off (medians); run by run "
          f"{', '.join(f'{100 * p:.1f} %' for p in pairs)}; p99 {a['p99_us']/1000:.2f} against {b['p99_us']/1000:.2f} ms. "
          f"Target (within 15 %): {verdict}.", end=" ")
print(f"⚠ marks a variant with a run during which other processes used more than {meta['OTHER_MAX']} CPUs.")
PY
say "table written to $RAW/compare.md"
cat "$RAW/compare.md"
