"""`python -m devkit history --building B [--tenant T] [--days 28] [--people 60] [--seed 7]`: weeks of past office
days for a building, so that its analytics have a history to show (the dashboard's heatmap and typical weekday).

The phones' batches of a past day cannot be replayed (ingest takes sightings of the last minutes only), so this
writes what the pipeline would have stored had they been there: the visits (closed stays of devices in spaces),
through the app's own visit store, on the site's business days. Then the real rollup service computes every day
and hour from them (`RollupService.backfill`), exactly as `devkit rollup` does; nothing of the rollup output is
made up. Today is written up to now, every stay that is still going ended at now, and only today's finished
hours are rolled up (today's day window is the daily timer's, after midnight).

The days: people keep desks in the offices (by capacity), come in on a business day with a weekly rhythm (most on
Tuesday to Thursday), arrive around 08:45 and leave around 17:15 local time, meet in meeting rooms in small
groups, take calls in phone rooms, and most have lunch in a kitchen. Seeded and deterministic: a day's visits
depend on the seed and the date only, never on the range or on when the command runs (except that today ends now).

Connects with the app's settings like `devkit rollup`: the environment's over local.settings.json's (the
emulators of `make serve` must be running).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from shared.domain import space_kinds
from shared.domain.presence import Visit
from shared.domain.site import SiteModel, Space

if TYPE_CHECKING:
    from shared.wiring import AppContext

# Share of the people who come in, by ISO weekday: hybrid work peaks from Tuesday to Thursday. Weekend days count
# only for buildings whose business hours include them.
ATTENDANCE = {1: 0.65, 2: 0.85, 3: 0.8, 4: 0.85, 5: 0.55, 6: 0.3, 7: 0.25}
MEETINGS_PER_PERSON = 2.0  # a day, of those who come in
OPTED_IN = 0.3  # share of people whose visits carry a user id (opted in to the co-worker finder)
WRITE_CONCURRENCY = 32  # visits written at once


@dataclass(frozen=True)
class _Person:
    device_id: str
    user_id: str | None
    desk: Space


@dataclass
class _Day:
    """One person's day in minutes after local midnight: in at `arrive`, out at `leave`, `agenda` in between."""

    person: _Person
    arrive: float
    leave: float
    agenda: list[tuple[float, float, str]]

    def free(self, start: float, end: float, margin: float = 10.0) -> bool:
        return (self.arrive + margin <= start and end <= self.leave - margin
                and all(end + margin <= s or e + margin <= start for s, e, _ in self.agenda))


def _rooms(site: SiteModel, kinds: frozenset[str] | set[str], min_capacity: int = 1) -> list[Space]:
    return sorted((s for s in site.spaces if s.kind.value in kinds and s.capacity >= min_capacity), key=lambda s: s.id)


def _people(site: SiteModel, count: int, seed: int) -> list[_Person]:
    """Desks in the offices by capacity (round the offices again when there are more people than seats)."""
    offices = _rooms(site, {"office"}) or sorted((s for s in site.spaces if s.capacity > 0
                                                  and s.kind.value not in space_kinds.PASSAGES), key=lambda s: s.id)
    if not offices:
        raise ValueError(f"building '{site.building_id}' has no space with a capacity to sit in")
    rng = random.Random(f"{seed}:people")
    seats = [office for office in offices for _ in range(office.capacity)]
    rng.shuffle(seats)  # every office gets some of the people, as desks are handed out over the years
    return [_Person(f"hist-{seed}-{i:04d}", f"user{i:05d}@example.com" if rng.random() < OPTED_IN else None,
                    seats[i % len(seats)]) for i in range(count)]


def _plan_day(site: SiteModel, people: list[_Person], day: date, seed: int) -> list[_Day]:
    rng = random.Random(f"{seed}:{day.isoformat()}")  # a day's own stream: the same day whatever the range
    present = [p for p in people if rng.random() < ATTENDANCE[day.isoweekday()]]
    days = []
    for person in present:
        arrive = min(max(rng.gauss(8.75 * 60, 35), 7 * 60), 11 * 60)
        leave = max(min(rng.gauss(17.25 * 60, 45), 20 * 60), arrive + 180)
        days.append(_Day(person, arrive, leave, []))
    # meetings: about two a day per person, mostly small groups (right-sizing has something to find), each in a
    # free room at a free half hour; calls: one person in a phone room
    booked: dict[str, list[tuple[float, float]]] = defaultdict(list)
    meeting_rooms, phone_rooms = _rooms(site, space_kinds.MEETING_ROOMS, 2), _rooms(site, {"phoneroom"})
    wanted = [("meeting", room) for room in rng.choices(meeting_rooms, k=round(len(days) * MEETINGS_PER_PERSON / 4))
              if meeting_rooms] + [("call", room) for room in rng.choices(phone_rooms, k=round(len(days) * 0.4))
                                   if phone_rooms]
    for what, room in wanted:
        length = rng.choice((30, 30, 45, 60, 60, 90) if what == "meeting" else (15, 20, 30, 45))
        start = 9 * 60.0 + 30 * rng.randrange(16)
        end = start + length
        if any(start < e and s < end for s, e in booked[room.id]):
            continue  # the room is taken then
        size = 1 if what == "call" else max(2, min(room.capacity, round(rng.triangular(2, min(room.capacity, 12), 3))))
        free = [d for d in days if d.free(start, end)]
        if len(free) < min(size, 2):
            continue
        booked[room.id].append((start, end))
        for d in rng.sample(free, min(size, len(free))):
            d.agenda.append((start + rng.uniform(-2, 4), end - rng.uniform(0, 4), room.id))
    kitchens = _rooms(site, space_kinds.AMENITY_SEARCH["kitchen"])
    for d in days:
        if kitchens and rng.random() < 0.65:
            lunch = rng.uniform(11.75 * 60, 13.25 * 60)
            over = lunch + rng.uniform(20, 45)
            if d.free(lunch, over, margin=3):
                same_floor = [k for k in kitchens if k.floor == d.person.desk.floor] or kitchens
                d.agenda.append((lunch, over, rng.choice(same_floor).id))
    return days


