"""Event subscriptions for a tenant's admins: create (the secret is shown once), list, change, delete, rotate the
secret, see the deliveries, replay from a time."""
from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime, timedelta

from shared.domain.errors import Conflict, ContractViolation, FieldError, NotFound
from shared.domain.events import EventType
from shared.domain.ports import DeliveryStore, EventLog, PreconditionFailed, SiteModelStore, SubscriptionStore
from shared.domain.subscriptions import (
    MAX_SUBSCRIPTIONS_PER_TENANT,
    Delivery,
    DeliveryStatus,
    EventHubTarget,
    SigningSecret,
    SinkKind,
    Subscription,
    event_hub_problem,
    new_secret,
    rotate_secret,
    webhook_url_problem,
)
from shared.domain.tenancy import BuildingRef
from shared.services.common import Clock, utc_now

REPLAY_WINDOW = timedelta(days=7)  # the event log keeps a week


class SubscriptionService:
    def __init__(self, subscriptions: SubscriptionStore, deliveries: DeliveryStore, log: EventLog,
                 sites: SiteModelStore, *, allow_loopback: bool = False, event_grid_available: bool = False,
                 event_hub_available: bool = False, clock: Clock = utc_now) -> None:
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._log = log
        self._sites = sites
        self._allow_loopback = allow_loopback
        self._event_grid_available = event_grid_available
        self._event_hub_available = event_hub_available
        self._clock = clock

    async def create(self, tenant_id: str, *, url: str | None, event_hub: EventHubTarget | None,
                     event_grid: bool, types: list[EventType] | None,
                     building_id: str | None) -> tuple[Subscription, str | None]:
        """The new subscription and, for a webhook, its signing secret (in this answer only)."""
        errors: list[FieldError] = []
        chosen = [name for name, given in (("url", url is not None), ("eventHub", event_hub is not None),
                                           ("eventGrid", event_grid)) if given]
        if len(chosen) != 1:
            errors.append(FieldError("$", "name exactly one target: url, eventHub or eventGrid"))
        if url is not None and (problem := webhook_url_problem(url, self._allow_loopback)):
            errors.append(FieldError("url", problem))
        if event_hub is not None:
            errors += [FieldError(name, message) for name, message in event_hub_problem(event_hub.namespace,
                                                                                       event_hub.hub)]
        if event_hub is not None and not self._event_hub_available:
            errors.append(FieldError("eventHub", "this deployment sends to Event Hubs with its managed identity, "
                                                 "which it has only in Azure"))
        if event_grid and not self._event_grid_available:
            errors.append(FieldError("eventGrid", "this deployment has no Event Grid topic"))
        if errors:
            raise ContractViolation(errors)
        if building_id is not None and await self._sites.version(BuildingRef(tenant_id, building_id)) is None:
            raise ContractViolation([FieldError("buildingId", f"the tenant has no building '{building_id}'")])
        if len(await self._subscriptions.list_for_tenant(tenant_id)) >= MAX_SUBSCRIPTIONS_PER_TENANT:
            raise Conflict(f"a tenant has at most {MAX_SUBSCRIPTIONS_PER_TENANT} subscriptions")
        now = self._clock()
        secret = new_secret() if url is not None else None
        sink = SinkKind.webhook if url is not None else SinkKind.event_hub if event_hub else SinkKind.event_grid
        subscription = Subscription(
            tenant_id=tenant_id, subscription_id=f"sub-{secrets.token_hex(8)}", sink=sink, created_at=now, url=url,
            event_hub=event_hub, types=frozenset(types or ()), building_id=building_id,
            secrets=(SigningSecret(secret, now),) if secret else ())
        return await self._subscriptions.create(subscription), secret

    async def list_for_tenant(self, tenant_id: str) -> list[Subscription]:
        return await self._subscriptions.list_for_tenant(tenant_id)

    async def get(self, tenant_id: str, subscription_id: str) -> Subscription:
        subscription = await self._subscriptions.get(tenant_id, subscription_id)
        if subscription is None:
            raise NotFound(f"no subscription '{subscription_id}'")
        return subscription

    async def update(self, tenant_id: str, subscription_id: str, *, paused: bool | None,
                     types: list[EventType] | None) -> Subscription:
        """Pause or resume (resuming also enables a disabled subscription: its held deliveries go again, with a new
        24 hours), or change the types."""
        for _attempt in range(5):
            current = await self.get(tenant_id, subscription_id)
            changed = current
            resumed = False
            if types is not None:
                changed = replace(changed, types=frozenset(types))
            if paused is True:
                changed = replace(changed, paused=True)
            elif paused is False:
                resumed = changed.status.value != "active"
                changed = replace(changed, paused=False, disabled_reason=None, disabled_at=None)
            try:
                saved = await self._subscriptions.save(changed)
            except PreconditionFailed:
                continue  # the delivery worker disabled it meanwhile: apply the change to that version
            if resumed:
                await self._release_held(saved)
            return saved
        raise Conflict("the subscription keeps changing; try again")

    async def _release_held(self, subscription: Subscription) -> None:
        now = self._clock()
        for delivery in await self._deliveries.with_status(subscription.tenant_id, subscription.subscription_id,
                                                          DeliveryStatus.held, limit=100_000):
            try:
                await self._deliveries.save(replace(delivery, status=DeliveryStatus.pending, next_attempt_at=now,
                                                    first_attempt_at=None))
            except PreconditionFailed:
                continue

    async def delete(self, tenant_id: str, subscription_id: str) -> None:
        if not await self._subscriptions.delete(tenant_id, subscription_id):
            raise NotFound(f"no subscription '{subscription_id}'")
        await self._deliveries.delete_all(tenant_id, subscription_id)

    async def rotate_secret(self, tenant_id: str, subscription_id: str) -> tuple[Subscription, str]:
        """A new signing secret (in this answer only); the previous one keeps signing beside it for 24 hours."""
        for _attempt in range(5):
            current = await self.get(tenant_id, subscription_id)
            if current.sink is not SinkKind.webhook:
                raise ContractViolation([FieldError("path.subscriptionId", "only a webhook subscription has a "
                                                                           "secret")])
            secret = new_secret()
            try:
                return await self._subscriptions.save(rotate_secret(current, self._clock(), secret)), secret
            except PreconditionFailed:
                continue
        raise Conflict("the subscription keeps changing; try again")

    async def deliveries(self, tenant_id: str, subscription_id: str, limit: int) -> list[Delivery]:
        await self.get(tenant_id, subscription_id)
        return await self._deliveries.recent(tenant_id, subscription_id, limit)

    async def replay(self, tenant_id: str, subscription_id: str, start: datetime) -> int:
        """Deliver again every event the subscription takes from `start` on (the event log keeps a week), in
        order per space; the events keep their ids (receivers deduplicate on them). Returns how many."""
        subscription = await self.get(tenant_id, subscription_id)
        now = self._clock()
        if start > now or start < now - REPLAY_WINDOW:
            raise ContractViolation([FieldError("query.from", "a time within the last 7 days")],
                                    title="The query is invalid")
        events = [e for e in await self._log.since(tenant_id, subscription.building_id, start)
                  if subscription.takes(e)]
        for event in events:  # pending: the worker holds them while the subscription is paused or disabled
            await self._deliveries.put(Delivery(tenant_id, subscription_id, event, DeliveryStatus.pending,
                                                next_attempt_at=now))
        return len(events)
