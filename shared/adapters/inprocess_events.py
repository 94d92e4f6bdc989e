"""In-process stand-in for Event Hubs (devkit and tests): the same processing service, the same delivery shape.

Events are spread over partitions by a stable hash of the partition key (one device -> one partition, in order),
and each partition's consumer hands the handler batches of up to `max_batch_size` events, like the Event Hub
trigger with cardinality many. A handler that raises does not stop the partition: like the real trigger, the
consumer moves on (the processing service owns dead-lettering).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone

from shared.domain.ports import DependencyUnavailable, EventBatchHandler, InboundEvent, OutboundEvent

logger = logging.getLogger(__name__)


class InProcessEventPublisher:
    def __init__(
        self,
        handler: EventBatchHandler,
        partition_count: int = 8,
        max_batch_size: int = 100,
        max_queued_per_partition: int = 10_000,
        batch_wait_s: float = 0.02,
    ) -> None:
        if partition_count < 1 or max_batch_size < 1:
            raise ValueError("partition_count and max_batch_size must be at least 1")
        self._handler = handler
        self._partition_count = partition_count
        self._max_batch_size = max_batch_size
        self._batch_wait_s = batch_wait_s
        # Unbounded queues with our own bound: the bound can then be tuned while running (devkit serve).
        self.max_queued_per_partition = max_queued_per_partition
        self._queues = [asyncio.Queue[InboundEvent]() for _ in range(partition_count)]
        self._sequence = [0] * partition_count
        self._consumers: list[asyncio.Task] = []
        self._closed = False
        self.delivered_batches = 0
        self.failed_batches = 0

    def partition_of(self, partition_key: str) -> int:
        return zlib.crc32(partition_key.encode()) % self._partition_count

    async def publish(self, events: Sequence[OutboundEvent]) -> None:
        if self._closed:
            raise DependencyUnavailable("event hub", "the in-process hub is closed")
        self._ensure_consumers()
        # Like Event Hubs throttling: a partition that is too far behind refuses more, the caller retries later.
        full = [p for p in {self.partition_of(e.partition_key) for e in events}
                if self._queues[p].qsize() >= self.max_queued_per_partition]
        if full:
            raise DependencyUnavailable("event hub", f"partition {full[0]} is behind", retry_after_s=1)
        now = datetime.now(timezone.utc)
        for event in events:
            partition = self.partition_of(event.partition_key)
            self._sequence[partition] += 1
            self._queues[partition].put_nowait(
                InboundEvent(
                    body=event.body, partition_key=event.partition_key, sequence_number=self._sequence[partition],
                    enqueued_time=now, partition_id=str(partition), properties=dict(event.properties),
                )
            )

    async def check(self) -> None:
        if self._closed:
            raise DependencyUnavailable("event hub", "the in-process hub is closed")

    def backlog(self) -> int:
        """Events published and not yet handed to the handler."""
        return sum(q.qsize() for q in self._queues)

    async def drain(self) -> None:
        """Wait until every published event has been handled."""
        self._ensure_consumers()
        for queue in self._queues:
            await queue.join()

    async def close(self) -> None:
        self._closed = True
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._consumers.clear()

    def _ensure_consumers(self) -> None:
        if not self._consumers:
            self._consumers = [
                asyncio.create_task(self._consume(partition), name=f"inprocess-hub-partition-{partition}")
                for partition in range(self._partition_count)
            ]

    async def _consume(self, partition: int) -> None:
        queue = self._queues[partition]
        while True:
            batch = [await queue.get()]
            if self._batch_wait_s:
                # Let a burst accumulate, like the trigger's prefetch does, instead of handing over one by one.
                await asyncio.sleep(self._batch_wait_s)
            while len(batch) < self._max_batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._handler(batch)
                self.delivered_batches += 1
            except Exception:
                self.failed_batches += 1
                logger.exception(
                    "in-process hub: handler failed on partition %s, sequence numbers %s-%s",
                    partition, batch[0].sequence_number, batch[-1].sequence_number,
                )
            finally:
                for _ in batch:
                    queue.task_done()
