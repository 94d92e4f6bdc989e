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

That queue only sees requests that wait for a slot. When the CPU is the bottleneck (handlers that hardly
await: ingest), requests do not wait there but in the event loop itself, before the gate runs them: 600
concurrent posters got 1-2 s answers and nothing was shed. So the loop's own delay is the second signal: a timer
measures how late the loop runs it, and while it stays late (`LoopDelay`: CoDel's minimum over a window, so a
one-off stall does not count) the probability that an arriving request is shed before it does any work rises
(PIE's idea, RFC 8033, with bounded steps). Shedding costs a fraction of serving, so the loop's delay, and with
it every accepted request's wait, comes back towards the target.

The policies (`arrive`, `release`, `expire`; `LoopDelay.observe`) are synchronous and take the time as an
argument, so they are tested with an injected clock; `slot()` puts asyncio around them.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import random
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
_REPORT_EVERY_S = 5.0  # while shedding, one log line this often

logger = logging.getLogger(__name__)
LOOP_DELAY_TARGET_S = 0.1  # how late the event loop may keep running: a request waits one to two times that
LOOP_DELAY_EVERY_S = 0.025  # how often the loop's delay is measured (and the shedding probability updated)

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
    future: asyncio.Future[None] | None = field(default=None, repr=False)


class LoopDelay:
    """How late the event loop runs, and from it the probability of shedding an arriving request.

    One late measurement is a stall (a site index being built, a timer's job): the requests behind it have
    waited already, and shedding them would not make them faster. A late loop with at most one request arriving
    meanwhile is a long handler (a site model being validated for a client that sends one request at a time):
    nobody waited behind anybody. A standing delay with requests piling up is overload: every iteration of the
    loop is late because it has more to do than it can. So the signal is CoDel's: the *smallest* delay measured
    over the last `window_s`, counting only measurements during which two requests or more arrived. While it is over the target the shedding probability rises, by up to
    `step_up` a measurement (in proportion to how far over); while it is under half the target it falls by
    `step_down`. Bounded steps, up fast and down slowly: the probability settles where the loop keeps up instead
    of swinging between shedding nothing and shedding everything."""

    def __init__(self, target_s: float = LOOP_DELAY_TARGET_S, *, window_s: float = 0.1, step_up: float = 0.1,
                 step_down: float = 0.02, max_probability: float = 0.95,
                 rng: Callable[[], float] = random.random) -> None:
        self.target_s = target_s
        self.window_s = window_s
        self.step_up = step_up
        self.step_down = step_down
        self.max_probability = max_probability  # never all: the accepted few keep the measurements honest
        self._rng = rng
        self._recent: deque[tuple[float, float]] = deque()  # (when, delay)
        self.delay_s = 0.0  # the standing delay
        self.probability = 0.0

    def observe(self, delay_s: float, now: float, arrivals: int) -> None:
        """One measurement of how late the loop ran, at `now`, with the number of requests that arrived since the
        last one: update the standing delay and the probability."""
        self._recent.append((now, delay_s if arrivals >= 2 else 0.0))
        # The window keeps the previous measurement however old: in overload one iteration of the loop may take
        # longer than the window, and the signal must not vanish then.
        while len(self._recent) > 2 and now - self._recent[0][0] > self.window_s:
            self._recent.popleft()
        # Standing only when two measurements or more agree: right after a stall, one late one does not.
        self.delay_s = min(d for _t, d in self._recent) if len(self._recent) > 1 else 0.0
        if self.delay_s > self.target_s:
            over = min(1.0, self.delay_s / self.target_s - 1)
            self.probability = min(self.max_probability, self.probability + self.step_up * over)
        elif self.delay_s < self.target_s / 2:
            self.probability = max(0.0, self.probability - self.step_down)

    def idle(self) -> None:
        """Nothing arrived for a while: forget the load."""
        self._recent.clear()
        self.delay_s = self.probability = 0.0

    def shed_now(self) -> bool:
        """Shed an arriving request? Never while the standing delay is under half the target."""
        return self.delay_s > self.target_s / 2 and self._rng() < self.probability


class AdmissionControl:
    def __init__(self, slots: int = WORK_SLOTS, *, target_s: float = TARGET_WAIT_S, interval_s: float = INTERVAL_S,
                 max_wait_s: float = MAX_WAIT_S, max_queue: int = MAX_QUEUE, retry_after_s: int = RETRY_AFTER_S,
                 loop_delay: LoopDelay | None = None, clock: Callable[[], float] = time.monotonic) -> None:
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
        self.loop_delay = loop_delay or LoopDelay()
        self._ticking: asyncio.AbstractEventLoop | None = None  # the loop whose delay is being measured
        self._last_arrival = 0.0
        self.shed_by: dict[str, int] = {"loop": 0, "waited": 0, "would_wait": 0}  # why, for the log and tests
        self.arrivals = 0
        self._arrivals_measured = 0  # `arrivals` at the last measurement of the loop's delay
        self._reported = (0.0, 0)  # when the last log line was written, and `shed` then

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
        """A request asks for a slot: admitted at once, queued, or shed (the loop is late, or it would wait too
        long)."""
        waiter = Waiter(arrived_at=now)
        self._last_arrival = now
        self.arrivals += 1
        if self.loop_delay.shed_now():
            self._shed(waiter, "loop")
            return waiter
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
                self._shed(self._queue.popleft(), "waited")
        elif len(self._queue) >= self.max_queue or self.predicted_wait(len(self._queue)) > self.max_wait_s:
            self._shed(waiter, "would_wait")
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
            self._shed(self._queue.popleft(), "waited")
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

    def _shed(self, waiter: Waiter, why: str) -> None:
        waiter.outcome = Outcome.shed
        self.shed += 1
        self.shed_by[why] += 1
        if waiter.future is not None and not waiter.future.done():
            waiter.future.set_result(None)

    # ---- asyncio around it ------------------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a work slot for the block; raises Overloaded when the request is shed instead."""
        self._measure_loop_delay()
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

    def _measure_loop_delay(self) -> None:
        """Keep a timer measuring how late this loop runs while requests arrive (it stops when they stop)."""
        loop = asyncio.get_running_loop()
        if self._ticking is loop:
            return
        self._ticking = loop
        self.loop_delay.idle()
        expected = loop.time() + LOOP_DELAY_EVERY_S
        loop.call_at(expected, self._tick, loop, expected)

    def _tick(self, loop: asyncio.AbstractEventLoop, expected: float) -> None:
        now = loop.time()
        self.loop_delay.observe(max(0.0, now - expected), now, self.arrivals - self._arrivals_measured)
        self._arrivals_measured = self.arrivals
        self._report(self._clock())
        if self._clock() - self._last_arrival > 1.0 or loop.is_closed():
            self._ticking = None  # idle: no timer on an instance nobody calls; the next request starts it again
            self.loop_delay.idle()
            return
        expected = loop.time() + LOOP_DELAY_EVERY_S
        loop.call_at(expected, self._tick, loop, expected)

    def _report(self, now: float) -> None:
        """While requests are being shed, say so now and then (counts only: nothing about any request)."""
        since, shed_then = self._reported
        if now - since < _REPORT_EVERY_S:
            return
        if self.shed > shed_then:
            logger.warning("overloaded: shed %d requests in %.0f s (so far: loop late %d, waited too long %d, would "
                           "have waited too long %d); loop delay %.0f ms, shedding probability %.2f, %d of %d slots in "
                           "use, %d waiting", self.shed - shed_then, now - since, self.shed_by["loop"],
                           self.shed_by["waited"], self.shed_by["would_wait"], 1000 * self.loop_delay.delay_s,
                           self.loop_delay.probability, self.in_use, self.slots, self.waiting)
        self._reported = (now, self.shed)
