#!/usr/bin/env python3
"""Mints an HS256 JWT for the benchmark issuer (standard library only).

Usage: mint_jwt.py SUBJECT [LIFETIME_SECONDS]
The HMAC secret comes from $BENCH_JWT_SECRET, the issuer from $BENCH_JWT_ISSUER
(default https://idp.bench.invalid). Prints the compact token on stdout.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    secret = os.environ.get("BENCH_JWT_SECRET", "")
    if len(secret) < 32:
        print("BENCH_JWT_SECRET must hold at least 32 bytes", file=sys.stderr)
        return 2
    lifetime = int(sys.argv[2]) if len(sys.argv) > 2 else 4 * 3600
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": os.environ.get("BENCH_JWT_ISSUER", "https://idp.bench.invalid"),
        "aud": "portcullis",
        "sub": sys.argv[1],
        "tenant": "acme",
        "iat": now,
        "exp": now + lifetime,
    }
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    print(f"{signing_input}.{b64url(signature)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
