"""Delivering the events: from the outbox to the event log and one delivery per subscription (the relay), then
to each subscription's target (the worker), in order per space, retried with backoff for 24 hours.

Processing only writes the outbox: a target that is down or slow costs the pipeline nothing. The worker never
waits for a slow target either: each attempt runs on its own (5 s at most), at most PER_SUBSCRIPTION_CONCURRENCY
at once per subscription, and the next round picks up other work meanwhile.

Locally a poller runs relay and worker in a loop (DeliveryLoop); in Azure the Cosmos change feed trigger relays
new outbox documents as they are written and a timer runs the worker (functions/events.py, docs/events.md).
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.domain.events import CloudEvent
from shared.domain.ports import (
    DeliveryStore,
    EventLog,
    EventOutbox,
    EventSink,
    PreconditionFailed,
    SubscriptionStore,
)
from shared.domain.subscriptions import (
    DELIVERY_TIMEOUT,
    AttemptRecord,
    Delivery,
    DeliveryStatus,
    SinkKind,
    Subscription,
    after_attempt,
)
from shared.services.common import Clock, utc_now

logger = logging.getLogger(__name__)

PER_SUBSCRIPTION_CONCURRENCY = 8
TOTAL_CONCURRENCY = 512
# A worker claims a delivery before sending it (over its etag): another instance leaves it alone meanwhile, and
# after a crash it is sent again once the claim has lapsed (at least once; receivers deduplicate on the id).
CLAIM = DELIVERY_TIMEOUT + timedelta(seconds=25)


class SubscriptionCache:
    """Every subscription, re-read at most every `refresh_s` (the relay fans out to them; the worker reads their
    targets and secrets). A new subscription takes events at most `refresh_s` after it was created."""

    def __init__(self, store: SubscriptionStore, refresh_s: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._by_key: dict[str, Subscription] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def all(self) -> dict[str, Subscription]:
        async with self._lock:
            now = self._monotonic()
            if self._read_at is None or now - self._read_at >= self._refresh_s:
                self._by_key = {s.key: s for s in await self._store.list_all()}
                self._read_at = now
            return self._by_key

    def invalidate(self) -> None:
        self._read_at = None


class EventRelay:
    """Hands each outbox event on: into the event log, one delivery for each subscription that takes it, then out
    of the outbox. Every step is idempotent, so a crash or a second relay
    in between repeats nothing: the log upserts by id, a delivery exists once per (subscription, event)."""

    def __init__(self, outbox: EventOutbox, log: EventLog, deliveries: DeliveryStore,
                 subscriptions: SubscriptionCache, clock: Clock = utc_now) -> None:
        self._outbox = outbox
        self._log = log
        self._deliveries = deliveries
        self._subscriptions = subscriptions
        self._clock = clock
        self.relayed = 0

    async def relay_pending(self, limit: int = 500) -> int:
        """Relay what the outbox holds (the poller, and the Azure timer as a safety net); returns how many."""
        return await self.relay(await self._outbox.pending(limit))

    async def relay(self, events: Iterable[CloudEvent]) -> int:
        """Relay these outbox events (the change feed hands them over as they are written)."""
        per_subject: dict[tuple[str, str], list[CloudEvent]] = defaultdict(list)
        for event in events:
            per_subject[(event.source, event.subject)].append(event)
        if not per_subject:
            return 0
        subscriptions = list((await self._subscriptions.all()).values())

        async def subject(items: list[CloudEvent]) -> int:
            done = 0
            for event in sorted(items, key=lambda e: e.sequence_number):  # in order: a failure stops the rest
                await self._one(event, subscriptions)
                done += 1
            return done

        counts = await asyncio.gather(*(subject(items) for items in per_subject.values()))
        self.relayed += sum(counts)
        return sum(counts)

    async def _one(self, event: CloudEvent, subscriptions: list[Subscription]) -> None:
        await self._log.append(event)
        now = self._clock()
        takers = [s for s in subscriptions if s.takes(event)]
        # Always pending: the worker holds those of a paused or disabled subscription after reading it afresh, so a
        # cache a moment behind a resume cannot leave a delivery held for good.
        await asyncio.gather(*(self._deliveries.add(Delivery(
            s.tenant_id, s.subscription_id, event, DeliveryStatus.pending, next_attempt_at=now)) for s in takers))
        await self._outbox.remove(event)


@dataclass
class DeliveryStats:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    disabled: int = 0


class DeliveryWorker:
    """Attempts the due deliveries. Per (subscription, subject) only the earliest open event is sent: a later
    event of the same space waits for it (and is sent as soon as it is through)."""

    def __init__(self, deliveries: DeliveryStore, subscriptions: SubscriptionCache, store: SubscriptionStore,
                 sinks: dict[SinkKind, EventSink], clock: Clock = utc_now, rand: Callable[[], float] = random.random,
                 per_subscription: int = PER_SUBSCRIPTION_CONCURRENCY, total: int = TOTAL_CONCURRENCY) -> None:
        self._deliveries = deliveries
        self._subscriptions = subscriptions
        self._store = store
        self._sinks = sinks
        self._clock = clock
        self._rand = rand
        self._per_subscription = per_subscription
        self._limit = asyncio.Semaphore(total)
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Subscriptions this worker held deliveries of: released here too once they are active again (a resume
        # that raced this worker's hold would otherwise leave those held).
        self._held: dict[str, Subscription] = {}
        self.stats = DeliveryStats()
        self.on_attempt: Callable[[Delivery, AttemptRecord], None] | None = None  # the devkit's console

    async def run_once(self, limit: int = 500) -> int:
        """Start an attempt for every due delivery that heads its subject; returns how many were started. The
        attempts run on (see `drain`)."""
        now = self._clock()
        await self._release_resumed()
        due = [d for d in await self._deliveries.due(now, limit)
               if (d.subscription_key, d.event.subject) not in self._in_flight]
        if not due:
            return 0
        subscriptions = await self._subscriptions.all()
        per_subscription: dict[str, dict[str, list[Delivery]]] = defaultdict(lambda: defaultdict(list))
        for delivery in due:
            per_subscription[delivery.subscription_key][delivery.event.subject].append(delivery)
        started = 0
        for key, subjects in per_subscription.items():
            subscription = subscriptions.get(key)
            if subscription is None:
                continue  # deleted: its deliveries go with it
            if not subscription.active:
                fresh = await self._store.get(subscription.tenant_id, subscription.subscription_id)
                if fresh is None:
                    continue
                if not fresh.active:  # paused or disabled indeed: its deliveries wait until it is resumed
                    self._held[key] = fresh
                    await asyncio.gather(*(self._hold(d) for items in subjects.values() for d in items))
                    continue
                subscription = fresh
                self._subscriptions.invalidate()
            # One query a subscription: its open deliveries, each subject's in sequence order.
            open_by_subject: dict[str, list[Delivery]] = defaultdict(list)
            for delivery in await self._deliveries.open_for_subscription(subscription.tenant_id,
                                                                         subscription.subscription_id):
                open_by_subject[delivery.event.subject].append(delivery)
            for subject, items in subjects.items():
                queue = open_by_subject.get(subject)
                if not queue or queue[0].status is DeliveryStatus.held:
                    continue  # held by a 410 or the 24 h rule: the subscription's status is on its way
                head, followers = queue[0], queue[1:]
                if head.next_attempt_at > now:
                    await asyncio.gather(*(self._wait_for(d, head.next_attempt_at) for d in items
                                           if d.event_id != head.event_id))
                    continue
                task = asyncio.create_task(self._attempt(subscription, head, followers[:1]))
                self._in_flight[(key, subject)] = task
                task.add_done_callback(functools.partial(self._finished, (key, subject)))
                started += 1
        return started

    async def _release_resumed(self) -> None:
        if not self._held:
            return
        subscriptions = await self._subscriptions.all()
        for key, held in list(self._held.items()):
            current = subscriptions.get(key)
            if current is None:
                del self._held[key]
            elif current.active:
                del self._held[key]
                for delivery in await self._deliveries.with_status(held.tenant_id, held.subscription_id,
                                                                  DeliveryStatus.held, limit=100_000):
                    try:
                        await self._deliveries.save(replace(delivery, status=DeliveryStatus.pending,
                                                            next_attempt_at=self._clock(), first_attempt_at=None))
                    except PreconditionFailed:
                        continue

    def _finished(self, key: tuple[str, str], _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(key, None)

    async def drain(self) -> None:
        """Wait for the attempts started so far (the timer, tests)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def _wait_for(self, delivery: Delivery, until: datetime) -> None:
        """A later event of a space whose earlier one is still being retried: due again with it."""
        try:
            await self._deliveries.save(replace(delivery, next_attempt_at=until))
        except PreconditionFailed:
            pass

    async def _hold(self, delivery: Delivery) -> None:
        try:
            await self._deliveries.save(replace(delivery, status=DeliveryStatus.held))
        except PreconditionFailed:
            pass

    async def _attempt(self, subscription: Subscription, delivery: Delivery, following: list[Delivery]) -> None:
        slots = self._slots.setdefault(subscription.key, asyncio.Semaphore(self._per_subscription))
        async with self._limit, slots:
            try:
                await self._attempt_claimed(subscription, delivery, following)
            except Exception:  # one delivery's failure (a store hiccup) must not stop the others
                logger.exception("delivery of an event to subscription %s failed", subscription.subscription_id)

    async def _attempt_claimed(self, subscription: Subscription, delivery: Delivery,
                               following: list[Delivery]) -> None:
        try:
            claimed = await self._deliveries.save(replace(delivery, next_attempt_at=self._clock() + CLAIM))
        except PreconditionFailed:
            return  # another worker has it, or a replay replaced it
        sink = self._sinks.get(subscription.sink)
        body = json.dumps(delivery.event.to_json(), separators=(",", ":")).encode()
        started = time.perf_counter()
        status: int | None
        error: str | None
        if sink is None:
            status, error = None, f"no {subscription.sink.value} sink in this deployment"
        else:
            # secrets past their overlap (on the app's clock) no longer sign
            now = self._clock()
            current = tuple(x for x in subscription.secrets if x.expires_at is None or x.expires_at > now)
            answer = await sink.send(replace(subscription, secrets=current), delivery.event, body)
            status, error = answer.status_code, answer.error
        record = AttemptRecord(self._clock(), status, (time.perf_counter() - started) * 1000, error)
        outcome = after_attempt(claimed, record, _target(subscription), self._rand)
        self.stats.attempts += 1
        if self.on_attempt is not None:
            self.on_attempt(claimed, record)
        try:
            await self._deliveries.save(outcome.delivery)
        except PreconditionFailed:
            return  # replayed meanwhile: the replay's delivery stands
        if outcome.delivery.status is DeliveryStatus.delivered:
            self.stats.delivered += 1
            if following:
                await self._promote(following[0])
        else:
            self.stats.failed += 1
        if outcome.disable_reason is not None:
            self._held[subscription.key] = subscription
            await self._disable(subscription, outcome.disable_reason)

    async def _promote(self, following: Delivery) -> None:
        """The space's next event goes now (it may have been told to wait for the one just delivered)."""
        current = await self._deliveries.get(following.tenant_id, following.subscription_id, following.event_id)
        now = self._clock()
        if current is not None and current.status is DeliveryStatus.pending and current.next_attempt_at > now:
            await self._wait_for(current, now)

    async def _disable(self, subscription: Subscription, reason: str) -> None:
        for _attempt in range(5):
            current = await self._store.get(subscription.tenant_id, subscription.subscription_id)
            if current is None or current.disabled_reason is not None:
                return
            try:
                await self._store.save(replace(current, disabled_reason=reason, disabled_at=self._clock()))
            except PreconditionFailed:
                continue
            self.stats.disabled += 1
            self._subscriptions.invalidate()
            logger.warning("subscription %s of tenant %s disabled: %s", subscription.subscription_id,
                           subscription.tenant_id, reason)
            return


def _target(subscription: Subscription) -> str:
    if subscription.url is not None:
        return subscription.url
    if subscription.event_hub is not None:
        return f"Event Hub {subscription.event_hub.namespace}/{subscription.event_hub.hub}"
    return "the Event Grid topic"


class DeliveryLoop:
    """The local poller: relay the outbox and start due deliveries, every `interval_s`, or at once when nudged
    (the in-process pipeline nudges after each delivery of sightings). Never waits for a slow target."""

    def __init__(self, relay: EventRelay, worker: DeliveryWorker, interval_s: float = 0.5) -> None:
        self._relay = relay
        self._worker = worker
        self._interval_s = interval_s
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._relay.relay_pending()
                await self._worker.run_once()
            except Exception:  # a store outage: the next round tries again
                logger.exception("event delivery round failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            except TimeoutError:
                pass

    async def run_until_idle(self, rounds: int = 100) -> None:
        """Relay and deliver until nothing is left to start (tests, the timer in Azure)."""
        for _round in range(rounds):
            relayed = await self._relay.relay_pending()
            started = await self._worker.run_once()
            await self._worker.drain()
            if not relayed and not started:
                return
