"""Event Hubs publisher: one event per SDK batch, partition key = device id, sent in size-bounded EventDataBatches."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient
from azure.eventhub.exceptions import EventHubError

from shared.domain.ports import DependencyUnavailable, OutboundEvent
from shared.settings import EVENTHUB_PREFIX, Settings

logger = logging.getLogger(__name__)


class EventTooLarge(ValueError):
    """One event does not fit in an empty EventDataBatch (the hub's message size limit)."""


def create_eventhub_producer(settings: Settings, credential: Any | None = None) -> EventHubProducerClient:
    """Producer from a connection string (local) or the namespace + managed identity (Azure)."""
    if settings.eventhub_connection_string:
        return EventHubProducerClient.from_connection_string(
            settings.eventhub_connection_string, eventhub_name=settings.eventhub_name
        )
    if credential is None:
        raise ValueError("a credential is needed to connect to the Event Hubs namespace")
    if not settings.eventhub_namespace:  # Settings checks one of the two is set when publishing to Event Hubs
        raise ValueError(f"{EVENTHUB_PREFIX}__fullyQualifiedNamespace (or {EVENTHUB_PREFIX}) is not set")
    return EventHubProducerClient(
        fully_qualified_namespace=settings.eventhub_namespace, eventhub_name=settings.eventhub_name,
        credential=credential,
    )


class EventHubEventPublisher:
    def __init__(self, producer: EventHubProducerClient) -> None:
        self._producer = producer

    async def publish(self, events: Sequence[OutboundEvent]) -> None:
        try:
            for key, group in _group_by_key(events).items():
                await self._send_group(key, group)
        except EventHubError as exc:
            logger.warning("event hub publish failed: %s", type(exc).__name__)
            raise DependencyUnavailable("event hub", type(exc).__name__) from exc

    async def _send_group(self, partition_key: str, events: list[OutboundEvent]) -> None:
        batch = await self._producer.create_batch(partition_key=partition_key)
        for event in events:
            data = EventData(event.body)
            if event.properties:
                # a copy, built key by key so it types as the SDK's dict[str | bytes, Any]
                data.properties = {key: value for key, value in event.properties.items()}
            try:
                batch.add(data)
            except ValueError:
                if len(batch) == 0:
                    raise EventTooLarge(f"an event of {len(event.body)} bytes exceeds the hub's size limit") from None
                await self._producer.send_batch(batch)
                batch = await self._producer.create_batch(partition_key=partition_key)
                batch.add(data)
        if len(batch):
            await self._producer.send_batch(batch)

    async def check(self) -> None:
        try:
            await self._producer.get_eventhub_properties()
        except EventHubError as exc:
            raise DependencyUnavailable("event hub", type(exc).__name__) from exc

    async def close(self) -> None:
        await self._producer.close()


def _group_by_key(events: Sequence[OutboundEvent]) -> dict[str, list[OutboundEvent]]:
    """Events per partition key, each list in publish order (dicts keep first-seen key order)."""
    groups: dict[str, list[OutboundEvent]] = {}
    for event in events:
        groups.setdefault(event.partition_key, []).append(event)
    return groups
