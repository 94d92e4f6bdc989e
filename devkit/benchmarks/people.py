"""`python -m devkit bench people [--cosmos] [--json]`: how long each "not available" answer of the people finder
takes, so timing does not tell "never opted in", "off", "expired" and "not seen" apart.

Each case is one person (plus a person with no phone at all, "unknown"); `PeopleService.locate` is timed for each
in turn, rotating which case goes first, `--rounds` times. In memory by default; `--cosmos` runs the same on the
Cosmos emulator (started here) with the real adapters. Reports each case's median and p90 in microseconds and the
spread of the medians ((max - min) / min) over the four cases the API promises to keep alike, and with "unknown".
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.domain.ports import AuditLog, LiveStateStore, TenantDirectory

TENANT = "bench-people"
CASES = ("never", "off", "expired", "not-seen")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=300, help="lookups per case (default 300)")
    parser.add_argument("--cosmos", action="store_true", help="on the Cosmos emulator instead of in memory")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not args.cosmos:
        from shared.adapters.memory import InMemoryAuditLog, InMemoryLiveStateStore, InMemoryTenantDirectory

        return asyncio.run(_measure(InMemoryTenantDirectory(), InMemoryLiveStateStore(), InMemoryAuditLog(),
                                    args.rounds, "memory"))
    return asyncio.run(_on_cosmos(args.rounds))


async def _on_cosmos(rounds: int) -> dict[str, Any]:
    import uuid

    from devkit.emulators.launcher import cosmos_aio_client, start_cosmos
    from shared.adapters.cosmos import ensure_cosmos_schema
    from shared.adapters.cosmos_directory import CosmosAuditLog, CosmosTenantDirectory
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore

    emulator = start_cosmos()
    try:
        async with cosmos_aio_client(emulator.port) as client:
            name = f"bench-people-{uuid.uuid4().hex[:8]}"
            database = await ensure_cosmos_schema(client, name)
            try:
                return await _measure(CosmosTenantDirectory(database), CosmosLiveStateStore(database),
                                      CosmosAuditLog(database), rounds, "cosmos emulator")
            finally:
                await client.delete_database(name)
    finally:
        emulator.stop()


async def _measure(tenants: TenantDirectory, live: LiveStateStore, audit: AuditLog, rounds: int,
                   store: str) -> dict[str, Any]:
    from shared.adapters.memory import InMemorySiteModelStore
    from shared.domain.errors import NotFound
    from shared.domain.people import Sharing, SharingLevel, Tenant
    from shared.domain.presence import DeviceState
    from shared.domain.tenancy import Principal, Scope
    from shared.services.people import PeopleService
    from shared.services.sites import SiteDirectory

    now = datetime.now(UTC)
    await tenants.create_tenant(Tenant(TENANT, "Bench", now))
    people = {case: f"{case}@bench.example" for case in (*CASES, "unknown")}
    await tenants.put_sharing(Sharing(TENANT, people["off"], SharingLevel.off, None, now))
    await tenants.put_sharing(Sharing(TENANT, people["expired"], SharingLevel.space, now - timedelta(minutes=1),
                                      now - timedelta(hours=1)))
    await tenants.put_sharing(Sharing(TENANT, people["not-seen"], SharingLevel.space, None, now))
    for case in CASES:
        last_seen = now - (timedelta(minutes=11) if case == "not-seen" else timedelta(seconds=30))
        await live.save_device(DeviceState(TENANT, "hq", f"phone-{case}", last_seen, floor="L0", space_id="r-1",
                                           space_since=last_seen, user_id=people[case]))
    service = PeopleService(tenants, live, audit, SiteDirectory(InMemorySiteModelStore()), clock=lambda: now)
    looker = Principal(TENANT, "bench-key", frozenset({Scope.people}))
    order = list(people.items())
    samples: dict[str, list[float]] = {case: [] for case in people}
    for n in range(rounds + 10):
        for case, user in order[n % len(order):] + order[:n % len(order)]:
            started = time.perf_counter()
            try:
                await service.locate(looker, user)
            except NotFound:
                pass
            else:
                raise AssertionError(f"{case}: a location was shown")
            if n >= 10:  # the first rounds warm caches and connections
                samples[case].append(time.perf_counter() - started)
    medians = {case: statistics.median(s) * 1e6 for case, s in samples.items()}

    def spread(cases: Iterable[str]) -> float:
        values = [medians[c] for c in cases]
        return round((max(values) - min(values)) / min(values), 3)

    return {
        "store": store, "rounds": rounds,
        "median_us": {c: round(m, 1) for c, m in medians.items()},
        "p90_us": {c: round(statistics.quantiles(s, n=10)[-1] * 1e6, 1) for c, s in samples.items()},
        "spread_of_medians": spread(CASES),
        "spread_with_unknown": spread(people),
    }
