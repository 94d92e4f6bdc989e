"""`python -m devkit import-imdf PATH --building ID`: bring an IMDF venue (a zip, or a folder of its GeoJSON files
and manifest.json) in as a building.

Against a running app (`--url`, an admin key of the tenant: `--key` or SPACEFLOW_ADMIN_KEY) it posts the archive to
`POST /api/v1/buildings/{ID}/imdf`, exactly what an integrator would do. With `--attach --tenant T` it writes
through the services to the stores of local.settings.json / the environment (the emulators of `make serve`, or
Azure with `azd env get-values`), with the same checks. Either way it prints the import summary as JSON: floors,
spaces, doors, the navigation graph generated, unreachable rooms and warnings.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="an IMDF archive (.zip) or a folder holding manifest.json")
    parser.add_argument("--building", required=True, help="the building id to create or replace")
    parser.add_argument("--overlay", type=Path, help="a CSV or JSON overlay: capacity, bookable, amenities by space id")
    parser.add_argument("--url", help="a running app, e.g. http://127.0.0.1:7071")
    parser.add_argument("--key", help="an admin key of the tenant (default: SPACEFLOW_ADMIN_KEY)")
    parser.add_argument("--attach", action="store_true", help="write to the stores directly instead of over HTTP")
    parser.add_argument("--tenant", help="with --attach: the tenant the building belongs to")
    parser.add_argument("--if-match", help="replace only this version (an ETag)")


def archive_bytes(path: Path, overlay: Path | None = None) -> bytes:
    """The zip to send: the file as it is, or a folder zipped (its *.geojson, manifest.json and overlay file)."""
    from shared.domain.imdf import read_archive, zip_archive

    if path.is_dir():
        files = {p.name: p.read_bytes() for p in sorted(path.iterdir())
                 if p.is_file() and (p.suffix == ".geojson" or p.name in ("manifest.json", "overlay.csv",
                                                                          "overlay.json"))}
    elif overlay is None:
        return path.read_bytes()
    else:
        files = read_archive(path.read_bytes())
    if overlay is not None:
        kind = "csv" if overlay.suffix.lower() == ".csv" else "json"
        files = {n: b for n, b in files.items() if not n.startswith("overlay.")}
        files[f"overlay.{kind}"] = overlay.read_bytes()
    return zip_archive(files)


def main(args: argparse.Namespace) -> int:
    if not args.path.exists():
        print(f"import-imdf: {args.path} does not exist", file=sys.stderr)
        return 2
    if args.overlay is not None and not args.overlay.is_file():
        print(f"import-imdf: {args.overlay} does not exist", file=sys.stderr)
        return 2
    try:
        archive = archive_bytes(args.path, args.overlay)
        if args.attach:
            if not args.tenant:
                print("import-imdf: --attach needs --tenant", file=sys.stderr)
                return 2
            summary = asyncio.run(_attached(args.tenant, args.building, archive, args.if_match))
        else:
            key = args.key or os.environ.get("SPACEFLOW_ADMIN_KEY")
            if not args.url or not key:
                print("import-imdf: pass --url and --key (an admin key of the tenant), or --attach --tenant T",
                      file=sys.stderr)
                return 2
            summary = _over_http(args.url, key, args.building, archive, args.if_match)
    except Exception as exc:  # noqa: BLE001 - a CLI reports what failed instead of a traceback
        print(f"import-imdf: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def _over_http(url: str, key: str, building: str, archive: bytes, if_match: str | None) -> dict[str, Any]:
    import httpx

    headers = {"x-api-key": key, "Content-Type": "application/zip"}
    if if_match:
        headers["If-Match"] = if_match
    response = httpx.post(f"{url.rstrip('/')}/api/v1/buildings/{building}/imdf", content=archive, headers=headers,
                          timeout=300)
    if response.status_code >= 400:
        raise RuntimeError(f"{response.status_code}: {response.text[:2000]}")
    summary: dict[str, Any] = response.json()
    summary["etag"] = response.headers.get("ETag")
    return summary


async def _attached(tenant: str, building: str, archive: bytes, if_match: str | None) -> dict[str, Any]:
    from devkit.local_settings import attached_environment
    from shared.domain.tenancy import BuildingRef
    from shared.settings import load_settings
    from shared.wiring import build_context

    context = await build_context(load_settings(attached_environment()))
    try:
        imported = await context.floorplans.import_imdf(BuildingRef(tenant, building), archive, if_match)
    finally:
        await context.close()
    return {**imported.summary(), "etag": imported.saved.etag}
