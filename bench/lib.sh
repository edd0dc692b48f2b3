# Helpers shared by the load scripts (bench/http/run.sh, bench/http/compare.sh,
# bench/multinode/run.sh). Sourced after `cd "$ROOT"`; `meta` writes to "$META".

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }

# Builds the release binary unless SKIP_BUILD=1, and sets BIN to its absolute path.
build_portcullis() {
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    say "building portcullis (release)"
    cargo build --release -p portcullis
  fi
  BIN=$ROOT/target/release/portcullis
  [ -x "$BIN" ] || die "$BIN is missing"
}

# Fails unless every given port on 127.0.0.1 is free.
ports_free() {
  local port
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is already in use; stop whatever listens there"
    fi
  done
}

# Exports a random HMAC secret for the benchmark issuer and an admin token, and sets BOB_TOKEN
# (bob is a viewer in the demo bundle; the token outlives any run).
bench_secrets() {
  BENCH_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  BENCH_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  export BENCH_JWT_SECRET BENCH_ADMIN_TOKEN
  BOB_TOKEN=$(python3 bench/http/mint_jwt.py bob 14400)
}
