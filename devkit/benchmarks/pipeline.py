"""`python -m devkit bench pipeline [--json]`: the processing pipeline on a simulated office.

Phones of the office simulator post batches (20+ sightings each); the events are delivered the way the Event Hub
trigger does (per partition, in order, up to 100 a call) through decode, validation, positioning and the state
store. Measured:
- `sightings_per_s`: the whole path over the in-memory store, one core;
- `positioning_share`: of that processing time, the share spent in the tracker (`track_many`: RSSI filters, grid
  posteriors, map-matched rooms, self-calibration), with `positioning_s` and `processing_s`;
- `decode_only_sightings_per_s`: JSON decode and validation alone (the floor the pipeline cannot beat);
- `json_loads_sightings_per_s`: plain `json.loads` of the same event bodies in the same run (best of 3 passes), the
  reference of issue #15's target; `processing_vs_json_loads` = that rate / `sightings_per_s`;
- `memory_per_device_bytes`: the pipeline's per-device cache after the run, measured as a deep `sys.getsizeof`
  over the cache (every object reachable from its entries counted once; objects shared with the rest of the
  process, such as the building reference, interned ids and small ints, counted once for all devices) divided by
  the devices cached;
- `cosmos_writes_per_1k_sightings`, `est_ru_per_sighting`: the same events against the Cosmos emulator (all of
  them unless `--cosmos-events` caps them), with RU estimated from document sizes and Azure's documented costs
  (shared/adapters/documents.py); `steady_est_ru_per_sighting`: the same from simulated minute 3 on (phones have
  arrived and settled), `arrivals_est_ru_per_sighting` before, and `*_ru_per_sighting_by_container` where the RU
  go in each of the two phases;
- `wrong_headcounts`: spaces whose stored headcount differs from the number of devices the store places there;
- `room_accuracy` and `headcount_abs_error_vs_simulator`: agreement with the simulator's ground truth.

The services run on the simulated clock: each trigger call is processed at the enqueued time of its newest event
(`SimulatedClock`), so whatever the pipeline does every so many seconds (persisting a device, rewriting beacon
health, dropping the devices of a partition not seen for a while) happens as often per simulated minute as it
would in Azure, although the benchmark replays the traffic tens of times faster than real time.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.domain.tenancy import BuildingRef

if TYPE_CHECKING:
    from devkit.office import OfficeDay
    from shared.adapters.documents import StoreMeter
    from shared.domain.ports import InboundEvent, LiveStateStore
    from shared.domain.site import SiteModel
    from shared.services.pipeline import PipelinePolicy, PipelineService

Body = tuple[str, bytes, datetime]  # (device id, ingest event body, received at)

TENANT = "bench-tenant"
STEADY_AFTER_S = 180.0  # simulated seconds of arrivals before the steady state is measured


class SimulatedClock:
    """The benchmark's time: the enqueued time of the newest event of the trigger call being processed. The
    services read it as their wall clock (`now`) and as their monotonic clock (`monotonic`)."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.current.timestamp()

    def enter(self, call: list[InboundEvent]) -> None:
        """Move to the call's time; the clock never goes back (calls of different partitions interleave)."""
        self.current = max(self.current, max(_enqueued(event) for event in call))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phones", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=12.0, help="simulated minutes of traffic")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--cosmos-events", type=int, default=-1,
                        help="events replayed against the Cosmos emulator: all of them by default (-1), "
                             "the first N, or 0 to skip the Cosmos run")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    return asyncio.run(_run(args))


def _events(day: OfficeDay, cutoff_s: float) -> list[Body]:
    """(event, decoded) of every batch sent before the cutoff, as the ingest route would have published them."""
    from shared.domain.ingest_event import encode_ingest_event
    from shared.domain.sightings import parse_sightings_batch

    bodies: list[Body] = []
    for batch in day.batches():
        if batch.sent_s > cutoff_s:
            break
        received = day.at(batch.sent_s)
        parsed = parse_sightings_batch(batch.body, received)
        bodies.append((batch.body["deviceId"], encode_ingest_event(TENANT, received, parsed.batch), received))
    return bodies


