#!/usr/bin/env bash
# Throughput of a protecting reverse proxy, on one benign GET with five query parameters
# (gateway.lua), for each of:
#   upstream   the application alone (the `floor` binary of crates/bench: bare hyper, 204;
#              or with UPSTREAM=nginx an nginx answering 200 itself)
#   nginx      nginx `proxy_pass` to it (Debian's nginx 1.22, one worker)
#   crs1       nginx + ModSecurity (libmodsecurity3 3.0.9) + OWASP CRS 3.3.4 at paranoia level 1
#   crs2       the same at paranoia level 2
#   gw-off     `portcullis gateway` with every stage off but the upstream (gateway-off.toml)
#   gw-on      `portcullis gateway` with every stage on (gateway-on.toml)
# with req/s, latency percentiles and each workload's ratio to nginx `proxy_pass` measured in
# the same round. The gateway rows run only when the portcullis binary has a `gateway`
# command. Not run in CI.
#
#   bench/gateway/setup.sh                                # once
#   bench/gateway/run.sh                                  # writes bench/gateway/results.md
#   DURATION=5 RUNS=1 WARMUP=2 bench/gateway/run.sh       # a quick look
#
# Knobs (environment): DURATION (s, 15), RUNS (3), WARMUP (s, 5), CONNECTIONS ("16 64"),
# WORKLOADS ("upstream nginx crs1 crs2 gw-off gw-on"), UPSTREAM (floor | nginx), SERVER_CPU (0),
# LOAD_CPU (1), GATEWAY (auto: build portcullis and run the gateway rows if it has the command;
# off: skip them), SKIP_BUILD=1 to use the binaries already built, PORTCULLIS_BIN and FLOOR_BIN
# to name them, RESULTS (bench/gateway/results.md), OTHER_MAX (CPUs, 0.10), MAX_ATTEMPTS (5)
# and QUIET_WAIT (s, 600) for runs disturbed by other work on the machine.
#
# As in bench/http: every server (the upstream included) is pinned to SERVER_CPU and wrk (one
# thread) to LOAD_CPU; nginx runs one worker. All servers are up for the whole run, and the
# workloads are measured in alternating rounds (upstream, nginx, crs1, crs2, gw-off, gw-on,
# upstream, ...), so that a slow spell of the machine falls on every workload alike; each
# ratio is taken within a round and the table shows the median. A run during which other
# processes used more than OTHER_MAX CPUs is repeated. Ports 9793-9798 must be free. Raw wrk
# output, configurations and logs are kept under bench/.cache/gateway-raw/<timestamp>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=bench/gateway
CACHE=bench/.cache

DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-"16 64"}
WORKLOADS=${WORKLOADS:-"upstream nginx crs1 crs2 gw-off gw-on"}
UPSTREAM=${UPSTREAM:-floor}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
GATEWAY=${GATEWAY:-auto}
RESULTS=${RESULTS:-$HERE/results.md}
OTHER_MAX=${OTHER_MAX:-0.10}
MAX_ATTEMPTS=${MAX_ATTEMPTS:-5}
QUIET_WAIT=${QUIET_WAIT:-600}

declare -A PORTS=([upstream]=9793 [nginx]=9794 [crs1]=9795 [crs2]=9796 [gw-off]=9797 [gw-on]=9798)
KNOWN="upstream nginx crs1 crs2 gw-off gw-on"

RAW=$CACHE/gateway-raw/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RAW"
TSV=$RAW/results.tsv
META=$RAW/meta.env
: >"$META"

. bench/lib.sh
. $HERE/lib.sh

wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }
for workload in $WORKLOADS; do
  [[ " $KNOWN " == *" $workload "* ]] || die "unknown workload $workload (known: $KNOWN)"
done

# ------------------------------------------------------------------------------ prerequisites

