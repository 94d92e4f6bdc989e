"""Issue #4's correctness guarantees, proven against the Cosmos emulator with real concurrent writers."""
from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from devkit.emulators.launcher import cosmos_aio_client
from shared.adapters.cosmos import CosmosSiteModelStore, ensure_cosmos_schema
from shared.adapters.cosmos_live_state import CosmosLiveStateStore
from shared.domain.events import EventType
from shared.services.pipeline import PipelineService, PresenceSweepService
from shared.services.sites import SiteDirectory
from tests.conftest import unique_name
from tests.support.pipeline import HQ, add_small_site, walk

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
async def database_name(cosmos):
    name = unique_name("pipeline")
    async with cosmos_aio_client(cosmos.port) as client:
        database = await ensure_cosmos_schema(client, name)
        await add_small_site(CosmosSiteModelStore(database))
        yield name
        await client.delete_database(name)


async def processor(cosmos, database_name: str):
    """One processing instance: its own client, store and caches, like one Functions worker."""
    client = cosmos_aio_client(cosmos.port)
    database = client.get_database_client(database_name)
    store = CosmosLiveStateStore(database)
    return client, store, PipelineService(SiteDirectory(CosmosSiteModelStore(database)), store)


async def headcounts(store) -> dict[str, int]:
    return {s.space_id: s.headcount for s in await store.list_spaces(HQ)}


async def space_events(store) -> dict[str, list]:
    """The outbox per space, in sequence order; fails unless each space's sequence numbers are 1..n, once each."""
    per_space: dict[str, list] = {}
    for event in await store.pending():
        per_space.setdefault(event.subject.removeprefix("spaces/"), []).append(event)
    for space_id, events in per_space.items():
        events.sort(key=lambda e: e.sequence_number)
        assert [e.sequence_number for e in events] == list(range(1, len(events) + 1)), space_id
        assert len({e.id for e in events}) == len(events)
    return per_space


def status_events(events: list) -> list[str]:
    return [e.type.value.rsplit(".", 1)[1] for e in events if e.type is not EventType.space_headcount]


async def test_redelivery_and_reordering_give_the_same_state(cosmos, database_name):
    client, store, pipeline = await processor(cosmos, database_name)
    try:
        events = walk(T0, [("r-oak", 3), ("k-0", 3)], device="install-a")
        await pipeline.process(events)
        first = {space: [e.id for e in events] for space, events in (await space_events(store)).items()}
        await pipeline.process(events)  # redelivered as a whole
        assert {space: [e.id for e in events] for space, events in (await space_events(store)).items()} == first
        late = walk(T0, [("k-0", 2), ("r-oak", 3), ("k-0", 3)], device="install-b")
        await pipeline.process(late[:4] + late[5:] + [late[4]])  # one batch arrives late
        assert await headcounts(store) == {"r-oak": 0, "k-0": 2}
        visits = await store.list_visits(HQ, T0, T0 + timedelta(hours=1))
        assert sorted((v.device_id, v.space_id) for v in visits) == [
            ("install-a", "r-oak"), ("install-b", "k-0"), ("install-b", "r-oak")]
        assert pipeline.stats.duplicates == len(events)
        # one event per transition: r-oak went occupied (a), free (a left), occupied (b), free (b left); k-0 stayed
        # occupied from a's arrival on, its other changes are headcounts
        outbox = await space_events(store)
        assert status_events(outbox["r-oak"]) == ["occupied", "vacated", "occupied", "vacated"]
        assert status_events(outbox["k-0"]) == ["occupied"]
        assert outbox["k-0"][-1].data.headcount in (1, 2)
        assert not any("install-" in json.dumps(e.to_json()) for events in outbox.values() for e in events)
    finally:
        await client.close()


