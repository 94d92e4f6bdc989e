"""Load shedding by queueing delay: a bounded number of work slots and a wait queue whose requests are shed with
503 + Retry-After once they have waited too long, or would.

A fixed cap on requests in flight sheds too late: on one event loop, 256 concurrent handlers share the CPU, so
every accepted request gets slower until clients time out, and nothing is shed before that. Here the number of
requests working at once is small (work slots), the rest wait in a queue, and the queue's delay is the signal
(CoDel, as Facebook's "Fail at Scale" adapts it to RPC queues, with its adaptive LIFO):

- the queue has been empty within the last `interval_s`: a burst. Waiters are served in order (FIFO) and one
  is shed after waiting `max_wait_s`; a newcomer whose predicted wait (its place in the queue times the measured
  service time over the slots) exceeds that is shed at once, instead of after waiting in vain;
- the queue has not been empty for `interval_s`: a standing queue, i.e. overload. The newest waiter is served
  first (LIFO: its client is the one still most likely to be waiting for the answer) and waiters are shed after
  only `target_s`, so accepted requests stay fast and the rest are told to come back at once.

The policy (`arrive`, `release`, `expire`) is synchronous and takes the time as an argument, so it is tested with
an injected clock; `slot()` puts asyncio around it.
"""
from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

WORK_SLOTS = 32  # requests working at once on an instance; one event loop gains nothing from more
TARGET_WAIT_S = 0.05  # the longest wait in a standing queue (CoDel's target)
INTERVAL_S = 0.1  # a queue not empty for this long is a standing queue, not a burst
MAX_WAIT_S = 0.3  # the longest wait in a burst: well inside the 1 s an accepted request may take
MAX_QUEUE = 2048  # a memory bound only: the waits above shed long before this fills
RETRY_AFTER_S = 1
_SERVICE_EWMA = 0.1  # weight of the newest service time in the running estimate

PROBLEM = {"type": "https://spaceflow.dev/problems/overloaded", "title": "Service unavailable", "status": 503,
           "detail": "this instance is overloaded; retry after the Retry-After seconds"}


