"""The live part of `bench queries`: free rooms and occupancy through the QueryService on the ~2,000-space tower,
answered from the floor summaries and, in the same run, from the space documents as before summaries.

A working day is played through the processor's OccupancyWriter (one `apply` per simulated trigger call, people
moving between random rooms), so nearly every space has a document and a `since`: the summaries are as large as
they get. Latency is measured against the in-memory store (no network: the query's own work). Request units are
estimated from the sizes of the documents each path reads (shared/adapters/documents.py, a query charged as a read
of everything it returns), under the pipeline's rule (1 RU per KB) and under Azure's documented point-read costs
(`documented_read_ru`); with `--cosmos-people` the same day is also played against the Cosmos emulator and the
sizes are those of the documents it returns (system properties included).
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

    async def list_floor_summaries(self, building: Any) -> list[Any]:
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


async def _memory_docs(store: Any, ref: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The documents each path reads, as the in-memory store keeps them (with their etag)."""
    from shared.adapters import documents

    summaries = [{**documents.floor_summary_to_doc(s), "_etag": s.etag}
                 for s in await store.list_floor_summaries(ref)]
    spaces = [{**documents.space_to_doc(s), "_etag": s.etag} for s in await store.list_spaces(ref)]
    return summaries, spaces


async def _timed(samples: list[float], call: Any) -> Any:
    started = time.perf_counter()
    result = await call
    samples.append(time.perf_counter() - started)
    return result


async def _measure(site_data: dict[str, Any], args: argparse.Namespace, stats_ms: Any) -> dict[str, Any]:
    from shared.adapters.memory import InMemoryLiveStateStore, InMemorySiteModelStore
    from shared.domain.site import parse_site_model
    from shared.domain.tenancy import BuildingRef
    from shared.services.queries import QueryService
    from shared.services.sites import SiteDirectory

    site = parse_site_model(site_data)
    ref = BuildingRef(TENANT, site.building_id)
    sites = InMemorySiteModelStore()
    await sites.put(ref, site)
    directory = SiteDirectory(sites)
    store = InMemoryLiveStateStore()
    day = _day(site, args.people, args.calls, args.seed)
    play_s = await _play(store, directory, day)
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
    summary_docs, space_docs = await _memory_docs(store, ref)
    meter = store.meter
    changes = sum(len(c) for c in day)
    return {
        "spaces": len(site.spaces), "floors": len(site.floors), "people": args.people, "trigger_calls": args.calls,
        "occupancy_changes": changes, "spaces_with_a_document": len(space_docs),
        "occupied_now": sum(1 for d in space_docs if d["headcount"]), "play_s": round(play_s, 2),
        "identical_answers": identical,
        "summaries": {"free_rooms": stats_ms(timings["summaries_free"]),
                      "free_rooms_cold_distances": stats_ms(timings["summaries_cold"]),
                      "occupancy": stats_ms(timings["summaries_occupancy"]), "read": _ru(_sizes(summary_docs)),
                      "largest_summary_bytes": max(_sizes(summary_docs))},
        "space_documents": {"free_rooms": stats_ms(timings["space_documents_free"]),
                            "free_rooms_cold_distances": stats_ms(timings["space_documents_cold"]),
                            "occupancy": stats_ms(timings["space_documents_occupancy"]),
                            "read": _ru(_sizes(space_docs))},
        # what keeping the summaries costs the writer: the spaces container's writes of the day, summaries included
        "writer": {"space_writes": meter.writes.get("spaces", 0), "est_ru": round(meter.ru.get("spaces", 0.0), 1),
                   "est_ru_per_change": round(meter.ru.get("spaces", 0.0) / max(1, changes), 2),
                   "without_summaries_space_writes": plain_writes,
                   "without_summaries_est_ru": round(plain_ru, 1)},
    }


async def _cosmos(site_data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The same day's first calls against the Cosmos emulator: the documents each path reads, as Cosmos returns
    them (system properties included)."""
    from devkit.emulators.launcher import cosmos_aio_client, start_cosmos
    from shared.adapters import documents
    from shared.adapters.cosmos import SPACES, ensure_cosmos_schema, query_all
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore
    from shared.adapters.memory import InMemorySiteModelStore
    from shared.domain.site import parse_site_model
    from shared.domain.tenancy import BuildingRef
    from shared.services.queries import QueryService
    from shared.services.sites import SiteDirectory

    site = parse_site_model(site_data)
    ref = BuildingRef(TENANT, site.building_id)
    sites = InMemorySiteModelStore()
    await sites.put(ref, site)
    directory = SiteDirectory(sites)
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
            summary_docs = await query_all(container, f"{base} AND c.kind = '{documents.FLOOR_SUMMARY_KIND}'",
                                           params, partition=ref.key)
            space_docs = await query_all(container, f"{base} AND NOT IS_DEFINED(c.kind)", params,
                                         partition=ref.key)
            writes = store.meter.writes.get("spaces", 0)
            return {"trigger_calls": args.cosmos_calls, "occupancy_changes": sum(len(c) for c in day),
                    "play_s": round(play_s, 2), "spaces_with_a_document": len(space_docs),
                    "free_rooms_over_the_emulator_ms": round(1000 * query_s, 1),
                    "summaries_read": _ru(_sizes(summary_docs)), "space_documents_read": _ru(_sizes(space_docs)),
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
