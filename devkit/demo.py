"""`python -m devkit demo` (what `make demo` runs): the whole system on a simulated office.

Emulators, the app on loopback with in-process Event Hubs and the presence sweep, and a simulated building whose
people arrive, sit at desks, meet, lunch and leave while their phones post real HTTP batches. A live console
shows per-floor headcount, free meeting rooms, ingest rate, processing lag and agreement with the simulator's
ground truth (plain lines every 10 s when stdout is not a terminal). The app runs on a simulated clock `--speed`
times faster than real time.

The first hour: the demo tenant is a real tenant (the bootstrap admin key lists and manages it), with one key per
scope (all four printed), sign-in at the devkit's OpenID Connect issuer, and a share of the simulated people opted
in to the co-worker finder at `space`, `floor` or `building` (each with their own token, `PUT /api/v1/me/sharing`);
the dashboard's URL is printed with the read key in its fragment, and a second one to sign in to it as a person
(`/app/#tenant=demo-tenant`, through the devkit issuer's sign-in page).
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
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from devkit.emulators.launcher import LOOPBACK, EmulatorStartError, free_port, port_in_use, running_emulators
from devkit.local_settings import blob_port, cosmos_port, devkit_environment, local_settings
from devkit.webhook_receiver import Received, WebhookReceiver
from shared.domain.ports import AlreadyExists
from shared.domain.tenancy import BuildingRef

if TYPE_CHECKING:
    import httpx
    from rich.console import Group

    from devkit.demo_calendars import CalendarServer, DemoBooking
    from devkit.office import OfficeDay
    from shared.wiring import AppContext

logger = logging.getLogger("devkit.demo")
TENANT = "demo-tenant"
SWEEP_EVERY_S = 30.0
SAMPLE_EVERY_S = 20.0
HISTORY_DAYS = 28  # four weeks: the dashboard's typical weekday is the mean of the same weekday 1 to 4 weeks back
DRAIN_TIMEOUT_S = 60.0  # real seconds the summary waits for the hub to hand over what it holds
EVENTS_SHOWN = 5  # the console shows the webhook receiver's last events
# Of the simulated people with a user id (the app signs them in), these shares opt in to the co-worker finder at
# each level, in turn; the rest never opt in (the finder answers 404 `not available` for them).
SHARING_LEVELS = ("space", "floor", "building", None)
TITLE_WIDTH = 100  # the console's title line is cut, never wrapped, at this many columns
FREE_FOR = timedelta(minutes=30)  # the console's "free for 30 min" rooms: free-rooms?freeFor=30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=60, help="people in the building (default 60)")
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated minutes (default 60)")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated seconds per real second (default 10)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--floors", type=int, default=3)
    parser.add_argument("--port", type=int, default=7071, help="HTTP port of the app on 127.0.0.1")
    parser.add_argument("--azurite-port", type=int)
    parser.add_argument("--cosmos-port", type=int)
    parser.add_argument("--history-days", type=int, default=HISTORY_DAYS,
                        help=f"past days of office life written first, so the dashboard's analytics have something to "
                             f"show (default {HISTORY_DAYS}; 0: none)")
    parser.add_argument("--check", action="store_true",
                        help="exit when the day is over: 0 when room accuracy is at least 90%%, else 1")


class SimClock:
    """Simulated UTC time: stands at `start` until `run()` (the setup before the day takes no simulated time), then
    runs `speed` times faster than the monotonic clock."""

    def __init__(self, start: datetime, speed: float, *, running: bool = True) -> None:
        self.start = start
        self.speed = speed
        self._t0: float | None = time.monotonic() if running else None

    def run(self) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic()

    def elapsed_s(self) -> float:
        return 0.0 if self._t0 is None else (time.monotonic() - self._t0) * self.speed

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
    events: deque[str] = field(default_factory=lambda: deque(maxlen=EVENTS_SHOWN))  # the receiver's last events
    events_received: int = 0
    no_shows: deque[str] = field(default_factory=lambda: deque(maxlen=EVENTS_SHOWN))  # the last no-shows heard
    no_shows_received: int = 0

    def on_event(self, received: Received) -> None:
        event, data = received.event, received.event.get("data") or {}
        if event["type"] == "dev.spaceflow.booking.no-show":
            detail = (f"{data.get('name', '')}: booked {data['start'][11:16]}-{data['end'][11:16]}, nobody came"
                      + (", released" if data.get("released") else ""))
            self.no_shows.append(f"{event['time'][11:19]} {data.get('name', '')} (booked {data['start'][11:16]}-"
                                 f"{data['end'][11:16]}{', released' if data.get('released') else ''})")
            self.no_shows_received += 1
        elif "headcount" in data:
            detail = f"{data.get('name', '')}: {data['status']}, headcount {data['headcount']}"
        else:
            detail = f"battery {data.get('batteryMv')} mV, silent {data.get('silent')}"
        self.events.append(f"{event['time'][11:19]} {event['type'].removeprefix('dev.spaceflow.')} "
                           f"{event['subject']} ({detail})")
        self.events_received += 1

    @property
    def accuracy(self) -> float | None:
        return self.hits / self.samples if self.samples else None


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.people < 1 or args.minutes <= 0 or args.speed <= 0:
        print("demo: --people, --minutes and --speed must be positive", file=sys.stderr)
        return 2
    values = local_settings()  # the environment over local.settings.json
    azurite_port, cosmos_port_ = args.azurite_port or blob_port(values), args.cosmos_port or cosmos_port(values)
    clashes = port_clashes(args.port, azurite_port, cosmos_port_)
    if clashes:
        for line in clashes:
            print(f"demo: {line}", file=sys.stderr)
        return 1
    try:
        with running_emulators(azurite_port, cosmos_port_) as (
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


def port_clashes(app_port: int, azurite_port: int, cosmos_port_: int) -> list[str]:
    """One line per port that is taken, naming the flag that moves it (another demo or `make serve` running?)."""
    out = []
    for what, flag, port in (("the app", "--port", app_port), ("azurite", "--azurite-port", azurite_port),
                             ("the cosmos server", "--cosmos-port", cosmos_port_)):
        if port_in_use(port):
            spare = free_port()
            make = f"make demo PORT={spare}" if flag == "--port" else f'make demo DEMO_ARGS="{flag} {spare}"'
            out.append(f"port {port} on {LOOPBACK} ({what}) is already in use (another demo or `make serve`?): "
                       f"stop it, or move {what} with {flag}, e.g. {flag} {spare} ({make})")
    return out


async def _demo(args: argparse.Namespace) -> int:
    import httpx
    import uvicorn

    from devkit.demo_calendars import CalendarServer, demo_bookings
    from devkit.demo_rollups import around_the_clock, roll_simulated_hours
    from devkit.identity import default_keys_path, identity_of_the_app, with_devkit_issuer
    from devkit.office import OfficeDay
    from functions.http_api import create_api
    from shared.adapters.inprocess_events import InProcessEventPublisher
    from shared.domain.tenancy import Scope
    from shared.services import ScheduledJobs
    from shared.settings import load_settings
    from shared.wiring import build_context, set_context

    # The simulated day starts at the top of the current hour, so its first hour is one the hourly rollup covers
    # whole (the app runs on this clock; tokens and webhook signatures keep the wall clock).
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    day = OfficeDay(people=args.people, minutes=args.minutes, seed=args.seed, floors=args.floors, start=start)
    clock = SimClock(start, args.speed, running=False)
    context = await build_context(load_settings(), clock=clock.now)
    set_context(context)
    keys_path = default_keys_path()
    # The devkit's OpenID Connect issuer beside the app, as `devkit serve` has it: the simulated people sign in.
    app = with_devkit_issuer(create_api(), keys_path, identity_of_the_app)
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=args.port, log_level="warning"))
    server_task = asyncio.create_task(server.serve())
    tasks: list[asyncio.Task[None]] = []
    calendars: CalendarServer | None = None
    base_url = f"http://{LOOPBACK}:{args.port}"
    try:
        # A real tenant, so the bootstrap admin key lists it and manages its keys (GET /api/v1/tenants/demo-tenant/keys).
        with contextlib.suppress(AlreadyExists):
            await context.admin.create_tenant(TENANT, "Demo tenant")
        await context.site_models.put(BuildingRef(TENANT, day.site.building_id), around_the_clock(day.site))
        keys = {scope.value: (await context.admin.mint_key(TENANT, {scope}, f"demo {scope.value}"))[0]
                for scope in (Scope.ingest, Scope.read, Scope.people, Scope.admin)}
        ingest_key, read_key = keys["ingest"], keys["read"]
        while not server.started:
            if server_task.done():  # uvicorn could not bind the port (taken since the check) and gave up
                print(f"demo: the app could not listen on {LOOPBACK}:{args.port}: move it with --port, e.g. "
                      f"--port {free_port()}", file=sys.stderr)
                return 1
            await asyncio.sleep(0.05)
        print(f"spaceflow is serving on {base_url} (docs: /api/docs, health: /api/health)\n"
              f"demo tenant '{TENANT}', building '{day.site.building_id}': {len(day.site.floors)} floors, "
              f"{len(day.site.spaces)} spaces, {len(day.site.beacons)} beacons\n"
              f"keys: ingest {keys['ingest']}\n      read   {keys['read']}\n"
              f"      people {keys['people']}\n      admin  {keys['admin']}\n"
              f"      (the bootstrap admin key, ADMIN_API_KEY, manages the tenant too)\n"
              f"dashboard: {base_url}/app/#key={read_key}&building={day.site.building_id}", flush=True)
        if args.history_days > 0:
            # Before the phones post, not beside them: on two cores the rollups would slow processing down and
            # the room accuracy measured would be the load's, not the tracker's.
            print(f"writing {args.history_days} past days of analytics history (about 20 s; --history-days 0 "
                  f"skips it)...", flush=True)
            print(await _history(context, day.site.building_id, args.history_days, args.people, args.seed, start),
                  flush=True)
        stats = DemoStats()
        receiver = WebhookReceiver(secrets=[], on_event=stats.on_event)
        tasks.append(asyncio.create_task(context.delivery_loop.run()))  # the local outbox poller
        async with httpx.AsyncClient(base_url=base_url, timeout=30,
                                     limits=httpx.Limits(max_connections=32)) as http:
            for line in await _opt_in(day, http, keys, base_url, keys_path):
                print(line, flush=True)
            print(await _subscribe_receiver(http, keys["admin"], receiver), flush=True)
            bookings = demo_bookings(day, args.seed)
            calendars = CalendarServer(bookings, start)
            await calendars.start()
            print(await _connect_calendars(http, keys["admin"], day, bookings, calendars, context), flush=True)
            print(f"simulating {args.people} people for {args.minutes:g} minutes at {args.speed:g}x "
                  f"(about {args.minutes * 60 / args.speed:.0f} s); Ctrl-C stops everything", flush=True)
            clock.run()  # the day starts now: keys, history and sign-ins took no simulated time
            phones = asyncio.create_task(_post_batches(day, clock, http, ingest_key, stats))
            sweeper = asyncio.create_task(_sweep(context, clock, ScheduledJobs.PRESENCE_SWEEP))
            tasks.append(asyncio.create_task(_sweep(context, clock, ScheduledJobs.NO_SHOWS)))
            sampler = asyncio.create_task(_sample(day, clock, context, stats))
            view = asyncio.create_task(_show(day, clock, context, stats, args))
            tasks += [phones, sweeper, sampler, view]
            await phones
            await clock.sleep_until(day.window_s + SAMPLE_EVERY_S)
            # Let the hub hand over what it still holds (a busy machine lags; a failed delivery waits for its retry)
            # so the summary counts every posted batch that was processed. The demo's hub is the in-process one
            # (devkit_environment sets EVENT_PUBLISHER=inprocess).
            if isinstance(context.publisher, InProcessEventPublisher):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(context.publisher.drain(), DRAIN_TIMEOUT_S)
        # the no-shows of bookings that started near the end: decided before the summary counts them
        await context.scheduled.run(ScheduledJobs.NO_SHOWS, clock.now())
        for line in await roll_simulated_hours(context, TENANT, day.site.building_id, start, clock.now(), read_key,
                                               args.port):
            print(line, flush=True)
        booked_vs_used = await _booked_vs_used(context, day, bookings, start, clock.now())
        print(_booked_vs_used_line(booked_vs_used), flush=True)
        summary = _summary(day, context, stats, args)
        summary["bookings"] = booked_vs_used
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
        await receiver.stop()
        if calendars is not None:
            await calendars.stop()
        await context.close()
        set_context(None)


async def _history(context: AppContext, building: str, days: int, people: int, seed: int, start: datetime) -> str:
    """The demo building's past `days` (visits and their real rollups, devkit/history.py), as a console line."""
    from devkit.history import write_history

    try:
        done = await write_history(context, building, days, people, seed, tenant=TENANT, now=start)
    except Exception as exc:  # the live demo goes on without a history; say why
        logger.warning("history of %s: %s", building, exc, exc_info=True)
        return f"analytics history: not written ({type(exc).__name__}: {exc})"
    return (f"analytics history: {days} past days of {people} people ({done['visits']} visits, {done['windows']} "
            f"windows rolled up in {done['seconds']:.0f} s): the dashboard's heatmap and typical weekday show them")


