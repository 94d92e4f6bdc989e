"""`python -m devkit rollup --building B --from D1 --to D2 [--tenant T]`: recompute the analytics of a range of local
days (every day and its hours), one day at a time.

Connects with the app's settings: the environment's (`azd env get-values`) over local.settings.json's (the
emulators of `make serve` or `make demo` must be running).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.wiring import AppContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--building", required=True, help="building id")
    parser.add_argument("--from", dest="first", required=True, type=date.fromisoformat, help="first local date")
    parser.add_argument("--to", dest="last", required=True, type=date.fromisoformat, help="last local date")
    parser.add_argument("--tenant", help="tenant id (default: the only tenant with that building)")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")


def _environment() -> dict[str, str]:
    from devkit.local_settings import attached_environment

    return attached_environment()


async def tenant_of(context: AppContext, building: str, tenant: str | None = None) -> str:
    """`tenant` when given, else the only tenant with a building of that id (ValueError when not exactly one)."""
    if tenant is not None:
        return tenant
    owners = sorted({ref.tenant_id for ref in await context.site_models.list_all() if ref.building_id == building})
    if len(owners) != 1:
        raise ValueError(f"building '{building}' belongs to {len(owners)} tenants: name one with --tenant")
    return owners[0]


async def backfill(context: AppContext, building: str, first: date, last: date,
                   tenant: str | None = None) -> dict[str, Any]:
    """Run the backfill on a built context; a summary of what was written where."""
    tenant = await tenant_of(context, building, tenant)
    started = time.perf_counter()
    from shared.domain.tenancy import BuildingRef

    written = await context.rollups.backfill(BuildingRef(tenant, building), first, last)
    return {
        "tenant": tenant, "building": building, "from": first.isoformat(), "to": last.isoformat(),
        "windows": len(written), "final": sum(w.final for w in written),
        "rows": {t: sum(w.rows[t] for w in written) for t in ("spaces", "zones", "collaboration")},
        "container": context.settings.analytics_container,
        "prefix": f"tenant={tenant}/building={building}/",
        "seconds": round(time.perf_counter() - started, 2),
    }


def main(args: argparse.Namespace) -> int:
    from shared.settings import SettingsError, load_settings
    from shared.wiring import build_context

    if args.last < args.first:
        print("rollup: --to must not be before --from", file=sys.stderr)
        return 2

    async def run() -> dict[str, Any]:
        context = await build_context(load_settings(_environment()), bootstrap=False)
        try:
            return await backfill(context, args.building, args.first, args.last, args.tenant)
        finally:
            await context.close()

    try:
        summary = asyncio.run(run())
    except (SettingsError, ValueError) as exc:
        print(f"rollup: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        print(f"rolled up {summary['windows']} windows of {summary['building']} into container "
              f"'{summary['container']}' under {summary['prefix']}", file=sys.stderr)
    print(json.dumps(summary))
    return 0
