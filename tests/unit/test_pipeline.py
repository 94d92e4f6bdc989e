"""The processing pipeline over the in-memory store: rooms, headcounts and visits from real batches, correct under
redelivery, reordering, crashes between writes and silent phones."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.memory import InMemoryLiveStateStore, InMemorySiteModelStore
from shared.domain.presence import DeviceState, batch_key
from shared.services.pipeline import PipelinePolicy, PipelineService, PresenceSweepService
from shared.services.sites import SiteDirectory
from tests.support.pipeline import HQ, OAK_BEACON, add_small_site, room_event, walk

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
async def world():
    sites = InMemorySiteModelStore()
    await add_small_site(sites)
    store = InMemoryLiveStateStore()
    return store, PipelineService(SiteDirectory(sites), store)


async def headcounts(store) -> dict[str, int]:
    return {s.space_id: s.headcount for s in await store.list_spaces(HQ)}


async def test_a_phone_is_placed_in_its_room_and_counted(world):
    store, pipeline = world
    await pipeline.process(walk(T0, [("r-oak", 3)]))
    device = await store.get_device(HQ, "install-0001")
    assert device.space_id == "r-oak" and device.floor == "f0"
    assert 0 <= device.x <= 10 and 0 <= device.y <= 8
    space = await store.get_space(HQ, "r-oak")
    assert space.headcount == 1 and space.status == "occupied" and space.since == device.space_since


async def test_moving_rooms_closes_a_visit_and_moves_the_count(world):
    store, pipeline = world
    for event in walk(T0, [("r-oak", 4), ("k-0", 4)]):
        await pipeline.process([event])
    assert await headcounts(store) == {"r-oak": 0, "k-0": 1}
    [visit] = await store.list_visits(HQ, T0, T0 + timedelta(hours=1))
    assert visit.space_id == "r-oak" and visit.start < visit.end <= T0 + timedelta(seconds=120)
    oak = await store.get_space(HQ, "r-oak")
    assert oak.status == "free" and oak.since == visit.end


async def test_the_same_events_delivered_twice_give_the_same_state(world):
    store, pipeline = world
    events = walk(T0, [("r-oak", 3), ("k-0", 3)])
    await pipeline.process(events)
    first = (await store.get_device(HQ, "install-0001"), await headcounts(store),
             await store.list_visits(HQ, T0, T0 + timedelta(hours=1)))
    await pipeline.process(events)  # at-least-once: the whole batch again
    for event in events[2:4]:
        await pipeline.process([event])  # and some of it once more
    second = (await store.get_device(HQ, "install-0001"), await headcounts(store),
              await store.list_visits(HQ, T0, T0 + timedelta(hours=1)))
    assert replace(first[0], etag=None) == replace(second[0], etag=None)
    assert first[1:] == second[1:]
    assert pipeline.stats.duplicates == len(events) + 2


async def test_a_late_batch_does_not_pull_the_phone_back(world):
    store, pipeline = world
    in_order = walk(T0, [("r-oak", 3), ("k-0", 4)])
    late = in_order[2]  # the last batch heard in r-oak arrives after the kitchen ones
    for event in in_order[:2] + in_order[3:] + [late]:
        await pipeline.process([event])
    assert (await store.get_device(HQ, "install-0001")).space_id == "k-0"
    assert await headcounts(store) == {"r-oak": 0, "k-0": 1}
    assert pipeline.stats.late_sightings > 0


async def test_a_crash_between_writes_is_repaired_by_redelivery():
    sites = InMemorySiteModelStore()
    await add_small_site(sites)
    store = InMemoryLiveStateStore()
    events = walk(T0, [("r-oak", 3), ("k-0", 3)])

    class CrashOnDeviceWrite(InMemoryLiveStateStore):
        crash = True

        async def save_device(self, device):
            if self.crash and device.space_id == "k-0":
                raise RuntimeError("instance died after writing the spaces")
            return await super().save_device(device)

    crashing = CrashOnDeviceWrite()
    crashing._docs = store._docs  # the same documents, as after a restart
    with pytest.raises(RuntimeError):
        await PipelineService(SiteDirectory(sites), crashing).process(events)
    # the spaces were written, the device was not: redelivery on a fresh instance repairs it
    await PipelineService(SiteDirectory(sites), store).process(events)
    assert await headcounts(store) == {"r-oak": 0, "k-0": 1}
    assert (await store.get_device(HQ, "install-0001")).space_id == "k-0"
    assert len(await store.list_visits(HQ, T0, T0 + timedelta(hours=1))) == 1


async def test_phones_in_the_same_rooms_are_counted_exactly(world):
    store, pipeline = world
    events = []
    for n in range(12):
        events += walk(T0 + timedelta(seconds=n), [("r-oak", 2), ("k-0" if n % 3 else "r-oak", 3)],
                       device=f"install-{n:04d}")
    await pipeline.process(events)
    assert await headcounts(store) == {"r-oak": 4, "k-0": 8}


async def test_unknown_beacons_and_other_tenants_leave_no_state(world):
    store, pipeline = world
    await pipeline.process([room_event(T0, "r-oak", tenant_id="tenant-b")])
    assert pipeline.stats.unknown_building == 1
    assert await store.list_spaces(HQ) == []


async def test_a_silent_phone_leaves_after_the_timeout(world):
    store, pipeline = world
    await pipeline.process(walk(T0, [("r-oak", 3)]))
    last_seen = (await store.get_device(HQ, "install-0001")).last_seen
    sweep = PresenceSweepService(store, timedelta(minutes=5))
    assert await sweep.sweep(last_seen + timedelta(minutes=4)) == 0
    assert await headcounts(store) == {"r-oak": 1}
    assert await sweep.sweep(last_seen + timedelta(minutes=6)) == 1
    assert await headcounts(store) == {"r-oak": 0}
    device = await store.get_device(HQ, "install-0001")
    assert device.space_id is None and device.leaving_space_id is None
    [visit] = await store.list_visits(HQ, T0, T0 + timedelta(hours=1))
    assert visit.end == last_seen
    assert await sweep.sweep(last_seen + timedelta(minutes=7)) == 0  # nothing left to do


async def test_a_sweep_that_crashes_half_way_is_finished_by_the_next(world):
    store, pipeline = world
    await pipeline.process(walk(T0, [("r-oak", 3)]))
    device = await store.get_device(HQ, "install-0001")
    # step 1 of a leave happened, then the instance died
    await store.save_device(replace(device, space_id=None, space_since=None, leaving_space_id="r-oak",
                                    leaving_since=device.space_since))
    assert await headcounts(store) == {"r-oak": 1}
    await PresenceSweepService(store, timedelta(minutes=5)).sweep(device.last_seen + timedelta(minutes=10))
    assert await headcounts(store) == {"r-oak": 0}
    assert len(await store.list_visits(HQ, T0, T0 + timedelta(hours=1))) == 1


async def test_a_phone_heard_again_after_a_half_done_sweep_is_repaired_by_the_pipeline(world):
    store, pipeline = world
    await pipeline.process(walk(T0, [("r-oak", 3)]))
    device = await store.get_device(HQ, "install-0001")
    await store.save_device(replace(device, space_id=None, space_since=None, leaving_space_id="r-oak",
                                    leaving_since=device.space_since))
    later = device.last_seen + timedelta(minutes=10)
    await pipeline.process(walk(later, [("k-0", 3)]))  # back, in the kitchen now
    assert await headcounts(store) == {"r-oak": 0, "k-0": 1}
    state: DeviceState = await store.get_device(HQ, "install-0001")
    assert state.space_id == "k-0" and state.leaving_space_id is None
    assert pipeline.stats.conflicts_retried >= 1  # its cached copy was stale and was reloaded


async def test_beacon_drift_is_learnt_from_confident_positions_and_kept_with_beacon_health():
    """Phones still in rooms of a simulated office: the beacons they hear get a drift estimate in beacon health,
    and a new instance picks it up from there instead of starting over."""
    import numpy as np

    from devkit.simulator import (
        BuildingSpec,
        Phone,
        RadioSimulator,
        RadioSpec,
        Trajectory,
        batches,
        generate_building,
        room_points,
    )
    from shared.domain.ingest_event import decode_ingest_event
    from shared.domain.ports import InboundEvent
    from shared.domain.tenancy import BuildingRef
    from tests.support.batches import ingest_event_body
    from tests.support.sites import store_site

    site = generate_building(BuildingSpec(floors=1), seed=3, building_id="sim")
    sites = InMemorySiteModelStore()
    await store_site(sites, "tenant-a", site)
    ref = BuildingRef("tenant-a", "sim")
    radio = RadioSimulator(site, RadioSpec(batch_every_s=10.0), seed=2)
    rng = np.random.default_rng(1)
    offices = [s.id for s in site.spaces if s.kind.value == "office"]
    rounds: list[list] = []
    for p in range(6):
        room = offices[p % len(offices)]
        xy = room_points(site, room, rng, 1)[0]
        for i, (now, readings, _truth) in enumerate(batches(radio, Trajectory().dwell("L0", xy, 300, room),
                                                              Phone(f"p{p}"), seed=p)):
            at = T0 + timedelta(seconds=now - 1_700_000_000.0)
            sightings = [{"beacon": r.beacon, "rssi": r.rssi,
                          "ts": (T0 + timedelta(seconds=r.ts - 1_700_000_000.0)).isoformat()} for r in readings]
            body = ingest_event_body(at, device=f"install-{p:04d}", sightings=sightings)
            while len(rounds) <= i:
                rounds.append([])
            rounds[i].append((InboundEvent(body, f"install-{p:04d}", i, at), decode_ingest_event(body)))
    store = InMemoryLiveStateStore()
    every_call = PipelinePolicy(beacon_health_interval_s=0.0)  # beacon health is otherwise written every 5 min
    first = PipelineService(SiteDirectory(sites), store, every_call)
    for events in rounds[:-1]:
        await first.process(events)
    learnt = {h.beacon_id: h.drift for h in await store.list_beacon_health(ref) if h.drift is not None}
    assert len(learnt) >= 3 and all(d.observations > 0 and not d.flagged for d in learnt.values())
    # what beacon health holds is the estimate as last folded, not one from an earlier call
    estimates = first._calibrations[ref].estimates
    assert {b: d.observations for b, d in learnt.items()} == {b: estimates[b].observations for b in learnt}
    assert all(d.level_db == pytest.approx(estimates[b].level, abs=0.005) for b, d in learnt.items())
    second = PipelineService(SiteDirectory(sites), store, every_call)  # a new instance (scale-out, restart)
    await second.process(rounds[-1])
    again = {h.beacon_id: h.drift for h in await store.list_beacon_health(ref) if h.drift is not None}
    grown = [b for b in learnt if again[b].observations > learnt[b].observations]
    assert grown and all(again[b].observations >= learnt[b].observations for b in learnt)
    device = await store.get_device(ref, "install-0000")
    assert device.tracking["offset"] is not None  # the device's own offset is kept with its state


async def test_one_call_for_many_devices_gives_what_a_call_per_device_gives():
    """The pipeline tracks a call's devices together (round by round, each device's batches in order): the
    same rooms, positions and counts as one call per device."""
    sites = InMemorySiteModelStore()
    await add_small_site(sites)
    plans = [[("r-oak", 3), ("k-0", 3)], [("k-0", 4)], [("r-oak", 2), ("k-0", 2), ("r-oak", 2)]]
    events = [e for n, plan in enumerate(plans) for e in walk(T0, plan, device=f"install-{n:04d}")]
    together, apart = InMemoryLiveStateStore(), InMemoryLiveStateStore()
    await PipelineService(SiteDirectory(sites), together).process(events)
    alone = PipelineService(SiteDirectory(sites), apart)
    for n in range(len(plans)):
        await alone.process([e for e in events if e[1].parsed.batch.device_id == f"install-{n:04d}"])
    for n in range(len(plans)):
        a = await together.get_device(HQ, f"install-{n:04d}")
        b = await apart.get_device(HQ, f"install-{n:04d}")
        assert (a.space_id, a.floor, a.x, a.y, a.space_since) == (b.space_id, b.floor, b.x, b.y, b.space_since)
    assert await headcounts(together) == await headcounts(apart) == {"r-oak": 1, "k-0": 2}


async def test_the_periodic_re_read_does_not_rewind_a_device_held_in_memory():
    """A device heard with nothing that anyone reads changing is kept in memory (its write skipped); when its
    partition comes back to the instance after a while, it is read again. That read must not replace the newer
    state in memory with the older stored one: it would move last_seen back and drop the ids of the batches
    folded since from the dedupe window, so a redelivered batch would be counted again."""
    clocked = await _clocked()
    store, pipeline = clocked.store, clocked.instance(PipelinePolicy(persist_interval_s=600.0))
    events = walk(T0, [("r-oak", 8)], every_s=10)
    await pipeline.process(events[:4])  # placed in the room: written
    stored = await store.get_device(HQ, "install-0001")
    for event in events[4:7]:  # heard in the same room: nothing anyone reads changes, the writes are skipped
        await pipeline.process([event])
    assert pipeline.stats.device_writes_skipped >= 3
    assert (await store.get_device(HQ, "install-0001")).last_seen == stored.last_seen
    clocked.now += 601.0  # no call of the partition for longer than partition_idle_s: the copy is read again
    duplicates = pipeline.stats.duplicates
    await pipeline.process([events[5]])  # a redelivery of a batch folded in memory only
    assert pipeline.stats.duplicates == duplicates + 1, "the redelivered batch was counted again"
    # The phone walks on: the move is written, and what is written grew from everything folded in memory.
    last = events[7][1].parsed.batch.sent_at
    for event in [events[7], *walk(last + timedelta(seconds=10), [("k-0", 6)], every_s=10)]:
        await pipeline.process([event])
    device = await store.get_device(HQ, "install-0001")
    assert device.space_id == "k-0" and await headcounts(store) == {"r-oak": 0, "k-0": 1}
    assert {batch_key(str(e[1].parsed.batch.batch_id)) for e in events[4:8]} <= set(device.recent_batches)


# --- what a device costs: no periodic re-read, persisted against the presence timeout (issue #15) -----------------

def _on_partition(events, partition: str):
    return [(replace(event, partition_id=partition), decoded) for event, decoded in events]


@dataclass
class _Clocked:
    """Pipeline instances over the small site and one store, on a monotonic clock the test moves by hand."""

    sites: InMemorySiteModelStore
    store: InMemoryLiveStateStore = field(default_factory=InMemoryLiveStateStore)
    now: float = 0.0

    def instance(self, policy: PipelinePolicy = PipelinePolicy()) -> PipelineService:
        return PipelineService(SiteDirectory(self.sites), self.store, policy, monotonic=lambda: self.now)

    async def play(self, pipeline: PipelineService, events, every_s: float = 10.0) -> None:
        """The events one call each, `every_s` apart on the instance's clock."""
        for event in events:
            self.now += every_s
            await pipeline.process([event])


