"""`python -m devkit bench rollup [--json]`: the daily analytics rollup (the day and its 24 hours) of a big building.

Synthetic and fast, not through the radio simulator: a 1,000-space building (offices, meeting and huddle rooms,
phone rooms, kitchens on 10 floors), 5,000 people with about 20 stays each in one day (~100,000 visits), 30 % of
them opted in and in one or two of 40 teams. Measured:
- `seconds`, `visits_per_s`: one `roll_day` (read the visits, compute every metric of the day and its hours,
  encode Parquet, write data files and manifests) over in-memory stores;
- `peak_mb`: the peak of memory the rollup allocates (tracemalloc, in a second, identical run that also checks
  the re-run writes the same bytes: `identical_rerun`);
- `backfill_peak_mb_by_day`: the same peak for each day of a multi-day backfill, above the memory held before
  that day (the in-memory blob store keeps each day's output): flat, not growing with days.
"""
from __future__ import annotations

import argparse
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from shared.domain.tenancy import BuildingRef

if TYPE_CHECKING:
    from shared.adapters.memory import InMemoryBlobStore
    from shared.domain.presence import DeviceState, SpaceState, Visit
    from shared.domain.site import SiteModel
    from shared.services.rollups import RollupService

TENANT = "bench-tenant"
KINDS = (("office", 600, 1, 4), ("conferenceroom", 120, 6, 14), ("huddleroom", 100, 2, 4), ("phoneroom", 120, 1, 1),
         ("kitchen", 60, 10, 24))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--spaces", type=int, default=1000)
    parser.add_argument("--stays", type=int, default=20, help="stays per person per day")
    parser.add_argument("--backfill-days", type=int, default=3, help="days of the backfill memory check (0 skips)")
    parser.add_argument("--seed", type=int, default=11)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_run(args))


