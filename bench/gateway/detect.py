#!/usr/bin/env python3
"""The two halves of bench/gateway/detect.sh. Standard library only.

  detect.py lines CORPUS MODE OUT
      Writes one URL-encoded line per corpus item to OUT: the query string (MODE get) or the
      form body (MODE post) of the request that carries the item. Both sides of the
      comparison get exactly these bytes.

  detect.py send LINES MODE PATH THREADS NAME=URL...
      Sends every line to every URL (GET PATH?LINE, or POST PATH with the line as a form
      body) over THREADS keep-alive connections per URL, and prints one line per input with
      the status of each URL, tab-separated, in the order of the NAME=URL arguments.

  detect.py report CORPUS RESULTS OUT_DIR MISSES [HALF]
      RESULTS: one `MODE SYSTEM FILE` line per verdict file (SYSTEM crs-pl1, crs-pl2, ours).
      Writes OUT_DIR/report.md (confusion matrices, for the whole corpus and for each half)
      and OUT_DIR/ours-*.txt (the first MISSES misses and false positives of ours, with what
      CRS did on the same request), taken from the items of HALF only: `tuning` (default),
      `held-out` or `all`.

The halves: every item belongs to the `tuning` or the `held-out` half by the first byte of
the SHA-256 of its value (even: tuning, odd: held-out), a split fixed before any verdict.
Rules are designed by looking only at the tuning half's misses and false positives (the
lists above, by default); the held-out half shows whether they generalise.
"""

import concurrent.futures
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

# A browser's headers, so that CRS's protocol rules (missing Accept, numeric Host, scanner
# user agents) do not score the benign requests.
HEADERS = {
    "Host": "shop.example",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.5",
    "Accept-Encoding": "gzip, deflate",
}
# The parameters around the item: a search form.
CONTEXT = "&page=2&lang=en"


