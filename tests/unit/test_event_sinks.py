"""The Azure sinks over stand-ins for the SDK clients (no Event Hubs or Event Grid here): what is sent (a structured
CloudEvent, the subject as partition key, the event id kept) and how failures become attempts, through the worker."""
from __future__ import annotations

import json
from datetime import timedelta

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.eventhub import EventData

from shared.adapters.event_sinks import EventGridSink, EventHubSink, partition_key
from shared.domain.subscriptions import DeliveryStatus, EventHubTarget, SinkKind
from shared.services.delivery import DeliveryWorker
from tests.support.delivery import HQ, harness


class FakeProducer:
    def __init__(self, target: EventHubTarget, fail: list[Exception]) -> None:
        self.target = target
        self.sent: list[tuple[list[EventData], str | None]] = []
        self.fail = fail
        self.closed = False

    async def send_batch(self, event_data_batch, *, partition_key=None, timeout=None) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append((list(event_data_batch), partition_key))

    async def close(self) -> None:
        self.closed = True


class FakePublisher:
    def __init__(self, fail: list[Exception]) -> None:
        self.sent: list = []
        self.fail = fail

    async def send(self, events, **kwargs) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.extend(events)

    async def close(self) -> None:
        return None


async def subscribe_sink(h, **target):
    subscription, secret = await h.service.create(HQ.tenant_id, url=None, types=None, building_id=None,
                                                  **{"event_hub": None, "event_grid": False, **target})
    h.cache.invalidate()
    assert secret is None  # only webhooks have a signing secret
    return subscription.subscription_id


async def test_an_event_hub_gets_the_structured_event_keyed_by_its_space_and_retries_failures():
    h = await harness()
    producers: list[FakeProducer] = []
    failures: list[Exception] = [ClientAuthenticationError("no Data Sender role yet")]

    def factory(target: EventHubTarget) -> FakeProducer:
        producers.append(FakeProducer(target, failures))
        return producers[-1]

    sink = EventHubSink(factory)
    h.worker = DeliveryWorker(h.deliveries, h.cache, h.subscriptions, {SinkKind.event_hub: sink}, clock=h.clock,
                              rand=lambda: 1.0)
    object.__setattr__(h.service, "_event_hub_available", True)
    target = EventHubTarget("contoso-events.servicebus.windows.net", "rooms")
    sub_id = await subscribe_sink(h, event_hub=target)
    [event] = await h.occupy("r-oak", "phone-1")
    await h.round()
    [delivery] = await h.deliveries.recent(HQ.tenant_id, sub_id)
    assert (delivery.status, delivery.log[0].error) == (DeliveryStatus.pending, "Event Hubs: ClientAuthenticationError")
    h.clock.advance(timedelta(seconds=5))
    await h.round()
    [producer] = producers  # one producer per hub, kept
    [(batch, key)] = producer.sent
    assert producer.target == target and key == partition_key(event) == "/tenants/tenant-a/buildings/hq/spaces/r-oak"
    [data] = batch
    assert json.loads(b"".join(data.body)) == event.to_json()
    assert data.content_type.startswith("application/cloudevents+json") and data.message_id == event.id
    [delivery] = await h.deliveries.recent(HQ.tenant_id, sub_id)
    assert delivery.status is DeliveryStatus.delivered and [a.status_code for a in delivery.log] == [None, 200]
    await sink.close()
    assert producer.closed


async def test_event_grid_gets_a_cloudevent_with_the_same_attributes_and_its_http_errors_are_recorded():
    h = await harness()
    error = HttpResponseError(message="forbidden")
    error.status_code, error.reason = 403, "Forbidden"
    publisher = FakePublisher([error])
    h.worker = DeliveryWorker(h.deliveries, h.cache, h.subscriptions, {SinkKind.event_grid: EventGridSink(publisher)},
                              clock=h.clock, rand=lambda: 1.0)
    object.__setattr__(h.service, "_event_grid_available", True)
    sub_id = await subscribe_sink(h, event_grid=True)
    [event] = await h.occupy("r-oak", "phone-1")
    await h.round()
    h.clock.advance(timedelta(seconds=5))
    await h.round()
    [sent] = publisher.sent
    assert (sent.id, sent.source, sent.type, sent.subject, sent.time) == (
        event.id, event.source, event.type.value, event.subject, event.time)
    assert sent.data == event.to_json()["data"] and sent.extensions == {"sequence": event.sequence}
    [delivery] = await h.deliveries.recent(HQ.tenant_id, sub_id)
    assert [a.status_code for a in delivery.log] == [403, 200] and delivery.status is DeliveryStatus.delivered


async def test_sinks_this_deployment_lacks_are_refused_when_subscribing():
    h = await harness()
    from shared.domain.errors import ContractViolation

    for target, field in (({"event_grid": True}, "eventGrid"),
                          ({"event_hub": EventHubTarget("contoso-events.servicebus.windows.net", "rooms")},
                           "eventHub")):
        try:
            await subscribe_sink(h, **target)
        except ContractViolation as exc:
            assert [e.field for e in exc.errors] == [field]
        else:
            raise AssertionError(f"{field} was accepted without its sink")