def _local(day: date, minutes: float, zone: ZoneInfo) -> datetime:
    moment = datetime.combine(day, clock_time(0), tzinfo=zone) + timedelta(minutes=minutes)
    return moment.astimezone(UTC).replace(microsecond=0)


def office_visits(site: SiteModel, tenant_id: str, first: date, last: date, people: int, seed: int,
                  now: datetime) -> list[Visit]:
    """The visits of the business days from `first` to `last` (local dates), each person's day laid out as desk
    time between the meetings, calls and lunch of their agenda; a stay still going at `now` ends at `now`."""
    zone = ZoneInfo(site.time_zone)
    staff = _people(site, people, seed)
    visits = []
    day = first
    while day <= last:
        if day.isoweekday() in site.business_hours.days:
            for d in _plan_day(site, staff, day, seed):
                stays: list[tuple[float, float, str]] = []
                cursor = d.arrive
                for start, end, space_id in sorted(d.agenda):
                    if start - cursor >= 3:
                        stays.append((cursor, start - 1, d.person.desk.id))  # a minute in the corridor between
                    stays.append((start, end, space_id))
                    cursor = end + 1
                if d.leave - cursor >= 3:
                    stays.append((cursor, d.leave, d.person.desk.id))
                for start, end, space_id in stays:
                    begin, finish = _local(day, start, zone), min(_local(day, end, zone), now)
                    if finish > begin:
                        visits.append(Visit(tenant_id, site.building_id, space_id, d.person.device_id, begin, finish,
                                            d.person.user_id))
        day += timedelta(days=1)
    return visits


async def write_history(context: AppContext, building: str, days: int, people: int, seed: int,
                        tenant: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Write the visits of the last `days` local days and of today up to now, then roll them up; a summary."""
    from devkit.rollup import tenant_of
    from shared.domain.analytics import local_date_of
    from shared.domain.tenancy import BuildingRef

    started = time.perf_counter()
    tenant = await tenant_of(context, building, tenant)
    ref = BuildingRef(tenant, building)
    versioned = await context.site_models.get(ref)
    if versioned is None:
        raise ValueError(f"no building '{building}' for tenant '{tenant}'")
    site = versioned.site
    now = now or datetime.now(UTC)
    today = local_date_of(now, ZoneInfo(site.time_zone))
    first = today - timedelta(days=days)
    visits = office_visits(site, tenant, first, today, people, seed, now)
    limit = asyncio.Semaphore(WRITE_CONCURRENCY)

    async def save(visit: Visit) -> None:
        async with limit:
            await context.live_state.save_visit(visit)

    await asyncio.gather(*(save(v) for v in visits))
    written_s = time.perf_counter() - started
    # The rollup runs once the visits are stored, a moment after `now`: a window counts the visits that ended
    # before its run (`end < now`), and the stays cut at `now` must be among them.
    windows = await context.rollups.backfill(ref, first, today, now + timedelta(seconds=1))
    per_day: dict[str, int] = defaultdict(int)
    for visit in visits:
        per_day[visit.start.astimezone(ZoneInfo(site.time_zone)).date().isoformat()] += 1
    return {
        "tenant": tenant, "building": building, "from": first.isoformat(), "to": today.isoformat(),
        "timeZone": site.time_zone, "people": people, "visits": len(visits), "visitsPerDay": dict(per_day),
        "windows": len(windows), "writeSeconds": round(written_s, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--building", required=True, help="building id")
    parser.add_argument("--tenant", help="tenant id (default: the only tenant with that building)")
    parser.add_argument("--days", type=int, default=28, help="past local days before today (default 28: four weeks)")
    parser.add_argument("--people", type=int, default=60, help="people with a desk in the building (default 60)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")


def main(args: argparse.Namespace) -> int:
    from devkit.local_settings import attached_environment
    from shared.settings import SettingsError, load_settings
    from shared.wiring import build_context

    if not 0 <= args.days <= 366 or not 1 <= args.people <= 10_000:
        print("history: --days is 0 to 366 and --people 1 to 10000", file=sys.stderr)
        return 2

    async def run() -> dict[str, Any]:
        context = await build_context(load_settings(attached_environment()), bootstrap=False)
        try:
            return await write_history(context, args.building, args.days, args.people, args.seed, args.tenant)
        finally:
            await context.close()

    try:
        summary = asyncio.run(run())
    except (SettingsError, ValueError) as exc:
        print(f"history: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        print(f"wrote {summary['visits']} visits of {summary['people']} people from {summary['from']} to "
              f"{summary['to']} and rolled up {summary['windows']} windows of {summary['building']}", file=sys.stderr)
    print(json.dumps(summary))
    return 0
