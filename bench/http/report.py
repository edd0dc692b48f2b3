#!/usr/bin/env python3
"""Turns the raw figures of bench/http/run.sh into the Markdown results table.

Usage: report.py RAW_DIR OUTPUT.md
RAW_DIR holds results.tsv (one line per measured wrk run, numbered in the order they ran) and
meta.env (KEY=VALUE lines). Each figure in the table is the median over the measured runs of
that workload and connection count, taken metric by metric. Against the floor, each run of a
Portcullis workload is divided by the mean of the floor runs just before and just after it
(same connection count), and the table shows the median of these run-by-run ratios.
"""

import csv
import statistics
import sys
from pathlib import Path

TARGET_NGINX_RPS = 50_000
TARGET_NGINX_P99_MS = 2.0
TARGET_CHECK_RPS = 40_000
TARGET_CERBOS_RATIO = 3.0
TARGET_RSS_MB = 50.0
TARGET_AUDIT_COST = 0.15
# Against the floor measured in the same run (bench `floor`: a bare hyper server answering 204):
# forward-auth throughput as a share of the floor's, at these connection counts, and its p99 at
# TARGET_FLOOR_P99_CONNS connections.
TARGET_FLOOR_SHARE = {"nginx-allow": 0.80, "nginx-allow-audit-off": 0.90}
TARGET_FLOOR_CONNS = (16, 64)
TARGET_FLOOR_P99_MS = 2.0
TARGET_FLOOR_P99_CONNS = 16

LABELS = {
    "floor": "floor: 204 to the forward-auth request (bench `floor`, bare hyper)",
    "nginx-allow": "forward-auth `GET /v1/authz/nginx`, allow (office address, JWT)",
    "nginx-allow-audit-off": "forward-auth `GET /v1/authz/nginx`, allow (office address, JWT), auditing off",
    "nginx-deny": "forward-auth `GET /v1/authz/nginx`, deny 403 (outside address, JWT)",
    "check": "`POST /v1/check`, allow (no token)",
    "check-audit-off": "`POST /v1/check`, allow (no token), auditing off",
    "check-jwt": "`POST /v1/check`, allow (with JWT)",
    "authzen": "AuthZEN `POST /access/v1/evaluation`, allow (no token; check's question)",
    "cerbos": "Cerbos `POST /api/check/resources`, allow",
}


def read_meta(path: Path) -> dict:
    meta = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            meta[key] = value
    return meta


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def attach_floor(rows: list) -> None:
    """Sets `floor_rps` and `floor_p99_us` on every run of a Portcullis workload that has a
    floor run at the same connection count just before or just after it (the mean of the two
    when there are both)."""
    by_conns: dict = {}
    for row in rows:
        if row.get("order"):
            by_conns.setdefault(row["conns"], []).append(row)
    for group in by_conns.values():
        group.sort(key=lambda row: int(row["order"]))
        for index, row in enumerate(group):
            if row["workload"] in ("floor", "cerbos"):
                continue
            around = []
            for neighbours in (reversed(group[:index]), group[index + 1:]):
                for other in neighbours:
                    if other["workload"] == "floor":
                        around.append(other)
                        break
                    if other["workload"] != "cerbos":
                        # Another Portcullis run is in between: no floor run next to this one.
                        break
            if around:
                row["floor_rps"] = statistics.mean(float(r["rps"]) for r in around)
                row["floor_p99_us"] = statistics.mean(float(r["p99_us"]) for r in around)


