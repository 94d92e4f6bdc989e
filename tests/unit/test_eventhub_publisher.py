"""The Event Hubs publisher against a stand-in producer that hands out real EventDataBatch objects."""
from __future__ import annotations

import pytest
from azure.eventhub import EventDataBatch
from azure.eventhub.exceptions import ConnectError

from shared.adapters.eventhub import EventHubEventPublisher, EventTooLarge
from shared.domain.ports import DependencyUnavailable, OutboundEvent


class StandInProducer:
    def __init__(self, max_batch_bytes: int = 1024, fail: Exception | None = None) -> None:
        self.max_batch_bytes = max_batch_bytes
        self.sent: list[tuple[str, list[bytes]]] = []
        self.fail = fail

    async def create_batch(self, partition_key: str) -> EventDataBatch:
        if self.fail:
            raise self.fail
        return EventDataBatch(max_size_in_bytes=self.max_batch_bytes, partition_key=partition_key)

    async def send_batch(self, batch: EventDataBatch) -> None:
        bodies = [b"".join(event.body) for event in batch._internal_events]
        self.sent.append((batch._partition_key, bodies))

    async def get_eventhub_properties(self) -> dict:
        if self.fail:
            raise self.fail
        return {"name": "sightings"}

    async def close(self) -> None:
        pass


async def test_one_event_per_batch_grouped_by_device_and_split_by_size():
    producer = StandInProducer(max_batch_bytes=1024)
    publisher = EventHubEventPublisher(producer)
    events = [OutboundEvent("phone-a", b"a" * 300 + bytes([i])) for i in range(5)] + [OutboundEvent("phone-b", b"b")]
    await publisher.publish(events)
    assert {key for key, _ in producer.sent} == {"phone-a", "phone-b"}
    a_batches = [bodies for key, bodies in producer.sent if key == "phone-a"]
    assert [body for bodies in a_batches for body in bodies] == [e.body for e in events[:5]]  # each once, in order
    assert len(a_batches) >= 2  # 5 x 300 B does not fit one 1 KB batch


async def test_an_event_larger_than_an_empty_batch_is_refused():
    publisher = EventHubEventPublisher(StandInProducer(max_batch_bytes=256))
    with pytest.raises(EventTooLarge):
        await publisher.publish([OutboundEvent("phone-a", b"x" * 1000)])


async def test_connection_failures_become_dependency_unavailable():
    publisher = EventHubEventPublisher(StandInProducer(fail=ConnectError("no route")))
    with pytest.raises(DependencyUnavailable) as error:
        await publisher.publish([OutboundEvent("phone-a", b"x")])
    assert error.value.dependency == "event hub"
    with pytest.raises(DependencyUnavailable):
        await publisher.check()
