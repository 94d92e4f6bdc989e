"""`python -m devkit bench scale [--json]`: processor workers side by side, each owning its share of the partitions.

The capacity model (docs/capacity.md) assumes processing scales out linearly: one Event Hub partition is worked by
one instance at a time, instances share nothing but the store, so N instances process N times what one does. This
measures that on this machine. The simulated office traffic of `bench pipeline` (same generator, same ingest event
bodies, same trigger-call grouping, same PipelineService and EventProcessingService setup, imported from
devkit/benchmarks/pipeline.py) is generated once in this process and spread over the partitions the way the
in-process hub spreads it (`InProcessEventPublisher.partition_of`: a stable hash of the device id). Then, for each
worker count, that many processes (spawned, not threads: each has its own interpreter and GIL, like a Functions
instance) each take a disjoint set of partitions, round robin as the Event Hubs trigger's load balancer spreads
partitions over instances, and process their calls in time order. Measured per run:
- `per_worker_sightings_per_s`: each worker's sightings over its own processing seconds;
- `per_worker_sightings_per_cpu_s`: the same over the CPU seconds it got (what a worker does with one whole core;
  the figure the capacity model uses, less sensitive to other load on the machine);
- `total_sightings_per_s`: all sightings over the span from the first worker's start to the last one's end;
- `scaling_efficiency`: total over (workers x the one-worker rate): 1.0 is linear;
- `cpu_scaling_efficiency`: the mean per-worker rate per CPU second over the one-worker one: 1.0 means the workers
  do not slow each other down (nothing shared), so N instances with a core each do N times one instance's work;
  `per_worker_core_share` says how much of a core each worker got (the rest it waited: other workers, other load);
- `documents_at_end`: count and mean JSON size of the documents each container holds after the 1-worker run (the
  `spaces` container also holds the outbox of space events), and `max_rss_mb` of each worker: the storage and
  memory inputs of the capacity model;
- `ingest`: CPU per `POST /api/v1/sightings` of an office batch through the FastAPI app in this process (in-memory
  stores, events recorded), the HTTP client's own share measured on a bare app and taken off: the route's cost
  without the Functions host, TLS or the Event Hubs send (a lower bound for the model's ingest instances).
Every worker uses its own in-memory live-state store: the Cosmos emulator is one local Node process and cannot
show how Cosmos DB scales (and workers of one building share its space documents there, which this does not
measure). BLAS is held to one thread per worker so that one worker is one core. With more workers than cores the
workers take turns on the cores: the per-worker rate must then drop and the total cannot grow beyond about
cores x the one-worker rate; the output says how many cores there are and flags those runs.
Event generation and the handing of events to the workers are not timed.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from shared.domain.ports import InboundEvent
    from shared.domain.site import SiteModel

# BLAS libraries read these when numpy loads: one thread each, so a worker process uses one core.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
START_TIMEOUT_S = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phones", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=12.0, help="simulated minutes of traffic")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workers", type=_worker_counts, default=[1, 2, 4],
                        help="worker counts to run, comma-separated (default 1,2,4)")
    parser.add_argument("--partitions", type=int, default=8,
                        help="hub partitions (default 8: the in-process hub's and the Bicep's default)")
    parser.add_argument("--ingest-requests", type=int, default=2000,
                        help="POSTs of office batches timed through the HTTP app in process (0 skips)")


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not counts or any(count < 1 or count > 64 for count in counts):
        raise argparse.ArgumentTypeError("worker counts must be 1 to 64")
    return sorted(set(counts))


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def assign_partitions(partitions: int, workers: int) -> list[list[int]]:
    """Partitions of each worker: round robin, so counts differ by at most one (the trigger's balanced share)."""
    if workers < 1 or workers > partitions:
        raise ValueError(f"{workers} workers cannot each own one of {partitions} partitions")
    return [list(range(worker, partitions, workers)) for worker in range(workers)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    from devkit.benchmarks.pipeline import _events, _trigger_calls
    from devkit.office import OfficeDay
    from shared.adapters.inprocess_events import InProcessEventPublisher
    from shared.domain.ingest_event import decode_ingest_event

    if args.phones < 1 or args.minutes <= 0 or args.partitions < 1 or args.ingest_requests < 0:
        raise SystemExit("--phones and --partitions must be at least 1, --minutes positive, "
                         "--ingest-requests 0 or more")
    too_many = [count for count in args.workers if count > args.partitions]
    if too_many:
        raise SystemExit(f"--workers {too_many[0]} is more than --partitions {args.partitions}: "
                         "a partition is worked by one instance at a time")
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    generated = time.perf_counter()
    day = OfficeDay(people=args.phones, minutes=args.minutes, seed=args.seed, floors=3)
    cutoff = day.window_s - min(0.12 * day.window_s, 1200.0) - 120.0  # as bench pipeline: people still in rooms
    bodies = _events(day, cutoff)
    calls = _trigger_calls(bodies, partitions=args.partitions)
    generate_s = time.perf_counter() - generated

    # The in-process hub's partitioning decides who owns what; the trigger-call grouping must agree with it.
    async def _unused(*_args: Any) -> None:
        return None

    hub = InProcessEventPublisher(_unused, partition_count=args.partitions)
    sightings_in = {body: len(decode_ingest_event(body).parsed.batch.sightings) for _d, body, _r in bodies}
    per_partition_sightings = [0] * args.partitions
    for call in calls:
        for event in call:
            partition = hub.partition_of(event.partition_key or "")
            if str(partition) != event.partition_id:
                raise RuntimeError(f"event of {event.partition_key} grouped on partition {event.partition_id}, "
                                   f"the in-process hub puts it on {partition}")
            per_partition_sightings[partition] += sightings_in[event.body]
    sightings = sum(per_partition_sightings)
    last_event = day.at(cutoff)
    cores = usable_cores()

    runs = [_run_workers(count, calls, args.partitions, day.site, last_event) for count in args.workers]
    ingest = asyncio.run(_ingest_cost(args.ingest_requests, args.seed)) if args.ingest_requests > 0 else None
    base = _one_worker_rate(runs)
    base_cpu = min(runs, key=lambda r: r["workers"])["mean_per_worker_sightings_per_cpu_s"] or 1
    for result in runs:
        result["scaling_efficiency"] = round(result["total_sightings_per_s"] / (result["workers"] * base), 3)
        # per CPU second: what each worker does with a core of its own, against the smallest run's
        result["cpu_scaling_efficiency"] = round(result["mean_per_worker_sightings_per_cpu_s"] / base_cpu, 3)
        result["sightings_processed"] = sum(w["sightings"] for w in result["per_worker"])
        result["exactly_once"] = (result["sightings_processed"] == sightings and result["devices_overlap"] == 0
                                  and all(w["duplicates"] == 0 for w in result["per_worker"]))
    mean = sightings / args.partitions
    return {
        "phones": args.phones, "simulated_minutes": round(cutoff / 60, 1), "batches": len(bodies),
        "sightings": sightings, "sightings_per_batch": round(sightings / max(1, len(bodies)), 1),
        "event_body_bytes_mean": round(sum(len(body) for _d, body, _r in bodies) / max(1, len(bodies))),
        "partitions": args.partitions, "trigger_calls": len(calls),
        "partition_sightings": per_partition_sightings,
        "partition_imbalance": round(max(per_partition_sightings) / mean, 3) if mean else None,
        "cpu_count": os.cpu_count(), "usable_cores": cores,
        "load_average_1m_at_start": round(load_at_start, 2) if load_at_start is not None else None,
        "blas_threads_per_worker": 1,
        "store": "in-memory live-state store per worker (the Cosmos emulator cannot show Cosmos DB scaling)",
        "note": (f"{cores} usable cores: up to {cores} workers each get a core; beyond that they take turns, so the "
                 f"per-worker rate must drop and the total stays near {cores} x the one-worker rate (runs flagged "
                 "workers_exceed_cores). Other load on the machine lowers per-worker rates too: compare "
                 "per_worker_sightings_per_cpu_s."),
        "generate_s": round(generate_s, 1),
        "documents_at_end": runs[0]["documents"],
        "ingest": ingest,
        "runs": runs,
    }


def _one_worker_rate(runs: list[dict[str, Any]]) -> float:
    """The rate one worker reaches alone: the 1-worker run, else the smallest run's mean per worker."""
    smallest = min(runs, key=lambda r: r["workers"])
    if smallest["workers"] == 1:
        return float(smallest["total_sightings_per_s"]) or 1.0
    rates = [w["sightings_per_s"] for w in smallest["per_worker"]]
    return (sum(rates) / len(rates)) or 1.0


def _run_workers(count: int, calls: list[list[InboundEvent]], partitions: int, site: SiteModel,
                 last_event: Any) -> dict[str, Any]:
    import multiprocessing
    import queue as queue_module

    context = multiprocessing.get_context("spawn")
    owned = assign_partitions(partitions, count)
    barrier = context.Barrier(count)
    results: Queue[dict[str, Any]] = context.Queue()
    processes = []
    saved = {name: os.environ.get(name) for name in ONE_THREAD}
    os.environ.update(ONE_THREAD)  # a spawned child starts with the parent's environment as it is now
    try:
        for worker, mine in enumerate(owned):
            mine_set = {str(p) for p in mine}
            worker_calls = [call for call in calls if call[0].partition_id in mine_set]
            process = context.Process(target=_worker_main, name=f"bench-scale-{count}-{worker}",
                                      args=(worker, mine, worker_calls, site, last_event, barrier, results))
            process.start()
            processes.append(process)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    per_worker: list[dict[str, Any]] = []
    try:
        for _ in processes:
            per_worker.append(results.get(timeout=START_TIMEOUT_S + 600))
    except queue_module.Empty:
        raise RuntimeError(f"a worker of the {count}-worker run sent no result") from None
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
    failed = [w for w in per_worker if "error" in w]
    if failed:
        raise RuntimeError(f"worker {failed[0]['worker']} of the {count}-worker run failed: {failed[0]['error']}")
    per_worker.sort(key=lambda w: w["worker"])
    span = max(w["end"] for w in per_worker) - min(w["start"] for w in per_worker)
    devices = [set(w.pop("device_ids")) for w in per_worker]
    documents: dict[str, list[int]] = {}
    for w in per_worker:
        for container, (docs, size) in w.pop("document_sizes").items():
            documents.setdefault(container, [0, 0])
            documents[container][0] += docs
            documents[container][1] += size
    union: set[str] = set().union(*devices)
    rates = [w["sightings_per_s"] for w in per_worker]
    for w in per_worker:
        del w["start"], w["end"]
    total = sum(w["sightings"] for w in per_worker)
    return {
        "workers": count, "workers_exceed_cores": count > usable_cores(),
        "total_sightings_per_s": round(total / span) if span > 0 else None,
        "wall_s": round(span, 2),
        "per_worker_sightings_per_s": rates,
        "mean_per_worker_sightings_per_s": round(sum(rates) / len(rates)),
        "per_worker_sightings_per_cpu_s": [w["sightings_per_cpu_s"] for w in per_worker],
        "mean_per_worker_sightings_per_cpu_s": round(sum(w["sightings_per_cpu_s"] for w in per_worker) / count),
        # the share of a core each worker got while it ran: below 1 it waited for a core (other workers, other load)
        "per_worker_core_share": [round(w["cpu_s"] / w["processing_s"], 2) if w["processing_s"] else None
                                  for w in per_worker],
        "devices_overlap": sum(len(d) for d in devices) - len(union),
        "documents": {c: {"count": n, "bytes_mean": round(b / n) if n else 0} for c, (n, b) in sorted(documents.items())},
        "per_worker": per_worker,
    }


def _worker_main(worker: int, partitions: list[int], calls: list[list[InboundEvent]], site: SiteModel,
                 last_event: Any, barrier: Barrier, results: Queue[dict[str, Any]]) -> None:
    """One worker process: its own pipeline and in-memory store over its partitions' calls, in time order."""
    try:
        results.put(_worker(worker, partitions, calls, site, last_event, barrier))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which fails the run with it
        barrier.abort()  # the others stop waiting for this one at the start line
        results.put({"worker": worker, "error": f"{type(error).__name__}: {error}"})


def _worker(worker: int, partitions: list[int], calls: list[list[InboundEvent]], site: SiteModel,
            last_event: Any, barrier: Barrier) -> dict[str, Any]:
    import asyncio
    import inspect
    import json
    import resource

    # imported before the start line so that no worker times its imports
    from devkit.benchmarks.pipeline import TENANT, _process_all
    from shared.adapters.memory import InMemoryLiveStateStore
    from shared.domain.tenancy import BuildingRef
    from shared.runtime import configure_worker_gc

    configure_worker_gc()  # a spawned worker starts with the collector's defaults: set up as a Functions worker's

    # bench pipeline's services take a clock today; once they run on its simulated clock by themselves (issue #15)
    # they take none: pass one only where it is asked for, so this keeps running the pipeline bench's way
    wants_clock = "clock" in inspect.signature(_process_all).parameters

    async def process(batch: list[list[InboundEvent]], store: InMemoryLiveStateStore) -> tuple[float, Any, float]:
        extra: dict[str, Any] = {"clock": lambda: last_event} if wants_clock else {}
        return await _process_all(batch, site, store, **extra)

    async def work() -> dict[str, Any]:
        # _process_all builds its services and the site index before it starts its clock; CPU time cannot be
        # split that way from outside, so the setup's CPU is measured on an empty run (the second: the first
        # pays one-time costs) and taken off.
        setup_cpu = 0.0
        for _ in range(2):
            cpu = time.process_time()
            await process([], InMemoryLiveStateStore())
            setup_cpu = time.process_time() - cpu
        store = InMemoryLiveStateStore()
        barrier.wait(timeout=START_TIMEOUT_S)  # every worker starts together
        cpu = time.process_time()
        elapsed, pipeline, positioning_s = await process(calls, store)
        end = time.perf_counter()
        cpu_s = max(time.process_time() - cpu - setup_cpu, 1e-6)
        devices = await store.list_devices(BuildingRef(TENANT, site.building_id))
        stats = pipeline.stats
        # the documents as the Cosmos store writes them (without Cosmos' ~200 B of system properties):
        # what docs/capacity.md's storage figures start from
        sizes = {container: [len(docs), sum(len(json.dumps(d, separators=(",", ":"))) for d in docs.values())]
                 for container, docs in store._docs.items()}
        return {
            "worker": worker, "partitions": partitions, "events": sum(len(call) for call in calls),
            "sightings": stats.sightings, "duplicates": stats.duplicates,
            "sightings_per_s": round(stats.sightings / elapsed) if elapsed > 0 else None,
            "sightings_per_cpu_s": round(stats.sightings / cpu_s) if cpu_s > 0 else None,
            "processing_s": round(elapsed, 2), "cpu_s": round(cpu_s, 2), "positioning_s": round(positioning_s, 2),
            "device_ids": sorted(device.device_id for device in devices), "document_sizes": sizes,
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # Linux: KB
            "start": end - elapsed, "end": end,
        }

    return asyncio.run(work())


async def _ingest_cost(requests: int, seed: int) -> dict[str, Any]:
    """CPU per `POST /api/v1/sightings` through the FastAPI app in this process (in-memory context, events recorded,
    not delivered): the ingest route's own cost without the Functions host, the network or TLS, so a lower bound.
    The HTTP client's share is measured on an app that answers 202 at once and taken off."""
    import json
    from datetime import UTC, datetime, timedelta

    import httpx

    from devkit.benchmarks.pipeline import TENANT
    from devkit.local_settings import load_local_settings
    from devkit.office import OfficeDay
    from functions.http_api import create_api
    from shared.domain.tenancy import BuildingRef, Scope
    from shared.settings import load_settings
    from shared.wiring import build_in_memory_context, set_context

    # a fresh morning (ingest refuses readings older than 24 h), enough phones for the requests
    day = OfficeDay(people=max(20, requests // 150), minutes=30.0, seed=seed, floors=3,
                    start=datetime.now(UTC) - timedelta(minutes=31))
    warm_up = min(50, requests)
    bodies: list[bytes] = []
    for batch in day.batches():
        bodies.append(json.dumps(batch.body).encode())
        if len(bodies) == requests + warm_up:
            break

    async def accepted(scope: dict[str, Any], receive: Any, send: Any) -> None:  # the client's share alone
        await receive()
        await send({"type": "http.response.start", "status": 202,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"accepted":24}'})

    context = build_in_memory_context(load_settings(load_local_settings()))
    set_context(context)
    try:
        await context.site_models.put(BuildingRef(TENANT, day.site.building_id), day.site)
        key, _ = await context.auth.mint_key(TENANT, {Scope.ingest}, "bench-scale")
        headers = {"x-api-key": key, "content-type": "application/json"}
        timings: dict[str, tuple[float, float, list[int]]] = {}
        apps: list[tuple[str, Any]] = [("client", accepted), ("app", create_api())]
        for name, app in apps:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
                for body in bodies[:warm_up]:
                    await http.post("/api/v1/sightings", content=body, headers=headers)
                statuses = []
                cpu, wall = time.process_time(), time.perf_counter()
                for body in bodies[warm_up:]:
                    statuses.append((await http.post("/api/v1/sightings", content=body, headers=headers)).status_code)
                timings[name] = (time.process_time() - cpu, time.perf_counter() - wall, statuses)
    finally:
        set_context(None)
    measured = len(bodies) - warm_up
    app_cpu, app_wall, statuses = timings["app"]
    client_cpu = timings["client"][0]
    if any(status != 202 for status in statuses):
        raise RuntimeError(f"ingest answered {sorted(set(statuses))}, expected 202 for every batch")
    route_cpu = max(app_cpu - client_cpu, 1e-9)
    return {
        "requests": measured, "sightings_per_request": round(
            sum(len(json.loads(b)["sightings"]) for b in bodies[warm_up:]) / max(1, measured), 1),
        "cpu_ms_per_request": round(1000 * route_cpu / max(1, measured), 3),
        "requests_per_cpu_s": round(measured / route_cpu),
        "client_cpu_ms_per_request": round(1000 * client_cpu / max(1, measured), 3),
        "wall_ms_per_request": round(1000 * app_wall / max(1, measured), 3),
    }
