#!/usr/bin/env python3
"""Convergence latency between two `portcullis serve` nodes sharing one PostgreSQL database
(standard library only; bench/multinode/run.sh starts the nodes and calls this).

Each iteration assigns the role `viewer` to `carol` in tenant `acme` through node A's admin API
and then asks node B (`POST /v1/check`, carol checks the status of app payments from the office
network) every PROBE_MS until B allows; then it revokes the role on A and asks B until it denies.
A latency is the time from reading A's answer to the write (the acknowledgement) to reading
the first answer of B that reflects it; the time from sending the write is reported as well.

Modes (how B learns of the change):
  notify      LISTEN/NOTIFY working: the normal path.
  stalled     the notification path silently dead: the backends listening on the change channel
              are stopped (SIGSTOP) for the whole mode, so their connections stay open but deliver
              nothing; B can learn of a change only from its periodic revision poll (poll_ms).
              Each write waits a random 0 to poll_ms first, so writes fall at random moments of
              the poll period. Needs permission to signal PostgreSQL's processes (root or the
              postgres user).
  terminated  the listening backends are terminated (pg_terminate_backend) right before each
              write: B must notice the dropped connection, reconnect and resynchronize.

Usage: driver.py --a-admin URL --b-api URL --token TOKEN --database NAME [--iterations N]
                 [--probe-ms MS] [--poll-ms MS] [--modes "notify stalled terminated"]
                 [--psql "psql -h 127.0.0.1 -U postgres"] --raw DIR --results FILE --command TEXT
"""

import argparse
import http.client
import json
import math
import os
import random
import shlex
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "examples/demo/bundles/acme"
CAROL = {
    "tenant": "acme",
    "principal": {"id": "carol"},
    "action": "app:status.check",
    "resource": {"type": "app", "id": "payments"},
    "context": {"ip": "172.16.3.4"},
}
ASSIGNMENT = {"principal": "carol", "role": "viewer"}


