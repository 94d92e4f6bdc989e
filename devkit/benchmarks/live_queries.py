"""The live part of `bench queries`: free rooms and occupancy through the QueryService on the ~2,000-space tower,
answered from the floor summaries and, in the same run, from the space documents as before summaries.

A working day is played through the processor's OccupancyWriter (one `apply` per simulated trigger call, people
moving between random rooms), so nearly every space has a document and a `since`: the summaries are as large as
they get. Latency is measured against the in-memory store (no network: the query's own work). Request units are
estimated from the sizes of what each query read, read by read (`free_rooms_read`, `occupancy_read`: the store's
meter recorded per query; shared/adapters/documents.py, a query charged as a read of everything it returns),
under the pipeline's rule (1 RU per KB) and under Azure's documented point-read costs (`documented_read_ru`);
unless `--cosmos-calls 0` a shorter day is also played against the Cosmos emulator and the same is recorded as
the documents come back from it (system properties included: `cosmos`).

`stream_poll`: a live stream's poll (shared/services/stream.py) on the tower after the day, with bookings through
the day in the bookable rooms: as it is (floor summaries and the bookings running now, as much of each as a status
needs, then the documents of the spaces that changed) and as it was (`full_read_poll`: every space document and the next 24 h of bookings), both
on the same state, with nothing changed and after each 2 s of the next trigger call's moves; the events of the two
must be identical (`identical_events`).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

TENANT = "bench"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--live-queries", type=int, default=1000,
                        help="free-rooms and occupancy queries to time on each path (0 skips the live part)")
    parser.add_argument("--people", type=int, default=1500, help="phones moving through the tower's day")
    parser.add_argument("--calls", type=int, default=40, help="trigger calls (rounds of moves) in the day")
    parser.add_argument("--cosmos-calls", type=int, default=12,
                        help="trigger calls played against the Cosmos emulator for its document sizes (0 skips)")


class SpacesOnly:
    """The live state without floor summaries: queries answer from the space documents, as before summaries."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list_floor_summaries(self, building: Any, *, sinces: bool = False) -> list[Any]:
        return []

    async def save_floor(self, summary: Any, spaces: Any = ()) -> Any:
        from shared.domain.ports import PreconditionFailed

        raise PreconditionFailed("no summaries here")


def _day(site: Any, people: int, calls: int, seed: int) -> list[list[Any]]:
    """Each trigger call's occupancy changes: a third of the phones move each call, some leave, most come back."""
    from shared.domain.presence import OccupancyChange
    from shared.domain.tenancy import BuildingRef

    rng = random.Random(seed)
    ref = BuildingRef(TENANT, site.building_id)
    rooms = [s.id for s in site.spaces if s.kind.value != "walkway"]
    where: dict[str, str] = {}
    day = []
    for call in range(calls):
        changes = []
        for person in range(people):
            if rng.random() > 0.33:
                continue
            device = f"phone-{person:05d}"
            at = T0 + timedelta(seconds=60 * call, microseconds=rng.randrange(60_000_000))
            if device in where:
                changes.append(OccupancyChange(ref, where.pop(device), device, "leave", at))
            if rng.random() < 0.9:
                where[device] = rng.choice(rooms)
                changes.append(OccupancyChange(ref, where[device], device, "enter", at))
        day.append(changes)
    return day


