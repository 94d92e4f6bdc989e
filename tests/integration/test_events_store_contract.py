"""The subscription, delivery and event-log stores: one contract, run on the in-memory fakes and on Cosmos."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.cosmos_events import CosmosDeliveryStore, CosmosEventLog, CosmosSubscriptionStore
from shared.adapters.memory import InMemoryDeliveryStore, InMemoryEventLog, InMemorySubscriptionStore
from shared.domain.events import EventType, SpaceFacts, space_events
from shared.domain.ports import AlreadyExists, PreconditionFailed
from shared.domain.presence import OccupancyChange, SpaceState, apply_occupancy
from shared.domain.subscriptions import (
    AttemptRecord,
    Delivery,
    DeliveryStatus,
    SigningSecret,
    SinkKind,
    Subscription,
)
from shared.domain.tenancy import BuildingRef
from tests.integration.conftest import emulator_database

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
A_HQ, B_HQ = BuildingRef("tenant-a", "hq"), BuildingRef("tenant-b", "hq")


@pytest.fixture(params=["memory", "cosmos"])
async def stores(request):
    if request.param == "memory":
        yield InMemorySubscriptionStore(), InMemoryDeliveryStore(), InMemoryEventLog()
        return
    async with emulator_database(request, "events") as database:
        yield CosmosSubscriptionStore(database), CosmosDeliveryStore(database), CosmosEventLog(database)


def subscription(tenant: str, sub_id: str = "sub-1", **changes) -> Subscription:
    base = Subscription(tenant, sub_id, SinkKind.webhook, T0, url="https://hooks.example.com/",
                        types=frozenset({EventType.space_occupied}), building_id="hq",
                        secrets=(SigningSecret("whsec_AAAA", T0),))
    return replace(base, **changes)


def events_of(building: BuildingRef, space_id: str, times: list[datetime]) -> list:
    """A room occupied and freed in turn at `times` (events with sequence 1, 2, ...)."""
    space, out = SpaceState.empty(building, space_id), []
    for n, at in enumerate(times):
        change = OccupancyChange(building, space_id, "d", "enter" if n % 2 == 0 else "leave", at)
        space, made = space_events(space, apply_occupancy(space, change), SpaceFacts.unknown(space_id))
        out += made
    return out


async def test_subscriptions_round_trip_per_tenant_with_etags(stores):
    subs, _deliveries, _log = stores
    created = await subs.create(subscription("tenant-a"))
    await subs.create(subscription("tenant-b"))  # the same id in another tenant
    with pytest.raises(AlreadyExists):
        await subs.create(subscription("tenant-a"))
    assert (created.types, created.secrets[0].value, created.building_id) == (
        frozenset({EventType.space_occupied}), "whsec_AAAA", "hq")
    assert [s.tenant_id for s in await subs.list_for_tenant("tenant-a")] == ["tenant-a"]
    assert sorted(s.tenant_id for s in await subs.list_all()) == ["tenant-a", "tenant-b"]
    saved = await subs.save(replace(created, paused=True))
    with pytest.raises(PreconditionFailed):
        await subs.save(replace(created, disabled_reason="stale"))
    assert (await subs.get("tenant-a", "sub-1")).paused and saved.etag != created.etag
    assert await subs.delete("tenant-a", "sub-1") and not await subs.delete("tenant-a", "sub-1")
    assert await subs.get("tenant-a", "sub-1") is None and await subs.get("tenant-b", "sub-1") is not None


async def test_deliveries_are_added_once_and_found_due_per_subject_in_order(stores):
    _subs, deliveries, _log = stores
    events = events_of(A_HQ, "r-oak", [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)])
    for event in reversed(events):
        assert await deliveries.add(Delivery("tenant-a", "sub-1", event, DeliveryStatus.pending, T0))
    assert not await deliveries.add(Delivery("tenant-a", "sub-1", events[0], DeliveryStatus.pending, T0))
    await deliveries.add(Delivery("tenant-b", "sub-1", events[0], DeliveryStatus.pending, T0 + timedelta(hours=1)))
    due = await deliveries.due(T0 + timedelta(seconds=1))
    assert sorted((d.tenant_id, d.event.sequence_number) for d in due) == [("tenant-a", 1), ("tenant-a", 2),
                                                                           ("tenant-a", 3)]
    ordered = await deliveries.open_for_subscription("tenant-a", "sub-1")
    assert [d.event.sequence_number for d in ordered] == [1, 2, 3]
    head = ordered[0]
    record = AttemptRecord(T0, 200, 12.5)
    done = await deliveries.save(replace(head.attempted(record), status=DeliveryStatus.delivered, delivered_at=T0))
    with pytest.raises(PreconditionFailed):
        await deliveries.save(replace(head, attempts=9))
    assert (done.attempts, done.log, done.event) == (1, (record,), events[0])
    assert [d.event.sequence_number for d in await deliveries.open_for_subscription("tenant-a", "sub-1")] == [2, 3]
    await deliveries.save(replace(ordered[1], status=DeliveryStatus.held))
    assert [d.event.sequence_number for d in await deliveries.with_status("tenant-a", "sub-1",
                                                                          DeliveryStatus.held)] == [2]
    assert [d.event.sequence_number for d in await deliveries.recent("tenant-a", "sub-1", 2)] == [3, 2]
    assert await deliveries.delete_all("tenant-a", "sub-1") == 3
    assert await deliveries.recent("tenant-a", "sub-1") == []
    assert len(await deliveries.recent("tenant-b", "sub-1")) == 1


async def test_the_event_log_answers_a_tenant_since_a_time(stores):
    _subs, _deliveries, log = stores
    mine = events_of(A_HQ, "r-oak", [T0, T0 + timedelta(minutes=5)])
    annex = events_of(BuildingRef("tenant-a", "annex"), "r-1", [T0 + timedelta(minutes=2)])
    theirs = events_of(B_HQ, "r-oak", [T0 + timedelta(minutes=3)])
    for event in [*mine, *annex, *theirs, mine[0]]:
        await log.append(event)
    assert [e.id for e in await log.since("tenant-a", None, T0 + timedelta(minutes=1))] == [annex[0].id, mine[1].id]
    assert [e.id for e in await log.since("tenant-a", "hq", T0)] == [mine[0].id, mine[1].id]
    assert [e.id for e in await log.since("tenant-b", "hq", T0)] == [theirs[0].id]
