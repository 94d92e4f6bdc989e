"""`python -m devkit oidc-keys show|rotate|retire`: the devkit issuer's signing keys. `rotate` adds a key that signs
from then on (the old one stays published); `retire` stops publishing all but the signing key, so tokens the
old keys signed are refused once the app refetches the key set."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from devkit.identity import KeyRing, default_keys_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("show", "rotate", "retire"))
    parser.add_argument("--alg", choices=("RS256", "ES256"), help="rotate: the new key's algorithm")
    parser.add_argument("--keys", type=Path, help=f"the key file (default {default_keys_path()})")


def main(args: argparse.Namespace) -> int:
    path = args.keys or default_keys_path()
    ring = KeyRing.load_or_create(path)
    if args.action == "rotate":
        ring.rotate(args.alg)
        ring.save(path)
    elif args.action == "retire":
        ring.retire()
        ring.save(path)
    print(json.dumps({"signing": ring.signing.kid, "published": [k.kid for k in ring.keys]}))
    return 0
