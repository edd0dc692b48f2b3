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
#   BASE_BIN=/path/to/old/portcullis bench/http/compare.sh builds
#                                 # two builds of portcullis on the same configuration: the one
#                                 # built from this tree (new) against BASE_BIN (old), every
#                                 # workload; shows whether a change made any figure worse
#   DURATION=5 RUNS=1 bench/http/compare.sh audit      # a quick look
#
# Same method as run.sh: the servers pinned to SERVER_CPU, wrk (one thread) to LOAD_CPU, per
# workload and connection count a warm-up and RUNS measured runs per variant, alternating,
# medians. Not run in CI (about three minutes per workload and connection count).
#
# Knobs (environment): WORKLOADS (any of nginx, nginx-deny, check, check-jwt; default nginx for
# store, check for audit, all four for builds; WORKLOAD, one of them, is still read),
# CONNECTIONS ("64"; a list measures each), DURATION (s, 15), RUNS (3; 5 for audit and builds),
# WARMUP (s, 5), SERVER_CPU (0), LOAD_CPU (1), SKIP_BUILD=1 to use the portcullis already built;
# builds mode: BASE_BIN (required: the old binary), NEW_BIN (default: the one built from this
# tree, then not rebuilt), RPS_TOLERANCE (0.03) and P99_TOLERANCE (0.10): how much lower
# throughput and higher p99 the new build may show before its row says "worse"; store mode:
# PSQL ("psql -h 127.0.0.1 -U postgres": a superuser on the PostgreSQL server), PG_HOST/PG_PORT
# (127.0.0.1:5432); and as in run.sh OTHER_MAX (0.10 CPUs), MAX_ATTEMPTS (5) and QUIET_WAIT
# (600 s) for runs disturbed by other work on the machine.
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
RPS_TOLERANCE=${RPS_TOLERANCE:-0.03}
P99_TOLERANCE=${P99_TOLERANCE:-0.10}
OTHER_MAX=${OTHER_MAX:-0.10}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-5}
QUIET_WAIT=${QUIET_WAIT:-600}
OFFICE_IP=172.16.3.4
OUTSIDE_IP=203.0.113.9

MODE=${1:-}
case "$MODE" in
  store) A=sqlite B=postgres RUNS=${RUNS:-3} WORKLOADS=${WORKLOADS:-${WORKLOAD:-nginx}} ;;
  audit) A=audit-on B=audit-off RUNS=${RUNS:-5} WORKLOADS=${WORKLOADS:-${WORKLOAD:-check}} ;;
  builds) A=old B=new RUNS=${RUNS:-5} WORKLOADS=${WORKLOADS:-${WORKLOAD:-nginx nginx-deny check check-jwt}} ;;
  *) printf 'usage: %s store|audit|builds\n' "$0" >&2; exit 2 ;;
esac
RAW=$CACHE/compare-$MODE/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RAW"
RAW=$(cd "$RAW" && pwd)
TSV=$RAW/results.tsv
META=$RAW/meta.env
: >"$META"

. bench/lib.sh
sql() { $PSQL -X -q -At -d "$1" -c "$2"; }

# The workload names of run.sh are accepted too.
WORKLOADS=$(for workload in $WORKLOADS; do
  case "$workload" in
    nginx | nginx-allow) echo nginx ;;
    nginx-deny | check | check-jwt) echo "$workload" ;;
    *) die "unknown workload $workload (known: nginx, nginx-deny, check, check-jwt)" ;;
  esac
done | tr '\n' ' ')

[ "$(nproc)" -ge 2 ] || die "needs at least two CPUs (server and load generator on separate cores)"
for tool in curl python3 taskset wrk; do
  command -v "$tool" >/dev/null || die "$tool is required (bench/http/run.sh installs wrk)"
done
if [ "$MODE" = store ]; then
  command -v psql >/dev/null || die "psql is required"
  sql postgres "SELECT 1" >/dev/null || die "cannot reach PostgreSQL as a superuser with: $PSQL"
fi

# The binary of each variant: the one built from this tree, except in builds mode.
declare -A VBIN
if [ "$MODE" = builds ]; then
  [ -n "${BASE_BIN:-}" ] || die "builds mode compares against BASE_BIN=/path/to/old/portcullis"
  [ -x "$BASE_BIN" ] || die "BASE_BIN=$BASE_BIN is not an executable file"
  if [ -n "${NEW_BIN:-}" ]; then
    [ -x "$NEW_BIN" ] || die "NEW_BIN=$NEW_BIN is not an executable file"
  else
    build_portcullis
    NEW_BIN=$BIN
  fi
  VBIN[old]=$(realpath "$BASE_BIN")
  VBIN[new]=$(realpath "$NEW_BIN")
