"""The live-state store contract, run against the in-memory fake and Cosmos on the emulator.

Two tenants share every id here on purpose (building `hq`, space `r-oak`, device `install-1`, user `ann`): what
one tenant writes must never be readable, listable or overwritable through the other.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from devkit.benchmarks.queries import big_building
from shared.adapters.cosmos_live_state import CosmosLiveStateStore
from shared.adapters.memory import InMemoryLiveStateStore, InMemorySiteModelStore
from shared.domain.errors import NotFound
from shared.domain.events import BeaconAlerts, BeaconFacts, SpaceFacts, silence_event, space_events
from shared.domain.floor_summary import FloorSummary, SpaceSnapshot
from shared.domain.ports import FLOOR_BATCH_OPERATIONS, PreconditionFailed
from shared.domain.presence import BeaconHealth, DeviceState, OccupancyChange, SpaceState, Visit, apply_occupancy
from shared.domain.site import SiteModel, parse_site_model
from shared.domain.tenancy import BuildingRef
from shared.services.pipeline import OccupancyWriter
from shared.services.queries import QueryService
from shared.services.sites import SiteDirectory
from shared.services.transitions import SiteFacts
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


# --- floor summaries: free rooms and occupancy from one small document per floor ---------------------------------

def _summary_state(building: BuildingRef, space_id: str, device_id: str, at: datetime) -> SpaceState:
    return space(building, space_id, occupants={device_id: at.isoformat()}, since=at, last_change=at)


async def test_a_floor_summary_and_its_spaces_are_written_together_or_not_at_all(store):
    ids = ["r-oak", "k-0"]
    oak = _summary_state(A_HQ, "r-oak", "install-1", T0)
    oak, events = occupied(A_HQ, space(A_HQ, "r-oak"), "install-1", T0)
    summary = FloorSummary.build(A_HQ, "f0", ids, {"r-oak": oak})
    saved = await store.save_floor(summary, [(oak, events)])
    assert saved.etag and saved.sinces_saved and replace(saved, etag=None, sinces_saved=False) == summary
    assert (await store.get_floor_summary(A_HQ, "f0")).snapshots(ids) == {"r-oak": SpaceSnapshot(1, T0)}
    # the counts alone unless the sinces are asked for
    [counts] = await store.list_floor_summaries(A_HQ)
    assert not counts.complete() and counts.counts == (1, None) and counts.etag == saved.etag
    [whole] = await store.list_floor_summaries(A_HQ, sinces=True)
    assert whole == saved
    assert [e.id for e in await store.pending()] == [events[0].id]
    # neither the summary nor the outbox is a space; the summary is not another tenant's
    assert [s.space_id for s in await store.list_spaces(A_HQ)] == ["r-oak"]
    assert await store.list_floor_summaries(B_HQ) == [] and await store.get_floor_summary(B_HQ, "f0") is None
    stored_oak = await store.get_space(A_HQ, "r-oak")
    kitchen = _summary_state(A_HQ, "k-0", "install-2", T0 + timedelta(seconds=5))
    # over a stale summary: nothing of the batch is written, not the space, not the summary
    with pytest.raises(PreconditionFailed):
        await store.save_floor(summary.updated(ids, {"k-0": kitchen}), [(kitchen, [])])
    assert await store.get_space(A_HQ, "k-0") is None
    # over a stale space: the summary stays as it was
    with pytest.raises(PreconditionFailed):
        await store.save_floor(saved.updated(ids, {"k-0": kitchen}), [(kitchen, []), (replace(stored_oak, etag=None), [])])
    assert await store.get_space(A_HQ, "k-0") is None
    assert (await store.get_floor_summary(A_HQ, "f0")).etag == saved.etag
    again = await store.save_floor(saved.updated(ids, {"k-0": kitchen}), [(kitchen, [])])
    assert [s.floor_id for s in await store.list_floor_summaries(A_HQ)] == ["f0"]
    assert (await store.list_floor_summaries(A_HQ))[0].etag == again.etag
    assert again.snapshots(ids) == {"r-oak": SpaceSnapshot(1, T0), "k-0": SpaceSnapshot(1, T0 + timedelta(seconds=5))}
    # the same ids in the other tenant's building: another document
    await store.save_floor(FloorSummary.build(B_HQ, "f0", ids, {}))
    assert (await store.get_floor_summary(B_HQ, "f0")).snapshots(ids) == {}
    assert (await store.get_floor_summary(A_HQ, "f0")).etag == again.etag


async def test_the_sinces_are_written_only_when_one_of_them_changed(store):
    ids = ["r-oak", "k-0"]
    oak, events = occupied(A_HQ, space(A_HQ, "r-oak"), "install-1", T0)
    saved = await store.save_floor(FloorSummary.build(A_HQ, "f0", ids, {"r-oak": oak}), [(oak, events)])
    oak = await store.get_space(A_HQ, "r-oak")
    second = replace(oak, occupants={**oak.occupants, "install-2": T0.isoformat()})  # two in, since unchanged
    writes = store.meter.writes["spaces"]
    saved = await store.save_floor(saved.updated(ids, {"r-oak": second}), [(second, [])])
    assert store.meter.writes["spaces"] - writes == 2  # the counts and the space
    assert (await store.get_floor_summary(A_HQ, "f0")).snapshots(ids) == {"r-oak": SpaceSnapshot(2, T0)}
    second = await store.get_space(A_HQ, "r-oak")
    left = replace(second, occupants={}, since=T0 + timedelta(minutes=3))
    writes = store.meter.writes["spaces"]
    await store.save_floor(saved.updated(ids, {"r-oak": left}), [(left, [])])
    assert store.meter.writes["spaces"] - writes == 3  # and the sinces
    assert (await store.get_floor_summary(A_HQ, "f0")).snapshots(ids) == {
        "r-oak": SpaceSnapshot(0, T0 + timedelta(minutes=3))}


async def test_snapshots_are_read_by_id_in_their_own_building_only(store):
    ids = ["r-oak", "k-0"]
    oak, events = occupied(A_HQ, space(A_HQ, "r-oak"), "install-1", T0)
    await store.save_floor(FloorSummary.build(A_HQ, "f0", ids, {"r-oak": oak}), [(oak, events)])
    await store.save_space(space(B_HQ, "k-0"))
    found = await store.get_snapshots(A_HQ, ["r-oak", "k-0", "r-oak", "floor:f0", "floor-sinces:f0",
                                             f"outbox:{events[0].id}", "nowhere"])
    assert found == {"r-oak": SpaceSnapshot(1, T0)}
    assert await store.get_snapshots(B_HQ, ids) == {"k-0": SpaceSnapshot(0, None)}
    assert await store.get_snapshots(A_HQ, []) == {}
    # only the fields asked for come back: a small read whatever the room holds
    crowded = replace(await store.get_space(A_HQ, "r-oak"), etag=None, space_id="r-elm",
                      occupants={f"install-{i:04d}": T0.isoformat() for i in range(200)})
    await store.save_space(crowded)
    before = store.meter.ru["spaces"]
    assert await store.get_snapshots(A_HQ, ["r-elm"]) == {"r-elm": SpaceSnapshot(200, T0)}
    assert store.meter.ru["spaces"] - before == 1  # a 200-occupant document is over 6 KB


class SpacesOnly:
    """The live state without floor summaries: queries answer from the space documents, as before summaries."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def list_floor_summaries(self, building, *, sinces=False):
        return []

    async def save_floor(self, summary, spaces=()):
        raise PreconditionFailed("no summaries here")


