"""In-process stand-in for Event Hubs (devkit and tests): the same processing service, the same delivery shape.

Events are spread over partitions by a stable hash of the partition key (one device -> one partition, in order),
and each partition's consumer hands the handler batches of up to `max_batch_size` events, like the Event Hub
trigger with cardinality many. A handler that raises is called again with the same batch, with the trigger's
retry policy (the same RetryPolicy object and delays): the partition waits meanwhile, like the real trigger before
its checkpoint moves. When the retries are exhausted the consumer moves on, as the trigger does (the processing
service has counted what that loses).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from shared.domain.ports import DependencyUnavailable, EventBatchHandler, InboundEvent, OutboundEvent
from shared.domain.retry import PROCESSING_RETRY, DeliveryAttempt, RetryPolicy

logger = logging.getLogger(__name__)


class InProcessEventPublisher:
    def __init__(
        self,
        handler: EventBatchHandler,
        partition_count: int = 8,
        max_batch_size: int = 100,
        max_queued_per_partition: int = 10_000,
        batch_wait_s: float = 0.02,
        retry: RetryPolicy = PROCESSING_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if partition_count < 1 or max_batch_size < 1:
            raise ValueError("partition_count and max_batch_size must be at least 1")
        self._handler = handler
        self._partition_count = partition_count
        self._max_batch_size = max_batch_size
        self._batch_wait_s = batch_wait_s
        self._retry = retry
        self._sleep = sleep  # the backoff between retries; close() cancels it
        # Unbounded queues with our own bound: the bound can then be tuned while running (devkit serve).
        self.max_queued_per_partition = max_queued_per_partition
        self._queues = [asyncio.Queue[InboundEvent]() for _ in range(partition_count)]
        self._sequence = [0] * partition_count
        self._consumers: list[asyncio.Task[None]] = []
        self._closed = False
        self.delivered_batches = 0
        self.failed_batches = 0  # given up on after the last retry
        self.retries = 0

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
        now = datetime.now(UTC)
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
                await self._deliver(partition, batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _deliver(self, partition: int, batch: list[InboundEvent]) -> None:
        """Hand the batch over until the handler succeeds or the policy's retries are used up."""
        delays: list[float] = []
        retry = 0
        while True:
            attempt = DeliveryAttempt(retry, self._retry.max_retry_count)
            try:
                await self._handler(batch, attempt)
                self.delivered_batches += 1
                return
            except Exception:
                if attempt.final:
                    self.failed_batches += 1
                    logger.exception("in-process hub: handler failed on partition %s, sequence numbers %s-%s, "
                                     "after %d retries: moving on", partition, batch[0].sequence_number,
                                     batch[-1].sequence_number, retry)
                    return
            retry += 1
            self.retries += 1
            if not delays:  # drawn once per failing delivery: the host's backoff keeps its state per execution
                delays = self._retry.delays(max(self._retry.max_retry_count, retry))
            delay = delays[retry - 1] if retry <= len(delays) else self._retry.maximum_interval.total_seconds()
            logger.warning("in-process hub: partition %s, sequence numbers %s-%s: retry %d in %.1f s",
                           partition, batch[0].sequence_number, batch[-1].sequence_number, retry, delay)
            await self._sleep(delay)
