"""`python -m devkit bench events [--json]`: integration events, measured locally on the Cosmos emulator.

- `post_to_webhook_ms`: the app as `devkit serve` runs it (its own process, emulators started here, the outbox
  poller), a webhook receiver on loopback subscribed to space.occupied; phones walk into rooms one after another
  and each latency is from the POST of the batch that put the phone in its room to the receiver holding the
  verified event (p50, p95);
- `fan_out`: one room event after another, each to `--subscriptions` webhook receivers: deliveries per second
  through the relay and worker on Cosmos (and in memory, which shows what HTTP and signing alone allow);
- `redelivery`: two processors racing over the same phones, then every batch delivered again: events the
  redelivery added at the source, and events lost or duplicated at a receiver;
- `outage`: the receiver down for three hours (an injected clock, not a sleep), then back: events lost,
  duplicated, or out of order per space once the retries got them through.
"""
from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devkit.webhook_receiver import WebhookReceiver
    from shared.domain.ports import DeliveryStore, EventLog, LiveStateStore, SubscriptionStore
    from shared.domain.site import SiteModel
    from shared.domain.tenancy import BuildingRef

OCCUPIED = "dev.spaceflow.space.occupied"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phones", type=int, default=30, help="phones walking into rooms for the latency")
    parser.add_argument("--subscriptions", type=int, default=100, help="webhook subscriptions for the fan-out")
    parser.add_argument("--events", type=int, default=30, help="events each subscription receives in the fan-out")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    from devkit.emulators.launcher import start_cosmos

    latency = await _post_to_webhook(args.phones)
    emulator = start_cosmos()
    try:
        fan_out = {"cosmos": await _on_cosmos(emulator.port, lambda s: _fan_out(s, args.subscriptions, args.events)),
                   "memory": await _fan_out(_memory_stores(), args.subscriptions, args.events)}
        redelivery = await _on_cosmos(emulator.port, _redelivery)
        outage = await _on_cosmos(emulator.port, _outage)
    finally:
        emulator.stop()
    return {"post_to_webhook_ms": latency, "fan_out": fan_out, "redelivery": redelivery, "outage": outage}


# --- stores ------------------------------------------------------------------------------------------------------

@dataclass
class Stores:
    live: LiveStateStore
    subscriptions: SubscriptionStore
    deliveries: DeliveryStore
    log: EventLog
    database: Any = None
    name: str = "memory"


def _memory_stores() -> Stores:
    from shared.adapters.memory import (
        InMemoryDeliveryStore,
        InMemoryEventLog,
        InMemoryLiveStateStore,
        InMemorySubscriptionStore,
    )

    return Stores(InMemoryLiveStateStore(), InMemorySubscriptionStore(), InMemoryDeliveryStore(), InMemoryEventLog())


async def _on_cosmos(port: int, measure: Any) -> dict[str, Any]:
    from devkit.emulators.launcher import cosmos_aio_client
    from shared.adapters.cosmos import ensure_cosmos_schema
    from shared.adapters.cosmos_events import CosmosDeliveryStore, CosmosEventLog, CosmosSubscriptionStore
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore

    async with cosmos_aio_client(port) as client:
        name = f"bench-events-{uuid.uuid4().hex[:8]}"
        database = await ensure_cosmos_schema(client, name)
        try:
            stores = Stores(CosmosLiveStateStore(database), CosmosSubscriptionStore(database),
                            CosmosDeliveryStore(database), CosmosEventLog(database), database, "cosmos emulator")
            result: dict[str, Any] = await measure(stores)
            return result
        finally:
            await client.delete_database(name)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


def _delivery(stores: Stores, clock: Any = None) -> tuple[Any, Any, Any]:
    """The relay, the worker (webhooks) and the subscription service over the stores."""
    from shared.adapters.memory import InMemorySiteModelStore
    from shared.adapters.webhooks import WebhookSink
    from shared.domain.subscriptions import SinkKind
    from shared.services.common import utc_now
    from shared.services.delivery import DeliveryWorker, EventRelay, SubscriptionCache
    from shared.services.subscriptions import SubscriptionService

    clock = clock or utc_now
    cache = SubscriptionCache(stores.subscriptions, refresh_s=0.5)
    relay = EventRelay(stores.live, stores.log, stores.deliveries, cache, clock=clock)  # type: ignore[arg-type]
    worker = DeliveryWorker(stores.deliveries, cache, stores.subscriptions,
                            {SinkKind.webhook: WebhookSink(allow_loopback=True)}, clock=clock)
    service = SubscriptionService(stores.subscriptions, stores.deliveries, stores.log, InMemorySiteModelStore(),
                                  allow_loopback=True, clock=clock)
    return relay, worker, service