async def _clocked() -> _Clocked:
    sites = InMemorySiteModelStore()
    await add_small_site(sites)
    return _Clocked(sites)


async def test_a_device_whose_partition_stays_with_the_instance_is_read_once():
    clocked = await _clocked()
    store, pipeline = clocked.store, clocked.instance()
    await clocked.play(pipeline, walk(T0, [("r-oak", 60), ("k-0", 60)], every_s=10))  # 20 minutes, a call every 10 s
    assert store.meter.reads["devices"] == 1  # the first batch's: nothing was stored yet
    assert await headcounts(store) == {"r-oak": 0, "k-0": 1}
    # written when it entered, moved, and every persist interval (150 s) between: not every batch
    assert 8 <= store.meter.writes["devices"] <= 12


async def test_a_batch_redelivered_while_the_device_is_only_held_in_memory_is_a_duplicate():
    """The cache keeps the dedupe window packed (one string a device): the batches folded since the last write,
    whose ids are in no document yet, must still be recognised when they come again."""
    clocked = await _clocked()
    store, pipeline = clocked.store, clocked.instance()
    events = walk(T0, [("r-oak", 8)], every_s=10)
    await clocked.play(pipeline, events)
    assert pipeline.stats.device_writes_skipped >= 6  # the later batches were only held in memory
    state = (await store.get_device(HQ, "install-0001"), await headcounts(store), pipeline.stats.transitions)
    clocked.now += 10.0
    await pipeline.process(events[-4:])  # redelivered
    assert pipeline.stats.duplicates == 4
    assert (await store.get_device(HQ, "install-0001"), await headcounts(store),
            pipeline.stats.transitions) == state