def _trigger_calls(bodies: list[Body], partitions: int = 8, max_batch: int = 100) -> list[list[InboundEvent]]:
    """Group events like the Event Hub trigger: per partition in order, up to `max_batch` a call, calls in time order."""
    import zlib

    from shared.domain.ports import InboundEvent

    per_partition: dict[int, list[InboundEvent]] = {}
    for sequence, (device, body, received) in enumerate(bodies):
        partition = zlib.crc32(device.encode()) % partitions
        per_partition.setdefault(partition, []).append(
            InboundEvent(body, device, sequence, received, partition_id=str(partition)))
    calls: list[list[InboundEvent]] = []
    for events in per_partition.values():
        # a call takes what arrived within 10 simulated seconds, at most max_batch events
        chunk: list[InboundEvent] = []
        for event in events:
            if chunk and (len(chunk) == max_batch
                          or (_enqueued(event) - _enqueued(chunk[0])).total_seconds() > 10):
                calls.append(chunk)
                chunk = []
            chunk.append(event)
        if chunk:
            calls.append(chunk)
    calls.sort(key=lambda c: _enqueued(c[0]))
    return calls


def _enqueued(event: InboundEvent) -> datetime:
    if event.enqueued_time is None:  # _trigger_calls sets it on every event
        raise ValueError(f"event {event.sequence_number} has no enqueued time")
    return event.enqueued_time