def synthetic_site(spaces: int, floors: int = 10) -> SiteModel:
    from shared.domain.site import parse_site_model

    per_floor = -(-spaces // floors)
    side = int(per_floor ** 0.5) + 1
    kinds = [k for kind, share, lo, hi in KINDS for k in [(kind, lo, hi)] * share]
    items: list[dict[str, Any]] = []
    for i in range(spaces):
        floor, cell = divmod(i, per_floor)
        x, y = (cell % side) * 5.0, (cell // side) * 5.0
        kind, lo, hi = kinds[i * len(kinds) // spaces]
        items.append({"id": f"s{i:04d}", "name": f"Space {i}", "kind": kind, "floor": f"L{floor}",
                      "polygon": [[x, y], [x + 5, y], [x + 5, y + 5], [x, y + 5]],
                      "capacity": lo + (i % (hi - lo + 1))})
    outline = [[0, 0], [side * 5.0, 0], [side * 5.0, side * 5.0], [0, side * 5.0]]
    return parse_site_model({
        "schema": "site/v1", "buildingId": "bench-hq", "name": "Bench HQ", "timeZone": "Europe/Amsterdam",
        "floors": [{"id": f"L{f}", "name": f"Level {f}", "ordinal": f, "outline": outline} for f in range(floors)],
        "spaces": items,
    })


def synthetic_visits(site: SiteModel, day: date, people: int, stays: int, seed: int) -> list[Visit]:
    """About people x stays visits on a local day: each person arrives 07:30-09:30, leaves 16:00-18:30 and moves
    between their desk, meetings, phone rooms and the kitchen."""
    from datetime import time, timedelta
    from zoneinfo import ZoneInfo

    import numpy as np

    from shared.domain.presence import Visit

    rng = np.random.default_rng(seed + day.toordinal())
    zone = ZoneInfo(site.time_zone)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    by_kind: dict[str, list[str]] = {}
    for space in site.spaces:
        by_kind.setdefault(space.kind.value, []).append(space.id)
    desks = by_kind["office"]
    elsewhere = np.array([s for k in ("conferenceroom", "huddleroom", "phoneroom", "kitchen") for s in by_kind[k]])
    visits: list[Visit] = []
    for p in range(people):
        arrive = rng.uniform(7.5, 9.5) * 3600
        leave = rng.uniform(16.0, 18.5) * 3600
        cuts = np.sort(rng.uniform(arrive, leave, stays - 1))
        bounds = np.r_[arrive, cuts, leave]
        desk = desks[p % len(desks)]
        rooms = rng.choice(elsewhere, stays)
        user = f"user{p:05d}@example.com" if p % 10 < 3 else None
        for i in range(stays):
            space_id = desk if i % 2 == 0 else str(rooms[i])
            start = midnight + timedelta(seconds=float(bounds[i]))
            end = midnight + timedelta(seconds=float(bounds[i + 1]) - 20)  # a walk between spaces
            visits.append(Visit(TENANT, site.building_id, space_id, f"dev-{p:05d}", start, end, user))
    return visits


class BenchVisits:
    """Just what the rollup reads, over visits kept sorted by end (the Cosmos query's index)."""

    def __init__(self, visits: list[Visit]) -> None:
        import bisect

        self._bisect = bisect
        self._visits = sorted(visits, key=lambda v: v.end)
        self._ends = [v.end for v in self._visits]

    async def list_visits(self, building: BuildingRef, ended_from: datetime, ended_before: datetime) -> list[Visit]:
        lo = self._bisect.bisect_left(self._ends, ended_from)
        hi = self._bisect.bisect_left(self._ends, ended_before)
        return self._visits[lo:hi]

    async def list_spaces(self, building: BuildingRef) -> list[SpaceState]:
        return []

    async def list_devices(self, building: BuildingRef) -> list[DeviceState]:
        return []


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import gc
    import resource
    import time
    import tracemalloc
    from datetime import UTC, timedelta

    from shared.adapters.memory import InMemoryBlobStore, InMemorySiteModelStore, InMemoryTeamDirectory
    from shared.domain.teams import Team
    from shared.services.rollups import RollupService

    site = synthetic_site(args.spaces)
    first = date(2026, 11, 23)  # a Monday
    days = max(1, args.backfill_days)
    per_day = [synthetic_visits(site, first + timedelta(days=d), args.people, args.stays, args.seed)
               for d in range(days)]
    visits = [v for day_visits in per_day for v in day_visits]
    sites = InMemorySiteModelStore()
    await sites.put(BuildingRef(TENANT, site.building_id), site)
    teams = InMemoryTeamDirectory()
    members: dict[int, list[str]] = {}
    for p in range(args.people):
        if p % 10 < 3:
            members.setdefault(p % 40, []).append(f"user{p:05d}@example.com")
            if p % 7 == 0:
                members.setdefault((p + 1) % 40, []).append(f"user{p:05d}@example.com")
    for team, users in members.items():
        await teams.put_team(Team(TENANT, f"team-{team:02d}", tuple(sorted(users))))
    store = BenchVisits(visits)
    now = datetime.combine(first + timedelta(days=days + 1), datetime.min.time(), tzinfo=UTC)
    day_visits = len(per_day[0])

    def service(blobs: InMemoryBlobStore) -> RollupService:
        return RollupService(sites, store, blobs, teams, "analytics", 5)

    blobs = InMemoryBlobStore()
    gc.collect()
    started = time.perf_counter()
    written = await service(blobs).roll_day(TENANT, site, first, now)
    seconds = time.perf_counter() - started

    again = InMemoryBlobStore()
    gc.collect()
    tracemalloc.start()
    await service(again).roll_day(TENANT, site, first, now)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    names = await blobs.list_names("analytics")
    identical = names == await again.list_names("analytics") and all(
        [await blobs.get("analytics", n) == await again.get("analytics", n) for n in names])

    by_day: list[float] = []
    if args.backfill_days > 0:
        backfill_blobs = InMemoryBlobStore()
        rollups = service(backfill_blobs)
        tracemalloc.start()
        for d in range(days):
            # above what is held before the day (the in-memory blob store keeps every day's output)
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            await rollups.roll_day(TENANT, site, first + timedelta(days=d), now)
            by_day.append(round((tracemalloc.get_traced_memory()[1] - held) / 2**20, 1))
        tracemalloc.stop()
    rows = {t: sum(w.rows[t] for w in written) for t in ("spaces", "zones", "collaboration")}
    return {
        "spaces": len(site.spaces), "people": args.people, "visits": day_visits,
        "windows": len(written), "rows": rows,
        "seconds": round(seconds, 2), "visits_per_s": round(day_visits / seconds),
        "peak_mb": round(peak / 2**20, 1), "rss_max_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "identical_rerun": identical, "backfill_peak_mb_by_day": by_day,
        "parquet_bytes": sum([len(await blobs.get("analytics", n) or b"") for n in names if n.endswith(".parquet")]),
    }