async def _subscribe_receiver(http: httpx.AsyncClient, admin_key: str, receiver: WebhookReceiver) -> str:
    """A webhook receiver on loopback (the devkit's, verifying signatures), subscribed to every event of the demo
    tenant through the public API, as an integrator would."""
    url = await receiver.start(free_port())
    response = await http.post("/api/v1/subscriptions", json={"url": url}, headers={"x-api-key": admin_key})
    response.raise_for_status()
    receiver.secrets.append(response.json()["secret"])
    return (f"webhook: {url} is subscribed to every event (subscription {response.json()['id']}, signatures checked "
            f"with standardwebhooks); the last {EVENTS_SHOWN} show below")


async def _connect_calendars(http: httpx.AsyncClient, admin_key: str, day: OfficeDay, bookings: list[DemoBooking],
                             calendars: CalendarServer, context: AppContext) -> str:
    """The building releases no-shows, and each meeting room with bookings takes them from its feed, connected
    through the API as the building's admin would; the line to print."""
    headers = {"x-api-key": admin_key}
    building = day.site.building_id
    answer = await http.put(f"/api/v1/buildings/{building}/booking-settings", json={"releaseNoShows": True},
                            headers=headers)
    answer.raise_for_status()
    rooms = sorted({b.room for b in bookings})
    for room in rooms:
        answer = await http.put(f"/api/v1/buildings/{building}/spaces/{room}/calendar",
                                json={"ical": {"url": calendars.url(room)}}, headers=headers)
        answer.raise_for_status()
        if answer.json()["lastError"]:
            return f"calendars: the feed of {room} could not be read: {answer.json()['lastError']}"
    honoured = sum(b.honoured for b in bookings)
    minutes = context.settings.no_show_minutes
    return (f"calendars: {len(rooms)} meeting rooms take their bookings from iCalendar feeds the demo serves at "
            f"{calendars.base_url}/rooms/<room>.ics: {len(bookings)} bookings, {honoured} for meetings the simulated "
            f"people hold, {len(bookings) - honoured} nobody comes to; a room empty {minutes} min into its booking "
            "is a no-show (and released)")