async def _transition(live: LiveStateStore, building: BuildingRef, room: str, device: str, at: datetime,
                      leave: bool = False) -> None:
    """A phone entering (leaving) a room, written as the pipeline writes it: the space and its events at once."""
    from shared.domain.events import SpaceFacts, space_events
    from shared.domain.presence import OccupancyChange, SpaceState, apply_occupancy

    before = await live.get_space(building, room) or SpaceState.empty(building, room)
    after = apply_occupancy(before, OccupancyChange(building, room, device, "leave" if leave else "enter", at))
    if after is None:
        return
    state, events = space_events(before, after, SpaceFacts(name=room, kind="conferenceroom", floor="L0"))
    await live.save_space(state, events)


def _lost_and_duplicated(expected: list[str], receiver: WebhookReceiver) -> dict[str, int]:
    counts = Counter(r.webhook_id for r in receiver.received)
    return {"events": len(expected), "received": sum(counts.values()),
            "lost": sum(1 for event_id in expected if event_id not in counts),
            "duplicated": sum(n - 1 for n in counts.values())}


# --- POST to webhook ---------------------------------------------------------------------------------------------

ROOM_KINDS = ("conferenceroom", "huddleroom", "office", "kitchen")


def _rooms_with_beacons(site: SiteModel) -> list[tuple[str, str]]:
    """Rooms with a beacon inside (a phone beside it is placed in that room), and that beacon."""
    found = []
    for room in (s for s in site.spaces if s.kind.value in ROOM_KINDS):
        xs, ys = [p[0] for p in room.polygon], [p[1] for p in room.polygon]
        inside = [b.id for b in site.beacons if b.floor == room.floor
                  and min(xs) <= b.x <= max(xs) and min(ys) <= b.y <= max(ys)]
        if inside:
            found.append((room.id, inside[0]))
    return found


def _batch(device: str, beacon: str) -> dict[str, Any]:
    sent = datetime.now(UTC)
    return {"schema": "sightings/v1", "batchId": str(uuid.uuid4()), "deviceId": device, "sentAt": sent.isoformat(),
            "platform": "ios", "model": "iPhone15,2", "sdkVersion": "2.3.1",
            "sightings": [{"beacon": beacon, "rssi": -55 - (i % 3), "ts": (sent - timedelta(seconds=i)).isoformat()}
                          for i in range(8)]}


async def _post_to_webhook(phones: int) -> dict[str, Any]:
    from devkit.benchmarks.ingest import TENANT, _percentile, serving
    from devkit.emulators.launcher import free_port
    from devkit.simulator import BuildingSpec, generate_building
    from devkit.webhook_receiver import WebhookReceiver
    from shared.adapters.cosmos import CosmosApiKeyStore
    from shared.domain.tenancy import Scope
    from shared.services.auth import AuthService

    site = generate_building(BuildingSpec(floors=3), seed=11)
    rooms = _rooms_with_beacons(site)[:phones]
    receiver = WebhookReceiver(secrets=[])
    url = await receiver.start(free_port())
    latencies: list[float] = []
    missed = 0
    try:
        async with serving(site) as served:
            admin, _record = await AuthService(CosmosApiKeyStore(served.database)).mint_key(TENANT, {Scope.admin},
                                                                                          "bench events")
            created = await served.http.post("/api/v1/subscriptions", headers={"x-api-key": admin},
                                             json={"url": url, "types": [OCCUPIED]})
            created.raise_for_status()
            receiver.secrets.append(created.json()["secret"])
            await asyncio.sleep(2.5)  # the app's subscription cache takes a new subscription within 2 s
            for n, (room, beacon) in enumerate(rooms):
                subject = f"spaces/{room}"
                heard = None
                for _batch_number in range(6):  # the tracker needs a batch or two to settle in a room
                    posted = time.time()
                    response = await served.http.post("/api/v1/sightings", json=_batch(f"bench-events-{n:04d}", beacon),
                                                      headers={"x-api-key": served.key})
                    response.raise_for_status()
                    heard = await _wait_for(receiver, subject, 3.0)
                    if heard is not None:
                        latencies.append((heard - posted) * 1000)
                        break
                if heard is None:
                    missed += 1
    finally:
        await receiver.stop()
    return {"phones": len(rooms), "measured": len(latencies), "rooms_never_reported": missed,
            "p50": _round(_percentile(latencies, 0.50)), "p95": _round(_percentile(latencies, 0.95)),
            "max": _round(max(latencies) if latencies else None),
            "path": "POST /api/v1/sightings -> in-process hub -> pipeline -> outbox (Cosmos emulator) -> poller -> "
                    "signed POST -> receiver verified it"}


