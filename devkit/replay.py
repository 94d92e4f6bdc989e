"""`python -m devkit replay-deadletters [--prefix YYYY/MM/DD] [--all-reasons] [--dry-run]`: publish parked events
again, with the app's settings: the environment's over local.settings.json's (the emulators locally; Azure with its
identity and `azd env get-values`)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="", help="only letters under this path, e.g. 2026/11/26/")
    parser.add_argument("--all-reasons", action="store_true",
                        help="also letters of invalid events (by default only those whose processing failed)")
    parser.add_argument("--dry-run", action="store_true", help="count, publish nothing, delete nothing")


def main(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    from devkit.local_settings import attached_environment
    from shared.services.replay import DeadLetterReplay
    from shared.settings import SettingsError, load_settings
    from shared.wiring import build_context

    try:
        settings = load_settings(attached_environment())
    except SettingsError as exc:
        print(f"replay-deadletters: {exc}", file=sys.stderr)
        return 2
    context = await build_context(settings, bootstrap=False)
    try:
        reasons = frozenset({"processing-failed", "invalid"}) if args.all_reasons else frozenset({"processing-failed"})
        report = await DeadLetterReplay(context.blobs, settings.deadletter_container, context.publisher).replay(
            args.prefix, reasons, args.dry_run)
        if hasattr(context.publisher, "drain"):
            await context.publisher.drain()  # the in-process hub: let the replayed events be processed
        print(json.dumps(report.as_dict()))
        return 0
    finally:
        await context.close()
