#!/usr/bin/env bash
# Times portcullis-supply's advisory scan of a Cargo.lock next to cargo-audit's on the same
# lockfile and the same offline RustSec database, alternating runs, and lists every difference
# between the two finding lists.
#
#   bench/supply/compare.sh            # defaults below
#   RUNS=9 LOCK=path/Cargo.lock DB=path/advisory-db bench/supply/compare.sh
#
# Two lockfiles are compared: $LOCK (the workspace's own), and a synthetic one holding every
# crate of the database at several versions (releases and pre-releases) to compare the
# version-range semantics of both tools on thousands of cases.
#
# Yanked versions: both tools read Cargo's cache of the crates.io index ($INDEX, offline; ours
# with `--index`); cargo-audit is also timed with `--no-yanked`, doing only the advisory match.
#
# cargo-audit is installed from crates.io on first use (`cargo install cargo-audit --locked`)
# into $TOOLS; our side is the crate's `scan` example, built in release mode for this crate only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
DB=${DB:-$root/../shared/data/rustsec-advisory-db-2025-12-29}
LOCK=${LOCK:-$root/Cargo.lock}
RUNS=${RUNS:-7}
TOOLS=${TOOLS:-$root/../tools/cargo-audit}
TARGET=${CARGO_TARGET_DIR:-$root/../tgt-supply}
TODAY=${TODAY:-$(date -u +%F)}
INDEX=${INDEX:-$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/index/index.crates.io-* 2>/dev/null | head -1)}

[ -d "$DB/crates" ] || { echo "no RustSec database at $DB" >&2; exit 2; }
[ -f "$LOCK" ] || { echo "no lockfile at $LOCK" >&2; exit 2; }
[ -d "$INDEX" ] || { echo "no Cargo index cache at '$INDEX' (set INDEX)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }

audit=$TOOLS/bin/cargo-audit
if [ ! -x "$audit" ]; then
    echo "installing cargo-audit into $TOOLS (first use; several minutes on 2 cores)" >&2
    nice -n 10 cargo install cargo-audit --locked --root "$TOOLS" >&2
fi
echo "building the scan example (release, this crate only)" >&2
(cd "$root" && CARGO_TARGET_DIR=$TARGET nice -n 10 cargo build --release -q -p portcullis-supply --example scan)
ours=$TARGET/release/examples/scan

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

compare() {
    local lock=$1 label=$2
    local ours_cmd=("$ours" --db "$DB" --lock "$lock" --today "$TODAY" --index "$INDEX" --format ids)
    local audit_cmd=("$audit" audit --db "$DB" --no-fetch --file "$lock" --json)
    echo "== $label"
    # One run of each under GNU time -v (also warms the page cache), as a cross-check of the
    # peak RSS measured below.
    /usr/bin/time -v "${ours_cmd[@]}" >/dev/null 2>"$work/ours.time-v" || true
    /usr/bin/time -v "${audit_cmd[@]}" >/dev/null 2>"$work/audit.time-v" || true
    for side in ours audit; do
        printf '  %-6s time -v: %s\n' "$side" \
            "$(grep -E 'Maximum resident|Elapsed' "$work/$side.time-v" | sed 's/^[[:space:]]*//' | paste -sd ';')"
    done
    # Alternating runs. Wall time is taken by the Python parent with a sub-millisecond clock;
    # peak RSS by GNU time around each run (a child forked straight from Python would count
    # Python's own pages before exec).
    python3 - "$work" "$RUNS" "${#ours_cmd[@]}" "${ours_cmd[@]}" "${audit_cmd[@]}" <<'PY'
import json, subprocess, sys, time
work, runs, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
audit = sys.argv[4 + count:]
# `--no-yanked`: cargo-audit without the index lookups.
ours = sys.argv[4:4 + count]
at = ours.index("--index")
commands = {"ours": ours, "ours-no-yanked": ours[:at] + ours[at + 2:], "audit": audit, "audit-no-yanked": [*audit, "--no-yanked"]}
results = {side: [] for side in commands}
outputs = {"ours": "ours.out", "ours-no-yanked": "ours-no-yanked.out", "audit": "audit.json", "audit-no-yanked": "audit-no-yanked.json"}
for _ in range(runs):
    for side in commands:
        output = outputs[side]
        rss = f"{work}/{side}.rss"
        with open(f"{work}/{output}", "wb") as out, open(f"{work}/{side}.err", "wb") as err:
            started = time.perf_counter()
            subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss, *commands[side]], stdout=out, stderr=err)
            elapsed = time.perf_counter() - started
        kilobytes = int([line for line in open(rss).read().splitlines() if line.strip()][-1])
        results[side].append((elapsed, kilobytes))