async def _wait_for(receiver: WebhookReceiver, subject: str, timeout_s: float) -> float | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for received in receiver.received:
            if received.event["subject"] == subject:
                return received.received_at
        await asyncio.sleep(0.002)
    return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- fan-out ----------------------------------------------------------------------------------------------------

async def _fan_out(stores: Stores, subscriptions: int, events: int) -> dict[str, Any]:
    from devkit.emulators.launcher import free_port
    from devkit.webhook_receiver import WebhookReceiver
    from shared.domain.tenancy import BuildingRef

    building = BuildingRef("bench-events", "hq")
    relay, worker, service = _delivery(stores)
    receivers = [WebhookReceiver(secrets=[]) for _ in range(subscriptions)]
    try:
        for receiver in receivers:
            url = await receiver.start(free_port())
            _sub, secret = await service.create(building.tenant_id, url=url, event_hub=None, event_grid=False,
                                                types=None, building_id=None)
            receiver.secrets.append(secret)
        now = datetime.now(UTC)
        for n in range(events):
            await _transition(stores.live, building, f"room-{n:03d}", "phone", now + timedelta(milliseconds=n))
        expected = subscriptions * events
        started = time.perf_counter()
        while sum(len(r.received) for r in receivers) < expected and time.perf_counter() - started < 600:
            relayed = await relay.relay_pending()
            begun = await worker.run_once(limit=2000)
            if not relayed and not begun:
                await asyncio.sleep(0.005)
        await worker.drain()
        elapsed = time.perf_counter() - started
        received = sum(len(r.received) for r in receivers)
    finally:
        for receiver in receivers:
            await receiver.stop()
        await worker._sinks[next(iter(worker._sinks))].close()
    return {"store": stores.name, "subscriptions": subscriptions, "events": events, "deliveries": received,
            "expected": expected, "seconds": round(elapsed, 2), "deliveries_per_s": round(received / elapsed, 1)}


# --- redelivery and racing processors ----------------------------------------------------------------------------

