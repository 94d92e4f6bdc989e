"""`python -m devkit COMMAND ...`: run and measure spaceflow off Azure. Never deployed."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from shared.runtime import configure_worker_gc

# command -> module exposing add_arguments(parser) and main(args) -> int; imported only when chosen so that
# one command's heavy imports do not slow the others.
COMMANDS = {
    "demo": ("devkit.demo", "the whole system on a simulated office (what `make demo` runs)"),
    "serve": ("devkit.serve", "emulators and the app on loopback until Ctrl-C"),
    "emulators": ("devkit.emulators.cli", "start only the emulators (Azurite, Cosmos) until Ctrl-C"),
    "replay-deadletters": ("devkit.replay", "publish the events of dead letters again (after a processing outage)"),
    "import-imdf": ("devkit.import_imdf", "import an IMDF venue (zip or folder) as a building, over HTTP or --attach"),
    "seed": ("devkit.seed", "create a demo tenant, its keys, sign-in and a simulated building through the public API"),
    "token": ("devkit.token", "print a bearer token for a person, signed by the devkit's OpenID Connect issuer"),
    "oidc-keys": ("devkit.oidc_keys", "show, rotate or retire the devkit issuer's signing keys"),
    "eval-positioning": ("devkit.eval_positioning", "score the positioning engine on a dataset folder"),
    "bench": ("devkit.bench", "benchmarks that print JSON"),
    "capacity": ("devkit.capacity", "the capacity and cost model of docs/capacity.md for 1,000 to 100,000 phones"),
    "webhook-receiver": ("devkit.webhook_receiver", "verify and print webhook events on loopback"),
    "rollup": ("devkit.rollup", "recompute the analytics rollups of a building for a range of days"),
    "history": ("devkit.history", "write weeks of past office days (visits) for a building and roll them up"),
    "export-schemas": ("devkit.export_schemas", "write the JSON Schemas of the contracts to docs/schemas"),
}


def main(argv: list[str] | None = None, *, worker_gc: bool = False) -> int:
    """Run one command; `worker_gc`: set up the garbage collector as the Functions worker does (shared/runtime.py),
    which the command line does and a test calling this in its own process does not."""
    argv = sys.argv[1:] if argv is None else argv
    # the Functions worker's setting (local.settings.json, the Bicep's app settings), before a command loads numpy:
    # the benchmarks measure the processing as it runs there, on one BLAS thread
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(prog="python -m devkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    if worker_gc:
        configure_worker_gc()
    command_parser = argparse.ArgumentParser(prog=f"python -m devkit {argv[0]}", description=COMMANDS[argv[0]][1])
    module.add_arguments(command_parser)
    return int(module.main(command_parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main(worker_gc=True))
