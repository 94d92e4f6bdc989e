"""The live-state store contract, run against the in-memory fake and Cosmos on the emulator."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.adapters.cosmos_live_state import CosmosLiveStateStore
from shared.adapters.memory import InMemoryLiveStateStore
from shared.domain.ports import PreconditionFailed
from shared.domain.presence import BeaconHealth, DeviceState, SpaceState, Visit
from tests.integration.conftest import emulator_database

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "cosmos"])
async def store(request):
    if request.param == "memory":
        yield InMemoryLiveStateStore()
        return
    async with emulator_database(request, "live") as database:
        yield CosmosLiveStateStore(database)


def device(**changes) -> DeviceState:
    base = DeviceState(tenant_id="t", building_id="hq", device_id="install-1", last_seen=T0,
                       tracking={"schema": "tracking/v1", "x": 1.5}, x=1.5, y=2.0, floor="f0", space_id="r-oak",
                       space_since=T0, recent_batches=("b1", "b2"))
    return replace(base, **changes)


async def test_device_create_read_and_guarded_replace(store):
    created = await store.save_device(device())
    assert created.etag
    read = await store.get_device("hq", "install-1")
    assert replace(read, etag=None) == device() and read.etag == created.etag
    with pytest.raises(PreconditionFailed):
        await store.save_device(device())  # creating twice
    moved = await store.save_device(replace(read, space_id="k-0", last_seen=T0 + timedelta(seconds=30)))
    with pytest.raises(PreconditionFailed):
        await store.save_device(replace(read, space_id="o-1"))  # stale etag
    assert (await store.get_device("hq", "install-1")).space_id == "k-0"
    assert moved.etag != read.etag
    await store.save_device(device(device_id="install-2", building_id="annex"))
    assert [d.device_id for d in await store.list_devices("hq")] == ["install-1"]
    assert await store.get_device("annex", "install-1") is None


async def test_concurrent_space_writers_with_one_etag_only_one_wins(store):
    space = await store.save_space(SpaceState("hq", "r-oak", occupants={"a": T0.isoformat()}, since=T0,
                                              last_change=T0))
    attempts = [replace(space, occupants={**space.occupants, f"d{i}": T0.isoformat()}) for i in range(6)]
    results = await asyncio.gather(*(store.save_space(a) for a in attempts), return_exceptions=True)
    assert sum(isinstance(r, SpaceState) for r in results) == 1
    assert all(isinstance(r, PreconditionFailed) for r in results if not isinstance(r, SpaceState))
    stored = await store.get_space("hq", "r-oak")
    assert stored.headcount == 2 and stored.status == "occupied"


async def test_spaces_listed_per_building(store):
    await store.save_space(SpaceState("hq", "b"))
    await store.save_space(SpaceState("hq", "a", occupants={"x": T0.isoformat()}, since=T0))
    await store.save_space(SpaceState("annex", "c"))
    listed = await store.list_spaces("hq")
    assert [(s.space_id, s.headcount, s.status) for s in listed] == [("a", 1, "occupied"), ("b", 0, "free")]


async def test_visits_upsert_by_id_and_list_by_end_time(store):
    visit = Visit("t", "hq", "r-oak", "install-1", T0, T0 + timedelta(minutes=30))
    await store.save_visit(visit)
    await store.save_visit(visit)  # the same visit again: still one
    await store.save_visit(Visit("t", "hq", "k-0", "install-1", T0, T0 + timedelta(hours=2)))
    await store.save_visit(Visit("t", "annex", "k-0", "install-1", T0, T0 + timedelta(minutes=10)))
    found = await store.list_visits("hq", T0, T0 + timedelta(hours=1))
    assert found == [visit]


async def test_silent_devices_are_those_in_a_space_or_mid_leave(store):
    await store.save_device(device(device_id="old-in-room", last_seen=T0))
    await store.save_device(device(device_id="old-mid-leave", last_seen=T0, space_id=None, leaving_space_id="r-oak",
                                   leaving_since=T0))
    await store.save_device(device(device_id="old-nowhere", last_seen=T0, space_id=None, space_since=None))
    await store.save_device(device(device_id="fresh", last_seen=T0 + timedelta(minutes=10)))
    await store.save_device(device(device_id="other-building", building_id="annex", last_seen=T0))
    silent = await store.list_silent_devices(T0 + timedelta(minutes=5))
    assert sorted((d.building_id, d.device_id) for d in silent) == [
        ("annex", "other-building"), ("hq", "old-in-room"), ("hq", "old-mid-leave")]


async def test_beacon_health_upserts(store):
    health = BeaconHealth("t", "hq", "beacon-1", T0, battery_mv=2900, telemetry_at=T0)
    await store.save_beacon_health(health)
    await store.save_beacon_health(replace(health, last_heard=T0 + timedelta(minutes=1)))
    assert await store.list_beacon_health("hq") == [replace(health, last_heard=T0 + timedelta(minutes=1))]


async def test_devices_of_an_opted_in_user_across_buildings(store):
    await store.save_device(device(device_id="phone-1", user_id="ann"))
    await store.save_device(device(device_id="phone-2", building_id="annex", user_id="ann"))
    await store.save_device(device(device_id="phone-3", user_id="bob"))
    await store.save_device(device(device_id="phone-4", tenant_id="other", user_id="ann"))
    found = await store.find_devices_of_user("t", "ann")
    assert sorted((d.building_id, d.device_id) for d in found) == [("annex", "phone-2"), ("hq", "phone-1")]
