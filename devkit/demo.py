"""`python -m devkit demo` (what `make demo` runs): the whole system on a simulated office.

Emulators, the app on loopback with in-process Event Hubs and the presence sweep, and a simulated building whose
people arrive, sit at desks, meet, lunch and leave while their phones post real HTTP batches. A live console
shows per-floor headcount, free meeting rooms, ingest rate, processing lag and agreement with the simulator's
ground truth. The app runs on a simulated clock `--speed` times faster than real time.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from devkit.emulators.launcher import LOOPBACK, EmulatorStartError, running_emulators
from devkit.local_settings import blob_port, cosmos_port, devkit_environment, local_settings
from shared.domain.tenancy import BuildingRef

if TYPE_CHECKING:
    import httpx
    from rich.console import Group

    from devkit.office import OfficeDay
    from shared.wiring import AppContext

logger = logging.getLogger("devkit.demo")
TENANT = "demo-tenant"
SWEEP_EVERY_S = 30.0
SAMPLE_EVERY_S = 20.0
DRAIN_TIMEOUT_S = 60.0  # real seconds the summary waits for the hub to hand over what it holds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=60, help="people in the building (default 60)")
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated minutes (default 60)")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated seconds per real second (default 10)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--floors", type=int, default=3)
    parser.add_argument("--port", type=int, default=7071, help="HTTP port of the app on 127.0.0.1")
    parser.add_argument("--azurite-port", type=int)
    parser.add_argument("--cosmos-port", type=int)
    parser.add_argument("--check", action="store_true",
                        help="exit when the day is over: 0 when room accuracy is at least 90%%, else 1")


class SimClock:
    """Simulated UTC time: starts at `start` and runs `speed` times faster than the monotonic clock."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start = start
        self.speed = speed
        self._t0 = time.monotonic()

    def elapsed_s(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed_s())

    async def sleep_until(self, sim_second: float) -> None:
        delay = (sim_second - self.elapsed_s()) / self.speed
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class DemoStats:
    posted: int = 0
    accepted_sightings: int = 0
    errors: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    latencies_ms: list[float] = field(default_factory=list)
    samples: int = 0
    hits: int = 0
    rate_window: list[tuple[float, int]] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return self.hits / self.samples if self.samples else None


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.people < 1 or args.minutes <= 0 or args.speed <= 0:
        print("demo: --people, --minutes and --speed must be positive", file=sys.stderr)
        return 2
    values = local_settings()  # the environment over local.settings.json
    try:
        with running_emulators(args.azurite_port or blob_port(values), args.cosmos_port or cosmos_port(values)) as (
            azurite, cosmos,
        ):
            print(f"emulators ready: azurite :{azurite.port} ({azurite.started_in_s:.2f} s), "
                  f"cosmos :{cosmos.port} ({cosmos.started_in_s:.2f} s)", flush=True)
            os.environ.update(devkit_environment(values, azurite.port, cosmos.port))
            try:
                return asyncio.run(_demo(args))
            except KeyboardInterrupt:
                print("\nstopped", flush=True)
                return 130
    except EmulatorStartError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