[ "$(nproc)" -ge 2 ] || die "needs at least two CPUs (servers and load generator on separate cores)"
for tool in curl python3 taskset wrk; do
  command -v "$tool" >/dev/null || die "$tool is required (bench/gateway/setup.sh installs wrk)"
done
gateway_prerequisites

case "$UPSTREAM" in
  floor)
    if [ -n "${FLOOR_BIN:-}" ]; then [ -x "$FLOOR_BIN" ] || die "$FLOOR_BIN is missing"; else build_floor; fi ;;
  nginx) ;;
  *) die "UPSTREAM is floor or nginx" ;;
esac

# The gateway rows: only with a portcullis binary that has the command.
if wants gw-off || wants gw-on; then
  if [ "$GATEWAY" = off ]; then
    say "GATEWAY=off: the portcullis gateway rows are skipped"
    WORKLOADS=$(sed -e 's/\bgw-off\b//; s/\bgw-on\b//' <<<"$WORKLOADS")
  else
    if [ -n "${PORTCULLIS_BIN:-}" ]; then BIN=$PORTCULLIS_BIN; else build_portcullis; fi
    PORTCULLIS_BIN=$BIN
    if ! "$PORTCULLIS_BIN" gateway --help >/dev/null 2>&1; then
      say "$PORTCULLIS_BIN has no \`gateway\` command yet: its rows are skipped"
      WORKLOADS=$(sed -e 's/\bgw-off\b//; s/\bgw-on\b//' <<<"$WORKLOADS")
    fi
  fi
fi
# Every workload gets the same request, signed in as the shop tenant's `bench-user` (the gateway
# with every stage on needs a credential; nginx and CRS see one more header).
if [[ " $WORKLOADS " == *" gw-"* ]]; then
  export GATEWAY_BENCH_SECRET=${GATEWAY_BENCH_SECRET:-gateway-bench-secret-0123456789abcdef}
  GATEWAY_BENCH_TOKEN=$(GATEWAY_BENCH_SECRET=$GATEWAY_BENCH_SECRET "$PORTCULLIS_BIN" token \
    --secret-env GATEWAY_BENCH_SECRET --issuer https://idp.bench.example --subject bench-user \
    --tenant shop --ttl 86400)
  export GATEWAY_BENCH_TOKEN
fi
read -r -a ROUND <<<"$WORKLOADS"
[ "${#ROUND[@]}" -gt 0 ] || die "no workload to measure"

ports_free "${PORTS[@]}"

# ------------------------------------------------------------------------------ bookkeeping

meta DATE "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta CPU_MODEL "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
meta NPROC "$(nproc)"
meta KERNEL "$(uname -r)"
meta PORTCULLIS_REV "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' + uncommitted changes')"
meta NGINX "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
meta LIBMODSECURITY "$(dpkg-query -W -f='${Version}' libmodsecurity3)"
meta CRS "$(dpkg-query -W -f='${Version}' modsecurity-crs)"
meta WRK_VERSION "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
meta UPSTREAM "$UPSTREAM"
meta SERVER_CPU "$SERVER_CPU"
meta LOAD_CPU "$LOAD_CPU"
meta DURATION "$DURATION"
meta RUNS "$RUNS"
meta WARMUP "$WARMUP"
meta ROUND "${ROUND[*]}"
meta LOAD_AT_START "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'workload\tconns\tround\trequests\trps\tp50_us\tp90_us\tp99_us\tp999_us\tmax_us\tnon2xx\tsocket_errors\tserver_cpu\tload_cpu\tother_cpu\tattempts\n' >"$TSV"

# ------------------------------------------------------------------------------ servers