async def _opt_in(day: OfficeDay, http: httpx.AsyncClient, keys: dict[str, str], base_url: str,
                  keys_path: Path) -> list[str]:
    """Sign-in for the demo tenant at the devkit issuer, then a share of the simulated people with a user id opt in
    to the co-worker finder, each with their own token, at `space`, `floor` or `building` in turn; the lines to
    print (how many at each level, and a lookup to try)."""
    from devkit.identity import DEVKIT_AUDIENCE, DEVKIT_USER_CLAIM, KeyRing, issue_token, issuer_url
    from devkit.oidc_login import DEVKIT_DASHBOARD_CLIENT_ID, DEVKIT_DASHBOARD_SCOPE

    issuer = issuer_url(base_url, TENANT)
    answer = await http.put(f"/api/v1/tenants/{TENANT}/identity", headers={"x-api-key": keys["admin"]},
                            json={"issuer": issuer, "audience": DEVKIT_AUDIENCE, "userClaim": DEVKIT_USER_CLAIM,
                                  "dashboardClientId": DEVKIT_DASHBOARD_CLIENT_ID,
                                  "dashboardScope": DEVKIT_DASHBOARD_SCOPE})
    if answer.status_code != 200:
        return [f"co-worker finder: sign-in not configured ({answer.status_code} {answer.text[:200]})"]
    ring = KeyRing.load_or_create(keys_path)
    users = [p.user_id for p in day.people if p.user_id]
    shared: dict[str, list[str]] = defaultdict(list)
    for i, user_id in enumerate(users):
        level = SHARING_LEVELS[i % len(SHARING_LEVELS)]
        if level is None:
            continue
        token = issue_token(ring, issuer, user_id, lifetime_s=8 * 3600)
        answer = await http.put("/api/v1/me/sharing", headers={"Authorization": f"Bearer {token}"},
                                json={"level": level})
        if answer.status_code == 200:
            shared[level].append(user_id)
        else:
            logger.warning("sharing of %s: %s %s", user_id, answer.status_code, answer.text[:200])
    counts = ", ".join(f"{len(shared[level])} at {level}" for level in SHARING_LEVELS if level)
    opted = sum(map(len, shared.values()))
    example = next((shared[level][0] for level in SHARING_LEVELS if level and shared[level]), None)
    person = (f"dashboard as a person: {base_url}/app/#tenant={TENANT}&building={day.site.building_id} "
              f"(\"Sign in with your organization\", then sign in as anyone on the devkit's page, e.g. "
              f"{example or 'ann@example.com'})")
    lines = [person, f"co-worker finder: {opted} of {len(day.people)} people opted in ({counts}); "
             + f"{len(users) - opted} signed-in people did not"]
    if example:
        lines.append(f"  try: curl -H 'x-api-key: {keys['people']}' {base_url}/api/v1/people/{example}/location "
                     "(404 `not available` until their phone is heard)")
    return lines


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
    from shared.domain.bookings import free_for, live_status

    building = BuildingRef(TENANT, day.site.building_id)
    spaces = {s.space_id: s for s in await context.live_state.list_spaces(building)}
    truth = day.occupancy(clock.elapsed_s())
    now = clock.now()
    bookings: dict[str, list[Any]] = defaultdict(list)
    for booking in await context.booking_store.list_bookings(building, now, now + FREE_FOR):
        bookings[booking.space_id].append(booking)
    floors: list[dict[str, Any]] = []
    meeting_rooms = [s for s in day.site.spaces if s.kind.value in ("conferenceroom", "huddleroom")]
    statuses = {s.id: live_status(spaces.get(s.id), bookings[s.id], now) for s in meeting_rooms}
    for floor in sorted(day.site.floors, key=lambda f: f.ordinal):
        on_floor = [s.id for s in day.site.spaces if s.floor == floor.id]
        rooms = [s for s in meeting_rooms if s.floor == floor.id]
        floors.append({
            "floor": floor.name or floor.id,
            "headcount": sum(spaces[s].headcount for s in on_floor if s in spaces),
            "truth": sum(truth.get(s, 0) for s in on_floor),
            "free_meeting_rooms": sum(1 for s in rooms if statuses[s.id] in ("free", "reclaimable")),
            "free_for_30": sum(1 for s in rooms if free_for(spaces.get(s.id), bookings[s.id], now, FREE_FOR)),
            "meeting_rooms": len(rooms),
        })
    counts = {status: sum(1 for v in statuses.values() if v == status) for status in ("booked", "reclaimable")}
    return {"floors": floors, **counts}


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
        print(f"not a terminal: a plain line every 10 s (real); headcount lags the truth by up to the presence timeout "
              f"({context.settings.presence_timeout_seconds:g} s simulated) when people leave", flush=True)
        while True:
            await asyncio.sleep(10)
            snap = await _snapshot(day, clock, context)
            line = ", ".join(f"{f['floor']}: {f['headcount']} (truth {f['truth']})" for f in snap["floors"])
            accuracy = f"{stats.accuracy:.1%}" if stats.accuracy is not None else "n/a"
            rooms = sum(f["meeting_rooms"] for f in snap["floors"])
            free30 = sum(f["free_for_30"] for f in snap["floors"])
            print(f"[sim {_sim_minutes(day, clock)}] {line}; posted {stats.posted}; "
                  f"room accuracy {accuracy}; events received {stats.events_received}; meeting rooms free for 30 min "
                  f"{free30} of {rooms}, booked {snap['booked']}, reclaimable {snap['reclaimable']}; "
                  f"no-shows {stats.no_shows_received}", flush=True)
            while stats.events:
                print(f"  event {stats.events.popleft()}", flush=True)
            while stats.no_shows:
                print(f"  no-show {stats.no_shows.popleft()}", flush=True)