def _tower(building_id: str) -> SiteModel:
    data = big_building(floors=3, units=1, seed=5)
    data["buildingId"] = building_id
    return parse_site_model(data)


async def _towers(*buildings: BuildingRef) -> tuple[InMemorySiteModelStore, SiteModel, SiteDirectory]:
    """The same 3-floor tower as each of these buildings: the site store, the site, the directory over it."""
    sites = InMemorySiteModelStore()
    site = _tower("hq")
    for building in buildings:
        await sites.put(building, site)
    return sites, site, SiteDirectory(sites)


async def _answers(queries: QueryService, building: BuildingRef, origins: list[str]):
    """Occupancy per floor and free rooms (from a few places, with and without filters), as the API renders them."""
    _at, floors = await queries.occupancy(building)
    rooms = []
    for near in origins:
        for filters in ({}, {"min_capacity": 6, "limit": 50}, {"kinds": ["office", "phoneroom"], "limit": 200}):
            found = await queries.free_rooms(building, near, **filters)
            rooms.append([(n.view.space.id, n.view.status, n.view.headcount, n.view.since, n.distance_m)
                          for n in found])
    return floors, rooms


async def test_summaries_written_by_racing_writers_answer_as_the_space_documents_do(store):
    _sites, site, directory = await _towers(A_HQ, B_HQ)
    writers = [OccupancyWriter(store, facts=SiteFacts(directory)) for _ in range(2)]
    summaries, spaces_only = QueryService(directory, store), QueryService(directory, SpacesOnly(store))
    rng = random.Random(11)
    rooms = [s.id for s in site.spaces if s.kind.value != "walkway"]
    origins = [rooms[0], rooms[len(rooms) // 2], rooms[-1]]
    where: dict[tuple[BuildingRef, str], str] = {}  # device -> its space
    moment = T0
    for _round in range(12):
        changes: list[list[OccupancyChange]] = [[], []]
        for _ in range(rng.randint(1, 14)):
            building = A_HQ if rng.random() < 0.8 else B_HQ
            device_id = f"d{rng.randrange(40)}"
            moment += timedelta(microseconds=rng.randrange(1, 30_000_000))
            at = moment - timedelta(seconds=rng.choice([0, 0, 0, 40]))  # now and then a late one
            writer = rng.randrange(2)
            if (building, device_id) in where:
                changes[writer].append(OccupancyChange(building, where.pop((building, device_id)), device_id,
                                                       "leave", at))
            if rng.random() < 0.7:
                target = rng.choice(rooms[:30]) if rng.random() < 0.6 else rng.choice(rooms)
                where[(building, device_id)] = target
                changes[writer].append(OccupancyChange(building, target, device_id, "enter", at))
        await asyncio.gather(*(w.apply(c) for w, c in zip(writers, changes)))
        assert await _answers(summaries, A_HQ, origins) == await _answers(spaces_only, A_HQ, origins)
    # and space by space, the summaries say what the documents say
    for building in (A_HQ, B_HQ):
        documents_say = {s.space_id: SpaceSnapshot.of(s) for s in await store.list_spaces(building)}
        summaries_say = {}
        for summary in await store.list_floor_summaries(building, sinces=True):
            ids = [s.id for s in site.spaces if s.floor == summary.floor_id]
            summaries_say.update(summary.snapshots(ids))
        assert summaries_say == documents_say and documents_say
    occupied_now = {(b, s) for (b, _d), s in where.items()}
    assert {s for b, s in occupied_now if b == A_HQ} == {
        s.space_id for s in await store.list_spaces(A_HQ) if s.status == "occupied"}
    assert writers[0].summaries_rebuilt + writers[1].summaries_rebuilt >= 1


async def test_a_building_without_summaries_answers_from_its_spaces_and_gets_them(store):
    sites, site, directory = await _towers(A_HQ)
    rooms = [s for s in site.spaces if s.kind.value == "conferenceroom"]
    # live state from before summaries: space documents only
    for room in rooms[:5]:
        await store.save_space(_summary_state(A_HQ, room.id, "phone", T0))
    queries = QueryService(directory, store)
    spaces_only = QueryService(directory, SpacesOnly(store))
    expected = await _answers(spaces_only, A_HQ, [rooms[0].id])
    assert await store.list_floor_summaries(A_HQ) == []
    assert await _answers(queries, A_HQ, [rooms[0].id]) == expected  # from the spaces, and summarised
    assert sorted(s.floor_id for s in await store.list_floor_summaries(A_HQ)) == ["L0", "L1", "L2"]
    assert await _answers(queries, A_HQ, [rooms[0].id]) == expected  # now from the summaries
    assert (await queries.occupancy(A_HQ))[1][rooms[0].floor] == sum(r.floor == rooms[0].floor for r in rooms[:5])
    # the site model changes (a room added to a floor): that floor's summary no longer fits and is made again
    data = big_building(floors=3, units=1, seed=5)
    data["buildingId"] = "hq"
    data["spaces"].append({**next(s for s in data["spaces"] if s["id"] == rooms[0].id), "id": "new-room"})
    changed = parse_site_model(data)
    await sites.put(A_HQ, changed, if_match=await sites.version(A_HQ))
    directory.invalidate("tenant-a")
    writer = OccupancyWriter(store, facts=SiteFacts(directory))
    await writer.apply([OccupancyChange(A_HQ, "new-room", "phone-2", "enter", T0 + timedelta(minutes=1))])
    assert writer.summaries_rebuilt == 1
    assert (await queries.occupancy(A_HQ))[1] == (await spaces_only.occupancy(A_HQ))[1]
    assert (await queries.occupancy(A_HQ))[1][rooms[0].floor] == 6
    # another tenant asking for the building: not found, as before
    with pytest.raises(NotFound):
        await queries.free_rooms(B_HQ, rooms[0].id)


async def test_a_call_that_changes_more_of_a_floor_than_one_batch_holds_is_written_in_several(store):
    _sites, site, directory = await _towers(A_HQ)
    floor = [s.id for s in site.spaces if s.floor == "L1"]
    assert 1 + 2 * len(floor) > FLOOR_BATCH_OPERATIONS  # the summary, each space and its event
    writer = OccupancyWriter(store, facts=SiteFacts(directory))
    # each room entered makes a document and an event: more than 100 operations for the floor in this one call
    await writer.apply([OccupancyChange(A_HQ, space_id, f"d{i}", "enter", T0 + timedelta(microseconds=i))
                        for i, space_id in enumerate(floor)])
    [summary] = await store.list_floor_summaries(A_HQ, sinces=True)
    assert summary.snapshots(floor) == {s.space_id: SpaceSnapshot.of(s) for s in await store.list_spaces(A_HQ)}
    assert len(await store.pending()) == len(floor)  # every space's event, once
    assert (await QueryService(directory, store).occupancy(A_HQ))[1]["L1"] == len(floor)


async def test_a_summary_a_writer_wrote_first_is_kept_and_the_query_still_answers(store):
    _sites, site, directory = await _towers(A_HQ)
    room = next(s for s in site.spaces if s.kind.value == "conferenceroom")

    class WriterFirst(SpacesOnly):
        """Between the query's read of the summaries and its write, the processor writes the room's floor."""

        async def list_spaces(self, building):
            listed = await self._store.list_spaces(building)
            writer = OccupancyWriter(self._store, facts=SiteFacts(directory))
            await writer.apply([OccupancyChange(A_HQ, room.id, "phone", "enter", T0)])
            return listed

        async def save_floor(self, summary, spaces=()):
            return await self._store.save_floor(summary, spaces)

    racing = QueryService(directory, WriterFirst(store))
    assert (await racing.occupancy(A_HQ))[1][room.floor] == 0  # what the space documents said when it asked
    # the writer's summary of that floor stands; the query's own did not overwrite it
    assert (await QueryService(directory, store).occupancy(A_HQ))[1][room.floor] == 1
    [written] = [s for s in await store.list_floor_summaries(A_HQ, sinces=True) if s.floor_id == room.floor]
    ids = [s.id for s in site.spaces if s.floor == room.floor]
    assert written.snapshots(ids) == {room.id: SpaceSnapshot(1, T0)}


async def test_free_rooms_pass_over_a_room_taken_after_the_counts_were_read(store):
    _sites, site, directory = await _towers(A_HQ)
    rooms = [s for s in site.spaces if s.kind.value == "conferenceroom"]
    writer = OccupancyWriter(store, facts=SiteFacts(directory))
    await writer.apply([OccupancyChange(A_HQ, rooms[-1].id, "phone-0", "enter", T0)])  # every floor summarised
    queries = QueryService(directory, store)
    await queries.occupancy(A_HQ)
    before = [n.view.space.id for n in await queries.free_rooms(A_HQ, rooms[0].id, limit=3)]
    taken = before[0]

    class TakenMeanwhile(SpacesOnly):
        """Someone walks into the nearest free room between the query's read of the counts and of the rooms."""

        async def list_floor_summaries(self, building, *, sinces=False):
            return await self._store.list_floor_summaries(building, sinces=sinces)

        async def get_snapshots(self, building, space_ids):
            if taken in space_ids:
                await writer.apply([OccupancyChange(A_HQ, taken, "phone-1", "enter", T0 + timedelta(seconds=1))])
            return await self._store.get_snapshots(building, space_ids)

    racing = QueryService(directory, TakenMeanwhile(store))
    found = await racing.free_rooms(A_HQ, rooms[0].id, limit=3)
    assert [n.view.space.id for n in found] == [*before[1:], found[-1].view.space.id]
    assert taken not in [n.view.space.id for n in found] and len(found) == 3
    assert all(n.view.status == "free" for n in found)
    # and from now on the counts say so too
    assert taken not in [n.view.space.id for n in await queries.free_rooms(A_HQ, rooms[0].id, limit=3)]
