#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a real `portcullis serve`: the public listener against the
# public listener's own /openapi.json, the admin listener against the admin listener's own, with
# every check, bounded in examples and time, and fails on any finding. scripts/test calls it.
#
# The server runs the demo bundles (copied into a temporary folder: uploads write there) on a
# temporary SQLite store, with a known admin token and an identity issuer whose tokens this
# script mints for the forward-auth endpoints. What schemathesis may not count as a finding is
# in scripts/schemathesis/hooks.py, each with its reason; everything else fails the run.
#
# Outside CI, when schemathesis cannot be installed, the step is skipped with a notice; under
# CI=true that is an error. Environment:
#   SCHEMATHESIS_MAX_TIME      seconds per listener (default 60 public, 75 admin)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and cycle (default 25)
#   SCHEMATHESIS_SEED          a seed, to replay a run (default: random, printed)
#   SCHEMATHESIS_VENV          where schemathesis is installed (default ~/.cache/portcullis/...)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

version=4.32.5
venv=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis/schemathesis-$version}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-25}
public_time=${SCHEMATHESIS_MAX_TIME:-60}
admin_time=${SCHEMATHESIS_MAX_TIME:-75}
seed=${SCHEMATHESIS_SEED:-$(python3 -c 'import random; print(random.randrange(1, 2**31))')}

unavailable() {
  if [ "${CI:-}" = "true" ]; then
    echo "schemathesis $version could not be installed ($1) and CI=true requires it" >&2
    exit 1
  fi
  echo "notice: schemathesis $version could not be installed ($1); the schemathesis step is skipped"
  exit 0
}

# ------------------------------------------------------------------ schemathesis, pinned
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "version $version\$"; then
  command -v python3 >/dev/null 2>&1 || unavailable "python3 is missing"
  echo "installing schemathesis==$version into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >/dev/null 2>&1 || unavailable "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" \
    || { rm -rf "$venv"; unavailable "pip install failed"; }
fi
schemathesis=$venv/bin/schemathesis

# ------------------------------------------------------------------ a real server
cargo build --locked --quiet -p portcullis
target=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
binary=$target/debug/portcullis

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cp -R examples/demo/bundles "$work/bundles"
read -r public_port admin_port < <(python3 - <<'PY'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
PY
)
admin_token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
identity_secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
issuer=https://id.schemathesis.test
cat > "$work/portcullis.toml" <<TOML
listen = "127.0.0.1:$public_port"
data_dir = "$work/data"

[reload]
watch = false

[admin]
listen = "127.0.0.1:$admin_port"

[[admin.tokens]]
name = "ops"
token_env = "SCHEMATHESIS_ADMIN_TOKEN"

[[identity.issuers]]
issuer = "$issuer"
algorithms = ["HS256"]
secret_env = "SCHEMATHESIS_IDENTITY_SECRET"

[log]
level = "error"

# A gateway application with login protection, so that POST /admin/v1/gateway/unlock has one
# to act on (hooks.py names it in the generated bodies).
[gateway]
listen = "127.0.0.1:0"
[[gateway.apps]]
host = "shop.example"
tenant = "acme"
upstream = { url = "http://127.0.0.1:9" }
login = { route = "POST /login" }
TOML

# An identity token for alice of acme (the demo's operator), valid for an hour: the forward-auth
# endpoints need one to get past 401.
identity_token=$(ISSUER=$issuer SECRET=$identity_secret python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
def part(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = {"iss": os.environ["ISSUER"], "sub": "alice", "tenant": "acme", "exp": int(time.time()) + 3600}
body = part(json.dumps(claims).encode())
signature = hmac.new(os.environ["SECRET"].encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
print(f"{header}.{body}.{part(signature)}")
PY
)

SCHEMATHESIS_ADMIN_TOKEN=$admin_token SCHEMATHESIS_IDENTITY_SECRET=$identity_secret \
  "$binary" serve --config "$work/portcullis.toml" --bundles "$work/bundles" \
  >"$work/server.log" 2>&1 &
server_pid=$!
ready=
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$public_port/readyz" >/dev/null 2>&1 \
    && curl -fsS "http://127.0.0.1:$admin_port/openapi.json" >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "portcullis serve did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
fi

# A request for temporary access made by alice, which the temporary-access steps name (a
# drawn id finds no request): she may read and revoke it, and is denied approving it.
access_request=$(curl -fsS "http://127.0.0.1:$public_port/v1/access/requests" \
  -H "authorization: Bearer $identity_token" -H 'content-type: application/json' \
  -d '{"action": "app:release", "resource": "app:payments", "reason": "schemathesis", "duration": "1h", "networks": ["172.16.0.0/12"]}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') || {
  echo "could not make the temporary-access request the run needs:" >&2
  tail -n 20 "$work/server.log" >&2
  exit 1
}
export PORTCULLIS_ACCESS_REQUEST=$access_request

# ------------------------------------------------------------------ the runs
export SCHEMATHESIS_HOOKS=$root/scripts/schemathesis/hooks.py
export PORTCULLIS_IDENTITY_TOKEN=$identity_token PORTCULLIS_ADMIN_TOKEN=$admin_token
status=0
run() {
  local listener=$1 port=$2 max_time=$3
  shift 3
  echo "schemathesis: the $listener listener (seed $seed, at most $max_examples examples per operation, ${max_time}s)"
  "$schemathesis" --config-file "$root/scripts/schemathesis/$listener.toml" \
    run "http://127.0.0.1:$port/openapi.json" \
    --url "http://127.0.0.1:$port" \
    --checks all \
    --max-examples "$max_examples" \
    --max-time "$max_time" \
    --seed "$seed" \
    --workers 1 \
    --report junit --report-dir "$work/reports-$listener" \
    "$@" || status=1
}
start=$(date +%s)
run public "$public_port" "$public_time" --phases examples,coverage,fuzzing
run admin "$admin_port" "$admin_time" --phases examples,coverage,fuzzing,stateful
echo "schemathesis: both listeners in $(($(date +%s) - start))s"
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "portcullis serve stopped during the run:" >&2
  tail -n 50 "$work/server.log" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "schemathesis found problems (replay with SCHEMATHESIS_SEED=$seed)" >&2
fi
exit "$status"
