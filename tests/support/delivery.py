"""Driving event delivery in tests: the in-memory stores, the relay and worker on an injected clock, webhooks to
real receivers on loopback (devkit/webhook_receiver.py), and transitions that put events in the outbox."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp.abc import AbstractResolver

from shared.adapters.memory import (
    InMemoryDeliveryStore,
    InMemoryEventLog,
    InMemoryLiveStateStore,
    InMemorySiteModelStore,
    InMemorySubscriptionStore,
)
from shared.adapters.webhooks import WebhookSink
from shared.domain.events import CloudEvent, SpaceFacts, space_events
from shared.domain.presence import OccupancyChange, SpaceState, apply_occupancy
from shared.domain.subscriptions import SinkKind
from shared.domain.tenancy import BuildingRef
from shared.services.delivery import DeliveryLoop, DeliveryWorker, EventRelay, SubscriptionCache
from shared.services.subscriptions import SubscriptionService
from tests.support.pipeline import add_small_site

HQ = BuildingRef("tenant-a", "hq")


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Harness:
    clock: FakeClock
    live: InMemoryLiveStateStore
    subscriptions: InMemorySubscriptionStore
    deliveries: InMemoryDeliveryStore
    log: InMemoryEventLog
    service: SubscriptionService
    relay: EventRelay
    worker: DeliveryWorker
    loop: DeliveryLoop
    sink: WebhookSink
    cache: SubscriptionCache

    async def subscribe(self, url: str, **options) -> tuple[str, str | None]:
        subscription, secret = await self.service.create(
            HQ.tenant_id, url=url, event_hub=None, event_grid=False, types=options.get("types"),
            building_id=options.get("building_id"))
        self.cache.invalidate()
        return subscription.subscription_id, secret

    async def occupy(self, space_id: str, device: str, leave: bool = False) -> list[CloudEvent]:
        """A phone enters (or leaves) a room now: the space and its events written as the pipeline does."""
        before = await self.live.get_space(HQ, space_id) or SpaceState.empty(HQ, space_id)
        change = OccupancyChange(HQ, space_id, device, "leave" if leave else "enter", self.clock())
        after = apply_occupancy(before, change)
        assert after is not None
        state, events = space_events(before, after, SpaceFacts(name=space_id.title(), kind="conferenceroom",
                                                               floor="f0"))
        await self.live.save_space(state, events)
        return events

    async def round(self) -> None:
        """One poll: relay the outbox, attempt what is due, wait for those attempts."""
        await self.relay.relay_pending()
        await self.worker.run_once()
        await self.worker.drain()

    async def close(self) -> None:
        await self.sink.close()


async def harness(*, timeout_s: float = 5.0, allow_loopback: bool = True, resolver: AbstractResolver | None = None,
                  rand: float | None = 1.0) -> Harness:
    """`rand` fixes the jitter (1.0: the full backoff, so the schedule is known); None draws it."""
    clock = FakeClock()
    live, subscriptions = InMemoryLiveStateStore(), InMemorySubscriptionStore()
    deliveries, log = InMemoryDeliveryStore(), InMemoryEventLog()
    sites = InMemorySiteModelStore()
    await add_small_site(sites)
    service = SubscriptionService(subscriptions, deliveries, log, sites, allow_loopback=True, clock=clock)
    cache = SubscriptionCache(subscriptions, refresh_s=0)
    sink = WebhookSink(allow_loopback=allow_loopback, timeout_s=timeout_s, resolver=resolver)
    relay = EventRelay(live, log, deliveries, cache, clock=clock)
    worker = DeliveryWorker(deliveries, cache, subscriptions, {SinkKind.webhook: sink}, clock=clock,
                            rand=(lambda: rand) if rand is not None else random.random)
    return Harness(clock, live, subscriptions, deliveries, log, service, relay, worker,
                   DeliveryLoop(relay, worker, interval_s=0.05), sink, cache)
