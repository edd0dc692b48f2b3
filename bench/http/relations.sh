#!/usr/bin/env bash
# HTTP load benchmark of relationship checks: `POST /v1/relations/check` and the same questions
# through OpenFGA's API (`POST /stores/rel-bench/check`, and its batch check). Starts the
# release binary on one core with the demo bundles, creates tenant `rel-bench` with a
# team/folder/doc model, writes a world of tuples through the admin API, then runs wrk on the
# other core.
#
#   bench/http/relations.sh                   # 3 runs of 15 s at 64 connections
#   DURATION=5 RUNS=1 bench/http/relations.sh # a quick look
#
# Knobs: DURATION (s, 15), RUNS (3), CONNECTIONS (64), USERS (2000), TEAMS (100), FOLDERS (400),
# DOCS (4000), BATCH (50, questions per OpenFGA batch check), SERVER_CPU (0), LOAD_CPU (1),
# SKIP_BUILD=1 to use the existing binary
# (PORTCULLIS_BIN, default target/release/portcullis).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-64}
USERS=${USERS:-2000}
TEAMS=${TEAMS:-100}
FOLDERS=${FOLDERS:-400}
DOCS=${DOCS:-4000}
BATCH=${BATCH:-50}
SERVER_CPU=${SERVER_CPU:-0}
BIN=${PORTCULLIS_BIN:-target/release/portcullis}
LOAD_CPU=${LOAD_CPU:-1}
PUBLIC=http://127.0.0.1:9790
ADMIN=http://127.0.0.1:9791
TOKEN=rel-bench-admin-token-0123456789

command -v wrk >/dev/null || { echo "wrk is required (apt-get install -y wrk)" >&2; exit 1; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -p portcullis >&2
fi
WORK=$(mktemp -d)
trap 'kill "${SERVER_PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cp -r examples/demo/bundles "$WORK/bundles"
cat >"$WORK/portcullis.toml" <<TOML
listen = "127.0.0.1:9790"
bundles = ["$WORK/bundles"]
data_dir = "$WORK/data"
[reload]
watch = false
[admin]
listen = "127.0.0.1:9791"
[[admin.tokens]]
name = "ops"
token = "$TOKEN"
[log]
level = "warn"
TOML
taskset -c "$SERVER_CPU" "$BIN" serve --config "$WORK/portcullis.toml" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf "$PUBLIC/readyz" >/dev/null && break; sleep 0.1; done

python3 - "$ADMIN" "$TOKEN" "$USERS" "$TEAMS" "$FOLDERS" "$DOCS" <<'PY'
import json, sys, urllib.request
admin, token, users, teams, folders, docs = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
def call(method, path, body):
    request = urllib.request.Request(admin + path, data=json.dumps(body).encode(), method=method,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)
model = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type folder
  relations
    define parent: [folder]
    define viewer: [user, team#member] or viewer from parent
type doc
  relations
    define parent: [folder]
    define viewer: [user, team#member] or viewer from parent
"""
call("PUT", "/admin/v1/tenants/rel-bench/bundle", {"files": {
    "tenant.yaml": "tenant: rel-bench\ntimezone: UTC\nmodel: model.fga\n", "model.fga": model}})
tuples = []
for u in range(users):
    tuples.append({"user": f"user:u{u}", "relation": "member", "object": f"team:t{u % teams}"})
for t in range(teams):
    tuples.append({"user": f"team:t{t}#member", "relation": "member", "object": f"team:t{(t // 10) + teams}"})
for f in range(folders):
    if f >= 20:
        tuples.append({"user": f"folder:f{f // 20 - 1}", "relation": "parent", "object": f"folder:f{f}"})
    tuples.append({"user": f"team:t{(f * 7) % teams}#member", "relation": "viewer", "object": f"folder:f{f}"})
for d in range(docs):
    tuples.append({"user": f"folder:f{d % folders}", "relation": "parent", "object": f"doc:d{d}"})
for start in range(0, len(tuples), 100):
    revision = call("POST", "/admin/v1/tenants/rel-bench/tuples", {"writes": tuples[start:start + 100]})["revision"]
print(f"wrote {len(tuples)} tuples, revision {revision}", file=sys.stderr)
PY

curl -sS -H 'Content-Type: application/json' \
  -d '{"tenant":"rel-bench","user":"user:u0","relation":"viewer","object":"doc:d0"}' \
  "$PUBLIC/v1/relations/check" >&2; echo >&2
# Native and OpenFGA's check alternate run by run (native, OpenFGA, native, …), so that a slow
# spell of the machine falls on both; then OpenFGA's batch check of BATCH (50) questions per
# request over one connection, whose p50 is a batch's latency.
curl -sS -H 'Content-Type: application/json' \
  -d '{"tuple_key":{"user":"user:u0","relation":"viewer","object":"doc:d0"}}' \
  "$PUBLIC/stores/rel-bench/check" >&2; echo >&2
curl -sS -H 'Content-Type: application/json' \
  -d '{"checks":[{"tuple_key":{"user":"user:u0","relation":"viewer","object":"doc:d0"},"correlation_id":"c1"},{"tuple_key":{"user":"user:u7919","relation":"viewer","object":"doc:d1"},"correlation_id":"c2"}]}' \
  "$PUBLIC/stores/rel-bench/batch-check" >&2; echo >&2
for run in $(seq "$RUNS"); do
  REL_USERS=$USERS REL_DOCS=$DOCS taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
    -s bench/http/relations.lua "$PUBLIC" | grep RESULT | sed "s/^/run $run native \/v1\/relations\/check: /"
  REL_USERS=$USERS REL_DOCS=$DOCS taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
    -s bench/http/openfga.lua "$PUBLIC" | grep RESULT | sed "s/^/run $run OpenFGA \/stores\/{id}\/check: /"
done
for run in $(seq "$RUNS"); do
  OPENFGA_BATCH=$BATCH REL_USERS=$USERS REL_DOCS=$DOCS taskset -c "$LOAD_CPU" wrk -t1 -c1 \
    -d"${DURATION}s" -s bench/http/openfga.lua "$PUBLIC" | grep RESULT |
    sed "s/^/run $run OpenFGA batch check of $BATCH, 1 connection: /"
done
echo "server RSS: $(grep VmRSS /proc/$SERVER_PID/status)"