json.dump(results, open(f"{work}/timings.json", "w"))
PY
    python3 - "$work" "$lock" <<'PY'
import json, statistics, sys
work, lock = sys.argv[1], sys.argv[2]
timings = json.load(open(f"{work}/timings.json"))
packages = sum(1 for line in open(lock) if line.startswith("[[package]]"))
print(f"  {packages} packages, {len(timings['ours'])} alternating runs: median wall time, max peak RSS")
for side, name in (("ours", "portcullis-supply --index"), ("audit", "cargo-audit"), ("ours-no-yanked", "portcullis-supply"), ("audit-no-yanked", "cargo-audit --no-yanked")):
    rows = timings[side]
    median = statistics.median(r[0] for r in rows) * 1000
    peak = max(r[1] for r in rows) / 1024
    print(f"  {name:24} {median:8.1f} ms {peak:7.1f} MB   runs: {[round(r[0] * 1000, 1) for r in rows]}")
print("  (whole process under GNU time: start, database load, lockfile parse, scan, output)")

ours = set()
for line in open(f"{work}/ours.out"):
    kind, name, version, advisory = line.split()
    ours.add((kind, name, version, advisory))
try:
    report = json.load(open(f"{work}/audit.json"))
except ValueError:
    print("  cargo-audit gave no JSON:", open(f"{work}/audit.err").read()[:2000])
    sys.exit(0)
audit = set()
for entry in report.get("vulnerabilities", {}).get("list", []):
    audit.add(("vulnerability", entry["package"]["name"], entry["package"]["version"], entry["advisory"]["id"]))
for kind, entries in (report.get("warnings") or {}).items():
    for entry in entries:
        advisory = (entry.get("advisory") or {}).get("id", "-")
        package = entry["package"]
        audit.add((kind, package["name"], package["version"], advisory))

print(f"  findings: portcullis-supply {len(ours)}, cargo-audit {len(audit)}, common {len(ours & audit)}")
reasons = {
    "notice": "cargo-audit does not warn on `notice` advisories by default",
}
# Lockfile sources, to explain differences that come from them.
sources, name, version = {}, None, None
for line in open(lock):
    if line.startswith("name = "):
        name = line.split('"')[1]
    elif line.startswith("version = ") and name:
        version = line.split('"')[1]
        sources[(name, version)] = ""
    elif line.startswith("source = ") and name:
        sources[(name, version)] = line.split('"')[1]
def reason(row):
    if row[0] in reasons:
        return f"({reasons[row[0]]})"
    if sources.get((row[1], row[2]), "").startswith("sparse+https://index.crates.io"):
        return "(crates.io via the sparse index: cargo-audit matches no advisory to such a source; we treat it as crates.io)"
    return ""
only_ours = sorted(ours - audit)
only_audit = sorted(audit - ours)
for row in only_ours:
    print("  only portcullis-supply:", " ".join(row), reason(row))
for row in only_audit:
    print("  only cargo-audit:      ", " ".join(row), reason(row))
if not only_ours and not only_audit:
    print("  no differences")
PY
}

compare "$LOCK" "$LOCK"

# Every crate of the database at releases and pre-releases around typical patch points.
synthetic=$work/synthetic.lock
python3 - "$DB" "$synthetic" <<'PY'
import os, sys
db, out = sys.argv[1], sys.argv[2]
versions = ["0.1.0", "0.2.5", "0.3.0-alpha.1", "0.4.10", "0.9.9", "1.0.0-rc.1", "1.0.0", "1.2.3",
            "1.5.0-beta", "2.0.0", "3.1.4", "10.0.0"]
with open(out, "w") as lock:
    lock.write("version = 4\n")
    for name in sorted(os.listdir(os.path.join(db, "crates"))):
        if name.startswith("."):
            continue
        for version in versions:
            lock.write(f'\n[[package]]\nname = "{name}"\nversion = "{version}"\n'
                       'source = "registry+https://github.com/rust-lang/crates.io-index"\n')
PY
compare "$synthetic" "synthetic lockfile: every crate of the database at 12 versions"

# Package sources: crates.io by git index and by sparse index, a path crate and a git crate, all
# at versions with advisories.
sources=$work/sources.lock
cat >"$sources" <<'LOCK'
version = 4

[[package]]
name = "smallvec"
version = "1.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "time"
version = "0.1.45"
source = "sparse+https://index.crates.io/"

[[package]]
name = "smallvec"
version = "0.6.10"

[[package]]
name = "time"
version = "0.1.40"
source = "git+https://example.invalid/time#0123456789abcdef0123456789abcdef01234567"
LOCK
RUNS=3 compare "$sources" "package sources: git index, sparse index, path, git"