declare -A PIDS=()
declare -A SERVED_BY=()
WORK=$(mktemp -d)
stop_servers() {
  local name pid
  for name in "${!PIDS[@]}"; do
    pid=${PIDS[$name]}
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap stop_servers EXIT

wait_for() { # NAME PORT
  for _ in $(seq 1 100); do
    curl -sS -o /dev/null -H 'Host: shop.example' -H 'Accept: */*' "http://127.0.0.1:$2/" 2>/dev/null && return 0
    kill -0 "${PIDS[$1]}" 2>/dev/null || die "the $1 server exited; see $RAW"
    sleep 0.1
  done
  die "127.0.0.1:$2 did not answer"
}

say "starting the upstream ($UPSTREAM) on CPU $SERVER_CPU (port ${PORTS[upstream]})"
if [ "$UPSTREAM" = floor ]; then
  taskset -c "$SERVER_CPU" "$FLOOR_BIN" --listen "127.0.0.1:${PORTS[upstream]}" >"$RAW/floor.log" 2>&1 &
  PIDS[upstream]=$!
else
  mkdir -p "$WORK/upstream"
  nginx_conf "$WORK/upstream" 1 "" "${PORTS[upstream]}:ok"
  taskset -c "$SERVER_CPU" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -g 'daemon off;' \
    >"$RAW/upstream-nginx.log" 2>&1 &
  PIDS[upstream]=$!
  cp "$WORK/upstream/nginx.conf" "$RAW/upstream-nginx.conf"
fi
wait_for upstream "${PORTS[upstream]}"
SERVED_BY[upstream]=upstream

# One nginx, one worker, three servers: proxy_pass alone, with CRS PL1, with CRS PL2. Only
# the server under load works; the others wait on their sockets.
if wants nginx || wants crs1 || wants crs2; then
  say "starting nginx (one worker) on CPU $SERVER_CPU: proxy_pass ${PORTS[nginx]}, + CRS PL1 ${PORTS[crs1]}, + CRS PL2 ${PORTS[crs2]}"
  mkdir -p "$WORK/nginx"
  modsec_rules "$WORK/nginx" 1 on
  modsec_rules "$WORK/nginx" 2 on
  nginx_conf "$WORK/nginx" 1 "127.0.0.1:${PORTS[upstream]}" \
    "${PORTS[nginx]}:proxy" "${PORTS[crs1]}:crs1" "${PORTS[crs2]}:crs2"
  cp "$WORK/nginx/nginx.conf" "$WORK/nginx/modsec-pl1.conf" "$WORK/nginx/modsec-pl2.conf" "$RAW/"
  taskset -c "$SERVER_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
    >"$RAW/nginx.log" 2>&1 &
  PIDS[nginx]=$!
  for workload in nginx crs1 crs2; do
    wait_for nginx "${PORTS[$workload]}"
    SERVED_BY[$workload]=nginx
  done
fi

for workload in gw-off gw-on; do
  wants "$workload" || continue
  say "starting portcullis gateway ($workload) on CPU $SERVER_CPU (port ${PORTS[$workload]})"
  taskset -c "$SERVER_CPU" "$PORTCULLIS_BIN" gateway --config "$HERE/gateway-${workload#gw-}.toml" \
    >"$RAW/portcullis-$workload.log" 2>&1 &
  PIDS[$workload]=$!
  wait_for "$workload" "${PORTS[$workload]}"
  SERVED_BY[$workload]=$workload
done

# The processes whose CPU time is the server's in each workload (cpu_guard.py): the server and
# its children (nginx's worker), and for the proxies the upstream too, on the same core.
family() { # PID: the PID and its children, comma-separated
  local children
  children=$(pgrep -P "$1" | paste -sd, -)
  printf '%s%s' "$1" "${children:+,$children}"
}
declare -A SERVER_PIDS=()
for workload in "${ROUND[@]}"; do
  SERVER_PIDS[$workload]=$(family "${PIDS[${SERVED_BY[$workload]}]}")
  if [ "$workload" != upstream ]; then
    SERVER_PIDS[$workload]+=",$(family "${PIDS[upstream]}")"
  fi
done
meta SERVER_PIDS "$(for w in "${ROUND[@]}"; do printf '%s=%s ' "$w" "${SERVER_PIDS[$w]}"; done)"

# ------------------------------------------------------------------------------ pre-flight

say "pre-flight: the benign request passes everywhere, a textbook injection is refused by CRS"
benign_path=$(sed -n 's/^wrk.path = "\(.*\)"$/\1/p' $HERE/gateway.lua)
# The same signed-in request wrk sends (when the gateway rows run).
signed_in=()
[ -n "${GATEWAY_BENCH_TOKEN:-}" ] && signed_in=(-H "Authorization: Bearer $GATEWAY_BENCH_TOKEN")
for workload in "${ROUND[@]}"; do
  status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.example' -H 'Accept: text/html' \
    "${signed_in[@]}" -A 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' \
    "http://127.0.0.1:${PORTS[$workload]}$benign_path")
  [[ "$status" == 2* ]] || die "$workload answered $status to the benign request"
  case "$workload" in
    crs* | gw-on)
      status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.example' -H 'Accept: text/html' \
        "${signed_in[@]}" -A 'Mozilla/5.0' "http://127.0.0.1:${PORTS[$workload]}/products/search?q=1%27+OR+%271%27%3D%271")
      [[ "$status" == 4* ]] || die "$workload answered $status to an injection" ;;
  esac