else
  build_portcullis
  VBIN[$A]=$BIN
  VBIN[$B]=$BIN
fi

ports_free 9784 9785 9786 9787

bench_secrets
DB=portcullis_bench_http_$(python3 -c 'import secrets; print(secrets.token_hex(6))')

declare -A PID URL
cleanup() {
  for backend in "${!PID[@]}"; do
    kill "${PID[$backend]}" 2>/dev/null || true
    wait "${PID[$backend]}" 2>/dev/null || true
  done
  # An `if`, not `&&`: the last status of an exit trap becomes the script's exit status.
  if [ "$MODE" = store ]; then
    sql postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
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
if [ "$MODE" = builds ]; then
  for variant in old new; do
    meta "BIN_$variant" "${VBIN[$variant]}"
    meta "VERSION_$variant" "$("${VBIN[$variant]}" --version 2>/dev/null | head -1 || true)"
    meta "SHA256_$variant" "$(sha256sum "${VBIN[$variant]}" | cut -c1-12)"
  done
fi
meta RUSTC "$(rustc --version | cut -d' ' -f1-2)"
meta WRK_VERSION "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
meta LOAD_AT_START "$(cut -d' ' -f1-3 /proc/loadavg)"
meta OTHER_MAX "$OTHER_MAX"
meta WORKLOADS "$WORKLOADS"
meta RPS_TOLERANCE "$RPS_TOLERANCE"
meta P99_TOLERANCE "$P99_TOLERANCE"
printf 'variant\tworkload\tconns\trun\trequests\trps\tp50_us\tp90_us\tp99_us\tp999_us\tmax_us\tnon2xx\tsocket_errors\tserver_cpu\tload_cpu\tother_cpu\tattempts\n' >"$TSV"

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
  taskset -c "$SERVER_CPU" "${VBIN[$backend]}" serve --config "$RAW/$backend.toml" --listen "$2" \
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

case "$MODE" in
  store)
    say "starting portcullis serve on CPU $SERVER_CPU: SQLite store (:9784) and PostgreSQL store (:9786, database $DB)"
    start sqlite 127.0.0.1:9784 127.0.0.1:9785
    start postgres 127.0.0.1:9786 127.0.0.1:9787 "[store]
url = \"postgres://portcullis_service@$PG_HOST:$PG_PORT/$DB\"
migrate_url = \"postgres://postgres@$PG_HOST:$PG_PORT/$DB\""
    ;;
  audit)
    say "starting portcullis serve on CPU $SERVER_CPU: audit trail on (:9784) and off (:9786)"
    start audit-on 127.0.0.1:9784 127.0.0.1:9785
    start audit-off 127.0.0.1:9786 127.0.0.1:9787 "[audit]
enabled = false"
    ;;
  builds)
    say "starting on CPU $SERVER_CPU: old build ${VBIN[old]} (:9784) and new build ${VBIN[new]} (:9786)"
    if cmp -s "${VBIN[old]}" "${VBIN[new]}"; then
      say "the two binaries are identical: the differences measured are the machine's noise"
    fi
    start old 127.0.0.1:9784 127.0.0.1:9785
    start new 127.0.0.1:9786 127.0.0.1:9787
    ;;
esac

# spec WORKLOAD: sets SCRIPT and WRK_ENV (the wrk script's environment).
spec() {
  case "$1" in
    nginx) SCRIPT=$HERE/nginx.lua WRK_ENV=(BENCH_TOKEN="$BOB_TOKEN" NGINX_CLIENT_IP="$OFFICE_IP") ;;
    nginx-deny) SCRIPT=$HERE/nginx.lua WRK_ENV=(BENCH_TOKEN="$BOB_TOKEN" NGINX_CLIENT_IP="$OUTSIDE_IP") ;;
    check) SCRIPT=$HERE/check.lua WRK_ENV=(BENCH_TOKEN=) ;;
    check-jwt) SCRIPT=$HERE/check.lua WRK_ENV=(BENCH_TOKEN="$BOB_TOKEN") ;;
  esac
}

