"""The Azure sinks of the events, both through the app's managed identity (no keys): a customer's Event Hub (they
grant our identity Azure Event Hubs Data Sender on it) and the deployment's Event Grid topic (CloudEvents 1.0
input schema; Bicep grants EventGrid Data Sender). Each event goes as a structured CloudEvent; on Event Hubs with
the subject as partition key, so one space's events stay in order on one partition."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.messaging import CloudEvent as AzureCloudEvent

from shared.domain.events import STRUCTURED_CONTENT_TYPE, CloudEvent
from shared.domain.ports import SinkAnswer
from shared.domain.subscriptions import DELIVERY_TIMEOUT, EventHubTarget, Subscription

logger = logging.getLogger(__name__)


class Producer(Protocol):
    """What the sink uses of azure.eventhub.aio.EventHubProducerClient."""

    async def send_batch(self, event_data_batch: Any, *, partition_key: str | None = None,
                         timeout: float | None = None) -> None: ...

    async def close(self) -> None: ...


class Publisher(Protocol):
    """What the sink uses of azure.eventgrid.aio.EventGridPublisherClient."""

    def send(self, events: Any, **kwargs: Any) -> Awaitable[None]: ...

    async def close(self) -> None: ...


def partition_key(event: CloudEvent) -> str:
    return f"{event.source}/{event.subject}"


class EventHubSink:
    """One producer per customer hub, created on first use with the managed identity and kept."""

    def __init__(self, producer_factory: Callable[[EventHubTarget], Producer],
                 timeout_s: float = DELIVERY_TIMEOUT.total_seconds()) -> None:
        self._factory = producer_factory
        self._timeout_s = timeout_s
        self._producers: dict[EventHubTarget, Producer] = {}

    async def send(self, subscription: Subscription, event: CloudEvent, body: bytes) -> SinkAnswer:
        from azure.eventhub import EventData

        target = subscription.event_hub
        if target is None:
            return SinkAnswer(None, "the subscription names no Event Hub")
        producer = self._producers.get(target)
        if producer is None:
            producer = self._producers[target] = self._factory(target)
        data = EventData(body)
        data.content_type = STRUCTURED_CONTENT_TYPE
        data.message_id = event.id
        try:
            await asyncio.wait_for(producer.send_batch([data], partition_key=partition_key(event)), self._timeout_s)
        except TimeoutError:
            return SinkAnswer(None, f"Event Hubs: no answer within {self._timeout_s:g} s")
        except (AzureError, OSError) as exc:
            # Forbidden (no Data Sender role), a missing hub, an unreachable namespace: retried, then disabled.
            return SinkAnswer(None, f"Event Hubs: {type(exc).__name__}")
        return SinkAnswer(200)

    async def close(self) -> None:
        producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            try:
                await producer.close()
            except Exception:  # closing the others matters more
                logger.exception("closing an Event Hubs producer failed")


def to_azure_cloud_event(event: CloudEvent) -> AzureCloudEvent[Any]:
    document = event.to_json()
    return AzureCloudEvent(source=event.source, type=event.type.value, id=event.id, time=event.time,
                           subject=event.subject, datacontenttype=event.datacontenttype, data=document["data"],
                           extensions={"sequence": event.sequence})


class EventGridSink:
    """The deployment's Event Grid topic: every subscription that chose it publishes there; a tenant's events are
    told apart by their `source` (`/tenants/{tenantId}/...`), which Event Grid subscriptions can filter on."""

    def __init__(self, publisher: Publisher, timeout_s: float = DELIVERY_TIMEOUT.total_seconds()) -> None:
        self._publisher = publisher
        self._timeout_s = timeout_s

    async def send(self, subscription: Subscription, event: CloudEvent, body: bytes) -> SinkAnswer:
        try:
            await asyncio.wait_for(self._publisher.send([to_azure_cloud_event(event)]), self._timeout_s)
        except TimeoutError:
            return SinkAnswer(None, f"Event Grid: no answer within {self._timeout_s:g} s")
        except HttpResponseError as exc:
            return SinkAnswer(exc.status_code, f"Event Grid: {exc.reason or type(exc).__name__}")
        except (AzureError, OSError) as exc:
            return SinkAnswer(None, f"Event Grid: {type(exc).__name__}")
        return SinkAnswer(200)

    async def close(self) -> None:
        await self._publisher.close()


def event_hub_producer_factory(credential: Any) -> Callable[[EventHubTarget], Producer]:
    """Producers for customers' hubs with the app's managed identity."""

    def create(target: EventHubTarget) -> Producer:
        from azure.eventhub.aio import EventHubProducerClient

        producer: Producer = EventHubProducerClient(fully_qualified_namespace=target.namespace,
                                                    eventhub_name=target.hub, credential=credential)
        return producer

    return create


def event_grid_publisher(endpoint: str, credential: Any) -> Publisher:
    from azure.eventgrid.aio import EventGridPublisherClient

    publisher: Publisher = EventGridPublisherClient(endpoint, credential)
    return publisher