done

# ------------------------------------------------------------------------------ load

# wrk_run WORKLOAD CONNS ROUND SECONDS: as bench/http/run.sh, waits for the machine to be quiet,
# runs wrk pinned to LOAD_CPU under cpu_guard.py (CPU of the server process, of wrk and of
# everything else), and repeats a disturbed run.
wrk_run() {
  local workload=$1 conns=$2 round=$3 seconds=$4
  local log=$RAW/$workload-c$conns-$round.txt attempt other pid
  pid=${SERVER_PIDS[$workload]}
  for attempt in $(seq 1 "$MAX_ATTEMPTS"); do
    python3 bench/http/cpu_guard.py quiet "$pid" "$OTHER_MAX" "$QUIET_WAIT" >"$log"
    python3 bench/http/cpu_guard.py run "$pid" -- \
      taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${seconds}s" --latency -s $HERE/gateway.lua \
      "http://127.0.0.1:${PORTS[$workload]}" >>"$log" 2>&1 || die "wrk failed; see $log"
    other=$(sed -n 's/^CPU .*other_cpu=\([0-9.]*\).*/\1/p' "$log")
    if awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN { exit !(o <= m) }'; then
      break
    fi
    printf '    %-8s c=%-4s round %s: other processes used %s CPUs (attempt %s of %s)\n' \
      "$workload" "$conns" "$round" "$other" "$attempt" "$MAX_ATTEMPTS" >&2
    cp "$log" "$log.disturbed-$attempt"
  done
  [ "$round" = warmup ] && return 0
  python3 - "$log" "$workload" "$conns" "$round" "$attempt" >>"$TSV" <<'PY'
import sys
log, workload, conns, round_, attempts = sys.argv[1:]
lines = open(log).read().splitlines()
f = {}
for prefix in ("RESULT ", "CPU "):
    line = next(l for l in lines if l.startswith(prefix))
    f.update(kv.split("=") for kv in line.split()[1:])
errors = sum(int(f[k]) for k in ("connect_err", "read_err", "write_err", "timeout_err"))
print("\t".join([workload, conns, round_, f["requests"], f["rps"], f["p50_us"], f["p90_us"],
                 f["p99_us"], f["p999_us"], f["max_us"], f["non2xx"], str(errors),
                 f["server_cpu"], f["load_cpu"], f["other_cpu"], attempts]))
PY
  tail -1 "$TSV" | awk -F'\t' '{ printf "    %-8s c=%-4s round %-2s: %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  cpu server %.2f wrk %.2f other %.2f\n", $1, $2, $3, $5, $6/1000, $8/1000, $13, $14, $15 }' >&2
}

