#!/usr/bin/env bash
# Detection comparison: every item of the corpus (corpus.py: public SQL-injection and XSS
# payloads, benign request values) sent as the value of a query parameter of a GET (and, with
# MODES="get post", of a URL-encoded form POST) through
#   - nginx + ModSecurity (libmodsecurity3) + OWASP CRS at paranoia level 1 and 2, Debian's
#     packages, rule engine On, anomaly scoring with the default thresholds, blocked = 403;
#   - Portcullis's injection stage (crates/guard/examples/detect.rs) at sensitivity low,
#     medium and high, on the very same URL-encoded bytes;
# and the confusion matrices of all of them in one table. Not run in CI.
#
#   bench/gateway/setup.sh            # once: nginx, ModSecurity, CRS, wrk from Debian
#   bench/gateway/detect.sh           # writes bench/gateway/.cache/detect-<timestamp>/
#
# Knobs (environment): MODES ("get"; "get post" adds the form POST), THREADS (client
# connections per nginx server, 16), WORKERS (nginx worker processes, 2), MISSES (how many
# misses and false positives of ours to list per file, 200), MISSES_HALF (whose misses those
# lists hold: tuning, the default, held-out or all; see detect.py), SKIP_BUILD=1 to use the example
# already built (debug build of portcullis-guard's `detect` example, honouring
# CARGO_TARGET_DIR). Ports 9791, 9792 and 9799 must be free. This is not a timing
# benchmark: nginx uses both CPUs, and nothing is pinned.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=bench/gateway

MODES=${MODES:-get}
THREADS=${THREADS:-16}
WORKERS=${WORKERS:-2}
MISSES=${MISSES:-200}
MISSES_HALF=${MISSES_HALF:-tuning}

. bench/lib.sh
. $HERE/lib.sh

gateway_prerequisites
for tool in curl python3 cargo; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

OUT=$HERE/.cache/detect-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
META=$OUT/meta.env
: >"$META"
meta DATE "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta PORTCULLIS_REV "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo ' + uncommitted changes')"
meta NGINX "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
meta LIBMODSECURITY "$(dpkg-query -W -f='${Version}' libmodsecurity3)"
meta CONNECTOR "$(dpkg-query -W -f='${Version}' libnginx-mod-http-modsecurity)"
meta CRS "$(dpkg-query -W -f='${Version}' modsecurity-crs)"
meta MODES "$MODES"
meta LOAD_AT_START "$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------------------ corpus

say "corpus (bench/gateway/corpus.py; downloads its sources once)"
CORPUS=$HERE/.cache/corpus/items.jsonl
python3 $HERE/corpus.py --out "$CORPUS" | tee "$OUT/corpus.txt" >&2

# ------------------------------------------------------------------------------ ours

target_dir
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  say "building the detect example (debug)"
  nice -n 10 cargo build -q -p portcullis-guard --example detect
fi
DETECT_BIN=$TARGET_DIR/debug/examples/detect
[ -x "$DETECT_BIN" ] || die "$DETECT_BIN is missing"

# ------------------------------------------------------------------------------ nginx

ports_free 9791 9792 9799
WORK=$(mktemp -d)
NGINX_PID=
cleanup() {
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

modsec_rules "$WORK" 1 off
modsec_rules "$WORK" 2 off
nginx_conf "$WORK" "$WORKERS" 127.0.0.1:9799 9791:crs1 9792:crs2 9799:ok
cp "$WORK/nginx.conf" "$WORK/modsec-pl1.conf" "$WORK/modsec-pl2.conf" "$OUT/"
say "starting nginx + ModSecurity + CRS (PL1 on 9791, PL2 on 9792)"
nginx -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' 2>"$OUT/nginx-stderr.log" &
NGINX_PID=$!
for port in 9791 9792; do
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/" -H 'Host: shop.example' -H 'Accept: */*' 2>/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited: $(cat "$OUT/nginx-stderr.log" "$WORK/error.log" 2>/dev/null | tail -5)"
    sleep 0.2
  done
done

say "pre-flight: benign passes (200), a textbook injection is refused (403) at both levels"
for port in 9791 9792; do
  benign=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.example' -H 'Accept: */*' \
    -A 'Mozilla/5.0' "http://127.0.0.1:$port/search?q=shoes&page=2&lang=en")
  attack=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.example' -H 'Accept: */*' \
    -A 'Mozilla/5.0' "http://127.0.0.1:$port/search?q=1%27+OR+%271%27%3D%271&page=2&lang=en")
  [ "$benign" = 200 ] && [ "$attack" = 403 ] ||
    die "port $port answered $benign to a benign request and $attack to an injection (want 200, 403)"
done

# ------------------------------------------------------------------------------ verdicts

RESULTS=$OUT/results.txt
: >"$RESULTS"
for mode in $MODES; do
  case "$mode" in get | post) ;; *) die "unknown mode $mode (get, post)" ;; esac
  LINES=$OUT/lines-$mode.txt
  python3 $HERE/detect.py lines "$CORPUS" "$mode" "$LINES"
  say "$mode: $(wc -l <"$LINES") requests to CRS PL1 and PL2 ($THREADS connections each)"
  python3 $HERE/detect.py send "$LINES" "$mode" /search "$THREADS" \
    crs-pl1=http://127.0.0.1:9791 crs-pl2=http://127.0.0.1:9792 >"$OUT/crs-$mode.tsv"
  cut -f1 "$OUT/crs-$mode.tsv" >"$OUT/crs-pl1-$mode.txt"
  cut -f2 "$OUT/crs-$mode.tsv" >"$OUT/crs-pl2-$mode.txt"
  say "$mode: the same requests through the injection stage (low, medium, high)"
  start=$(date +%s.%N)
  if [ "$mode" = post ]; then
    "$DETECT_BIN" --post --path /search <"$LINES" >"$OUT/ours-$mode.txt"
  else
    "$DETECT_BIN" --path /search <"$LINES" >"$OUT/ours-$mode.txt"
  fi
  printf '    %s requests x 3 sensitivities in %s s\n' "$(wc -l <"$LINES")" \
    "$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')" >&2
  printf '%s crs-pl1 %s\n%s crs-pl2 %s\n%s ours %s\n' "$mode" "$OUT/crs-pl1-$mode.txt" \
    "$mode" "$OUT/crs-pl2-$mode.txt" "$mode" "$OUT/ours-$mode.txt" >>"$RESULTS"
done
meta LOAD_AT_END "$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------------------ report

python3 $HERE/detect.py report "$CORPUS" "$RESULTS" "$OUT" "$MISSES" "$MISSES_HALF"
say "report: $OUT/report.md; misses and false positives of ours: $OUT/ours-*.txt"
