"""The in-process hub delivers like the Event Hub trigger: per-device order, bounded batches, partitions that
keep going when a handler fails."""
from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from shared.adapters.inprocess_events import InProcessEventPublisher
from shared.domain.ports import DependencyUnavailable, OutboundEvent


def events_for(devices: int, per_device: int) -> list[OutboundEvent]:
    return [OutboundEvent(f"device-{d}", f"{d}:{n}".encode()) for n in range(per_device) for d in range(devices)]


async def test_each_device_keeps_its_order_and_batches_stay_bounded():
    received: list[list] = []

    async def handler(batch):
        received.append(list(batch))
        await asyncio.sleep(0)

    hub = InProcessEventPublisher(handler, partition_count=4, max_batch_size=7, batch_wait_s=0)
    for chunk in range(5):  # several publishes, as several HTTP requests would make
        await hub.publish(events_for(devices=30, per_device=4)[chunk::5])
    await hub.drain()
    await hub.close()

    assert all(1 <= len(batch) <= 7 for batch in received)
    seen: dict[str, list[int]] = defaultdict(list)
    for batch in received:
        assert len({e.partition_id for e in batch}) == 1  # a batch never mixes partitions
        for event in batch:
            device, n = event.body.decode().split(":")
            seen[device].append(int(n))
    assert len(seen) == 30
    # the publish order of one device: chunks interleave, so compare against what was sent
    sent: dict[str, list[int]] = defaultdict(list)
    for chunk in range(5):
        for event in events_for(devices=30, per_device=4)[chunk::5]:
            device, n = event.body.decode().split(":")
            sent[device].append(int(n))
    assert seen == sent


async def test_one_device_always_lands_on_one_partition_with_rising_sequence_numbers():
    received = []

    async def handler(batch):
        received.extend(batch)

    hub = InProcessEventPublisher(handler, partition_count=8, batch_wait_s=0)
    await hub.publish([OutboundEvent("phone-a", b"1"), OutboundEvent("phone-a", b"2"), OutboundEvent("phone-a", b"3")])
    await hub.drain()
    await hub.close()
    assert len({e.partition_id for e in received}) == 1
    assert [e.sequence_number for e in received] == sorted(e.sequence_number for e in received)
    assert [e.body for e in received] == [b"1", b"2", b"3"]


async def test_a_failing_handler_does_not_block_the_partition():
    calls = []

    async def handler(batch):
        calls.append([e.body for e in batch])
        if b"poison" in calls[-1]:
            raise RuntimeError("boom")

    hub = InProcessEventPublisher(handler, partition_count=1, max_batch_size=1, batch_wait_s=0)
    await hub.publish([OutboundEvent("d", b"poison"), OutboundEvent("d", b"next")])
    await hub.drain()
    await hub.close()
    assert calls == [[b"poison"], [b"next"]]
    assert hub.failed_batches == 1 and hub.delivered_batches == 1


async def test_a_full_partition_or_a_closed_hub_is_unavailable_not_lost():
    gate = asyncio.Event()

    async def handler(batch):
        await gate.wait()

    hub = InProcessEventPublisher(handler, partition_count=1, max_batch_size=1, max_queued_per_partition=2, batch_wait_s=0)
    await hub.publish([OutboundEvent("d", b"1")])
    await asyncio.sleep(0.01)  # the consumer takes the first and blocks in the handler
    await hub.publish([OutboundEvent("d", b"2"), OutboundEvent("d", b"3")])
    with pytest.raises(DependencyUnavailable) as error:
        await hub.publish([OutboundEvent("d", b"4")])
    assert error.value.retry_after_s >= 1
    assert hub.backlog() == 2
    gate.set()
    await hub.drain()
    await hub.close()
    with pytest.raises(DependencyUnavailable):
        await hub.publish([OutboundEvent("d", b"5")])