async def test_two_processors_racing_on_the_same_rooms_count_exactly(cosmos, database_name):
    first, second = await processor(cosmos, database_name), await processor(cosmos, database_name)
    try:
        # different phones (as on different partitions), all moving between the same two rooms at the same time
        plans = {f"install-{n:03d}": [("r-oak", 2), ("k-0" if n % 4 else "r-oak", 3)] for n in range(24)}
        work = [(first if n % 2 else second, walk(T0 + timedelta(milliseconds=n), plan, device=device))
                for n, (device, plan) in enumerate(plans.items())]
        # Everyone is in the meeting room before anyone walks on (all arrivals race, then all moves race): in
        # whichever order the tasks run, the room is never empty, so each room becomes occupied exactly once.
        # Were one phone's whole walk processed before another's arrival, the room would rightly empty between.
        await asyncio.gather(*(proc[2].process(events[:2]) for proc, events in work))
        await asyncio.gather(*(proc[2].process(events[2:]) for proc, events in work))
        store = first[1]
        assert await headcounts(store) == {"r-oak": 6, "k-0": 18}
        retries = first[2]._occupancy.retries + second[2]._occupancy.retries
        assert retries > 0, "the writers never collided: the race was not exercised"
        # the losers of each race wrote no event: each room became occupied once, and never free
        outbox = await space_events(store)
        assert status_events(outbox["r-oak"]) == ["occupied"] and status_events(outbox["k-0"]) == ["occupied"]
        written = first[2]._occupancy.events + second[2]._occupancy.events
        assert written == sum(len(events) for events in outbox.values())
        # every process redelivered to the other instance: not one event more
        await asyncio.gather(*((second if proc is first else first)[2].process(events) for proc, events in work))
        assert {s: len(e) for s, e in (await space_events(store)).items()} == {s: len(e) for s, e in outbox.items()}
    finally:
        await first[0].close()
        await second[0].close()


async def test_a_crash_between_the_space_and_device_writes_is_repaired_by_redelivery(cosmos, database_name):
    client, store, pipeline = await processor(cosmos, database_name)
    try:
        events = walk(T0, [("r-oak", 3), ("k-0", 3)], device="install-c")
        original = store.save_device

        async def dies_on_kitchen(device):
            if device.space_id == "k-0":
                raise RuntimeError("the instance died here")
            return await original(device)

        store.save_device = dies_on_kitchen
        with pytest.raises(RuntimeError):
            await pipeline.process(events)
        assert await headcounts(store) == {"r-oak": 0, "k-0": 1}  # spaces written, device not
        store.save_device = original
        _, _, restarted = await processor(cosmos, database_name)  # the redelivery lands on a fresh instance
        await restarted.process(events)
        await restarted.process(events)
        assert await headcounts(store) == {"r-oak": 0, "k-0": 1}
        assert (await store.get_device(HQ, "install-c")).space_id == "k-0"
        assert len(await store.list_visits(HQ, T0, T0 + timedelta(hours=1))) == 1
    finally:
        await client.close()


async def test_a_silent_phone_leaves_its_room_after_the_timeout(cosmos, database_name):
    client, store, pipeline = await processor(cosmos, database_name)
    try:
        await pipeline.process(walk(T0, [("r-oak", 3)], device="install-d"))
        await pipeline.process(walk(T0, [("r-oak", 3)], device="install-e"))
        device = await store.get_device(HQ, "install-d")
        sweep = PresenceSweepService(store, timedelta(seconds=300))
        assert await sweep.sweep(device.last_seen + timedelta(seconds=299)) == 0
        assert await sweep.sweep(device.last_seen + timedelta(seconds=301)) == 2
        assert await headcounts(store) == {"r-oak": 0}
        assert status_events((await space_events(store))["r-oak"]) == ["occupied", "vacated"]
        assert await sweep.sweep(device.last_seen + timedelta(seconds=302)) == 0
        assert status_events((await space_events(store))["r-oak"]) == ["occupied", "vacated"]
        assert {v.device_id for v in await store.list_visits(HQ, T0, T0 + timedelta(hours=1))} == {
            "install-d", "install-e"}
        # a sweep racing a phone that is heard again leaves it alone
        await pipeline.process(walk(device.last_seen + timedelta(seconds=400), [("k-0", 3)], device="install-d"))
        stale = await store.get_device(HQ, "install-d")
        await store.save_device(replace(stale, tracking={**stale.tracking}))  # the phone's newer write lands first
        assert await sweep.sweep(device.last_seen + timedelta(seconds=401)) == 0
        assert await headcounts(store) == {"r-oak": 0, "k-0": 1}
    finally:
        await client.close()