say "pre-flight: each server gives every workload the answer it is meant to measure"
CHECK_BODY='{"tenant":"acme","principal":{"id":"bob"},"action":"app:logs.download","resource":{"type":"app","id":"payments"},"context":{"ip":"172.16.3.4"}}'
nginx_answer() { # URL CLIENT_IP
  curl -sS -i -H "X-Original-URI: /ops/apps/payments/logs/x" -H "X-Original-Method: GET" \
    -H "X-Forwarded-Host: ops.acme.example" -H "X-Tenant-ID: acme" -H "Authorization: Bearer $BOB_TOKEN" \
    -H "X-Forwarded-For: $2" "$1/v1/authz/nginx" | tr -d '\r' | tr '\n' ' '
}
for variant in $A $B; do
  for workload in $WORKLOADS; do
    case "$workload" in
      nginx) answer=$(nginx_answer "${URL[$variant]}" "$OFFICE_IP") pattern='^HTTP/1.1 200.*x-portcullis-user: bob' ;;
      nginx-deny) answer=$(nginx_answer "${URL[$variant]}" "$OUTSIDE_IP") pattern='^HTTP/1.1 403.*"cause":"strategy_failed"' ;;
      check) answer=$(curl -sS -i -H 'Content-Type: application/json' -d "$CHECK_BODY" "${URL[$variant]}/v1/check" \
        | tr -d '\r' | tr '\n' ' ') pattern='^HTTP/1.1 200.*"decision":"allow"' ;;
      check-jwt) answer=$(curl -sS -i -H 'Content-Type: application/json' -H "Authorization: Bearer $BOB_TOKEN" \
        -H "Host: ops.acme.example" -d "$CHECK_BODY" "${URL[$variant]}/v1/check" | tr -d '\r' | tr '\n' ' ') \
        pattern='^HTTP/1.1 200.*"decision":"allow"' ;;
    esac
    grep -Eq "$pattern" <<<"$answer" || die "$variant, $workload: expected /$pattern/, got: $answer"
  done
done
case "$MODE" in
  store)
    [ -s "$RAW/data-sqlite/portcullis.db" ] || die "the SQLite server has no store in $RAW/data-sqlite"
    [ ! -e "$RAW/data-postgres/portcullis.db" ] || die "the PostgreSQL server opened an SQLite store"
    sessions=$(sql postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND usename = 'portcullis_service'")
    [ "$sessions" -gt 0 ] || die "the PostgreSQL server holds no session on $DB"
    meta PG_SESSIONS "$sessions"
    ;;
  audit)
    sleep 0.5
    [ -d "$RAW/data-audit-on/audit/acme" ] || die "the audit-on server keeps no trail for acme"
    [ ! -e "$RAW/data-audit-off/audit" ] || die "the audit-off server keeps a trail"
    ;;
esac

# wrk_run VARIANT WORKLOAD CONNS RUN SECONDS: as in run.sh, wait for a quiet machine, run wrk
# under cpu_guard.py, repeat a run disturbed by other processes (up to MAX_ATTEMPTS).
wrk_run() {
  local backend=$1 workload=$2 conns=$3 run=$4 seconds=$5
  local log=$RAW/$backend-$workload-c$conns-$run.txt attempt other
  spec "$workload"
  for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
    python3 $HERE/cpu_guard.py quiet "${PID[$backend]}" "$OTHER_MAX" "$QUIET_WAIT" >"$log"
    env "${WRK_ENV[@]}" python3 $HERE/cpu_guard.py run "${PID[$backend]}" -- \
      taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${seconds}s" --latency -s "$SCRIPT" "${URL[$backend]}" \
      >>"$log" 2>&1 || die "wrk failed; see $log"
    other=$(sed -n 's/^CPU .*other_cpu=\([0-9.]*\).*/\1/p' "$log")
    if awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o <= m) }'; then
      break
    fi
    printf '    %-9s %-10s c=%-4s run %s: other processes used %s CPUs (attempt %s of %s)\n' \
      "$backend" "$workload" "$conns" "$run" "$other" "$attempt" "$MAX_ATTEMPTS" >&2
    cp "$log" "$log.disturbed-$attempt"
  done
  [ "$run" = warmup ] && return 0
  python3 - "$log" "$backend" "$workload" "$conns" "$run" "$attempt" >>"$TSV" <<'PY'
import sys
log, backend, workload, conns, run, attempts = sys.argv[1:]
lines = open(log).read().splitlines()
f = {}
for prefix in ("RESULT ", "CPU "):
    line = next(l for l in lines if l.startswith(prefix))
    f.update(kv.split("=") for kv in line.split()[1:])
socket_errors = sum(int(f[k]) for k in ("connect_err", "read_err", "write_err", "timeout_err"))
print("\t".join([backend, workload, conns, run, f["requests"], f["rps"], f["p50_us"], f["p90_us"],
                 f["p99_us"], f["p999_us"], f["max_us"], f["non2xx"], str(socket_errors),
                 f["server_cpu"], f["load_cpu"], f["other_cpu"], attempts]))