async def _booked_vs_used(context: AppContext, day: OfficeDay, bookings: list[DemoBooking], start: datetime,
                          now: datetime) -> dict[str, Any]:
    """What came of the bookings (the store's decisions against the simulator's plan) and the booked-vs-used
    figures of the meeting rooms over the simulated hours the rollup covered (docs/metrics.md)."""
    from shared.domain.analytics import Grain
    from shared.domain.bookings import BookingSourceKind

    building = BuildingRef(TENANT, day.site.building_id)
    stored = await context.booking_store.list_bookings(building, start - timedelta(hours=1), now)
    ours = [b for b in stored if b.source is BookingSourceKind.ical and b.start < now]
    figures: dict[str, Any] = {
        "planned": len(bookings), "planned_honoured": sum(b.honoured for b in bookings),
        "planned_no_shows": sum(not b.honoured for b in bookings), "started": len(ours),
        "checked_in": sum(b.checked_in_at is not None for b in ours),
        "no_shows": sum(b.no_show_at is not None for b in ours), "released": sum(b.released for b in ours),
    }
    site = (await context.site_models.get(building))
    if site is None:
        return figures
    zone = ZoneInfo(site.site.time_zone)
    first, last = start.astimezone(zone).date(), now.astimezone(zone).date()
    answer = await context.analytics.read(TENANT, site.site, Grain.hour, first, last, metrics=[
        "booked_time", "occupied_time", "booked_empty_time", "unbooked_use_time", "bookings", "no_shows"])
    meeting = {s.id for s in day.site.spaces if s.bookable}
    simulated = {w["start"] for w in answer.windows if datetime.fromisoformat(w["start"]) >= start}
    totals: dict[str, float] = defaultdict(float)
    for row in answer.rows:
        if (row["scope"] == "space" and row["scopeId"] in meeting and row["value"] is not None
                and row["windowStart"] in simulated):
            totals[row["metric"]] += row["value"]
    if totals:
        figures.update({"rolled_up_hours": len(simulated),
                        "booked_h": round(totals["booked_time"] / 3600, 2),
                        "occupied_h": round(totals["occupied_time"] / 3600, 2),
                        "booked_empty_h": round(totals["booked_empty_time"] / 3600, 2),
                        "unbooked_use_h": round(totals["unbooked_use_time"] / 3600, 2)})
    return figures


