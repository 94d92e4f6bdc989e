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
- `cosmos_writes_per_1k_sightings`, `est_ru_per_sighting`: a run of the first events against the Cosmos emulator,
  with RU estimated from document sizes and Azure's documented costs (shared/adapters/documents.py);
- `wrong_headcounts`: spaces whose stored headcount differs from the number of devices the store places there;
- `room_accuracy` and `headcount_abs_error_vs_simulator`: agreement with the simulator's ground truth.
"""
from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.domain.tenancy import BuildingRef

if TYPE_CHECKING:
    from devkit.office import OfficeDay
    from shared.domain.ports import InboundEvent, LiveStateStore
    from shared.domain.site import SiteModel
    from shared.services.common import Clock
    from shared.services.pipeline import PipelineService

Body = tuple[str, bytes, datetime]  # (device id, ingest event body, received at)

TENANT = "bench-tenant"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phones", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=12.0, help="simulated minutes of traffic")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--cosmos-events", type=int, default=4000,
                        help="events replayed against the Cosmos emulator (0 skips the Cosmos run)")


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
                       clock: Clock) -> tuple[float, PipelineService, float]:
    """Seconds to process every call, the pipeline, and the seconds of it spent in the tracker."""
    from shared.adapters.memory import InMemoryBlobStore, InMemorySiteModelStore
    from shared.services.pipeline import PipelineService
    from shared.services.processing import EventProcessingService
    from shared.services.sites import SiteDirectory

    sites = InMemorySiteModelStore()
    await sites.put(BuildingRef(TENANT, site.building_id), site)
    pipeline = PipelineService(SiteDirectory(sites), live_state)
    processing = EventProcessingService(InMemoryBlobStore(), "deadletter", pipeline.process, clock=clock)
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
    last_event = day.at(cutoff)
    elapsed, pipeline, positioning_s = await _process_all(calls, day.site, memory, clock=lambda: last_event)
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
    if args.cosmos_events > 0:
        result.update(await _cosmos_run(day, bodies[: args.cosmos_events]))
    return result


async def _cosmos_run(day: OfficeDay, bodies: list[Body]) -> dict[str, Any]:
    import time

    from devkit.emulators.launcher import cosmos_aio_client, start_cosmos
    from shared.adapters.cosmos import ensure_cosmos_schema
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore
    from shared.domain.ingest_event import decode_ingest_event

    emulator = start_cosmos()
    try:
        async with cosmos_aio_client(emulator.port) as client:
            database = await ensure_cosmos_schema(client, "bench")
            store = CosmosLiveStateStore(database)
            calls = _trigger_calls(bodies)
            last = max(received for _d, _b, received in bodies)
            started = time.perf_counter()
            _elapsed, _pipeline, _positioning = await _process_all(calls, day.site, store, clock=lambda: last)
            wall = time.perf_counter() - started
            sightings = sum(len(decode_ingest_event(body).sightings) for _d, body, _r in bodies)
            writes = sum(store.meter.writes.values())
            return {
                "cosmos_events": len(bodies), "cosmos_sightings": sightings,
                "cosmos_writes_per_1k_sightings": round(1000 * writes / sightings, 1),
                "cosmos_writes_by_container": dict(store.meter.writes),
                "cosmos_reads_per_1k_sightings": round(1000 * sum(store.meter.reads.values()) / sightings, 1),
                "est_ru_per_sighting": round(sum(store.meter.ru.values()) / sightings, 3),
                "cosmos_sightings_per_s": round(sightings / wall),
                "cosmos_wrong_headcounts": await _consistency(store, BuildingRef(TENANT, day.site.building_id)),
            }
    finally:
        emulator.stop()