@pytest.mark.parametrize(("timeout_s", "every_s"), [(60, 10), (300, 30), (900, 30)])
async def test_the_presence_sweep_never_takes_out_a_phone_still_heard(timeout_s, every_s):
    """The persist interval is derived from the presence timeout so that the stored lastSeen of a phone heard at
    its usual pace is never older than the timeout: the sweep, which sees only the stored one, leaves it be."""
    sites = InMemorySiteModelStore()
    await add_small_site(sites)
    store = InMemoryLiveStateStore()
    policy = PipelinePolicy.for_presence_timeout(timeout_s)
    assert policy.persist_interval_s < timeout_s
    pipeline = PipelineService(SiteDirectory(sites), store, policy)
    sweep = PresenceSweepService(store, timedelta(seconds=timeout_s))
    events = walk(T0, [("r-oak", 3 * timeout_s // every_s)], every_s=every_s)
    for event in events:
        await pipeline.process([event])
        for lag_s in (1, every_s + 5):  # swept as the batch is processed, and just before the next one is
            now = event[1].parsed.batch.sent_at + timedelta(seconds=lag_s)
            assert (await store.get_device(HQ, "install-0001")).last_seen >= now - timedelta(seconds=timeout_s)
            assert await sweep.sweep(now) == 0
    assert pipeline.stats.device_writes_skipped > len(events) // 2  # the writes are still spread out
    assert await headcounts(store) == {"r-oak": 1}
    assert await store.list_visits(HQ, T0, T0 + timedelta(days=1)) == []  # never split


async def test_a_phone_swept_out_and_heard_again_in_the_same_room_is_counted_again():
    """The instance's copy still says the room (the sweep wrote the device, not the instance); the next batch is
    due to be written, the write fails on the etag, and the device is redone from the stored one."""
    clocked = await _clocked()
    store, pipeline = clocked.store, clocked.instance()
    events = walk(T0, [("r-oak", 20)], every_s=10)
    await clocked.play(pipeline, events)
    stored = await store.get_device(HQ, "install-0001")
    heard = events[-1][1].parsed.batch.sent_at
    assert heard - timedelta(seconds=PipelinePolicy().persist_interval_s) <= stored.last_seen < heard - timedelta(
        seconds=20)  # the last batches were not written: nothing anyone reads changed
    assert await PresenceSweepService(store, timedelta(minutes=5)).sweep(stored.last_seen + timedelta(minutes=6)) == 1
    assert await headcounts(store) == {"r-oak": 0}
    back = stored.last_seen + timedelta(minutes=7)
    clocked.now += 10.0  # the partition kept coming to this instance (other phones): its copy was not dropped
    await pipeline.process(walk(back, [("r-oak", 1)]))
    assert await headcounts(store) == {"r-oak": 1}
    device = await store.get_device(HQ, "install-0001")
    assert device.space_id == "r-oak" and device.space_since > stored.last_seen and pipeline.stats.conflicts_retried == 1
    # the sweep's visit, once; it ends at the lastSeen stored, up to a persist interval before the phone was last
    # heard
    visits = await store.list_visits(HQ, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert [(v.space_id, v.end) for v in visits] == [("r-oak", stored.last_seen)]


@pytest.mark.parametrize("away_s", [60.0, 5.0])
async def test_a_partition_that_went_to_another_instance_and_came_back_is_read_again(away_s):
    """Instance A works the phone; its partition moves to B, which sees the phone walk to the kitchen; then the
    partition comes back to A and the phone walks back to the oak room, where A's copy still has it: with that
    copy A would see no move and, within the persist interval, write nothing. Away long (no call of the partition
    for longer than partition_idle_s): A drops its copy and reads the device again. Away briefly: A's copy fails
    at its next write (due within the persist interval) and is redone. Either way the counts end right."""
    clocked = await _clocked()
    store, a, b = clocked.store, clocked.instance(), clocked.instance()
    events = _on_partition(walk(T0, [("r-oak", 4), ("k-0", 6), ("r-oak", 14)], every_s=10), "3")
    await clocked.play(a, events[:4])  # A: in the oak room
    await clocked.play(b, events[4:10], every_s=0.0)  # B: to the kitchen, written
    assert await headcounts(store) == {"r-oak": 0, "k-0": 1}
    clocked.now += away_s
    reads = store.meter.reads["devices"]
    for n, event in enumerate(events[10:]):  # back at A: the oak room again
        await clocked.play(a, [event])
        if n == 4 and away_s > PipelinePolicy().partition_idle_s:
            # read again: the move back is seen and written at once, not a persist interval later
            assert await headcounts(store) == {"r-oak": 1, "k-0": 0}
    if away_s > PipelinePolicy().partition_idle_s:
        assert store.meter.reads["devices"] == reads + 1 and a.stats.conflicts_retried == 0
    else:
        assert a.stats.conflicts_retried >= 1
    assert await headcounts(store) == {"r-oak": 1, "k-0": 0}
    assert (await store.get_device(HQ, "install-0001")).space_id == "r-oak"


async def test_beacon_health_waits_for_its_interval_but_a_low_battery_does_not():
    from shared.domain.events import BATTERY_LOW_MV, EventType
    from tests.unit.test_transition_events import telemetry_event

    clocked = await _clocked()
    store, pipeline = clocked.store, clocked.instance()

    async def battery() -> int | None:
        return next(h.battery_mv for h in await store.list_beacon_health(HQ) if h.beacon_id == OAK_BEACON)

    await pipeline.process([telemetry_event(T0, 2900)])
    assert await battery() == 2900
    clocked.now += 60.0
    await pipeline.process([telemetry_event(T0 + timedelta(minutes=1), BATTERY_LOW_MV - 100)])
    assert await battery() == 2900  # health: not yet
    low = [e for e in await store.pending() if e.type == EventType.beacon_battery_low]
    assert len(low) == 1  # the alert: at once
    clocked.now += PipelinePolicy().beacon_health_interval_s
    await pipeline.process([telemetry_event(T0 + timedelta(minutes=16), BATTERY_LOW_MV - 120)])
    assert await battery() == BATTERY_LOW_MV - 120


async def test_a_device_stored_with_an_old_tracking_document_is_tracked_on():
    """Devices written before TrackingState became plain data keep their tracker state (`tracking/v1`)."""
    import json

    from tests.unit.positioning.test_tracking_state import STORED_V1

    sites = InMemorySiteModelStore()
    await add_small_site(sites)
    store = InMemoryLiveStateStore()
    shift = T0.timestamp() - 20 - STORED_V1["ts"]  # the stored state's last estimate 20 s before T0
    old = json.loads(json.dumps(STORED_V1))
    old["ts"] += shift
    old["beacons"] = {b: [v[0], v[1], v[2] + shift, v[3]] for b, v in old["beacons"].items()}
    await store.save_device(DeviceState("tenant-a", "hq", "install-0001", T0 - timedelta(seconds=20), tracking=old,
                                        floor="f0", space_id="r-oak", space_since=T0 - timedelta(minutes=5)))
    await PipelineService(SiteDirectory(sites), store).process(walk(T0, [("r-oak", 20)], every_s=10))  # written: 190 s
    device = await store.get_device(HQ, "install-0001")
    assert device.space_id == "r-oak" and device.space_since == T0 - timedelta(minutes=5)  # the stay goes on
    assert device.tracking["schema"] == "tracking/v1" and device.tracking["ts"] > old["ts"]
    assert device.tracking["beacons"].keys() == old["beacons"].keys()
    assert set(device.tracking) == set(STORED_V1)  # written back in the same form
