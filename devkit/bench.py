"""`python -m devkit bench TARGET [--json]`: benchmarks that print one JSON object."""
from __future__ import annotations

import argparse
import importlib
import json

# target -> module exposing add_arguments(parser) and run(args) -> dict. Keep those modules' top-level imports
# light: every target's module is imported to build the parser.
TARGETS = {
    "positioning": "devkit.benchmarks.positioning",
    "pipeline": "devkit.benchmarks.pipeline",
    "ingest": "devkit.benchmarks.ingest",
    "rollup": "devkit.benchmarks.rollup",
    "queries": "devkit.benchmarks.queries",
    "people": "devkit.benchmarks.people",
    "slowloris": "devkit.benchmarks.slowloris",
    "imdf": "devkit.benchmarks.imdf",
    "events": "devkit.benchmarks.events",
    "scale": "devkit.benchmarks.scale",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, module_name in TARGETS.items():
        target_parser = targets.add_parser(name)
        target_parser.add_argument("--json", action="store_true", help="print compact JSON on one line")
        importlib.import_module(module_name).add_arguments(target_parser)


def main(args: argparse.Namespace) -> int:
    result = importlib.import_module(TARGETS[args.target]).run(args)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
