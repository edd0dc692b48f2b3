# Helpers shared by the load scripts (bench/http/run.sh, bench/http/compare.sh,
# bench/multinode/run.sh, bench/*/instructions.sh). Sourced after `cd "$ROOT"`; `meta` writes to "$META".

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
meta() { printf '%s=%s\n' "$1" "$2" >>"$META"; }

# The instructions of the first function line matching PATTERN ($2) in an inclusive callgrind
# profile ($1), without thousands separators (bench/*/instructions.sh).
inclusive() { { grep -m1 -E "$2" "$1" || true; } | awk '{gsub(",", "", $1); print $1}'; }

# Sets TARGET_DIR to cargo's target directory (CARGO_TARGET_DIR or the build configuration
# may move it away from target/).
target_dir() {
  [ -n "${TARGET_DIR:-}" ] && return 0
  TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') ||
    die "cannot ask cargo for its target directory"
}

# Builds the release binary unless SKIP_BUILD=1, and sets BIN to its absolute path.
build_portcullis() {
  target_dir
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    say "building portcullis (release)"
    cargo build --release -p portcullis
  fi
  BIN=$TARGET_DIR/release/portcullis
  [ -x "$BIN" ] || die "$BIN is missing"
}

# Builds the floor server of the load benchmarks (crates/bench/src/bin/floor.rs) unless
# SKIP_BUILD=1, and sets FLOOR_BIN to its absolute path. A cargo invocation of its own: built
# together, the two packages would unify their dependencies' features and `portcullis` would
# no longer be the binary that ships (see bench/README.md, "Build note").
build_floor() {
  target_dir
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    say "building the floor server (release)"
    cargo build --release -p portcullis-bench --bin floor
  fi
  FLOOR_BIN=$TARGET_DIR/release/floor
  [ -x "$FLOOR_BIN" ] || die "$FLOOR_BIN is missing"
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