async def _process_all(calls: list[list[InboundEvent]], site: SiteModel, live_state: LiveStateStore,
                       on_call: Callable[[list[InboundEvent]], None] | None = None,
                       policy: PipelinePolicy | None = None) -> tuple[float, PipelineService, float]:
    """Seconds to process every call, the pipeline, and the seconds of it spent in the tracker. The services run
    on the simulated clock (`SimulatedClock`); `on_call` is told of each call before it is processed."""
    from shared.adapters.memory import InMemoryBlobStore, InMemorySiteModelStore
    from shared.services.pipeline import PipelinePolicy, PipelineService
    from shared.services.processing import EventProcessingService
    from shared.services.sites import SiteDirectory

    clock = SimulatedClock(_enqueued(calls[0][0]) if calls else datetime.now(UTC))
    sites = InMemorySiteModelStore()
    await sites.put(BuildingRef(TENANT, site.building_id), site)
    pipeline = PipelineService(SiteDirectory(sites, monotonic=clock.monotonic), live_state,
                               policy or PipelinePolicy(), monotonic=clock.monotonic)
    processing = EventProcessingService(InMemoryBlobStore(), "deadletter", pipeline.process, clock=clock.now)
    await pipeline._sites.building_for(TENANT, [site.beacons[0].id])  # build the site index before timing
    import time

    import shared.services.pipeline as pipeline_module

    # the positioning share: time inside the tracker (track_many: filters, grid posteriors, rooms, calibration)
    tracker = getattr(pipeline_module, "track_many")  # noqa: B009 (replaced below, for the duration of the run)
    positioning = [0.0]

    def timed_tracker(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return tracker(*args, **kwargs)
        finally:
            positioning[0] += time.perf_counter() - t

    setattr(pipeline_module, "track_many", timed_tracker)  # noqa: B010
    try:
        started = time.perf_counter()
        for call in calls:
            clock.enter(call)
            if on_call is not None:
                on_call(call)
            await processing.process(call)
        elapsed = time.perf_counter() - started
    finally:
        setattr(pipeline_module, "track_many", tracker)  # noqa: B010
    return elapsed, pipeline, positioning[0]


def _json_loads_s(bodies: list[bytes], passes: int = 3) -> float:
    """Seconds of the fastest of `passes` plain `json.loads` passes over the bodies."""
    import json
    import time

    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for body in bodies:
            json.loads(body)
        best = min(best, time.perf_counter() - started)
    return best


def _memory_per_device(pipeline: PipelineService) -> int:
    """Bytes retained per cached device: a deep sizeof over the pipeline's device cache (its entries and all they
    reach, each object once) divided by the devices cached."""
    import dataclasses
    import sys

    cache = pipeline._devices
    seen: set[int] = set()
    total = 0
    stack: list[object] = [cache]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif dataclasses.is_dataclass(obj):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
        elif hasattr(obj, "__slots__"):
            stack.extend(getattr(obj, name) for name in obj.__slots__ if hasattr(obj, name))
    return round(total / max(1, len(cache)))


async def _consistency(live_state: LiveStateStore, building: BuildingRef) -> int:
    devices = await live_state.list_devices(building)
    placed: dict[str, int] = {}
    for device in devices:
        if device.space_id:
            placed[device.space_id] = placed.get(device.space_id, 0) + 1
    spaces = {s.space_id: s.headcount for s in await live_state.list_spaces(building)}
    return sum(1 for space in set(placed) | set(spaces) if placed.get(space, 0) != spaces.get(space, 0))


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import time

    from devkit.office import OfficeDay
    from shared.adapters.memory import InMemoryLiveStateStore
    from shared.domain.ingest_event import decode_ingest_event

    day = OfficeDay(people=args.phones, minutes=args.minutes, seed=args.seed, floors=3)
    # before anyone starts walking out, so ground truth still has people in rooms
    cutoff = day.window_s - min(0.12 * day.window_s, 1200.0) - 120.0
    generated = time.perf_counter()
    bodies = _events(day, cutoff)
    generate_s = time.perf_counter() - generated
    calls = _trigger_calls(bodies)
    sightings = sum(len(decode_ingest_event(body).sightings) for _d, body, _r in bodies)

    started = time.perf_counter()
    for _device, body, _received in bodies:
        decode_ingest_event(body)
    decode_s = time.perf_counter() - started
    json_loads_s = _json_loads_s([body for _d, body, _r in bodies])

    memory = InMemoryLiveStateStore()
    elapsed, pipeline, positioning_s = await _process_all(calls, day.site, memory)
    building = BuildingRef(TENANT, day.site.building_id)
    wrong = await _consistency(memory, building)
    truth = day.occupancy(cutoff)
    stored = {s.space_id: s.headcount for s in await memory.list_spaces(building)}
    abs_error = sum(abs(stored.get(s, 0) - truth.get(s, 0)) for s in set(stored) | set(truth))
    settled = day.settled(cutoff)
    placed = {d.device_id: d.space_id for d in await memory.list_devices(building)}
    accuracy = sum(placed.get(device) == room for device, room in settled.items()) / max(1, len(settled))
    memory_writes = sum(memory.meter.writes.values())

    result = {
        "phones": args.phones, "simulated_minutes": round(cutoff / 60, 1), "batches": len(bodies),
        "sightings": sightings, "sightings_per_batch": round(sightings / max(1, len(bodies)), 1),
        "trigger_calls": len(calls),
        "sightings_per_s": round(sightings / elapsed),
        "positioning_s": round(positioning_s, 2), "processing_s": round(elapsed, 2),
        "positioning_share": round(positioning_s / elapsed, 3),
        "decode_only_sightings_per_s": round(sightings / decode_s),
        "processing_vs_decode_floor": round((sightings / decode_s) / (sightings / elapsed), 2),
        "json_loads_sightings_per_s": round(sightings / json_loads_s),
        "processing_vs_json_loads": round(elapsed / json_loads_s, 2),
        "memory_per_device_bytes": _memory_per_device(pipeline),
        "memory_writes_per_1k_sightings": round(1000 * memory_writes / sightings, 1),
        "memory_est_ru_per_sighting": round(sum(memory.meter.ru.values()) / sightings, 3),
        "wrong_headcounts": wrong,
        "room_accuracy": round(accuracy, 4),
        "headcount_abs_error_vs_simulator": abs_error,
        "people_in_rooms_by_simulator": sum(truth.values()),
        "transitions": pipeline.stats.transitions,
        "generate_s": round(generate_s, 1),
    }
    if args.cosmos_events != 0:
        result.update(await _cosmos_run(day, bodies if args.cosmos_events < 0 else bodies[: args.cosmos_events]))
    return result


async def _cosmos_run(day: OfficeDay, bodies: list[Body]) -> dict[str, Any]:
    import time

    from devkit.emulators.launcher import cosmos_aio_client, start_cosmos
    from shared.adapters.cosmos import ensure_cosmos_schema
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore
    from shared.domain.ingest_event import decode_ingest_event

    sightings_of = {sequence: len(decode_ingest_event(body).parsed.batch.sightings)
                    for sequence, (_d, body, _r) in enumerate(bodies)}
    steady_from = day.at(STEADY_AFTER_S)
    emulator = start_cosmos()
    try:
        async with cosmos_aio_client(emulator.port) as client:
            database = await ensure_cosmos_schema(client, "bench")
            store = CosmosLiveStateStore(database)
            calls = _trigger_calls(bodies)
            phases = _Phases(store.meter, steady_from, sightings_of)
            started = time.perf_counter()
            await _process_all(calls, day.site, store, on_call=phases.on_call)
            wall = time.perf_counter() - started
            sightings = sum(sightings_of.values())
            writes = sum(store.meter.writes.values())
            arrivals, steady = phases.split()
            return {
                "cosmos_events": len(bodies), "cosmos_sightings": sightings,
                "cosmos_simulated_minutes": round((max(r for _d, _b, r in bodies) - day.at(0)).total_seconds() / 60, 1),
                "cosmos_writes_per_1k_sightings": round(1000 * writes / sightings, 1),
                "cosmos_writes_by_container": dict(store.meter.writes),
                "cosmos_reads_per_1k_sightings": round(1000 * sum(store.meter.reads.values()) / sightings, 1),
                "cosmos_reads_by_container": dict(store.meter.reads),
                "est_ru_per_sighting": round(sum(store.meter.ru.values()) / sightings, 3),
                "arrivals_est_ru_per_sighting": arrivals.ru_per_sighting(),
                "steady_est_ru_per_sighting": steady.ru_per_sighting(),
                "steady_writes_per_1k_sightings": steady.per_1k(steady.writes),
                "steady_reads_per_1k_sightings": steady.per_1k(steady.reads),
                "arrivals_ru_per_sighting_by_container": arrivals.ru_by_container(),
                "steady_ru_per_sighting_by_container": steady.ru_by_container(),
                "cosmos_sightings_per_s": round(sightings / wall),
                "cosmos_wrong_headcounts": await _consistency(store, BuildingRef(TENANT, day.site.building_id)),
            }
    finally:
        emulator.stop()


@dataclass
class _Phase:
    """What the store metered over a stretch of the run, and the sightings of that stretch's events."""

    sightings: int = 0
    reads: dict[str, int] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)
    ru: dict[str, float] = field(default_factory=dict)

    def ru_per_sighting(self) -> float | None:
        return round(sum(self.ru.values()) / self.sightings, 3) if self.sightings else None

    def per_1k(self, counts: dict[str, int]) -> float | None:
        return round(1000 * sum(counts.values()) / self.sightings, 1) if self.sightings else None

    def ru_by_container(self) -> dict[str, float]:
        return {name: round(ru / self.sightings, 4) for name, ru in sorted(self.ru.items())} if self.sightings else {}