async def _demo(args: argparse.Namespace) -> int:
    import httpx
    import uvicorn

    from devkit.demo_rollups import around_the_clock, roll_simulated_hours
    from devkit.office import OfficeDay
    from functions.http_api import create_api
    from shared.adapters.inprocess_events import InProcessEventPublisher
    from shared.domain.tenancy import Scope
    from shared.services import ScheduledJobs
    from shared.settings import load_settings
    from shared.wiring import build_context, set_context

    start = datetime.now(UTC).replace(microsecond=0)
    day = OfficeDay(people=args.people, minutes=args.minutes, seed=args.seed, floors=args.floors, start=start)
    clock = SimClock(start, args.speed)
    context = await build_context(load_settings(), clock=clock.now)
    set_context(context)
    server = uvicorn.Server(uvicorn.Config(create_api(), host=LOOPBACK, port=args.port, log_level="warning"))
    server_task = asyncio.create_task(server.serve())
    tasks: list[asyncio.Task[None]] = []
    try:
        await context.site_models.put(BuildingRef(TENANT, day.site.building_id), around_the_clock(day.site))
        ingest_key, _ = await context.auth.mint_key(TENANT, {Scope.ingest}, "demo phones")
        read_key, _ = await context.auth.mint_key(TENANT, {Scope.read}, "demo reader")
        while not server.started:
            await asyncio.sleep(0.05)
        print(f"spaceflow is serving on http://{LOOPBACK}:{args.port} (docs: /api/docs, health: /api/health)\n"
              f"demo tenant '{TENANT}', building '{day.site.building_id}': {len(day.site.floors)} floors, "
              f"{len(day.site.spaces)} spaces, {len(day.site.beacons)} beacons\n"
              f"keys: ingest {ingest_key}\n      read   {read_key}\n"
              f"simulating {args.people} people for {args.minutes:g} minutes at {args.speed:g}x "
              f"(about {args.minutes * 60 / args.speed:.0f} s); Ctrl-C stops everything", flush=True)
        stats = DemoStats()
        async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{args.port}", timeout=30,
                                     limits=httpx.Limits(max_connections=32)) as http:
            phones = asyncio.create_task(_post_batches(day, clock, http, ingest_key, stats))
            sweeper = asyncio.create_task(_sweep(context, clock, ScheduledJobs.PRESENCE_SWEEP))
            sampler = asyncio.create_task(_sample(day, clock, context, stats))
            view = asyncio.create_task(_show(day, clock, context, stats, args))
            tasks = [phones, sweeper, sampler, view]
            await phones
            await clock.sleep_until(day.window_s + SAMPLE_EVERY_S)
            # Let the hub hand over what it still holds (a busy machine lags; a failed delivery waits for its retry)
            # so the summary counts every posted batch that was processed. The demo's hub is the in-process one
            # (devkit_environment sets EVENT_PUBLISHER=inprocess).
            if isinstance(context.publisher, InProcessEventPublisher):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(context.publisher.drain(), DRAIN_TIMEOUT_S)
        for line in await roll_simulated_hours(context, TENANT, day.site.building_id, start, clock.now(), read_key,
                                               args.port):
            print(line, flush=True)
        summary = _summary(day, context, stats, args)
        print(json.dumps(summary), flush=True)
        if args.check:
            return 0 if (summary["room_accuracy"] or 0) >= 0.90 else 1
        print("the simulated day is over; the app keeps serving until Ctrl-C", flush=True)
        await server_task
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.should_exit = True
        await asyncio.gather(server_task, return_exceptions=True)
        await context.close()
        set_context(None)


async def _post_batches(day: OfficeDay, clock: SimClock, http: httpx.AsyncClient, key: str, stats: DemoStats) -> None:
    """Every phone's batches at their simulated send time, over real HTTP."""
    import httpx

    inflight = asyncio.Semaphore(64)

    async def post(body: dict[str, Any]) -> None:
        async with inflight:
            started = time.perf_counter()
            for _attempt in range(5):
                try:
                    response = await http.post("/api/v1/sightings", json=body, headers={"x-api-key": key})
                except httpx.HTTPError:  # connection trouble counts as an error and is retried like the SDK does
                    stats.errors[0] += 1
                    await asyncio.sleep(0.5)
                    continue
                if response.status_code == 202:
                    stats.accepted_sightings += response.json()["accepted"]
                    break
                stats.errors[response.status_code] += 1
                if response.status_code not in (429, 503):
                    break
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            stats.posted += 1
            stats.rate_window.append((time.monotonic(), len(body["sightings"])))

    pending: set[asyncio.Task[None]] = set()
    for batch in day.batches():
        await clock.sleep_until(batch.sent_s)
        task = asyncio.create_task(post(batch.body))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)


async def _sweep(context: AppContext, clock: SimClock, job: str) -> None:
    """The presence sweep on the simulated clock (the Functions timer runs it on the wall clock in Azure)."""
    second = SWEEP_EVERY_S
    while True:
        await clock.sleep_until(second)
        try:
            await context.scheduled.run(job, clock.now())
        except Exception:
            logger.exception("presence sweep failed")
        second += SWEEP_EVERY_S


async def _sample(day: OfficeDay, clock: SimClock, context: AppContext, stats: DemoStats) -> None:
    """Room accuracy: each phone settled in a room (per the simulator) against the room the system reports."""
    second = SAMPLE_EVERY_S
    while True:
        await clock.sleep_until(second)
        truth = day.settled(second)
        if truth:
            building = BuildingRef(TENANT, day.site.building_id)
            devices = {d.device_id: d.space_id for d in await context.live_state.list_devices(building)}
            hits = sum(devices.get(device) == room for device, room in truth.items())
            stats.samples += len(truth)
            stats.hits += hits
        second += SAMPLE_EVERY_S