def corpus(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


HALVES = ("tuning", "held-out")


def half(item):
    """The half an item belongs to, by a hash of its value (fixed, independent of verdicts)."""
    return HALVES[hashlib.sha256(item["value"].encode("utf-8")).digest()[0] & 1]


def lines(corpus_path, mode, out):
    # GET and POST carry the same URL-encoded parameters (`+` for spaces, as browsers send
    # forms); only where they travel differs.
    del mode
    with open(out, "w", encoding="ascii") as handle:
        for item in corpus(corpus_path):
            handle.write("q=" + urllib.parse.quote_plus(item["value"]) + CONTEXT + "\n")
    return 0


def send(lines_path, mode, path, threads, targets):
    with open(lines_path, encoding="ascii") as handle:
        requests = [line.rstrip("\n") for line in handle]
    names = [target.split("=", 1)[0] for target in targets]
    urls = [urllib.parse.urlsplit(target.split("=", 1)[1]) for target in targets]
    statuses = [[0] * len(requests) for _ in targets]
    local = threading.local()

    def connection(index):
        pool = getattr(local, "pool", None)
        if pool is None:
            pool = local.pool = {}
        if index not in pool:
            pool[index] = http.client.HTTPConnection(urls[index].hostname, urls[index].port, timeout=30)
        return pool[index]

    def one(position):
        line = requests[position]
        for index in range(len(urls)):
            for attempt in range(3):
                conn = connection(index)
                try:
                    if mode == "get":
                        conn.request("GET", f"{path}?{line}", headers=HEADERS)
                    else:
                        conn.request("POST", path, body=line.encode("ascii"), headers={
                            **HEADERS, "Content-Type": "application/x-www-form-urlencoded"})
                    response = conn.getresponse()
                    response.read()
                    statuses[index][position] = response.status
                    if response.getheader("Connection", "").lower() == "close":
                        conn.close()
                        del local.pool[index]
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    del local.pool[index]
                    if attempt == 2:
                        statuses[index][position] = -1

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for done, _ in enumerate(pool.map(one, range(len(requests)), chunksize=64), 1):
            if done % 5000 == 0:
                rate = done * len(urls) / (time.monotonic() - started)
                print(f"    {done}/{len(requests)} ({rate:.0f} requests/s)", file=sys.stderr)
    for position in range(len(requests)):
        print("\t".join(str(statuses[index][position]) for index in range(len(urls))))
    elapsed = time.monotonic() - started
    print(f"    {len(requests) * len(urls)} requests to {', '.join(names)} in {elapsed:.0f} s",
          file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- report

ATTACKS = ("sqli", "xss")
LEVELS = ("low", "medium", "high")


def verdicts(system, path):
    """Per item: True (blocked), False (passed) or None (neither: an error)."""
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if system == "ours":
                out.append([field != "pass" for field in fields])
            else:
                status = int(fields[0])
                out.append(True if status == 403 else False if status == 200 else None)
    return out


def pct(part, whole):
    return f"{100.0 * part / whole:.2f} %" if whole else "-"


def report(corpus_path, results_path, out_dir, misses, misses_half="tuning"):
    items = corpus(corpus_path)
    systems = []  # (mode, label, [verdict per item])
    ours_text = {}
    with open(results_path) as handle:
        for line in handle:
            mode, system, path = line.split()
            if system == "ours":
                table = verdicts("ours", path)
                with open(path, encoding="utf-8") as raw:
                    ours_text[mode] = [row.rstrip("\n").split("\t") for row in raw]
                for index, level in enumerate(LEVELS):
                    systems.append((mode, f"Portcullis `{level}`", [row[index] for row in table]))
            else:
                label = {"crs-pl1": "ModSecurity + CRS PL1", "crs-pl2": "ModSecurity + CRS PL2"}[system]
                systems.append((mode, label, verdicts(system, path)))
    for mode, label, table in systems:
        if len(table) != len(items):
            sys.exit(f"error: {label} ({mode}) has {len(table)} verdicts for {len(items)} items")

    def counts(table, predicate, part=None):
        blocked = passed = errors = 0
        for item, verdict in zip(items, table):
            if not predicate(item) or (part is not None and halves[item["id"]] != part):
                continue
            if verdict is None:
                errors += 1
            elif verdict:
                blocked += 1
            else:
                passed += 1
        return blocked, passed, errors

    halves = [half(item) for item in items]
    classes = {kind: sum(1 for item in items if item["class"] == kind) for kind in ("sqli", "xss", "benign", "benign-sql")}
    md = ["# Detection: confusion matrices", ""]
    md.append(f"Corpus: {classes['sqli']} SQL-injection payloads, {classes['xss']} XSS payloads, "
              f"{classes['benign']} benign values (+ {classes['benign-sql']} benign SQL statements, "
              "reported apart). Each item is the value of `q` in `q=ITEM&page=2&lang=en`. "
              "Blocked: 403 from nginx + ModSecurity, a refusal from the injection stage. "
              "TP/FN on attacks, FP/TN on benign values.")
    md.append("")
    for mode in dict.fromkeys(mode for mode, _, _ in systems):
        md.append(f"## {'GET, item in the query string' if mode == 'get' else 'POST, item in a URL-encoded form body'}")
        md.append("")
        md.append("| system | SQLi TP | SQLi FN | SQLi detected | XSS TP | XSS FN | XSS detected | benign FP | benign TN | false positives | errors |")
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row_mode, label, table in systems:
            if row_mode != mode:
                continue
            sqli = counts(table, lambda item: item["class"] == "sqli")
            xss = counts(table, lambda item: item["class"] == "xss")
            benign = counts(table, lambda item: item["class"] == "benign")
            errors = sqli[2] + xss[2] + benign[2]
            md.append(f"| {label} | {sqli[0]} | {sqli[1]} | {pct(sqli[0], sqli[0] + sqli[1])} | "
                      f"{xss[0]} | {xss[1]} | {pct(xss[0], xss[0] + xss[1])} | "
                      f"{benign[0]} | {benign[1]} | {pct(benign[0], benign[0] + benign[1])} | {errors} |")
        md.append("")
        md.append("By half (`tuning`: the items whose misses were looked at while writing rules; "
                  "`held-out`: never looked at). SQLi / XSS detected, benign false positives:")
        md.append("")
        md.append("| system | " + " | ".join(f"{part} SQLi | {part} XSS | {part} FP" for part in HALVES + ("whole",)) + " |")
        md.append("|---|" + "---:|" * (3 * (len(HALVES) + 1)))
        for row_mode, label, table in systems:
            if row_mode != mode:
                continue
            cells = []
            for part in HALVES + (None,):
                sqli = counts(table, lambda item: item["class"] == "sqli", part)
                xss = counts(table, lambda item: item["class"] == "xss", part)
                benign = counts(table, lambda item: item["class"] == "benign", part)
                cells += [pct(sqli[0], sqli[0] + sqli[1]), pct(xss[0], xss[0] + xss[1]),
                          pct(benign[0], benign[0] + benign[1])]
            md.append(f"| {label} | " + " | ".join(cells) + " |")
        md.append("")
        md.append("| half | SQLi | XSS | benign |")
        md.append("|---|---:|---:|---:|")
        for part in HALVES:
            n = {kind: sum(1 for item in items if item["class"] == kind and halves[item["id"]] == part)
                 for kind in ("sqli", "xss", "benign")}
            md.append(f"| {part} | {n['sqli']} | {n['xss']} | {n['benign']} |")
        md.append("")
        md.append("False positives by benign group (blocked / items):")
        md.append("")
        groups = {}
        for item in items:
            if item["class"] in ("benign", "benign-sql"):
                group = item["source"] + ":" + item["group"].split("/")[0]
                groups.setdefault(group, []).append(item["id"])
        labels = [label for row_mode, label, _ in systems if row_mode == mode]
        md.append("| group | items | " + " | ".join(labels) + " |")
        md.append("|---|---:|" + "---:|" * len(labels))
        for group in sorted(groups):
            ids = groups[group]
            cells = []
            for row_mode, label, table in systems:
                if row_mode == mode:
                    cells.append(str(sum(1 for i in ids if table[i])))
            md.append(f"| {group} | {len(ids)} | " + " | ".join(cells) + " |")
        md.append("")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(md) + "\n")
    print("\n".join(md))

    # Misses and false positives of ours, with CRS's verdicts on the same request.
    for mode, rows in ours_text.items():
        crs = {label: table for row_mode, label, table in systems if row_mode == mode and "CRS" in label}

        def crs_said(index):
            return " ".join(f"{'PL1' if 'PL1' in label else 'PL2'}={'block' if table[index] else 'pass'}"
                            for label, table in crs.items())

        for level_index, level in enumerate(LEVELS):
            for name, wanted in (("missed-sqli", "sqli"), ("missed-xss", "xss"), ("false-positives", "benign")):
                path = os.path.join(out_dir, f"ours-{mode}-{level}-{name}.txt")
                written = 0
                with open(path, "w", encoding="utf-8") as handle:
                    for item, verdict in zip(items, rows):
                        if item["class"] != wanted or misses_half not in ("all", halves[item["id"]]):
                            continue
                        # An attack that passed, or a benign value that was refused.
                        if (verdict[level_index] != "pass") != (wanted == "benign"):
                            continue
                        handle.write(f"{item['id']}\t{item['source']}:{item['group']}\t{crs_said(item['id'])}\t"
                                     f"{verdict[level_index]}\t{json.dumps(item['value'], ensure_ascii=False)}\n")
                        written += 1
                        if written >= misses:
                            break
    return 0


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "lines":
        return lines(args[1], args[2], args[3])
    if len(args) >= 6 and args[0] == "send":
        return send(args[1], args[2], args[3], int(args[4]), args[5:])
    if len(args) in (5, 6) and args[0] == "report":
        if len(args) == 6 and args[5] not in HALVES + ("all",):
            sys.exit(f"error: HALF is one of {', '.join(HALVES + ('all',))}, not {args[5]}")
        return report(args[1], args[2], args[3], int(args[4]), *args[5:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