class Overloaded(Exception):
    """No work slot within the wait this request may have: answer 503 with Retry-After."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("overloaded")
        self.retry_after_s = retry_after_s


class Outcome(enum.Enum):
    waiting = "waiting"
    admitted = "admitted"
    shed = "shed"


@dataclass(eq=False)
class Waiter:
    """One request asking for a work slot."""

    arrived_at: float
    outcome: Outcome = Outcome.waiting
    admitted_at: float | None = None
    future: asyncio.Future | None = field(default=None, repr=False)


class AdmissionControl:
    def __init__(self, slots: int = WORK_SLOTS, *, target_s: float = TARGET_WAIT_S, interval_s: float = INTERVAL_S,
                 max_wait_s: float = MAX_WAIT_S, max_queue: int = MAX_QUEUE, retry_after_s: int = RETRY_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if slots < 1 or not 0 < target_s <= max_wait_s:
            raise ValueError("need at least one slot and 0 < target_s <= max_wait_s")
        self.slots = slots
        self.target_s = target_s
        self.interval_s = interval_s
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._queue: deque[Waiter] = deque()  # in order of arrival, oldest on the left
        self._last_empty = clock()
        self.service_s = 0.0  # running estimate of how long a request holds a slot
        self.in_use = 0
        self.admitted = 0
        self.shed = 0

    # ---- the policy: synchronous, given the time ---------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def congested(self, now: float) -> bool:
        """A standing queue: it has not been empty for `interval_s`."""
        return bool(self._queue) and now - self._last_empty > self.interval_s

    def wait_limit(self, now: float) -> float:
        """How long a waiter may wait right now before it is shed."""
        return self.target_s if self.congested(now) else self.max_wait_s

    def predicted_wait(self, position: int) -> float:
        """The wait of a request with `position` requests ahead of it, at the measured service time."""
        return (position + 1) * self.service_s / self.slots

    def arrive(self, now: float) -> Waiter:
        """A request asks for a slot: admitted at once, queued, or shed (it would wait too long)."""
        waiter = Waiter(arrived_at=now)
        if self.in_use < self.slots and not self._queue:
            self._admit(waiter, now)
            self._last_empty = now
            return waiter
        self.expire(now)
        if not self._queue:
            self._last_empty = now  # empty until this one joins
        if self.congested(now):
            # LIFO: the newcomer will be served first; a full queue drops its oldest, about to be shed anyway.
            if len(self._queue) >= self.max_queue:
                self._shed(self._queue.popleft())
        elif len(self._queue) >= self.max_queue or self.predicted_wait(len(self._queue)) > self.max_wait_s:
            self._shed(waiter)
            return waiter
        self._queue.append(waiter)
        return waiter

    def release(self, waiter: Waiter, now: float) -> None:
        """A request gives its slot back; the slot goes to the next waiter the policy picks."""
        if waiter.outcome is not Outcome.admitted or waiter.admitted_at is None:
            return  # never held a slot, or gave it back already
        took = now - waiter.admitted_at
        self.service_s = took if self.service_s == 0 else (1 - _SERVICE_EWMA) * self.service_s + _SERVICE_EWMA * took
        waiter.admitted_at = None
        self.in_use -= 1
        self._fill(now)

    def expire(self, now: float) -> None:
        """Shed every waiter that has waited longer than it may."""
        limit = self.wait_limit(now)
        while self._queue and now - self._queue[0].arrived_at > limit:
            self._shed(self._queue.popleft())
        if not self._queue:
            self._last_empty = now

    def leave(self, waiter: Waiter, now: float) -> None:
        """A waiter gives up (its client went away): out of the queue, or its slot back if it just got one."""
        if waiter.outcome is Outcome.waiting:
            self._queue.remove(waiter)
            waiter.outcome = Outcome.shed
            if not self._queue:
                self._last_empty = now
        elif waiter.outcome is Outcome.admitted:
            self.release(waiter, now)

    def _fill(self, now: float) -> None:
        self.expire(now)
        while self._queue and self.in_use < self.slots:
            lifo = self.congested(now)
            self._admit(self._queue.pop() if lifo else self._queue.popleft(), now)
        if not self._queue:
            self._last_empty = now

    def _admit(self, waiter: Waiter, now: float) -> None:
        waiter.outcome = Outcome.admitted
        waiter.admitted_at = now
        self.in_use += 1
        self.admitted += 1
        if waiter.future is not None and not waiter.future.done():
            waiter.future.set_result(None)

    def _shed(self, waiter: Waiter) -> None:
        waiter.outcome = Outcome.shed
        self.shed += 1
        if waiter.future is not None and not waiter.future.done():
            waiter.future.set_result(None)

    # ---- asyncio around it ------------------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a work slot for the block; raises Overloaded when the request is shed instead."""
        waiter = self.arrive(self._clock())
        if waiter.outcome is Outcome.waiting:
            await self._wait(waiter)
        if waiter.outcome is Outcome.shed:
            raise Overloaded(self.retry_after_s)
        try:
            yield
        finally:
            self.release(waiter, self._clock())

    async def _wait(self, waiter: Waiter) -> None:
        loop = asyncio.get_running_loop()
        waiter.future = loop.create_future()
        # Wake up when the short limit could apply, then when the long one does; a slot may come first. The
        # millisecond makes sure the wait is past the limit when the check runs.
        timers = [loop.call_later(limit - (self._clock() - waiter.arrived_at) + 0.001, self._check_expiry)
                  for limit in {self.target_s, self.max_wait_s}]
        try:
            await waiter.future
        except asyncio.CancelledError:
            self.leave(waiter, self._clock())
            raise
        finally:
            for timer in timers:
                timer.cancel()

    def _check_expiry(self) -> None:
        self.expire(self._clock())