def _booked_vs_used_line(figures: dict[str, Any]) -> str:
    line = (f"bookings: {figures['started']} started, {figures['checked_in']} checked in, {figures['no_shows']} "
            f"no-shows ({figures['released']} released); the simulator planned {figures['planned_honoured']} "
            f"honoured and {figures['planned_no_shows']} not")
    if "booked_h" in figures:
        line += (f"\nbooked vs used, bookable rooms, over the {figures['rolled_up_hours']} simulated hour(s) rolled "
                 f"up: booked {figures['booked_h']} h, occupied {figures['occupied_h']} h, booked and empty "
                 f"{figures['booked_empty_h']} h, used without a booking {figures['unbooked_use_h']} h")
    return line


def _sim_minutes(day: OfficeDay, clock: SimClock) -> str:
    """Simulated minutes into the day, which stop at its end (the app keeps serving, the day does not go on)."""
    elapsed = clock.elapsed_s()
    if elapsed >= day.window_s:
        return f"{day.minutes:g} of {day.minutes:g} min, day over"
    return f"{elapsed / 60:.1f} of {day.minutes:g} min"


def _title(day: OfficeDay, clock: SimClock, width: int = TITLE_WIDTH) -> str:
    """The console's one-line title, cut (never wrapped) to `width` columns: a long building name loses its end."""
    moment = day.at(min(clock.elapsed_s(), day.window_s))
    tail = f", simulated {moment:%H:%M:%S} UTC ({_sim_minutes(day, clock)})"
    head = f"spaceflow demo: {day.site.name}"
    if len(head) + len(tail) > width:
        head = head[:max(width - len(tail) - 1, 16)] + "…"
    return (head + tail)[:width]


