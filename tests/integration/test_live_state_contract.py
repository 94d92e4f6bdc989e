"""The live-state store contract, run against the in-memory fake and Cosmos on the emulator.

Two tenants share every id here on purpose (building `hq`, space `r-oak`, device `install-1`, user `ann`): what
one tenant writes must never be readable, listable or overwritable through the other.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.cosmos_live_state import CosmosLiveStateStore
from shared.adapters.memory import InMemoryLiveStateStore
from shared.domain.events import BeaconAlerts, BeaconFacts, SpaceFacts, silence_event, space_events
from shared.domain.ports import PreconditionFailed
from shared.domain.presence import BeaconHealth, DeviceState, OccupancyChange, SpaceState, Visit, apply_occupancy
from shared.domain.tenancy import BuildingRef
from tests.integration.conftest import emulator_database

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
A_HQ = BuildingRef("tenant-a", "hq")
B_HQ = BuildingRef("tenant-b", "hq")
A_ANNEX = BuildingRef("tenant-a", "annex")


@pytest.fixture(params=["memory", "cosmos"])
async def store(request):
    if request.param == "memory":
        yield InMemoryLiveStateStore()
        return
    async with emulator_database(request, "live") as database:
        yield CosmosLiveStateStore(database)


def device(building: BuildingRef = A_HQ, **changes) -> DeviceState:
    base = DeviceState(tenant_id=building.tenant_id, building_id=building.building_id, device_id="install-1",
                       last_seen=T0, tracking={"schema": "tracking/v1", "x": 1.5}, x=1.5, y=2.0, floor="f0",
                       space_id="r-oak", space_since=T0, recent_batches=("b1", "b2"))
    return replace(base, **changes)


def space(building: BuildingRef, space_id: str, **changes) -> SpaceState:
    return replace(SpaceState.empty(building, space_id), **changes)


def visit(building: BuildingRef, space_id: str, minutes: int, device_id: str = "install-1") -> Visit:
    return Visit(building.tenant_id, building.building_id, space_id, device_id, T0, T0 + timedelta(minutes=minutes))


async def test_device_create_read_and_guarded_replace(store):
    created = await store.save_device(device())
    assert created.etag
    read = await store.get_device(A_HQ, "install-1")
    assert replace(read, etag=None) == device() and read.etag == created.etag
    with pytest.raises(PreconditionFailed):
        await store.save_device(device())  # creating twice
    moved = await store.save_device(replace(read, space_id="k-0", last_seen=T0 + timedelta(seconds=30)))
    with pytest.raises(PreconditionFailed):
        await store.save_device(replace(read, space_id="o-1"))  # stale etag
    assert (await store.get_device(A_HQ, "install-1")).space_id == "k-0"
    assert moved.etag != read.etag
    await store.save_device(device(A_ANNEX, device_id="install-2"))
    assert [d.device_id for d in await store.list_devices(A_HQ)] == ["install-1"]
    assert await store.get_device(A_ANNEX, "install-1") is None


async def test_the_same_device_id_in_two_tenants_buildings_of_one_id_are_two_devices(store):
    await store.save_device(device(A_HQ, user_id="ann", space_id="r-oak"))
    assert await store.get_device(B_HQ, "install-1") is None
    assert await store.list_devices(B_HQ) == []
    # B's phone with the same installation id is created, not refused as existing and not merged into A's.
    b_device = await store.save_device(device(B_HQ, user_id="ann", space_id="k-0"))
    assert b_device.tenant_id == "tenant-b"
    a_read, b_read = await store.get_device(A_HQ, "install-1"), await store.get_device(B_HQ, "install-1")
    assert (a_read.tenant_id, a_read.space_id) == ("tenant-a", "r-oak")
    assert (b_read.tenant_id, b_read.space_id) == ("tenant-b", "k-0")
    # A's etag does not reach B's document.
    with pytest.raises(PreconditionFailed):
        await store.save_device(replace(b_read, etag=a_read.etag, space_id=None))
    assert [d.tenant_id for d in await store.list_devices(A_HQ)] == ["tenant-a"]
    assert [d.tenant_id for d in await store.list_devices(B_HQ)] == ["tenant-b"]


async def test_a_tracked_device_reads_back_whole_and_is_found_by_the_sweep_and_the_people_finder(store):
    """The device document is stored packed (docs/data-model.md): the tracker's state, the dedupe window and the
    fields absent when unset read back as written, and the queries still find the device."""
    from shared.domain.presence import batch_key

    uuid = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
    ts = T0.timestamp()
    tracking = {"schema": "tracking/v1", "ts": ts, "x": 1.5, "y": 2.0, "floor": "f0", "uncertainty_m": 2.5,
                "beacons": {f"{uuid}:1:{n}": [-70.25 - n, 4.5, ts - n, -59.0] for n in range(6)},
                "floor_candidate": None, "floor_candidate_since": None, "space": "r-oak", "space_confidence": 0.0,
                "space_candidate": "k-0", "space_candidate_since": ts - 3.25, "space_evidence": 0.75,
                "offset": [1.25, 0.5], "rooms": {"r-oak": 0.875, "k-0": 0.125}}
    batches = tuple(batch_key(f"batch-{n}") for n in range(16))
    sharing = device(tracking=tracking, recent_batches=batches, user_id="ann", uncertainty_m=2.5)
    await store.save_device(sharing)
    read = await store.get_device(A_HQ, "install-1")
    assert replace(read, etag=None) == sharing and read.has_seen("batch-3")
    assert [d.device_id for d in await store.find_devices_of_user("tenant-a", "ann")] == ["install-1"]
    assert [d.device_id for d in await store.list_silent_devices(T0 + timedelta(minutes=1))] == ["install-1"]
    leaving = await store.save_device(replace(read, space_id=None, leaving_space_id="r-oak", leaving_since=T0))
    assert [d.leaving_space_id for d in await store.list_silent_devices(T0 + timedelta(minutes=1))] == ["r-oak"]
    await store.save_device(replace(leaving, leaving_space_id=None, leaving_since=None, user_id=None))
    assert await store.list_silent_devices(T0 + timedelta(minutes=1)) == []  # in no space, leaving none
    assert await store.find_devices_of_user("tenant-a", "ann") == []


async def test_concurrent_space_writers_with_one_etag_only_one_wins(store):
    saved = await store.save_space(space(A_HQ, "r-oak", occupants={"a": T0.isoformat()}, since=T0, last_change=T0))
    attempts = [replace(saved, occupants={**saved.occupants, f"d{i}": T0.isoformat()}) for i in range(6)]
    results = await asyncio.gather(*(store.save_space(a) for a in attempts), return_exceptions=True)
    assert sum(isinstance(r, SpaceState) for r in results) == 1
    assert all(isinstance(r, PreconditionFailed) for r in results if not isinstance(r, SpaceState))
    stored = await store.get_space(A_HQ, "r-oak")
    assert stored.headcount == 2 and stored.status == "occupied"


async def test_spaces_listed_per_building_of_a_tenant(store):
    await store.save_space(space(A_HQ, "b"))
    await store.save_space(space(A_HQ, "a", occupants={"x": T0.isoformat()}, since=T0))
    await store.save_space(space(A_ANNEX, "c"))
    await store.save_space(space(B_HQ, "a", occupants={"y": T0.isoformat(), "z": T0.isoformat()}, since=T0))
    listed = await store.list_spaces(A_HQ)
    assert [(s.space_id, s.headcount, s.status) for s in listed] == [("a", 1, "occupied"), ("b", 0, "free")]
    assert [(s.tenant_id, s.space_id, s.headcount) for s in await store.list_spaces(B_HQ)] == [("tenant-b", "a", 2)]
    assert (await store.get_space(A_HQ, "a")).occupants == {"x": T0.isoformat()}
    assert await store.get_space(B_HQ, "b") is None


async def test_visits_upsert_by_id_and_list_by_end_time(store):
    first = visit(A_HQ, "r-oak", 30)
    await store.save_visit(first)
    await store.save_visit(first)  # the same visit again: still one
    await store.save_visit(visit(A_HQ, "k-0", 120))
    await store.save_visit(visit(A_ANNEX, "k-0", 10))
    await store.save_visit(visit(B_HQ, "r-oak", 30))  # same building, space, device and times: another tenant's
    assert await store.list_visits(A_HQ, T0, T0 + timedelta(hours=1)) == [first]
    assert [v.tenant_id for v in await store.list_visits(B_HQ, T0, T0 + timedelta(hours=1))] == ["tenant-b"]


async def test_silent_devices_are_those_in_a_space_or_mid_leave(store):
    await store.save_device(device(device_id="old-in-room", last_seen=T0))
    await store.save_device(device(device_id="old-mid-leave", last_seen=T0, space_id=None, leaving_space_id="r-oak",
                                   leaving_since=T0))
    await store.save_device(device(device_id="old-nowhere", last_seen=T0, space_id=None, space_since=None))
    await store.save_device(device(device_id="fresh", last_seen=T0 + timedelta(minutes=10)))
    await store.save_device(device(A_ANNEX, device_id="other-building", last_seen=T0))
    await store.save_device(device(B_HQ, device_id="old-in-room", last_seen=T0))
    silent = await store.list_silent_devices(T0 + timedelta(minutes=5))
    assert sorted((d.tenant_id, d.building_id, d.device_id) for d in silent) == [
        ("tenant-a", "annex", "other-building"), ("tenant-a", "hq", "old-in-room"), ("tenant-a", "hq", "old-mid-leave"),
        ("tenant-b", "hq", "old-in-room")]


async def test_beacon_health_upserts_per_tenant(store):
    health = BeaconHealth("tenant-a", "hq", "beacon-1", T0, battery_mv=2900, telemetry_at=T0)
    await store.save_beacon_health(health)
    await store.save_beacon_health(replace(health, last_heard=T0 + timedelta(minutes=1)))
    await store.save_beacon_health(BeaconHealth("tenant-b", "hq", "beacon-1", T0 + timedelta(hours=1)))
    assert await store.list_beacon_health(A_HQ) == [replace(health, last_heard=T0 + timedelta(minutes=1))]
    [b_health] = await store.list_beacon_health(B_HQ)
    assert (b_health.tenant_id, b_health.battery_mv) == ("tenant-b", None)


async def test_devices_of_an_opted_in_user_across_buildings_of_one_tenant(store):
    await store.save_device(device(device_id="phone-1", user_id="ann"))
    await store.save_device(device(A_ANNEX, device_id="phone-2", user_id="ann"))
    await store.save_device(device(device_id="phone-3", user_id="bob"))
    await store.save_device(device(B_HQ, device_id="phone-1", user_id="ann"))
    found = await store.find_devices_of_user("tenant-a", "ann")
    assert sorted((d.building_id, d.device_id) for d in found) == [("annex", "phone-2"), ("hq", "phone-1")]
    assert [(d.tenant_id, d.device_id) for d in await store.find_devices_of_user("tenant-b", "ann")] == [
        ("tenant-b", "phone-1")]


# --- the outbox: a transition and its events in one atomic write ------------------------------------------------

FACTS = SpaceFacts(name="Oak", kind="conferenceroom", floor="f0")


def occupied(building: BuildingRef, before: SpaceState, device_id: str, at: datetime):
    after = apply_occupancy(before, OccupancyChange(building, before.space_id, device_id, "enter", at))
    return space_events(before, after, FACTS)


async def test_a_space_and_its_events_are_written_together(store):
    empty = space(A_HQ, "r-oak")
    state, events = occupied(A_HQ, empty, "install-1", T0)
    saved = await store.save_space(state, events)
    assert (saved.event_seq, saved.headcount_reported) == (1, 1)
    assert [e.id for e in await store.pending()] == [events[0].id]
    # the space listing never shows the outbox document beside it
    assert [s.space_id for s in await store.list_spaces(A_HQ)] == ["r-oak"]
    # a writer that lost the race writes neither its space nor its event
    stale_state, stale_events = occupied(A_HQ, empty, "install-2", T0 + timedelta(seconds=1))
    with pytest.raises(PreconditionFailed):
        await store.save_space(stale_state, stale_events)
    assert [e.id for e in await store.pending()] == [events[0].id]
    assert (await store.get_space(A_HQ, "r-oak")).occupants.keys() == {"install-1"}
    await store.remove(events[0])
    await store.remove(events[0])  # removing twice is harmless
    assert await store.pending() == []


async def test_the_outbox_of_two_tenants_with_the_same_ids_keeps_both(store):
    for building in (A_HQ, B_HQ):
        state, events = occupied(building, space(building, "r-oak"), "install-1", T0)
        await store.save_space(state, events)
    pending = await store.pending()
    assert sorted(e.source for e in pending) == ["/tenants/tenant-a/buildings/hq", "/tenants/tenant-b/buildings/hq"]
    assert len({e.id for e in pending}) == 2
    await store.remove(pending[0])
    assert [e.id for e in await store.pending()] == [pending[1].id]


async def test_spaces_with_a_held_back_headcount_are_listed_when_due(store):
    await store.save_space(space(A_HQ, "r-oak", headcount_due_at=T0 + timedelta(seconds=60)))
    await store.save_space(space(B_HQ, "r-elm", headcount_due_at=T0 + timedelta(seconds=30)))
    await store.save_space(space(A_HQ, "k-0"))
    assert await store.list_spaces_due(T0) == []
    assert [(s.tenant_id, s.space_id) for s in await store.list_spaces_due(T0 + timedelta(seconds=90))] == [
        ("tenant-b", "r-elm"), ("tenant-a", "r-oak")]


async def test_beacon_alerts_and_their_events_are_written_together_and_silence_is_reported_once(store):
    health = BeaconHealth("tenant-a", "hq", "beacon-1", T0, battery_mv=2900, telemetry_at=T0)
    await store.save_beacon_health(health)
    assert await store.get_beacon_alerts(A_HQ, "beacon-1") is None
    [silent] = await store.list_silent_beacons(T0 + timedelta(seconds=1))
    facts = BeaconFacts(floor="f0", x=1.0, y=2.0)
    alerts, event = silence_event(BeaconAlerts.none(A_HQ, "beacon-1"), silent, facts, T0 + timedelta(hours=25))
    saved = await store.save_beacon_alerts(alerts, [event], silence_of=silent)
    assert (saved.event_seq, saved.silent_reported_for) == (1, T0)
    assert await store.list_silent_beacons(T0 + timedelta(seconds=1)) == []
    assert [b.beacon_id for b in await store.list_beacon_health(A_HQ)] == ["beacon-1"]  # alerts are not beacons
    assert [e.id for e in await store.pending()] == [event.id]
    # the same alerts again (a second sweep that read them before the first wrote): refused, nothing added
    with pytest.raises(PreconditionFailed):
        await store.save_beacon_alerts(alerts, [event.model_copy(update={"id": "another"})], silence_of=silent)
    assert len(await store.pending()) == 1
    # heard again since the sweep read it: the batch fails as a whole
    await store.save_beacon_health(replace(health, last_heard=T0 + timedelta(days=2)))
    with pytest.raises(PreconditionFailed):
        await store.save_beacon_alerts(replace(saved, event_seq=2), [event.model_copy(update={"id": "later"})], silence_of=silent)
    assert (await store.get_beacon_alerts(A_HQ, "beacon-1")).event_seq == 1
    assert len(await store.pending()) == 1
