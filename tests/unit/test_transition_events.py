"""Events the passing of time and beacon telemetry make: held-back headcounts, silent beacons, low batteries,
each exactly once even when two instances or two sweeps race (in-memory store; the Cosmos batch is proven in
tests/integration/test_live_state_contract.py and test_pipeline_cosmos.py)."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from shared.adapters.memory import InMemoryLiveStateStore, InMemorySiteModelStore
from shared.domain.events import BATTERY_LOW_MV, EventType
from shared.domain.ingest_event import decode_ingest_event
from shared.domain.ports import InboundEvent
from shared.services.pipeline import PipelineService, PresenceSweepService
from shared.services.sites import SiteDirectory
from shared.services.transitions import SiteFacts, TransitionSweepService
from tests.support.batches import ingest_event_body
from tests.support.pipeline import IN_ROOM, OAK_BEACON, add_small_site, room_event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def setup():
    sites = InMemorySiteModelStore()
    await add_small_site(sites)
    return SiteDirectory(sites), InMemoryLiveStateStore()


def telemetry_event(at: datetime, battery_mv: int, device: str = "install-tt"):
    body = ingest_event_body(at, device=device, readings=IN_ROOM["r-oak"], beaconTelemetry=[
        {"beacon": OAK_BEACON, "ts": at.isoformat(), "batteryMv": battery_mv, "solarLux": 120}])
    return InboundEvent(body, device, 0, at), decode_ingest_event(body)


def of_type(events, kind: EventType) -> list:
    return [e for e in events if e.type is kind]


async def test_a_battery_going_low_is_one_event_though_two_instances_hear_it_at_once():
    directory, store = await setup()
    first, second = PipelineService(directory, store), PipelineService(directory, store)
    await first.process([telemetry_event(T0, 2900, "install-p1")])
    assert of_type(await store.pending(), EventType.beacon_battery_low) == []
    await asyncio.gather(first.process([telemetry_event(T0 + timedelta(minutes=10), BATTERY_LOW_MV - 100, "install-p1")]),
                         second.process([telemetry_event(T0 + timedelta(minutes=10), BATTERY_LOW_MV - 90, "install-p2")]))
    await second.process([telemetry_event(T0 + timedelta(minutes=20), BATTERY_LOW_MV - 120, "install-p3")])
    [low] = of_type(await store.pending(), EventType.beacon_battery_low)
    assert (low.subject, low.data.floor, low.data.x) == (f"beacons/{OAK_BEACON}", "f0", 5.0)
    assert low.data.battery_mv < BATTERY_LOW_MV


async def test_a_held_back_headcount_is_sent_by_the_sweep_once_it_is_due():
    directory, store = await setup()
    pipeline = PipelineService(directory, store)
    sweep = TransitionSweepService(store, SiteFacts(directory))
    for n, device in enumerate(("install-p1", "install-p2", "install-p3")):
        await pipeline.process([room_event(T0 + timedelta(seconds=10 * n), "r-oak", device=device)])
    events = await store.pending()
    assert [(e.type, e.data.headcount) for e in events] == [
        (EventType.space_occupied, 1), (EventType.space_headcount, 2)]
    assert await sweep.sweep(T0 + timedelta(seconds=30)) == 0  # not due yet
    await asyncio.gather(sweep.sweep(T0 + timedelta(seconds=90)), sweep.sweep(T0 + timedelta(seconds=90)))
    headcounts = of_type(await store.pending(), EventType.space_headcount)
    assert [(e.data.headcount, e.data.name, e.sequence_number) for e in headcounts] == [(2, "Oak", 2), (3, "Oak", 3)]
    assert await sweep.sweep(T0 + timedelta(hours=1)) == 0


async def test_a_beacon_silent_for_a_day_is_reported_once_and_again_after_it_was_heard():
    directory, store = await setup()
    pipeline = PipelineService(directory, store)
    sweep = TransitionSweepService(store, SiteFacts(directory))
    await pipeline.process([telemetry_event(T0, 2900)])
    assert await sweep.sweep(T0 + timedelta(hours=23)) == 0
    results = await asyncio.gather(*(sweep.sweep(T0 + timedelta(hours=25)) for _ in range(3)))
    assert sum(results) >= 1
    silent = of_type(await store.pending(), EventType.beacon_silent)
    assert [(e.subject, e.data.silent, e.time) for e in silent if e.subject == f"beacons/{OAK_BEACON}"] == [
        (f"beacons/{OAK_BEACON}", True, T0 + timedelta(hours=24))]
    assert await sweep.sweep(T0 + timedelta(hours=30)) == 0
    back = PipelineService(directory, store)  # a fresh instance hears it again two days later
    await back.process([telemetry_event(T0 + timedelta(days=2), 2900, "install-p9")])
    assert await sweep.sweep(T0 + timedelta(days=3, hours=1)) >= 1
    mine = [e for e in of_type(await store.pending(), EventType.beacon_silent) if e.subject.endswith(OAK_BEACON)]
    assert len(mine) == 2 and mine[0].id != mine[1].id


async def test_the_presence_sweep_vacates_a_room_with_its_event():
    directory, store = await setup()
    await PipelineService(directory, store).process([room_event(T0, "r-oak", device="install-p1")])
    sweep = PresenceSweepService(store, timedelta(seconds=300), sites=directory)
    assert await sweep.sweep(T0 + timedelta(seconds=400)) == 1
    events = await store.pending()
    assert [(e.type, e.data.status, e.data.name) for e in events] == [
        (EventType.space_occupied, "occupied", "Oak"), (EventType.space_vacated, "free", "Oak")]