def _render(snapshot: dict[str, Any], day: OfficeDay, clock: SimClock, context: AppContext,
            stats: DemoStats) -> Group:
    from rich.console import Group
    from rich.table import Table

    now = time.monotonic()
    stats.rate_window = [(t, n) for t, n in stats.rate_window if now - t < 5]
    rate = len(stats.rate_window) / 5
    sight_rate = sum(n for _, n in stats.rate_window) / 5
    from rich.text import Text

    title = Text(_title(day, clock), style="bold", no_wrap=True, overflow="ellipsis")
    table = Table()
    for column in ("floor", "headcount", "simulator truth", "free meeting rooms", "free for 30 min"):
        table.add_column(column, justify="right" if column != "floor" else "left")
    for floor in snapshot["floors"]:
        table.add_row(floor["floor"], str(floor["headcount"]), str(floor["truth"]),
                      f"{floor['free_meeting_rooms']} / {floor['meeting_rooms']}",
                      f"{floor['free_for_30']} / {floor['meeting_rooms']}")
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
    timeout = context.settings.presence_timeout_seconds
    info.add_row("events", f"{stats.events_received} received by the webhook; the last: "
                           + ("\n".join(stats.events) if stats.events else "none yet"))
    info.add_row("bookings", f"{snapshot['booked']} rooms booked and empty now, {snapshot['reclaimable']} "
                             f"reclaimable; {stats.no_shows_received} no-shows: "
                             + ("; ".join(stats.no_shows) if stats.no_shows else "none yet"))
    info.add_row("note", f"when people leave, headcount lags the truth by up to the presence timeout ({timeout:g} s "
                         "simulated, PRESENCE_TIMEOUT_SECONDS): a phone no longer heard is closed by the sweep")
    return Group(title, table, info)


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
        "events_received": stats.events_received,
        "event_deliveries": vars(context.delivery.stats),
    }