async def _redelivery(stores: Stores) -> dict[str, Any]:
    from devkit.emulators.launcher import free_port
    from devkit.simulator import BuildingSpec, generate_building
    from devkit.webhook_receiver import WebhookReceiver
    from shared.adapters.cosmos import CosmosSiteModelStore
    from shared.domain.ingest_event import decode_ingest_event, encode_ingest_event
    from shared.domain.ports import InboundEvent
    from shared.domain.sightings import parse_sightings_batch
    from shared.domain.tenancy import BuildingRef
    from shared.services.pipeline import PipelineService
    from shared.services.sites import SiteDirectory

    site = generate_building(BuildingSpec(floors=1), seed=5)
    building = BuildingRef("bench-events", site.building_id)
    await CosmosSiteModelStore(stores.database).put(building, site)
    (_room_a, beacon_a), (_room_b, beacon_b) = _rooms_with_beacons(site)[:2]
    start = datetime.now(UTC) - timedelta(minutes=10)
    walks = []
    for n in range(24):  # every phone in room A, then three in four on to room B
        events: list[tuple[InboundEvent, Any]] = []
        at = start + timedelta(milliseconds=n)
        for beacon in [beacon_a] * 3 + [beacon_b if n % 4 else beacon_a] * 3:
            body = _batch(f"bench-racer-{n:03d}", beacon)
            body["sentAt"] = at.isoformat()
            body["sightings"] = [{**s, "ts": (at - timedelta(seconds=i)).isoformat()}
                                 for i, s in enumerate(body["sightings"])]
            encoded = encode_ingest_event(building.tenant_id, at, parse_sightings_batch(body, at).batch)
            events.append((InboundEvent(encoded, body["deviceId"], len(events), at), decode_ingest_event(encoded)))
            at += timedelta(seconds=20)
        walks.append(events)
    relay, worker, service = _delivery(stores)
    receiver = WebhookReceiver(secrets=[])
    url = await receiver.start(free_port())
    try:
        _sub, secret = await service.create(building.tenant_id, url=url, event_hub=None, event_grid=False,
                                            types=None, building_id=None)
        receiver.secrets.append(secret)
        # The services run on the simulated clock: every walk is one call, and the calls are processed together,
        # at the enqueued time of the newest event among them (devkit/benchmarks/pipeline.py, SimulatedClock).
        newest = max(event.enqueued_time or start for walk in walks for event, _decoded in walk).timestamp()
        first = PipelineService(SiteDirectory(CosmosSiteModelStore(stores.database)), stores.live,
                                monotonic=lambda: newest)
        second = PipelineService(SiteDirectory(CosmosSiteModelStore(stores.database)), stores.live,
                                 monotonic=lambda: newest)
        await asyncio.gather(*((first if n % 2 else second).process(w) for n, w in enumerate(walks)))
        written = {e.id for e in await stores.live.pending(10_000)}  # type: ignore[attr-defined]
        await asyncio.gather(*((second if n % 2 else first).process(w) for n, w in enumerate(walks)))  # again
        after_redelivery = {e.id for e in await stores.live.pending(10_000)}  # type: ignore[attr-defined]
        for _round_number in range(50):
            relayed = await relay.relay_pending()
            begun = await worker.run_once()
            await worker.drain()
            if not relayed and not begun:
                break
        logged = [e.id for e in await stores.log.since(building.tenant_id, None, start - timedelta(minutes=1))]
        result = _lost_and_duplicated(logged, receiver)
    finally:
        await receiver.stop()
        await worker._sinks[next(iter(worker._sinks))].close()
    conflicts = first.stats.conflicts_retried + second.stats.conflicts_retried + first._occupancy.retries \
        + second._occupancy.retries
    return {**result, "added_by_redelivery": len(after_redelivery - written), "write_conflicts_retried": conflicts,
            "phones": len(walks), "store": stores.name}


# --- receiver outage ---------------------------------------------------------------------------------------------

async def _outage(stores: Stores) -> dict[str, Any]:
    from devkit.emulators.launcher import free_port
    from devkit.webhook_receiver import WebhookReceiver
    from shared.domain.tenancy import BuildingRef

    building = BuildingRef("bench-events", "hq")
    clock = Clock()
    relay, worker, service = _delivery(stores, clock)
    port = free_port()
    receiver = WebhookReceiver(secrets=[])  # not listening until the outage is over
    try:
        _sub, secret = await service.create(building.tenant_id, url=f"http://127.0.0.1:{port}/events",
                                            event_hub=None, event_grid=False, types=None, building_id=None)
        receiver.secrets.append(secret)
        start = clock.now
        for n in range(20):  # 20 rooms occupied, then freed: 40 events, two per space in order
            await _transition(stores.live, building, f"room-{n:03d}", "phone", clock.now)
            clock.now += timedelta(seconds=1)
            await _transition(stores.live, building, f"room-{n:03d}", "phone", clock.now, leave=True)
        failed_attempts = 0
        while clock.now - start < timedelta(hours=3):  # the receiver is down: every attempt fails
            await relay.relay_pending()
            await worker.run_once()
            await worker.drain()
            clock.now += timedelta(minutes=5)
        failed_attempts = worker.stats.failed
        await receiver.start(port)
        back = clock.now
        while len(receiver.received) < 40 and clock.now - back < timedelta(hours=3):
            await relay.relay_pending()
            await worker.run_once()
            await worker.drain()
            clock.now += timedelta(minutes=1)
        logged = [e.id for e in await stores.log.since(building.tenant_id, None, start - timedelta(minutes=1))]
        result = _lost_and_duplicated(logged, receiver)
        order: dict[str, list[int]] = {}
        for received in receiver.received:
            order.setdefault(received.event["subject"], []).append(int(received.event["sequence"]))
        out_of_order = sum(1 for sequences in order.values() if sequences != sorted(sequences))
    finally:
        await receiver.stop()
        await worker._sinks[next(iter(worker._sinks))].close()
    return {**result, "outage_hours": 3, "failed_attempts_during_outage": failed_attempts,
            "minutes_to_catch_up": round((clock.now - back).total_seconds() / 60), "spaces_out_of_order": out_of_order,
            "store": stores.name}
