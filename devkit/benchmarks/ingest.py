"""`python -m devkit bench ingest [--json]`: simulated phones posting over real HTTP to a local server.

The server (`python -m devkit serve --attach`, its own process) runs against emulators this benchmark starts;
the load stays on loopback and is bounded in count and time. After a warm-up (a few batches, processed: the
first event of a building builds its site index), three phases:
1. ramp: open-loop rates growing by half from `--start-rps` until a step sheds more than 1 % or its p95 passes
   500 ms; the sustainable rate is 80 % of the last rate that passed;
2. sustainable: open loop at that rate, while probes measure freshness: from a new phone's POST to its floor
   and room in Cosmos (what the queries read);
3. overload: open loop at twice the sustainable rate: the server must shed with 429/503 + Retry-After, never 500,
   and the requests it accepts must stay fast (`overload_accepted_p99_ms`: under 1,000 ms is the goal);
then every accepted batch must be processed (the server's /api/ops/stats counts the batches processed).
Phones post their own batches in order (the office simulator's day, replayed); each freshness probe is a new
phone, so its first batch must appear as a device document with its room.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from shared.domain.tenancy import BuildingRef

if TYPE_CHECKING:
    import httpx
    from azure.cosmos.aio import ContainerProxy

    from devkit.loadclient import LoadClient
    from devkit.office import OfficeDay
    from shared.domain.site import SiteModel

TENANT = "bench-ingest"

Request = tuple[str, bytes]  # (batch id, the pre-serialised POST)
Result = tuple[int, float, bool]  # (status, 0 when the request failed; seconds; whether Retry-After came)
Post = Callable[[Request, "LoadClient"], Awaitable[Result]]


class LoadStats(TypedDict):
    """One open-loop phase, as the client saw it."""

    offered_rps: float
    requests: int
    accepted_rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    accepted_p50_ms: float | None
    accepted_p99_ms: float | None
    accepted_max_ms: float | None
    shed_p99_ms: float | None
    accepted: int
    shed_429_503: int
    shed_with_retry_after: int
    status_500: int
    other: dict[str, int]  # status -> count, for the statuses not counted above


class RampStep(TypedDict):
    offered_rps: float
    accepted_rps: float
    p95_ms: float | None
    shed_429_503: int
    status_500: int


class IngestSummary(TypedDict):
    phase_seconds: float
    sightings_per_batch: float
    ramp: list[RampStep]
    last_passing_rps: float
    sustainable_rps: float
    sustainable: LoadStats
    freshness_p50_s: float | None
    freshness_p95_s: float | None
    freshness_probes: int
    overload: LoadStats
    overload_accepted_p99_ms: float | None
    accepted_total: int
    processed_total: int
    all_accepted_processed: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start-rps", type=float, default=100.0, help="first rate of the ramp")
    parser.add_argument("--max-rps", type=float, default=3200.0, help="the ramp stops here at the latest")
    parser.add_argument("--ramp-seconds", type=float, default=4.0, help="length of each ramp step")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the sustainable and overload phases")
    parser.add_argument("--probes", type=int, default=20, help="freshness probes during the sustainable phase")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--people", type=int, default=300, help="phones of the simulated office whose day is replayed")


def run(args: argparse.Namespace) -> IngestSummary:
    return asyncio.run(_run(args))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Served:
    """`devkit serve --attach` on a free loopback port, against emulators this process started."""

    http: httpx.AsyncClient  # on the server
    port: int
    key: str  # an ingest key of TENANT
    admin_key: str
    devices: ContainerProxy  # the Cosmos `devices` container
    database: Any  # the Cosmos database the server uses


@asynccontextmanager
async def serving(site: SiteModel | None, *, server_args: tuple[str, ...] = ()) -> AsyncIterator[Served]:
    """Emulators, the site (if any) and an ingest key in Cosmos, and the app serving in its own process; stopped
    after."""
    import os
    import subprocess
    import sys
    import tempfile

    import httpx
    from azure.storage.blob.aio import BlobServiceClient

    from devkit.emulators.launcher import REPO_ROOT, cosmos_aio_client, free_port, running_emulators
    from devkit.local_settings import devkit_environment, load_local_settings
    from shared.adapters.blob import AzureBlobStore, ensure_blob_containers
    from shared.adapters.cosmos import DEVICES, CosmosApiKeyStore, CosmosSiteModelStore, ensure_cosmos_schema
    from shared.domain.tenancy import Scope
    from shared.services.auth import AuthService

    with running_emulators() as (azurite, cosmos):
        env = devkit_environment(load_local_settings(), azurite.port, cosmos.port)
        async with cosmos_aio_client(cosmos.port) as client:
            database = await ensure_cosmos_schema(client, env["COSMOS_DATABASE"])
            # The site as the app keeps it: the model in Blob storage, its version in Cosmos (any size of model).
            if site is not None:
                sites_container = env.get("SITES_CONTAINER", "sites")
                async with BlobServiceClient.from_connection_string(env["ANALYTICS_STORAGE"]) as blob_service:
                    await ensure_blob_containers(blob_service, [sites_container])
                    store = CosmosSiteModelStore(database, blobs=AzureBlobStore(blob_service),
                                                 blob_container=sites_container)
                    await store.put(BuildingRef(TENANT, site.building_id), site)
            key, _ = await AuthService(CosmosApiKeyStore(database)).mint_key(TENANT, {Scope.ingest}, "bench")
            port = free_port()
            with tempfile.NamedTemporaryFile(prefix="bench-ingest-server-", suffix=".log", delete=False) as log:
                server = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "devkit", "serve", "--attach", "--port", str(port), *server_args,
                    cwd=REPO_ROOT, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                                 limits=httpx.Limits(max_connections=64)) as http:
                        await _wait_ready(http, server, log.name)
                        yield Served(http, port, key, env["ADMIN_API_KEY"], database.get_container_client(DEVICES),
                                     database)
                finally:
                    server.terminate()
                    try:
                        await asyncio.wait_for(server.wait(), timeout=20)
                    except TimeoutError:
                        server.kill()
                        await server.wait()


def office_day(args: argparse.Namespace) -> OfficeDay:
    """The simulated office whose morning the phones replay (the last half hour, so every batch is fresh)."""
    from datetime import UTC, datetime, timedelta

    from devkit.office import OfficeDay

    window_min = 30.0
    return OfficeDay(people=args.people, minutes=window_min, seed=args.seed, floors=3,
                     start=datetime.now(UTC) - timedelta(minutes=window_min + 1))


async def _run(args: argparse.Namespace) -> IngestSummary:
    day = office_day(args)
    bodies = [b.body for b in day.batches()]
    if not bodies:
        raise RuntimeError("the office simulator produced no batches")
    async with serving(day.site) as served:
        return await _measure(args, served.http, served.port, served.key, served.admin_key, bodies, day, served.devices)


async def _wait_ready(http: httpx.AsyncClient, server: asyncio.subprocess.Process, log_name: str) -> None:
    from pathlib import Path

    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.returncode is not None:
            raise RuntimeError(f"the server exited; its log: {Path(log_name).read_text()[-2000:]}")
        try:
            if (await http.get("/api/health")).status_code == 200:
                return
        except httpx.TransportError:  # not listening yet: try again
            await asyncio.sleep(0.2)
            continue
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become healthy in 60 s")


async def _measure(args: argparse.Namespace, http: httpx.AsyncClient, port: int, key: str, admin_key: str,
                   bodies: list[dict[str, Any]], day: OfficeDay, devices: ContainerProxy) -> IngestSummary:
    import json

    from devkit.loadclient import LoadClient

    headers = {"x-api-key": key}
    admin_headers = {"x-api-key": admin_key}
    accepted_ids: set[str] = set()
    # Phones past their arrival (a steady working morning), in send order; serialised before any clock starts,
    # so the client costs as little CPU as possible. Each batch is posted once (retries aside).
    steady = [b for b in bodies if b["sentAt"] >= day.iso(min(0.12 * day.window_s, 1200.0) + 120)]
    queue = [(b["batchId"], LoadClient.request("POST", "/api/v1/sightings", json.dumps(b).encode(), headers))
             for b in steady]
    cursor = 0

    def next_request() -> Request:
        nonlocal cursor
        if cursor >= len(queue):
            raise RuntimeError("the simulated day ran out of batches: raise --people")
        cursor += 1
        return queue[cursor - 1]

    async def post(item: Request, client: LoadClient) -> Result:
        batch_id, raw = item
        started = time.perf_counter()
        try:
            reply = await client.send(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError):  # a failed request, not a crash of the benchmark
            return 0, time.perf_counter() - started, False
        if reply.status == 202:
            accepted_ids.add(batch_id)
        return reply.status, time.perf_counter() - started, reply.retry_after

    # ---- warm-up: a building's first event builds its site index (about a second of CPU, once per instance), ----
    # which would otherwise land in the first step of the ramp and stop it there
    warm_client = LoadClient("127.0.0.1", port, 4)
    for _ in range(5):
        await post(next_request(), warm_client)
    await warm_client.close()
    await _drain(http, admin_headers, len(accepted_ids))

    # ---- phase 1: find the sustainable rate: double an open-loop rate until a step sheds or slows ---------------
    ramp: list[RampStep] = []
    rate, passed_rps = args.start_rps, 0.0
    while rate <= args.max_rps:
        step, _ = await _open_loop(rate, args.ramp_seconds, next_request, post, port)
        await _drain(http, admin_headers, len(accepted_ids))
        ramp.append(RampStep(offered_rps=step["offered_rps"], accepted_rps=step["accepted_rps"],
                             p95_ms=step["p95_ms"], shed_429_503=step["shed_429_503"],
                             status_500=step["status_500"]))
        if step["shed_429_503"] > 0.01 * step["requests"] or (step["p95_ms"] or 0) > 500 or step["status_500"]:
            break
        passed_rps = rate
        rate *= 1.5
    # Headroom below the last step that passed: 'sustainable' is a rate held for minutes, not one that just
    # squeaked through a few seconds.
    sustainable_rps = round(0.8 * passed_rps, 1) if passed_rps else args.start_rps / 2

    # ---- phase 2: the sustainable rate, open loop, with freshness probes ---------------------------------------
    steady_stats, freshness = await _open_loop(
        sustainable_rps, args.seconds, next_request, post, port,
        probes=[_probe(n, args, http, headers, day, devices, accepted_ids) for n in range(args.probes)])
    await _drain(http, admin_headers, len(accepted_ids))

    # ---- phase 3: twice the sustainable rate: shed with 429/503 + Retry-After, never 500 -----------------------
    over, _ = await _open_loop(2 * sustainable_rps, args.seconds, next_request, post, port)

    # ---- every accepted batch is processed ---------------------------------------------------------------------
    await _drain(http, admin_headers, len(accepted_ids), timeout_s=120)
    processed = await _processed(http, admin_headers)
    return {
        "phase_seconds": args.seconds, "sightings_per_batch": round(
            sum(len(b["sightings"]) for b in steady) / len(steady), 1),
        "ramp": ramp, "last_passing_rps": passed_rps, "sustainable_rps": sustainable_rps,
        "sustainable": steady_stats,
        "freshness_p50_s": _round(_percentile(freshness, 0.5)), "freshness_p95_s": _round(_percentile(freshness, 0.95)),
        "freshness_probes": len(freshness),
        "overload": over,
        "overload_accepted_p99_ms": over["accepted_p99_ms"],
        "accepted_total": len(accepted_ids), "processed_total": processed,
        "all_accepted_processed": processed >= len(accepted_ids),
    }


async def _open_loop(rate: float, seconds: float, next_request: Callable[[], Request], post: Post, port: int,
                     probes: Iterable[Coroutine[Any, Any, float | None]] = ()) -> tuple[LoadStats, list[float]]:
    """Requests at `rate` a second whatever the answers (the client may open up to 1,000 connections): the stats,
    and the freshness in seconds of each of the `probes` that saw its batch processed."""
    from devkit.loadclient import LoadClient

    client = LoadClient("127.0.0.1", port, 1000)
    results: list[tuple[int, float, bool]] = []

    async def one(item: Request) -> None:
        results.append(await post(item, client))

    tasks: list[asyncio.Task[None]] = []
    sent = 0
    probe_tasks = [asyncio.create_task(p) for p in probes]
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        due = int((time.monotonic() - began) * rate)
        while sent < due:
            tasks.append(asyncio.create_task(one(next_request())))
            sent += 1
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    freshness = [f for f in await asyncio.gather(*probe_tasks) if f is not None]
    elapsed = time.monotonic() - began
    await client.close()
    statuses: dict[int, int] = {}
    for status, _s, _r in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = [s for _st, s, _r in results]
    accepted = [s for st, s, _r in results if st == 202]
    shed = [r for r in results if r[0] in (429, 503)]
    stats: LoadStats = {
        "offered_rps": round(rate, 1), "requests": sent, "accepted_rps": round(statuses.get(202, 0) / elapsed, 1),
        "p50_ms": _ms(_percentile(latencies, 0.5)), "p95_ms": _ms(_percentile(latencies, 0.95)),
        "p99_ms": _ms(_percentile(latencies, 0.99)),
        # The answers that matter to a phone whose batch was taken: were they fast? (All answers above.)
        "accepted_p50_ms": _ms(_percentile(accepted, 0.5)), "accepted_p99_ms": _ms(_percentile(accepted, 0.99)),
        "accepted_max_ms": _ms(max(accepted, default=None)),
        "shed_p99_ms": _ms(_percentile([s for _st, s, _r in shed], 0.99)),
        "accepted": statuses.get(202, 0), "shed_429_503": len(shed),
        "shed_with_retry_after": sum(1 for r in shed if r[2]),
        "status_500": sum(v for k, v in statuses.items() if k >= 500 and k != 503),
        "other": {str(k): v for k, v in statuses.items() if k not in (202, 429, 503)},
    }
    return stats, freshness


async def _probe(n: int, args: argparse.Namespace, http: httpx.AsyncClient, headers: dict[str, str], day: OfficeDay,
                 devices: ContainerProxy, accepted_ids: set[str]) -> float | None:
    """A new phone posts one batch; seconds until Cosmos shows it with a floor and room (what queries read)."""
    import uuid

    await asyncio.sleep(n * args.seconds / max(1, args.probes))
    in_room = [p for p in day.people if p.stays]
    person = in_room[(n * 7919) % len(in_room)]
    stay = person.stays[0]
    batch = day._batch(person, min(stay.end_s, stay.start_s + 60), 2.0)
    if batch is None:
        return None
    body = dict(batch.body)
    body["batchId"], body["deviceId"] = str(uuid.uuid4()), f"probe-{n:04d}-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    response = await http.post("/api/v1/sightings", json=body, headers=headers)
    if response.status_code != 202:
        return None
    accepted_ids.add(body["batchId"])
    from azure.cosmos.exceptions import CosmosHttpResponseError

    while time.perf_counter() - started < 30:
        doc: dict[str, Any]
        try:
            doc = await devices.read_item(body["deviceId"], partition_key=BuildingRef(TENANT, day.site.building_id).key)
        except CosmosHttpResponseError:  # not there yet
            doc = {}
        if doc.get("floor"):
            return time.perf_counter() - started
        await asyncio.sleep(0.02)
    return None


async def _processed(http: httpx.AsyncClient, admin_headers: dict[str, str]) -> int:
    deadline = time.monotonic() + 30
    while True:
        response = await http.get("/api/ops/stats", headers=admin_headers)
        # An overloaded server sheds this call too: come back when it says, as any client should.
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    response.raise_for_status()
    batches: int = response.json()["pipeline"]["batches"]
    return batches


async def _drain(http: httpx.AsyncClient, admin_headers: dict[str, str], expected: int, timeout_s: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await _processed(http, admin_headers) >= expected:
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