def main() -> int:
    raw, output = Path(sys.argv[1]), Path(sys.argv[2])
    meta = read_meta(raw / "meta.env")
    other_max = float(meta.get("OTHER_MAX", "0.1"))
    rows = list(csv.DictReader((raw / "results.tsv").open(), delimiter="\t"))
    attach_floor(rows)
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["workload"], int(row["conns"])), []).append(row)

    def median(key, workload, conns):
        runs = groups.get((workload, conns), [])
        return statistics.median(float(r[key]) for r in runs) if runs else None

    def total(key, workload, conns):
        return sum(int(r[key]) for r in groups.get((workload, conns), []))

    workloads = [w for w in LABELS if any(k[0] == w for k in groups)]
    conns_all = sorted({k[1] for k in groups})
    out = []
    w = out.append
    w("# HTTP load benchmark results")
    w("")
    w(f"- Run started: {meta.get('DATE')}")
    w(f"- Machine: {meta.get('CPU_MODEL')}, {meta.get('NPROC')} logical CPUs, "
      f"{meta.get('MEM_TOTAL')} RAM, Linux {meta.get('KERNEL')}")
    w(f"- CPU split: server pinned to CPU {meta.get('SERVER_CPU')} (`taskset -c "
      f"{meta.get('SERVER_CPU')}`), wrk pinned to CPU {meta.get('LOAD_CPU')} (`taskset -c "
      f"{meta.get('LOAD_CPU')}`, one wrk thread); both on the same machine, over loopback")
    w(f"- Portcullis: {meta.get('PORTCULLIS_REV')} (release build, {meta.get('RUSTC')}); "
      + (f"Cerbos {meta['CERBOS_VERSION']} (npm `@cerbos/cerbos-linux-x64`); "
         if meta.get("CERBOS_VERSION") else "")
      + f"{meta.get('WRK_VERSION')}")
    w(f"- Method: per workload and connection count, {meta.get('WARMUP')} s warm-up, then "
      f"{meta.get('RUNS')} × {meta.get('DURATION')} s measured runs; every figure is the "
      "median of the measured runs (metric by metric). Latency is wrk's (closed loop, "
      "keep-alive connections), in milliseconds.")
    if meta.get("ROUND"):
        floor_note = (", each run between two runs of the floor (floor, W1, floor, W2, floor, …)"
                      if "floor" in workloads else "")
        w(f"- Order: all servers up at once on the server core; per connection count, the "
          f"Portcullis workloads ran in rounds ({meta['ROUND'].replace(' ', ', ')}){floor_note}, "
          "so that a slow spell of the machine falls on every workload alike. Cerbos ran "
          "afterwards, alone.")
    w("")
    w("## Throughput and latency")
    w("")
    w("| workload | conns | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | "
      "unexpected responses / errors | CPUs used: server / wrk / other |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workload in workloads:
        for conns in conns_all:
            if (workload, conns) not in groups:
                continue
            expected_non2xx = workload == "nginx-deny"
            requests = total("requests", workload, conns)
            non2xx = total("non2xx", workload, conns)
            unexpected = (requests - non2xx) if expected_non2xx else non2xx
            errors = total("socket_errors", workload, conns)
            disturbed = any(float(r["other_cpu"]) > other_max for r in groups[(workload, conns)])
            w(f"| {LABELS[workload]} | {conns} | {median('rps', workload, conns):,.0f} | "
              f"{ms(median('p50_us', workload, conns))} | {ms(median('p90_us', workload, conns))} | "
              f"{ms(median('p99_us', workload, conns))} | {ms(median('p999_us', workload, conns))} | "
              f"{ms(median('max_us', workload, conns))} | {unexpected} / {errors} | "
              f"{median('server_cpu', workload, conns):.2f} / {median('load_cpu', workload, conns):.2f}"
              f" / {median('other_cpu', workload, conns):.2f}{' ⚠' if disturbed else ''} |")
    w("")
    w("\"CPUs used\" is user+system time during the run divided by its length (1.00 = one core "
      "fully busy): a server near 1.00 with wrk well below it means the server's core was the "
      "limit, not the load generator. \"Other\" is every other process on the machine; a run "
      f"during which it exceeded {other_max:.2f} CPUs was repeated (up to "
      f"{meta.get('MAX_ATTEMPTS')} attempts), and ⚠ marks a row that still kept such a run.")
    w("")
    w("\"Unexpected responses\" counts non-2xx answers for allow workloads and the floor and 2xx "
      "answers for the deny workload, summed over the measured runs; every workload's answer is also "
      "checked once with curl before it is loaded (status, decision, identity headers).")
    w("")

    def floor_runs(workload, conns):
        return [r for r in groups.get((workload, conns), []) if "floor_rps" in r]

    def floor_share(workload, conns):
        """(median floor req/s, median ratio, ratios run by run, median floor p99) or None."""
        runs = floor_runs(workload, conns)
        if not runs:
            return None
        ratios = [float(r["rps"]) / r["floor_rps"] for r in runs]
        return (statistics.median(r["floor_rps"] for r in runs), statistics.median(ratios),
                ratios, statistics.median(r["floor_p99_us"] for r in runs))

    def floor_target(workload, conns):
        """(text of the target, whether it is met) for the rows that have one."""
        share = TARGET_FLOOR_SHARE.get(workload)
        if share is None or conns not in TARGET_FLOOR_CONNS:
            return None
        _, ratio, _, _ = floor_share(workload, conns)
        text, met = f"≥ {share:.0%} of the floor", ratio >= share
        if conns == TARGET_FLOOR_P99_CONNS:
            text += f", p99 ≤ {TARGET_FLOOR_P99_MS:g} ms"
            met &= median("p99_us", workload, conns) / 1000 <= TARGET_FLOOR_P99_MS
        return text, met

    floored = [wl for wl in workloads if wl not in ("floor", "cerbos")
               and any(floor_runs(wl, c) for c in conns_all)]
    if floored:
        w("## Against the floor (same run, alternating runs)")
        w("")
        w("| workload | conns | floor req/s | Portcullis req/s | ratio | ratio of each run | "
          "floor p99 ms | Portcullis p99 ms | target | met |")
        w("|---|---:|---:|---:|---:|---|---:|---:|---|---|")
        for workload in floored:
            for conns in conns_all:
                share = floor_share(workload, conns)
                if share is None:
                    continue
                floor_rps, ratio, ratios, floor_p99 = share
                target = floor_target(workload, conns)
                target_text, verdict = ("—", "—") if target is None else (
                    target[0], "**met**" if target[1] else "**not met**")
                w(f"| {LABELS[workload]} | {conns} | {floor_rps:,.0f} | "
                  f"{median('rps', workload, conns):,.0f} | {ratio:.1%} | "
                  f"{', '.join(f'{r:.1%}' for r in ratios)} | {ms(floor_p99)} | "
                  f"{ms(median('p99_us', workload, conns))} | {target_text} | {verdict} |")
        w("")
        w("The floor is the `floor` binary of crates/bench: a hyper server on the runtime, "
          "listener settings and core of `portcullis serve` that answers every request with "
          "`204` and no body, loaded with the forward-auth request (same headers and token). It "
          "is the most a server of our make can answer on this machine's loopback; the ratio is "
          "what is left to the service after its own work (routing, identity, the decision, "
          "its answer and the audit record). Each run of a workload is divided by the mean of "
          "the floor runs just before and just after it; \"ratio\" is the median of these "
          "run-by-run ratios and \"floor req/s\" the median of the floor means they used. "
          "Ratios from one run of the script are comparable; absolute figures from different "
          "hours often are not.")
        w("")
        loads = []
        for conns in conns_all:
            if ("floor", conns) in groups:
                loads.append(f"{conns} connections {median('server_cpu', 'floor', conns):.2f} / "
                             f"{median('load_cpu', 'floor', conns):.2f}")
        w("CPUs used during the floor runs, floor server / wrk (medians): " + "; ".join(loads) +
          ". A floor server below 1.00 with wrk near 1.00 means wrk's core, not the server's, "
          "bounded the floor: the floor is then this machine's limit for one wrk thread, and "
          "the ratios are against that.")
        w("")

    if "cerbos" in workloads and "check" in workloads:
        w("## Portcullis `POST /v1/check` vs Cerbos `POST /api/check/resources`")
        w("")
        w("| conns | Portcullis req/s | Cerbos req/s | ratio | Portcullis p99 ms | Cerbos p99 ms | "
          "Portcullis p99.9 ms | Cerbos p99.9 ms |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for conns in conns_all:
            p, c = median("rps", "check", conns), median("rps", "cerbos", conns)
            if p is None or c is None:
                continue
            w(f"| {conns} | {p:,.0f} | {c:,.0f} | {p / c:.2f}× | "
              f"{ms(median('p99_us', 'check', conns))} | {ms(median('p99_us', 'cerbos', conns))} | "
              f"{ms(median('p999_us', 'check', conns))} | {ms(median('p999_us', 'cerbos', conns))} |")
        w("")

    if "authzen" in workloads and "check" in workloads:
        w("## AuthZEN evaluation vs `POST /v1/check` (the same question, auditing on)")
        w("")
        w("| conns | `/v1/check` req/s | AuthZEN req/s | AuthZEN / check | check p99 ms | "
          "AuthZEN p99 ms |")
        w("|---:|---:|---:|---:|---:|---:|")
        for conns in conns_all:
            c, z = median("rps", "check", conns), median("rps", "authzen", conns)
            if c is None or z is None:
                continue
            w(f"| {conns} | {c:,.0f} | {z:,.0f} | {z / c:.1%} | "
              f"{ms(median('p99_us', 'check', conns))} | {ms(median('p99_us', 'authzen', conns))} |")
        w("")

    for on_name, off_name, title in (
            ("nginx-allow", "nginx-allow-audit-off", "forward-auth `GET /v1/authz/nginx`, allow"),
            ("check", "check-audit-off", "`POST /v1/check`")):
        if on_name not in workloads or off_name not in workloads:
            continue
        w(f"## Auditing on vs off ({title}, every decision recorded)")
        w("")
        w("| conns | auditing on req/s | auditing off req/s | on / off | on p99 ms | off p99 ms |")
        w("|---:|---:|---:|---:|---:|---:|")
        for conns in conns_all:
            on, off = median("rps", on_name, conns), median("rps", off_name, conns)
            if on is None or off is None:
                continue
            w(f"| {conns} | {on:,.0f} | {off:,.0f} | {on / off:.1%} | "
              f"{ms(median('p99_us', on_name, conns))} | "
              f"{ms(median('p99_us', off_name, conns))} |")
        w("")

    w("## Memory (from /proc/PID/status)")
    w("")
    w("| process | VmRSS at start | VmRSS after the load | VmHWM (peak) after the load |")
    w("|---|---:|---:|---:|")
    for name, key in (("portcullis serve (demo bundles)", "PORTCULLIS"), ("cerbos server", "CERBOS")):
        if meta.get(f"{key}_RSS_AFTER_KB"):
            kb = lambda k: f"{int(meta[k]) / 1024:.1f} MB"  # noqa: E731
            w(f"| {name} | {kb(key + '_RSS_IDLE_KB')} | {kb(key + '_RSS_AFTER_KB')} | "
              f"{kb(key + '_HWM_AFTER_KB')} |")
    w("")

    w("## Targets")
    w("")

    def best(workload, predicate=lambda conns: True):
        candidates = [(median("rps", workload, c), c) for c in conns_all
                      if (workload, c) in groups and predicate(c)]
        return max(candidates) if candidates else None

    if "nginx-allow" in workloads:
        meeting, missing = [], []
        for conns in conns_all:
            if ("nginx-allow", conns) not in groups:
                continue
            rps = median("rps", "nginx-allow", conns)
            p99 = median("p99_us", "nginx-allow", conns)
            text = f"{conns} connections: {rps:,.0f} req/s, p99 {ms(p99)} ms"
            if rps >= TARGET_NGINX_RPS and p99 / 1000 <= TARGET_NGINX_P99_MS:
                meeting.append(text)
            else:
                # A closed loop at saturation keeps every connection waiting its turn: the
                # mean latency is connections / throughput (Little's law).
                missing.append(f"{text} (Little's law floor at this throughput: mean "
                               f"{conns / rps * 1000:.2f} ms)")
        verdict = f"**met** at {'; '.join(meeting)}" if meeting else "**not met**"
        if missing:
            verdict += f"; not within the bound at {'; '.join(missing)}"
        w(f"- Forward-auth ≥ {TARGET_NGINX_RPS:,} decisions/s with p99 ≤ {TARGET_NGINX_P99_MS} ms: {verdict}")
    if "check" in workloads:
        top = best("check")
        verdict = "**met**" if top[0] >= TARGET_CHECK_RPS else "**not met**"
        w(f"- `POST /v1/check` ≥ {TARGET_CHECK_RPS:,}/s: {verdict}: {top[0]:,.0f} req/s at "
          f"{top[1]} connections")
    if "check" in workloads and "cerbos" in workloads:
        parts, all_ok = [], True
        for conns in conns_all:
            p, c = median("rps", "check", conns), median("rps", "cerbos", conns)
            if p is None or c is None:
                continue
            lower = median("p99_us", "check", conns) < median("p99_us", "cerbos", conns)
            ok = p / c >= TARGET_CERBOS_RATIO and lower
            all_ok &= ok
            parts.append(f"{conns} conns {p / c:.2f}× ({'lower' if lower else 'not lower'} p99)")
        w(f"- Portcullis ≥ {TARGET_CERBOS_RATIO:.0f}× Cerbos throughput at a lower p99: "
          f"{'**met**' if all_ok else '**not met**'} — {'; '.join(parts)}")
    if "check" in workloads and "check-audit-off" in workloads:
        parts, all_ok = [], True
        for conns in conns_all:
            on, off = median("rps", "check", conns), median("rps", "check-audit-off", conns)
            if on is None or off is None:
                continue
            ok = on >= off * (1 - TARGET_AUDIT_COST)
            all_ok &= ok
            parts.append(f"{conns} conns {on / off:.1%} of the throughput without auditing")
        w(f"- Auditing on within {TARGET_AUDIT_COST:.0%} of auditing off: "
          f"{'**met**' if all_ok else '**not met**'} — {'; '.join(parts)}")
    for workload, share in TARGET_FLOOR_SHARE.items():
        if workload not in floored:
            continue
        parts, all_ok = [], True
        for conns in TARGET_FLOOR_CONNS:
            if not floor_runs(workload, conns):
                parts.append(f"{conns} conns not measured")
                all_ok = False
                continue
            _, met = floor_target(workload, conns)
            all_ok &= met
            _, ratio, _, _ = floor_share(workload, conns)
            p99 = f", p99 {ms(median('p99_us', workload, conns))} ms" if conns == TARGET_FLOOR_P99_CONNS else ""
            parts.append(f"{conns} conns {ratio:.1%} of the floor{p99}")
        auditing = "off" if workload.endswith("audit-off") else "on"
        w(f"- Forward-auth with auditing {auditing} ≥ {share:.0%} of the floor at "
          f"{' and '.join(str(c) for c in TARGET_FLOOR_CONNS)} connections, p99 ≤ "
          f"{TARGET_FLOOR_P99_MS:g} ms at {TARGET_FLOOR_P99_CONNS}: "
          f"{'**met**' if all_ok else '**not met**'} — {'; '.join(parts)}")
    if meta.get("PORTCULLIS_HWM_AFTER_KB"):
        hwm = int(meta["PORTCULLIS_HWM_AFTER_KB"]) / 1024
        rss = int(meta["PORTCULLIS_RSS_AFTER_KB"]) / 1024
        verdict = "**met**" if max(hwm, rss) <= TARGET_RSS_MB else "**not met**"
        w(f"- Resident memory ≤ {TARGET_RSS_MB:.0f} MB with the demo bundle: {verdict}: "
          f"VmRSS {rss:.1f} MB, VmHWM {hwm:.1f} MB after the load")
    w("")
    output.write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
