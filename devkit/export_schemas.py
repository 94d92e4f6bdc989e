"""`python -m devkit export-schemas [--check]`: the contracts' JSON Schemas in docs/schemas, generated from the models."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devkit.emulators.launcher import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "docs" / "schemas"


def generated_schemas() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    from shared.domain.events import events_json_schema
    from shared.domain.sightings import batch_json_schema
    from shared.domain.site import site_json_schema

    schemas = {"sightings-v1.schema.json": batch_json_schema(), "site-v1.schema.json": site_json_schema(),
               "events-v1.schema.json": events_json_schema()}
    return {name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in schemas.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/schemas differs from the models")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR)


def main(args: argparse.Namespace) -> int:
    stale = []
    for name, text in generated_schemas().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `make schemas`", file=sys.stderr)
        return 1
    return 0