PY
  tail -1 "$TSV" | awk -F'\t' '{ printf "    %-9s %-10s c=%-4s run %s: %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  p99.9 %6.3f ms  cpu server %.2f wrk %.2f other %.2f\n", $1, $2, $3, $4, $6, $7/1000, $9/1000, $10/1000, $14, $15, $16 }' >&2
}

for conns in $CONNECTIONS; do
  for workload in $WORKLOADS; do
    say "$MODE, $workload, $conns connections: warm-up, then $RUNS × ${DURATION} s per variant, alternating"
    for backend in $A $B; do
      wrk_run "$backend" "$workload" "$conns" warmup "$WARMUP"
    done
    for run in $(seq 1 "$RUNS"); do
      for backend in $A $B; do
        wrk_run "$backend" "$workload" "$conns" "$run" "$DURATION"
      done
    done
  done
done
for backend in $A $B; do
  meta "RSS_${backend}_KB" "$(awk '$1 == "VmRSS:" { print $2 }' "/proc/${PID[$backend]}/status")"
done
meta LOAD_AT_END "$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RAW" "$DURATION" "$RUNS" "$WARMUP" "$MODE" >"$RAW/compare.md" <<'PY'
import csv, statistics, sys
from pathlib import Path
raw, duration, runs, warmup, mode = sys.argv[1:]
meta = dict(l.split("=", 1) for l in Path(raw, "meta.env").read_text().splitlines() if "=" in l)
rows = list(csv.DictReader(open(Path(raw, "results.tsv")), delimiter="\t"))
machine_extra = ""
if mode == "store":
    variants = ("sqlite", "postgres")
    label = {"sqlite": "SQLite (default: `data_dir/portcullis.db`)", "postgres": "PostgreSQL (`[store] url`, service role)"}
    machine_extra = f"; PostgreSQL {meta['POSTGRES']} on the same machine"
elif mode == "audit":
    variants = ("audit-on", "audit-off")
    label = {"audit-on": "auditing on (every decision recorded)", "audit-off": "auditing off (`[audit] enabled = false`)"}
else:
    variants = ("old", "new")
    label = {v: f"{v} build (`{meta['BIN_' + v]}`, sha256 {meta['SHA256_' + v]})" for v in variants}
workload_text = {
    "nginx": "forward-auth `GET /v1/authz/nginx`, allow (office address, JWT; bench/http/nginx.lua)",
    "nginx-deny": "forward-auth `GET /v1/authz/nginx`, deny 403 (outside address, JWT; bench/http/nginx.lua)",
    "check": "`POST /v1/check`, allow (anonymous; bench/http/check.lua)",
    "check-jwt": "`POST /v1/check`, allow (bearer token; bench/http/check.lua)",
}
groups = []
for row in rows:
    key = (row["workload"], row["conns"])
    if key not in groups:
        groups.append(key)
rps_tolerance, p99_tolerance = float(meta["RPS_TOLERANCE"]), float(meta["P99_TOLERANCE"])
workloads = list(dict.fromkeys(w for w, _ in groups))
conns_all = list(dict.fromkeys(c for _, c in groups))
print(f"- Run started: {meta['DATE']}; load average {meta['LOAD_AT_START']} at the start, {meta['LOAD_AT_END']} at the end")
print(f"- Machine: {meta['CPU_MODEL']}, {meta['NPROC']} logical CPUs, Linux {meta['KERNEL']}{machine_extra}")
if mode == "builds":
    print(f"- Builds: new `{meta['BIN_new']}` ({meta['VERSION_new'] or 'no --version'}; this tree is "
          f"{meta['PORTCULLIS_REV']}), old `{meta['BIN_old']}` ({meta['VERSION_old'] or 'no --version'})"
          + ("; **the two binaries are identical**" if meta["SHA256_new"] == meta["SHA256_old"] else "")
          + f"; {meta['WRK_VERSION']}")
else:
    print(f"- Portcullis: {meta['PORTCULLIS_REV']} (release build, {meta['RUSTC']}); {meta['WRK_VERSION']}")
print(f"- Method: {'; '.join(workload_text[w] for w in workloads)}; at {', '.join(conns_all)} connections; "
      f"server pinned to CPU 0, wrk (one thread) to CPU 1; per workload and connection count a {warmup} s warm-up "
      f"per variant, then {runs} × {duration} s per variant, alternating between the variants; medians of the "
      "measured runs, metric by metric.")
