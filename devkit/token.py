"""`python -m devkit token --tenant T --user U [--url URL]`: a bearer token for a person, signed by the devkit's
issuer (the key `python -m devkit serve` publishes), for a tenant whose identity points at it (`devkit seed`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from devkit.identity import DEVKIT_AUDIENCE, KeyRing, default_keys_path, issue_token, issuer_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", required=True, help="the tenant id")
    parser.add_argument("--user", required=True, help="the person's user id (the SDK's userId)")
    parser.add_argument("--url", default="http://127.0.0.1:7071", help="the devkit server (default %(default)s)")
    parser.add_argument("--audience", default=DEVKIT_AUDIENCE, help="default %(default)s")
    parser.add_argument("--minutes", type=int, default=60, help="lifetime (default %(default)s)")
    parser.add_argument("--keys", type=Path, help=f"the key file (default {default_keys_path()})")


def main(args: argparse.Namespace) -> int:
    ring = KeyRing.load_or_create(args.keys or default_keys_path())
    print(issue_token(ring, issuer_url(args.url, args.tenant), args.user, audience=args.audience,
                      lifetime_s=args.minutes * 60))
    return 0
