"""The in-process hub delivers like the Event Hub trigger: per-device order, bounded batches, a failed handler call
retried with the trigger's policy while its partition waits, then the partition moves on."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta

import pytest

from shared.adapters.inprocess_events import InProcessEventPublisher
from shared.domain.ports import DependencyUnavailable, OutboundEvent
from shared.domain.retry import RetryPolicy


def events_for(devices: int, per_device: int) -> list[OutboundEvent]:
    return [OutboundEvent(f"device-{d}", f"{d}:{n}".encode()) for n in range(per_device) for d in range(devices)]


async def test_each_device_keeps_its_order_and_batches_stay_bounded():
    received: list[list] = []

    async def handler(batch, attempt):
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

    async def handler(batch, attempt):
        received.extend(batch)

    hub = InProcessEventPublisher(handler, partition_count=8, batch_wait_s=0)
    await hub.publish([OutboundEvent("phone-a", b"1"), OutboundEvent("phone-a", b"2"), OutboundEvent("phone-a", b"3")])
    await hub.drain()
    await hub.close()
    assert len({e.partition_id for e in received}) == 1
    assert [e.sequence_number for e in received] == sorted(e.sequence_number for e in received)
    assert [e.body for e in received] == [b"1", b"2", b"3"]


SHORT = RetryPolicy(3, timedelta(seconds=1), timedelta(seconds=4))


class RecordedSleep:
    """The hub's backoff, recorded instead of waited."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def test_a_failing_handler_is_retried_with_the_policy_while_its_partition_waits():
    calls = []
    failures = {"left": 2}

    async def handler(batch, attempt):
        calls.append(([e.body for e in batch], attempt.retry, attempt.final))
        if b"flaky" in calls[-1][0] and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("cosmos is down")

    sleep = RecordedSleep()
    hub = InProcessEventPublisher(handler, partition_count=1, max_batch_size=1, batch_wait_s=0, retry=SHORT,
                                  sleep=sleep)
    await hub.publish([OutboundEvent("d", b"flaky"), OutboundEvent("d", b"next")])
    await hub.drain()
    await hub.close()
    # the same batch again and again, and the next one only after it went through
    assert calls == [([b"flaky"], 0, False), ([b"flaky"], 1, False), ([b"flaky"], 2, False), ([b"next"], 0, False)]
    assert sleep.delays[0] == 1.0 and 1.8 <= sleep.delays[1] <= 2.2
    assert (hub.retries, hub.delivered_batches, hub.failed_batches) == (2, 2, 0)


async def test_after_the_last_retry_the_partition_moves_on():
    calls = []

    async def handler(batch, attempt):
        calls.append(([e.body for e in batch], attempt.retry, attempt.final))
        if b"poison" in calls[-1][0]:
            raise RuntimeError("boom")

    sleep = RecordedSleep()
    hub = InProcessEventPublisher(handler, partition_count=1, max_batch_size=1, batch_wait_s=0, retry=SHORT,
                                  sleep=sleep)
    await hub.publish([OutboundEvent("d", b"poison"), OutboundEvent("d", b"next")])
    await hub.drain()
    await hub.close()
    assert calls == [([b"poison"], 0, False), ([b"poison"], 1, False), ([b"poison"], 2, False),
                     ([b"poison"], 3, True), ([b"next"], 0, False)]
    assert len(sleep.delays) == 3 and sleep.delays[-1] <= 4.0
    assert hub.failed_batches == 1 and hub.delivered_batches == 1


async def test_close_ends_a_partition_waiting_to_retry():
    failing = asyncio.Event()

    async def handler(batch, attempt):
        failing.set()
        raise ConnectionError("down")

    hub = InProcessEventPublisher(handler, partition_count=1, batch_wait_s=0)  # the real policy: minutes of retries
    await hub.publish([OutboundEvent("d", b"1")])
    await asyncio.wait_for(failing.wait(), 5)
    await asyncio.wait_for(hub.close(), 5)
    assert hub.retries == 1 and hub.failed_batches == 0


async def test_a_full_partition_or_a_closed_hub_is_unavailable_not_lost():
    gate = asyncio.Event()

    async def handler(batch, attempt):
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