summary = []
for workload, conns in groups:
    print()
    print(f"### {workload_text[workload]}, {conns} connections")
    print()
    print("| variant | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | unexpected answers / socket errors | CPUs server / wrk / other | req/s of each run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    med, runs_of = {}, {}
    for variant in variants:
        group = [r for r in rows if r["variant"] == variant and r["workload"] == workload and r["conns"] == conns]
        runs_of[variant] = group
        m = lambda k: statistics.median(float(r[k]) for r in group)
        med[variant] = {k: m(k) for k in ("rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "server_cpu", "load_cpu", "other_cpu")}
        non2xx = sum(int(r["non2xx"]) for r in group)
        # The deny workload is answered 403: there a 2xx answer is the unexpected one.
        unexpected = sum(int(r["requests"]) for r in group) - non2xx if workload == "nginx-deny" else non2xx
        errors = f"{unexpected} / {sum(int(r['socket_errors']) for r in group)}"
        each = ", ".join(f"{float(r['rps']):,.0f}" for r in group)
        d = med[variant]
        disturbed = " ⚠" if any(float(r["other_cpu"]) > float(meta["OTHER_MAX"]) for r in group) else ""
        print(f"| {label[variant]} | {d['rps']:,.0f} | {d['p50_us']/1000:.2f} | {d['p90_us']/1000:.2f} | {d['p99_us']/1000:.2f} "
              f"| {d['p999_us']/1000:.2f} | {d['max_us']/1000:.2f} | {errors} | {d['server_cpu']:.2f} / {d['load_cpu']:.2f} / {d['other_cpu']:.2f}{disturbed} | {each} |")
    a, b = med[variants[0]], med[variants[1]]
    # Run i of one variant ran right next to run i of the other.
    pairs = [float(rb["rps"]) / float(ra["rps"]) for ra, rb in zip(runs_of[variants[0]], runs_of[variants[1]])]
    print()
    if mode == "store":
        print(f"PostgreSQL against SQLite: throughput {100 * (b['rps'] / a['rps'] - 1):+.1f} %, "
              f"p50 {100 * (b['p50_us'] / a['p50_us'] - 1):+.1f} %, p99 {100 * (b['p99_us'] / a['p99_us'] - 1):+.1f} %, "
              f"p99.9 {100 * (b['p999_us'] / a['p999_us'] - 1):+.1f} %.")
    elif mode == "audit":
        ratio = a["rps"] / b["rps"]
        verdict = "met" if ratio >= 0.85 else "not met"
        print(f"Auditing on against off: throughput {100 * ratio:.1f} % of off (medians); run by run "
              f"{', '.join(f'{100 / p:.1f} %' for p in pairs)}; p99 {a['p99_us']/1000:.2f} against {b['p99_us']/1000:.2f} ms. "
              f"Target (within 15 %): {verdict}.")
    else:
        ratio = statistics.median(pairs)
        p99_ratio = b["p99_us"] / a["p99_us"]
        worse = ratio < 1 - rps_tolerance or p99_ratio > 1 + p99_tolerance
        verdict = "**worse**" if worse else "no worse"
        summary.append((workload, conns, a, b, ratio, pairs, p99_ratio, verdict))
        print(f"New against old: throughput {100 * ratio:.1f} % of old (median of the run-by-run ratios "
              f"{', '.join(f'{100 * p:.1f} %' for p in pairs)}; medians {100 * b['rps'] / a['rps']:.1f} %), "
              f"p99 {100 * p99_ratio:.1f} % of old: {verdict}.")
if mode == "builds":
    print()
    print("### New build against old, every workload")
    print()
    print("| workload | conns | old req/s | new req/s | new / old | run by run | old p99 ms | new p99 ms | p99 new / old | verdict |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---|")
    for workload, conns, a, b, ratio, pairs, p99_ratio, verdict in summary:
        print(f"| {workload} | {conns} | {a['rps']:,.0f} | {b['rps']:,.0f} | {ratio:.1%} | "
              f"{', '.join(f'{p:.1%}' for p in pairs)} | {a['p99_us']/1000:.2f} | {b['p99_us']/1000:.2f} | "
              f"{p99_ratio:.1%} | {verdict} |")
    print()
    worse = [f"{w} at {c}" for w, c, *_, v in summary if v != "no worse"]
    print(f"\"new / old\" is the median of the ratios of runs that ran next to each other; a row is "
          f"\"worse\" when it is below {1 - rps_tolerance:.0%} of the old throughput or its p99 is above "
          f"{1 + p99_tolerance:.0%} of the old (RPS_TOLERANCE, P99_TOLERANCE). "
          + (f"Worse: {', '.join(worse)}." if worse else "No figure is worse."))
print()
print(f"⚠ marks a variant with a run during which other processes used more than {meta['OTHER_MAX']} CPUs.")
PY
say "table written to $RAW/compare.md"
cat "$RAW/compare.md"
