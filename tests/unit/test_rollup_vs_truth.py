"""The rollups agree with the live state: a simulated office day (devkit/office.py: 60 people, 8 hours, desks,
meetings, lunch) is written through the pipeline's occupancy path (OccupancyWriter, the writes the pipeline makes
when a phone enters or leaves a room) at the simulator's true times, rolled up by the hourly timer as it runs in
Azure (at 5 past every hour, with stays open at that moment), and again the way the demo does (every hour after
the day is over, for the moments that are past); both are compared with the simulator's truth: the building's peak
headcount per hour and each room's occupied hours, within 2 %.

Positioning is left out on purpose (the simulator's stays go in, not its radio): what is measured here is the
rollups against the state they read, not the room accuracy of the positioning (docs/positioning.md)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from devkit.demo_rollups import around_the_clock
from devkit.office import OfficeDay
from shared.adapters.memory import (
    InMemoryBlobStore,
    InMemoryLiveStateStore,
    InMemorySiteModelStore,
    InMemoryTeamDirectory,
)
from shared.domain.analytics import Grain
from shared.domain.presence import DeviceState, transition
from shared.domain.tenancy import BuildingRef
from shared.services.pipeline import OccupancyWriter
from shared.services.rollups import AnalyticsReader, RollupService

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
HOURS = 8
TOLERANCE = 0.02


def truth_of(day: OfficeDay) -> tuple[dict[int, int], dict[str, float], dict[str, int]]:
    """From the simulator's plan alone, by a sweep over its stays: the building's peak headcount per hour (UTC hour
    of the day), each room's occupied seconds over the day and each room's peak headcount."""
    edges: list[tuple[float, int, str, int]] = []  # (second, +1/-1, room, person)
    per_room: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for person in day.people:
        for stay in person.stays:
            edges += [(stay.start_s, 1, stay.space_id, person.index), (stay.end_s, -1, stay.space_id, person.index)]
            per_room[stay.space_id].append((stay.start_s, stay.end_s))
    edges.sort(key=lambda e: (e[0], e[1]))  # leaves before enters at the same instant
    peak: dict[int, int] = defaultdict(int)
    room_peak: dict[str, int] = defaultdict(int)
    inside, in_room = 0, defaultdict(int)
    for second, delta, room, _person in edges:
        inside += delta
        in_room[room] += delta
        room_peak[room] = max(room_peak[room], in_room[room])
        hour = (START + timedelta(seconds=second)).hour
        peak[hour] = max(peak[hour], inside)
        if delta < 0 and inside + 1 > peak[hour]:  # the level just before a leave at an hour's first instant
            peak[hour] = inside + 1
    # the headcount at each hour's start carries into that hour
    level = 0
    ordered = iter(edges)
    pending = next(ordered, None)
    for hour in range(HOURS):
        boundary = hour * 3600.0
        while pending is not None and pending[0] <= boundary:
            level += pending[1]
            pending = next(ordered, None)
        peak[START.hour + hour] = max(peak[START.hour + hour], level)
    occupied = {}
    for room, intervals in per_room.items():
        intervals.sort()
        total, current_start, current_end = 0.0, *intervals[0]
        for s, e in intervals[1:]:
            if s > current_end:
                total += current_end - current_start
                current_start, current_end = s, e
            else:
                current_end = max(current_end, e)
        occupied[room] = total + current_end - current_start
    return dict(peak), occupied, dict(room_peak)


def events_of(day: OfficeDay) -> list[tuple[float, int, str | None]]:
    """(second, person, the room they are in from then on: None when they leave it), in time order."""
    out: list[tuple[float, int, str | None]] = []
    for person in day.people:
        for stay in person.stays:
            out += [(stay.start_s, person.index, stay.space_id), (stay.end_s, person.index, None)]
    out.sort(key=lambda e: (e[0], e[2] is not None, e[1]))
    return out


async def simulate(day: OfficeDay, rollups: list[tuple[RollupService, str]], live: InMemoryLiveStateStore,
                   building: BuildingRef) -> None:
    """Apply every enter and leave at its time; run the `timer` rollups at 5 past each hour as time passes, and
    the `demo` ones after the day for the hours that are over, as devkit/demo_rollups.py does."""
    writer = OccupancyWriter(live)
    devices: dict[int, DeviceState] = {}
    timers = [START + timedelta(hours=h, minutes=5) for h in range(1, HOURS + 4)]
    for second, index, room in events_of(day):
        at = START + timedelta(seconds=second)
        while timers and timers[0] <= at:
            for service, mode in rollups:
                if mode == "timer":
                    await service.hourly(timers[0])
            timers.pop(0)
        person = day.people[index]
        before = devices.get(index) or DeviceState(building.tenant_id, building.building_id, person.device_id, at,
                                                   user_id=person.user_id)
        after = replace(before, space_id=room, space_since=at if room else None, last_seen=at, etag=None)
        await writer.apply_transitions([transition(before if before.space_id else None, after, at)])
        devices[index] = after
        stored = await live.get_device(building, person.device_id)
        await live.save_device(replace(after, etag=stored.etag if stored else None))
    for moment in timers:  # after the day: the timer keeps running until every hour is final
        for service, mode in rollups:
            if mode == "timer":
                await service.hourly(moment)
    end = START + timedelta(hours=HOURS, minutes=20)  # the demo rolls up once its day is over
    for service, mode in rollups:
        if mode == "demo":
            for h in range(1, HOURS + 1):
                await service.hourly(min(START + timedelta(hours=h, minutes=5), end))


async def rolled(blobs: InMemoryBlobStore, site, tenant: str) -> tuple[dict[int, int], dict[str, float],
                                                                         dict[str, int]]:
    answer = await AnalyticsReader(blobs, "analytics", 5).read(
        tenant, site, Grain.hour, date(2026, 11, 26), date(2026, 11, 26),
        metrics=["peak_headcount", "occupied_time"])
    peak: dict[int, int] = {}
    occupied: dict[str, float] = defaultdict(float)
    room_peak: dict[str, int] = defaultdict(int)
    for row in answer.rows:
        hour = datetime.fromisoformat(row["windowStart"]).hour
        if row["scope"] == "building" and row["metric"] == "peak_headcount":
            peak[hour] = row["value"]
        elif row["scope"] == "space" and row["metric"] == "occupied_time":
            occupied[row["scopeId"]] += row["value"]
        elif row["scope"] == "space" and row["metric"] == "peak_headcount" and row["value"] is not None:
            room_peak[row["scopeId"]] = max(room_peak[row["scopeId"]], row["value"])
    return peak, dict(occupied), dict(room_peak)


@pytest.mark.parametrize("mode", ["timer", "demo"])
async def test_a_rolled_up_simulated_day_matches_the_simulators_truth(mode):
    day = OfficeDay(people=60, minutes=HOURS * 60, seed=7, floors=2, start=START)
    site = around_the_clock(day.site)
    building = BuildingRef("sim-tenant", site.building_id)
    sites, live, blobs = InMemorySiteModelStore(), InMemoryLiveStateStore(), InMemoryBlobStore()
    await sites.put(building, site)
    service = RollupService(sites, live, blobs, InMemoryTeamDirectory(), "analytics", min_group_size=5)
    # the simulator's stays are its trajectories' dwell legs: spot-check that they agree
    for second in range(600, HOURS * 3600, 1800):
        counts = defaultdict(int)
        for person in day.people:
            for stay in person.stays:
                if stay.start_s <= second < stay.end_s:
                    counts[stay.space_id] += 1
        assert dict(counts) == day.occupancy(second)
    await simulate(day, [(service, mode)], live, building)
    true_peak, true_occupied, true_room_peak = truth_of(day)
    peak, occupied, room_peak = await rolled(blobs, site, "sim-tenant")
    day_hours = set(range(START.hour, START.hour + HOURS))
    assert set(peak) >= day_hours and all(peak[h] == 0 for h in set(peak) - day_hours), peak  # nobody before/after
    assert max(true_peak.values()) >= 50  # everyone is in for most of the day: a real test of the peak
    for hour in day_hours:
        assert abs(peak[hour] - true_peak[hour]) <= TOLERANCE * true_peak[hour], (hour, peak[hour], true_peak[hour])
    assert set(occupied) >= set(true_occupied)
    for room, seconds in true_occupied.items():
        assert abs(occupied[room] - seconds) <= TOLERANCE * seconds, (room, occupied[room], seconds)
    crowded = {room: people for room, people in room_peak.items() if people >= 5}  # hours not suppressed (k = 5)
    assert crowded  # the meeting rooms, kitchens at lunch
    for room, people in crowded.items():
        assert people == true_room_peak[room], room
    assert sum(occupied.values()) == pytest.approx(sum(true_occupied.values()), rel=TOLERANCE)