class _Phases:
    """Splits the metered reads, writes and RU at the first trigger call at or after `steady_from` (simulated):
    arrivals before, steady state from there on."""

    def __init__(self, meter: StoreMeter, steady_from: datetime, sightings_of: dict[int, int]) -> None:
        self._meter = meter
        self._steady_from = steady_from
        self._sightings_of = sightings_of
        self._at_split: _Phase | None = None
        self._before = 0
        self._after = 0

    def on_call(self, call: list[InboundEvent]) -> None:
        if self._at_split is None and max(_enqueued(e) for e in call) >= self._steady_from:
            self._at_split = _Phase(0, dict(self._meter.reads), dict(self._meter.writes), dict(self._meter.ru))
        sightings = sum(self._sightings_of[e.sequence_number] for e in call)
        if self._at_split is None:
            self._before += sightings
        else:
            self._after += sightings

    def split(self) -> tuple[_Phase, _Phase]:
        m = self._meter
        end = _Phase(0, dict(m.reads), dict(m.writes), dict(m.ru))
        start = self._at_split or end
        return (_Phase(self._before, start.reads, start.writes, start.ru),
                _Phase(self._after, _minus(end.reads, start.reads), _minus(end.writes, start.writes),
                       _minus(end.ru, start.ru)))


def _minus(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