class Endpoint:
    """One keep-alive HTTP connection, reopened when the server closes it."""

    def __init__(self, url: str, token: str = ""):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.token = token
        self.connection = None

    def call(self, method: str, path: str, body=None):
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                text = response.read()
                return response.status, json.loads(text) if text else None
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Psql:
    def __init__(self, command: str, database: str):
        self.command = shlex.split(command) + ["-X", "-q", "-At", "-d", database]

    def query(self, sql: str) -> list:
        out = subprocess.run(self.command + ["-c", sql], check=True, capture_output=True, text=True)
        return [line for line in out.stdout.splitlines() if line]

    def listening(self) -> list:
        return [int(pid) for pid in self.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND query LIKE 'LISTEN%' ORDER BY pid")]

    def terminate_listeners(self) -> int:
        return len(self.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%'"))


def write(a: Endpoint, method: str, path: str, body=None) -> tuple:
    """A write on node A; returns (answer, when it was sent, when it was acknowledged)."""
    sent = time.perf_counter()
    status, answer = a.call(method, path, body)
    acked = time.perf_counter()
    if status // 100 != 2:
        raise SystemExit(f"{method} {path} on node A: {status} {answer}")
    return answer, sent, acked


def wait_on_b(b: Endpoint, acked: float, accept, probe_s: float, limit_s: float) -> tuple:
    """Asks B until `accept` holds; returns (when B's answer reflecting it was read, number
    of probes)."""
    probes = 0
    while True:
        status, answer = b.call("POST", "/v1/check", CAROL)
        seen = time.perf_counter()
        probes += 1
        if status == 200 and accept(answer):
            return seen, probes
        if seen - acked > limit_s:
            raise SystemExit(f"node B did not converge within {limit_s} s; last answer {answer}")
        time.sleep(probe_s)


def allows(answer) -> bool:
    return answer.get("decision") == "allow"


def denies(answer) -> bool:
    return answer.get("decision") == "deny" and answer.get("cause") == "no_grant"


def percentile(sorted_values: list, p: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(values: list) -> dict:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": percentile(ordered, 50) * 1000,
        "p90_ms": percentile(ordered, 90) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": ordered[-1] * 1000,
        "mean_ms": sum(ordered) / len(ordered) * 1000,
        "min_ms": ordered[0] * 1000,
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_mode(mode, args, a, b, psql, raw: Path) -> dict:
    probe_s = args.probe_ms / 1000
    limit_s = max(5.0, 3 * args.poll_ms / 1000)
    stopped = []
    samples = {"assign": [], "revoke": []}
    from_sent = {"assign": [], "revoke": []}
    first_probe = {"assign": 0, "revoke": 0}
    write_s = []
    jitter = random.Random(20261122)
    load_before = loadavg()
    try:
        if mode == "stalled":
            stopped = psql.listening()
            if len(stopped) != 2:
                raise SystemExit(f"expected two listening backends (one per node), found {stopped}")
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
        for iteration in range(args.iterations):
            for kind, method, accept in (("assign", "POST", allows), ("revoke", "DELETE", denies)):
                if mode == "stalled":
                    # Write at a random moment of the poll period: right after B converged the
                    # next write would otherwise always land just after a poll.
                    time.sleep(jitter.uniform(0, args.poll_ms / 1000))
                if mode == "terminated":
                    killed = psql.terminate_listeners()
                    if killed == 0:
                        raise SystemExit("no listening backend to terminate")
                _, sent, acked = write(a, method, "/admin/v1/tenants/acme/assignments", ASSIGNMENT)
                seen, probes = wait_on_b(b, acked, accept, probe_s, limit_s)
                samples[kind].append(seen - acked)
                from_sent[kind].append(seen - sent)
                write_s.append(acked - sent)
                if probes == 1:
                    first_probe[kind] += 1
            if (iteration + 1) % 50 == 0:
                print(f"    {mode}: {iteration + 1}/{args.iterations}", file=sys.stderr)
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    with open(raw / f"{mode}.json", "w") as out:
        json.dump({"since_ack_s": samples, "since_sent_s": from_sent, "write_s": write_s}, out)
    if mode == "terminated":
        # The listeners must come back after the last termination.
        deadline = time.monotonic() + 10
        while len(psql.listening()) < 2:
            if time.monotonic() > deadline:
                raise SystemExit("the listeners did not reconnect after the last termination")
            time.sleep(0.05)
    return {
        "mode": mode,
        "assign": summary(samples["assign"]),
        "revoke": summary(samples["revoke"]),
        "assign_from_sent": summary(from_sent["assign"]),
        "revoke_from_sent": summary(from_sent["revoke"]),
        "first_probe": first_probe,
        "write": summary(write_s),
        "load_before": load_before,
        "load_after": loadavg(),
    }


MODE_TEXT = {
    "notify": "LISTEN/NOTIFY (normal)",
    "stalled": "notifications silently stalled: poll only (poll_ms = {poll})",
    "terminated": "listening backends terminated before each write",
}


def report(args, results: list) -> str:
    lines = []
    meta = dict(line.split("=", 1) for line in Path(args.raw, "meta.env").read_text().splitlines() if "=" in line)
    lines.append(f"- Run started: {meta.get('DATE', '?')}")
    lines.append(f"- Machine: {meta.get('CPU_MODEL', '?')}, {meta.get('NPROC', '?')} logical CPUs, "
                 f"Linux {meta.get('KERNEL', '?')}; PostgreSQL {meta.get('POSTGRES', '?')} on the same machine")
    lines.append(f"- Portcullis: {meta.get('PORTCULLIS_REV', '?')} (release build, {meta.get('RUSTC', '?')}); "
                 f"two `portcullis serve` processes on one database, `poll_ms = {args.poll_ms}`")
    lines.append(f"- Command: `{args.command}`")
    lines.append(f"- Method: {args.iterations} iterations per mode, each an assignment then a revocation of "
                 f"`viewer` for carol through node A's admin API; node B asked every {args.probe_ms} ms "
                 "(plus the time of one check, about 0.3 ms) from A's acknowledgement until its decision "
                 "reflects the write; nearest-rank percentiles. In the poll-only mode each write waits a "
                 "random 0 to poll_ms first, so writes fall at random moments of B's poll period.")
    lines.append("")
    lines.append("| mode | write | n | p50 ms | p90 ms | p99 ms | max ms | already visible at the acknowledgement "
                 "| from sending the write: p50 / p99 / max ms | load avg before → after |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for result in results:
        text = MODE_TEXT[result["mode"]].format(poll=args.poll_ms)
        for kind, label in (("assign", "role assignment"), ("revoke", "revocation")):
            s, f = result[kind], result[kind + "_from_sent"]
            lines.append(
                f"| {text} | {label} | {s['n']} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} | {s['p99_ms']:.1f} "
                f"| {s['max_ms']:.1f} | {result['first_probe'][kind]} of {s['n']} "
                f"| {f['p50_ms']:.1f} / {f['p99_ms']:.1f} / {f['max_ms']:.1f} "
                f"| {result['load_before']} → {result['load_after']} |")
    lines.append("")
    writes = [r["write"] for r in results]
    lines.append("The write itself (node A's admin call, request to acknowledgement) took "
                 + "; ".join(f"p50 {w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms ({r['mode']})"
                             for w, r in zip(writes, results)) + ".")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a-admin", required=True)
    parser.add_argument("--b-api", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--probe-ms", type=float, default=1.0)
    parser.add_argument("--poll-ms", type=int, default=1000)
    parser.add_argument("--modes", default="notify stalled terminated")
    parser.add_argument("--psql", default="psql -h 127.0.0.1 -U postgres")
    parser.add_argument("--raw", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--command", default="bench/multinode/run.sh")
    args = parser.parse_args()

    a = Endpoint(args.a_admin, args.token)
    b = Endpoint(args.b_api)
    psql = Psql(args.psql, args.database)
    raw = Path(args.raw)

    # The tenant lives only in the store: upload it through A and wait until B serves it.
    files = {p.name: p.read_text() for p in sorted(ACME.iterdir()) if p.is_file()}
    _, _, acked = write(a, "PUT", "/admin/v1/tenants/acme/bundle", {"files": files})
    wait_on_b(b, acked, lambda answer: answer.get("cause") == "no_grant", 0.01, 10)

    results = []
    for mode in args.modes.split():
        if mode not in MODE_TEXT:
            raise SystemExit(f"unknown mode {mode}")
        print(f"==> mode {mode}", file=sys.stderr)
        result = run_mode(mode, args, a, b, psql, raw)
        for kind in ("assign", "revoke"):
            s = result[kind]
            print(f"    {kind}: p50 {s['p50_ms']:.1f} ms  p99 {s['p99_ms']:.1f} ms  max {s['max_ms']:.1f} ms",
                  file=sys.stderr)
        results.append(result)
    with open(raw / "results.json", "w") as out:
        json.dump(results, out, indent=1)
    text = report(args, results)
    Path(args.results).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