for conns in $CONNECTIONS; do
  say "$conns connections: warm-up, then $RUNS round(s) of ${DURATION} s runs: ${ROUND[*]}"
  for workload in "${ROUND[@]}"; do
    wrk_run "$workload" "$conns" warmup "$WARMUP"
  done
  for round in $(seq 1 "$RUNS"); do
    for workload in "${ROUND[@]}"; do
      wrk_run "$workload" "$conns" "$round" "$DURATION"
    done
  done
done
meta LOAD_AT_END "$(cut -d' ' -f1-3 /proc/loadavg)"
stop_servers
trap - EXIT

# ------------------------------------------------------------------------------ report

python3 - "$RAW" "$RESULTS" <<'PY'
import csv, statistics, sys
raw, out = sys.argv[1], sys.argv[2]
meta = dict(line.rstrip("\n").split("=", 1) for line in open(f"{raw}/meta.env") if "=" in line)
rows = list(csv.DictReader(open(f"{raw}/results.tsv"), delimiter="\t"))
labels = {
    "upstream": "upstream alone (" + ("`floor`: bare hyper, 204" if meta["UPSTREAM"] == "floor" else "nginx `return 200`") + ")",
    "nginx": "nginx `proxy_pass`",
    "crs1": "nginx + ModSecurity + CRS PL1",
    "crs2": "nginx + ModSecurity + CRS PL2",
    "gw-off": "`portcullis gateway`, stages off",
    "gw-on": "`portcullis gateway`, every stage on",
}
order = meta["ROUND"].split()
lines = [f"# Gateway throughput ({meta['DATE']})", "",
         f"nginx {meta['NGINX']}, libmodsecurity3 {meta['LIBMODSECURITY']}, CRS {meta['CRS']}, "
         f"{meta['WRK_VERSION']}; Portcullis {meta['PORTCULLIS_REV']}. {meta['NPROC']} CPUs ({meta['CPU_MODEL']}); "
         f"servers on CPU {meta['SERVER_CPU']}, wrk (1 thread) on CPU {meta['LOAD_CPU']}; "
         f"{meta['RUNS']} alternating round(s) of {meta['DURATION']} s after a {meta['WARMUP']} s warm-up each; "
         f"load average {meta['LOAD_AT_START']} at the start, {meta['LOAD_AT_END']} at the end. "
         "Figures are medians over the rounds; \"× proxy_pass\" is the median of the per-round ratios "
         "to nginx `proxy_pass` (throughput: higher is better).", ""]
for conns in dict.fromkeys(r["conns"] for r in rows):
    lines += [f"## {conns} connections", "",
              "| workload | req/s | × proxy_pass | p50 ms | p99 ms | p99 × proxy_pass | non-2xx | errors | server CPU | other CPU |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    at = [r for r in rows if r["conns"] == conns]
    base = {r["round"]: r for r in at if r["workload"] == "nginx"}
    for workload in order:
        mine = [r for r in at if r["workload"] == workload]
        if not mine:
            continue
        med = lambda key: statistics.median(float(r[key]) for r in mine)
        ratio = p99_ratio = "-"
        pairs = [(r, base[r["round"]]) for r in mine if r["round"] in base]
        if pairs:
            ratio = f"{statistics.median(float(r['rps']) / float(b['rps']) for r, b in pairs):.3f}"
            p99_ratio = f"{statistics.median(float(r['p99_us']) / float(b['p99_us']) for r, b in pairs):.2f}"
        lines.append(f"| {labels[workload]} | {med('rps'):,.0f} | {ratio} | {med('p50_us') / 1000:.3f} | "
                     f"{med('p99_us') / 1000:.3f} | {p99_ratio} | {sum(int(r['non2xx']) for r in mine)} | "
                     f"{sum(int(r['socket_errors']) for r in mine)} | {med('server_cpu'):.2f} | {med('other_cpu'):.2f} |")
    lines.append("")
open(out, "w").write("\n".join(lines) + "\n")
PY
say "results written to $RESULTS (raw output in $RAW)"
cat "$RESULTS"