async def _site(site_data: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The tower parsed, its building of the bench tenant, and a site directory that has it."""
    from shared.adapters.memory import InMemorySiteModelStore
    from shared.domain.site import parse_site_model
    from shared.domain.tenancy import BuildingRef
    from shared.services.sites import SiteDirectory

    site = parse_site_model(site_data)
    ref = BuildingRef(TENANT, site.building_id)
    sites = InMemorySiteModelStore()
    await sites.put(ref, site)
    return site, ref, SiteDirectory(sites)


async def _play(store: Any, directory: Any, day: list[list[Any]]) -> float:
    from shared.services.pipeline import OccupancyWriter
    from shared.services.transitions import SiteFacts

    writer = OccupancyWriter(store, facts=SiteFacts(directory) if directory is not None else None)
    started = time.perf_counter()
    for changes in day:
        await writer.apply(changes)
    elapsed = time.perf_counter() - started
    for event in await store.pending(limit=10**7):  # handed on, as the relay does: the outbox does not pile up
        await store.remove(event)
    return elapsed


def _sizes(docs: list[dict[str, Any]]) -> list[int]:
    return [len(json.dumps(d, separators=(",", ":"))) for d in docs]


def _ru(sizes: list[int]) -> dict[str, Any]:
    from shared.adapters import documents

    return {"documents": len(sizes), "bytes": sum(sizes),
            "est_ru": round(documents.estimated_query_ru(sizes), 2),
            "est_ru_documented": round(documents.estimated_query_ru(sizes, documents.documented_read_ru), 2)}


async def _per_query(store: Any, queries: Any, ref: Any, asks: list[tuple[str, Any, bool]]) -> dict[str, Any]:
    """What each free-rooms and occupancy query read from the summaries path, read by read (`_Sizes`): its
    documents, bytes and estimated RU (each read by the pipeline's rule and by the documented one), as statistics
    over the asks."""
    import numpy as np

    from shared.adapters import documents

    sizes = _Sizes()
    kept, store.meter = store.meter, sizes.meter
    per: dict[str, list[tuple[int, int, float, float]]] = {"free_rooms": [], "occupancy": []}
    try:
        for near, min_capacity, accessible in asks:
            for name, call in (("free_rooms", queries.free_rooms(ref, near, min_capacity=min_capacity,
                                                                accessible=accessible)),
                               ("occupancy", queries.occupancy(ref))):
                await call
                reads = sizes.take()
                per[name].append((sum(d for _p, _s, d in reads), sum(s for _p, s, _d in reads),
                                  sum(documents.estimated_read_ru(s) for _p, s, _d in reads),
                                  sum(documents.documented_read_ru(s) for _p, s, _d in reads)))
    finally:
        store.meter = kept

    def stats(rows: list[tuple[int, int, float, float]]) -> dict[str, Any]:
        docs, size, ru, documented = (np.array(column, dtype=float) for column in zip(*rows))
        return {"queries": len(rows), "documents_mean": round(float(docs.mean()), 1),
                "bytes_mean": round(float(size.mean())), "est_ru_mean": round(float(ru.mean()), 2),
                "est_ru_p95": round(float(np.percentile(ru, 95)), 2), "est_ru_max": round(float(ru.max()), 2),
                "est_ru_documented_mean": round(float(documented.mean()), 2),
                "est_ru_documented_max": round(float(documented.max()), 2)}

    return {"free_rooms_read": stats(per["free_rooms"]), "occupancy_read": stats(per["occupancy"])}


async def _memory_docs(store: Any, ref: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The documents each path reads, as the in-memory store keeps them (with their etag): every summary
    document (counts and sinces), and every space document."""
    from shared.adapters import documents

    summaries = [{**documents.floor_summary_to_doc(s), "_etag": s.etag}
                 for s in await store.list_floor_summaries(ref, sinces=True)]
    summaries += [{**documents.floor_sinces_to_doc(s), "_etag": s.etag} for s in await store.list_floor_summaries(ref, sinces=True)]
    spaces = [{**documents.space_to_doc(s), "_etag": s.etag} for s in await store.list_spaces(ref)]
    return summaries, spaces


async def _timed(samples: list[float], call: Any) -> Any:
    started = time.perf_counter()
    result = await call
    samples.append(time.perf_counter() - started)
    return result


async def _measure(site_data: dict[str, Any], args: argparse.Namespace, stats_ms: Any) -> dict[str, Any]:
    from shared.adapters import documents
    from shared.adapters.memory import InMemoryLiveStateStore
    from shared.services.queries import QueryService

    site, ref, directory = await _site(site_data)
    store = InMemoryLiveStateStore()
    day = _day(site, args.people, args.calls, args.seed)
    play_s = await _play(store, directory, day)
    writer_meter = {"writes": store.meter.writes.get("spaces", 0), "ru": store.meter.ru.get("spaces", 0.0)}
    # the same day written without summaries (a writer that knows no floors): what the summaries add to writing
    plain = InMemoryLiveStateStore()
    await _play(plain, None, day)
    plain_writes, plain_ru = plain.meter.writes.get("spaces", 0), plain.meter.ru.get("spaces", 0.0)
    del plain
    gc.collect()  # the copy's garbage is not the queries' to collect
    summaries, spaces = QueryService(directory, store), QueryService(directory, SpacesOnly(store))
    building = await summaries.building(ref)
    index = summaries.navigation(building)
    rng = random.Random(args.seed)
    rooms = [s.id for s in site.spaces if s.kind.value != "walkway"]
    regulars = [rng.choice(rooms) for _ in range(20)]
    asks = [(rng.choice(regulars), rng.choice([None, 4, 8]), rng.random() < 0.3) for _ in range(args.live_queries)]
    timings: dict[str, list[float]] = {}
    identical = True
    # the old path reads ~2,000 documents a query: a fifth of the asks are enough for its percentiles
    for name, queries, count in (("summaries", summaries, len(asks)), ("space_documents", spaces, len(asks) // 5)):
        for near, min_capacity, accessible in asks[:count]:  # warm the caches
            await queries.free_rooms(ref, near, min_capacity=min_capacity, accessible=accessible)
        free, cold, occupancy = timings.setdefault(f"{name}_free", []), timings.setdefault(f"{name}_cold", []), \
            timings.setdefault(f"{name}_occupancy", [])
        for near, min_capacity, accessible in asks[:count]:
            await _timed(free, queries.free_rooms(ref, near, min_capacity=min_capacity, accessible=accessible))
            index.clear_cache()
            await _timed(cold, queries.free_rooms(ref, near, min_capacity=min_capacity, accessible=accessible))
            await _timed(occupancy, queries.occupancy(ref))
    for near, min_capacity, accessible in asks[:50]:  # both paths give the same answer for the same state
        a = await summaries.free_rooms(ref, near, min_capacity=min_capacity, accessible=accessible)
        b = await spaces.free_rooms(ref, near, min_capacity=min_capacity, accessible=accessible)
        identical &= [(n.view.space.id, n.view.status, n.view.headcount, n.view.since, n.distance_m) for n in a] == \
            [(n.view.space.id, n.view.status, n.view.headcount, n.view.since, n.distance_m) for n in b]
    identical &= (await summaries.occupancy(ref))[1] == (await spaces.occupancy(ref))[1]
    per_query = await _per_query(store, summaries, ref, asks[:200])
    summary_docs, space_docs = await _memory_docs(store, ref)
    stream_poll = await _stream_poll(site, directory, store, day, args, stats_ms)
    changes = sum(len(c) for c in day)
    return {
        "spaces": len(site.spaces), "floors": len(site.floors), "people": args.people, "trigger_calls": args.calls,
        "occupancy_changes": changes, "spaces_with_a_document": len(space_docs),
        "occupied_now": sum(1 for d in space_docs if d["headcount"]), "play_s": round(play_s, 2),
        "identical_answers": identical,
        "summaries": {"free_rooms": stats_ms(timings["summaries_free"]),
                      "free_rooms_cold_distances": stats_ms(timings["summaries_cold"]),
                      "occupancy": stats_ms(timings["summaries_occupancy"]), **per_query,
                      "all_summaries_read": _ru(_sizes(summary_docs)),
                      "largest_counts_bytes": max(_sizes([d for d in summary_docs
                                                          if d["kind"] == documents.FLOOR_SUMMARY_KIND])),
                      "largest_sinces_bytes": max(_sizes([d for d in summary_docs
                                                          if d["kind"] == documents.FLOOR_SINCES_KIND]))},
        "space_documents": {"free_rooms": stats_ms(timings["space_documents_free"]),
                            "free_rooms_cold_distances": stats_ms(timings["space_documents_cold"]),
                            "occupancy": stats_ms(timings["space_documents_occupancy"]),
                            "read": _ru(_sizes(space_docs))},
        # what keeping the summaries costs the writer: the spaces container's writes of the day, summaries included
        "writer": {"space_writes": writer_meter["writes"], "est_ru": round(writer_meter["ru"], 1),
                   "est_ru_per_change": round(writer_meter["ru"] / max(1, changes), 2),
                   "without_summaries_space_writes": plain_writes,
                   "without_summaries_est_ru": round(plain_ru, 1)},
        "stream_poll": stream_poll,
    }


def full_read_poll(stream: Any, queries: Any, render: Any) -> Any:
    """The stream's poll as it was before floor summaries (every space document and the bookings of the next
    24 h, each poll), on `stream`'s own record of what it sent: the reference the new poll is measured and tested
    against (tests/functions/test_stream.py)."""
    from shared.services.stream import START, _json, cursor_of, frame, visible

    async def poll() -> list[bytes]:
        views = await queries.views(await queries.building(stream._ref))
        changed = []
        for view in views:
            seen = visible(view)
            if stream._sent.get(view.space.id) != seen:
                stream._sent[view.space.id] = seen
                changed.append(view)
        out = []
        for view in sorted(changed, key=lambda v: cursor_of(v) or START):
            stream.cursor = max(stream.cursor, cursor_of(view) or START)
            out.append(frame(_json(render(view)), event="space", id_=str(stream.cursor)))
        return out

    return poll()


class _Sizes:
    """What reads returned, read by read, as (part, bytes, documents); a query is one read of all it returned. `meter` is
    installed as the live-state store's meter; `bookings(store)` records a booking store's queries the same way."""

    def __init__(self) -> None:
        from shared.adapters.documents import StoreMeter

        reads: list[tuple[str, int, int]] = []

        class Recording(StoreMeter):
            def read(self, container: str, size_bytes: int, documents: int | None = None) -> None:
                super().read(container, size_bytes, documents)
                reads.append(("live_state", size_bytes, (1 if size_bytes else 0) if documents is None else documents))

        self.meter = Recording()
        self.reads = reads

    def bookings(self, store: Any) -> Any:
        from shared.adapters import documents

        reads = self.reads

        class Recorded:
            def __getattr__(self, name: str) -> Any:
                return getattr(store, name)

            async def list_bookings(self, *args: Any, **kwargs: Any) -> Any:
                found = await store.list_bookings(*args, **kwargs)
                reads.append(("bookings", sum(len(json.dumps({**documents.booking_to_doc(b), "_etag": b.etag},
                                                             separators=(",", ":"))) for b in found), len(found)))
                return found

            async def list_running(self, building: Any, at: Any) -> Any:
                found = await store.list_running(building, at)
                # what the projection returns (released stands for both flags: a no-show's time is a few bytes more)
                reads.append(("bookings", sum(len(json.dumps(
                    {"spaceId": h.space_id, "bookingId": h.booking_id, "start": documents.iso(h.start),
                     "ends": documents.iso(h.end), "released": h.gives_room_back, "noShowAt": None},
                    separators=(",", ":"))) for h in found), len(found)))
                return found

        return Recorded()

    def take(self) -> list[tuple[str, int, int]]:
        taken = list(self.reads)
        self.reads.clear()
        return taken


def _cost(polls: list[list[tuple[str, int, int]]]) -> dict[str, Any]:
    """Documents, KB and estimated RU of a poll, the mean over `polls` (each poll's reads), and the documents and KB
    of its two parts: the live state (summaries, space documents) and the bookings."""
    from shared.adapters import documents

    n = max(1, len(polls))
    reads = [r for poll in polls for r in poll]

    def part(name: str) -> dict[str, float]:
        mine = [(s, d) for p, s, d in reads if p == name]
        return {"documents": round(sum(d for _s, d in mine) / n, 1), "kb": round(sum(s for s, _d in mine) / 1024 / n, 1)}

    return {"documents": round(sum(d for _p, _s, d in reads) / n, 1),
            "kb": round(sum(s for _p, s, _d in reads) / 1024 / n, 1),
            "est_ru": round(sum(documents.estimated_read_ru(s) for _p, s, _d in reads) / n, 1),
            "est_ru_documented": round(sum(documents.documented_read_ru(s) for _p, s, _d in reads) / n, 1),
            "live_state": part("live_state"), "bookings": part("bookings")}


async def _stream_poll(site: Any, directory: Any, store: Any, day: list[list[Any]], args: argparse.Namespace,
                       stats_ms: Any) -> dict[str, Any]:
    """A live stream's poll on the tower after the day, as it is (floor summaries, then the changed spaces'
    documents) and as it was (every space document), with nothing changed and after each 2 s of the next trigger
    call's moves (played through the OccupancyWriter), with bookings through the day in the bookable rooms."""
    from functions.routes.stream import _render
    from shared.adapters.memory import InMemoryBookingStore
    from shared.domain.bookings import Booking
    from shared.services.pipeline import OccupancyWriter
    from shared.services.queries import QueryService
    from shared.services.stream import STREAM_POLL_SECONDS, StreamService
    from shared.services.transitions import SiteFacts

    rng = random.Random(args.seed)
    booking_store = InMemoryBookingStore(store)
    booked = 0
    for space in site.spaces:
        if space.bookable:
            for hour in range(8, 18):
                if rng.random() < 0.4:
                    start = T0.replace(hour=hour, minute=0)
                    await booking_store.save(Booking(TENANT, site.building_id, space.id, f"b{hour}", start,
                                                     start + timedelta(minutes=50)))
                    booked += 1
    sizes = _Sizes()
    store.meter, meter = sizes.meter, store.meter
    now = [T0 + timedelta(minutes=args.calls)]
    queries = QueryService(directory, store, clock=lambda: now[0], bookings=sizes.bookings(booking_store))
    service = StreamService(queries)
    ref = (await queries.buildings(TENANT))[0].ref
    new, old = await service.open(ref, _render), await service.open(ref, _render)
    sizes.take()
    writer_changes = _day(site, args.people, args.calls + 1, args.seed)[-1]  # the day's next call
    writer = OccupancyWriter(store, facts=SiteFacts(directory))
    costs: dict[str, list[list[tuple[str, int, int]]]] = {"quiet_new": [], "quiet_old": [], "typical_new": [],
                                                     "typical_old": []}
    timings: dict[str, list[float]] = {name: [] for name in costs}
    events: list[int] = []
    identical = True

    async def poll_both(kind: str) -> int:
        nonlocal identical
        got = await _timed(timings[f"{kind}_new"], new.poll())
        costs[f"{kind}_new"].append(sizes.take())
        reference = await _timed(timings[f"{kind}_old"], full_read_poll(old, queries, _render))
        costs[f"{kind}_old"].append(sizes.take())
        identical &= got == reference
        return len(got)

    for _ in range(50):
        identical &= await poll_both("quiet") == 0
    # the same quiet poll without a booking store: the stream's own work, without the in-memory booking store's
    # scan and copy of the bookings running now (most of the time above)
    alone = await StreamService(QueryService(directory, store, clock=lambda: now[0])).open(ref, _render)
    alone_ms: list[float] = []
    for _ in range(50):
        identical &= await _timed(alone_ms, alone.poll()) == []
    sizes.take()
    # the next call's moves in 2 s slices, a poll after each: what a poll sees at the day's pace
    writer_changes.sort(key=lambda c: c.at)
    start = writer_changes[0].at.replace(second=0, microsecond=0)
    slices: dict[int, list[Any]] = {}
    for change in writer_changes:
        slices.setdefault(int((change.at - start).total_seconds() // STREAM_POLL_SECONDS), []).append(change)
    for n in sorted(slices):
        store.meter = meter  # the writer's writes and reads are not the poll's
        await writer.apply(slices[n])
        store.meter = sizes.meter
        sizes.take()
        now[0] = start + timedelta(seconds=(n + 1) * STREAM_POLL_SECONDS)
        events.append(await poll_both("typical"))
    store.meter = meter
    return {
        "spaces": len(site.spaces), "bookings_today": booked,
        "identical_events": identical, "polls_quiet": len(costs["quiet_new"]), "polls_typical": len(events),
        "changes_per_poll": round(len(writer_changes) / max(1, len(events)), 1),
        "events_per_poll": round(sum(events) / max(1, len(events)), 1),
        "quiet": {"new": {**_cost(costs["quiet_new"]), **_ms(stats_ms(timings["quiet_new"])),
                          "without_bookings": _ms(stats_ms(alone_ms))},
                  "old": {**_cost(costs["quiet_old"]), **_ms(stats_ms(timings["quiet_old"]))}},
        "typical": {"new": {**_cost(costs["typical_new"]), **_ms(stats_ms(timings["typical_new"]))},
                    "old": {**_cost(costs["typical_old"]), **_ms(stats_ms(timings["typical_old"]))}},
    }


def _ms(stats: dict[str, float]) -> dict[str, float]:
    return {"p50_ms": stats["p50_ms"], "p95_ms": stats["p95_ms"]}


async def _cosmos(site_data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The same day's first calls against the Cosmos emulator: the documents each path reads, as Cosmos returns
    them (system properties included)."""
    from devkit.emulators.launcher import cosmos_aio_client, start_cosmos
    from shared.adapters import documents
    from shared.adapters.cosmos import SPACES, ensure_cosmos_schema, query_all
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore
    from shared.services.queries import QueryService

    site, ref, directory = await _site(site_data)
    emulator = start_cosmos()
    try:
        async with cosmos_aio_client(emulator.port) as client:
            database = await ensure_cosmos_schema(client, "bench-queries")
            store = CosmosLiveStateStore(database)
            day = _day(site, args.people, args.cosmos_calls, args.seed)
            play_s = await _play(store, directory, day)
            queries = QueryService(directory, store)
            rooms = [s.id for s in site.spaces if s.kind.value != "walkway"]
            started = time.perf_counter()
            await queries.free_rooms(ref, rooms[0])
            query_s = time.perf_counter() - started
            container = database.get_container_client(SPACES)
            base = f"SELECT * FROM c WHERE c.{documents.PARTITION_KEY_FIELD} = @key AND c.tenantId = @t"
            params = {"@key": ref.key, "@t": TENANT}
            counts_docs = await query_all(container, f"{base} AND c.kind = '{documents.FLOOR_SUMMARY_KIND}'",
                                          params, partition=ref.key)
            sinces_docs = await query_all(container, f"{base} AND c.kind = '{documents.FLOOR_SINCES_KIND}'",
                                          params, partition=ref.key)
            rng = random.Random(args.seed)
            asks = [(rng.choice(rooms), rng.choice([None, 4, 8]), rng.random() < 0.3) for _ in range(20)]
            per_query = await _per_query(store, queries, ref, asks)  # the documents as Cosmos returns them
            space_docs = await query_all(container, f"{base} AND NOT IS_DEFINED(c.kind)", params,
                                         partition=ref.key)
            writes = store.meter.writes.get("spaces", 0)
            return {"trigger_calls": args.cosmos_calls, "occupancy_changes": sum(len(c) for c in day),
                    "play_s": round(play_s, 2), "spaces_with_a_document": len(space_docs),
                    "free_rooms_over_the_emulator_ms": round(1000 * query_s, 1),
                    **per_query, "counts_read": _ru(_sizes(counts_docs)), "sinces_read": _ru(_sizes(sinces_docs)),
                    "space_documents_read": _ru(_sizes(space_docs)),
                    "writer_space_writes": writes,
                    "writer_est_ru_per_change": round(store.meter.ru.get("spaces", 0.0)
                                                      / max(1, sum(len(c) for c in day)), 2)}
    finally:
        emulator.stop()


def run(site_data: dict[str, Any], args: argparse.Namespace, stats_ms: Any) -> dict[str, Any]:
    result = asyncio.run(_measure(site_data, args, stats_ms))
    if args.cosmos_calls > 0:
        result["cosmos"] = asyncio.run(_cosmos(site_data, args))
    return result