async def _snapshot(day: OfficeDay, clock: SimClock, context: AppContext) -> dict[str, Any]:
    spaces = {s.space_id: s for s in await context.live_state.list_spaces(BuildingRef(TENANT, day.site.building_id))}
    truth = day.occupancy(clock.elapsed_s())
    floors: list[dict[str, Any]] = []
    meeting_rooms = [s for s in day.site.spaces if s.kind.value in ("conferenceroom", "huddleroom")]
    for floor in sorted(day.site.floors, key=lambda f: f.ordinal):
        on_floor = [s.id for s in day.site.spaces if s.floor == floor.id]
        floors.append({
            "floor": floor.name or floor.id,
            "headcount": sum(spaces[s].headcount for s in on_floor if s in spaces),
            "truth": sum(truth.get(s, 0) for s in on_floor),
            "free_meeting_rooms": sum(1 for s in meeting_rooms if s.floor == floor.id
                                      and (s.id not in spaces or spaces[s.id].status == "free")),
            "meeting_rooms": sum(1 for s in meeting_rooms if s.floor == floor.id),
        })
    return {"floors": floors}


async def _show(day: OfficeDay, clock: SimClock, context: AppContext, stats: DemoStats,
                args: argparse.Namespace) -> None:
    interactive = sys.stdout.isatty()
    if interactive:
        from rich.live import Live

        with Live(refresh_per_second=2, transient=False) as live:
            while True:
                live.update(_render(await _snapshot(day, clock, context), day, clock, context, stats))
                await asyncio.sleep(0.5)
    else:
        while True:
            await asyncio.sleep(10)
            snap = await _snapshot(day, clock, context)
            line = ", ".join(f"{f['floor']}: {f['headcount']} (truth {f['truth']})" for f in snap["floors"])
            accuracy = f"{stats.accuracy:.1%}" if stats.accuracy is not None else "n/a"
            print(f"[sim {clock.elapsed_s() / 60:5.1f} min] {line}; posted {stats.posted}; "
                  f"room accuracy {accuracy}", flush=True)


def _render(snapshot: dict[str, Any], day: OfficeDay, clock: SimClock, context: AppContext,
            stats: DemoStats) -> Group:
    from rich.console import Group
    from rich.table import Table

    now = time.monotonic()
    stats.rate_window = [(t, n) for t, n in stats.rate_window if now - t < 5]
    rate = len(stats.rate_window) / 5
    sight_rate = sum(n for _, n in stats.rate_window) / 5
    table = Table(title=f"spaceflow demo: {day.site.name}, simulated {clock.now():%H:%M:%S} UTC "
                        f"({clock.elapsed_s() / 60:.1f} of {day.minutes:g} min)")
    for column in ("floor", "headcount", "simulator truth", "free meeting rooms"):
        table.add_column(column, justify="right" if column != "floor" else "left")
    for floor in snapshot["floors"]:
        table.add_row(floor["floor"], str(floor["headcount"]), str(floor["truth"]),
                      f"{floor['free_meeting_rooms']} / {floor['meeting_rooms']}")
    info = Table.grid(padding=(0, 2))
    lat = sorted(stats.latencies_ms[-500:])
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else 0.0
    backlog = context.publisher.backlog() if hasattr(context.publisher, "backlog") else 0
    accuracy = f"{stats.accuracy:.1%}" if stats.accuracy is not None else "n/a"
    info.add_row("ingest", f"{rate:.1f} batches/s, {sight_rate:.0f} sightings/s, p95 {p95:.0f} ms, "
                           f"errors {sum(stats.errors.values())}")
    info.add_row("processing", f"lag {context.processing.last_lag_s / clock.speed:.2f} s real "
                               f"({context.processing.last_lag_s:.1f} s simulated), backlog {backlog} events")
    info.add_row("agreement", f"room accuracy {accuracy} over {stats.samples} samples "
                              f"(phones settled in a room for 60 s or more)")
    return Group(table, info)


def _summary(day: OfficeDay, context: AppContext, stats: DemoStats, args: argparse.Namespace) -> dict[str, Any]:
    lat = sorted(stats.latencies_ms)
    return {
        "people": args.people, "minutes": args.minutes, "speed": args.speed, "seed": args.seed,
        "batches_posted": stats.posted, "sightings_accepted": stats.accepted_sightings,
        "http_errors": dict(stats.errors),
        "post_p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
        "post_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
        "room_accuracy": round(stats.accuracy, 4) if stats.accuracy is not None else None,
        "accuracy_samples": stats.samples,
        "pipeline": vars(context.pipeline.stats),
    }
