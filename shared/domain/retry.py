"""How a failed delivery of events is retried: one policy for the Event Hub trigger and the in-process hub.

The Functions host retries a trigger invocation that raises (for Event Hubs, before the checkpoint moves) with
the policy declared on the function. The in-process hub (devkit, tests) applies the same policy object, computing
the delays the way the host does, so local runs ride out an outage exactly as long as Azure would.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict


class FunctionRetryArguments(TypedDict):
    """The keyword arguments of the Functions decorator `@bp.retry(...)` (the host's hh:mm:ss intervals)."""

    strategy: str
    max_retry_count: str
    minimum_interval: str
    maximum_interval: str


@dataclass(frozen=True)
class DeliveryAttempt:
    """Which try of one delivery this is: `retry` 0 is the first delivery, `max_retries` -1 retries forever."""

    retry: int = 0
    max_retries: int = 0

    @property
    def final(self) -> bool:
        """No retry follows when this attempt fails: what it cannot secure now is lost."""
        return self.max_retries >= 0 and self.retry >= self.max_retries


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff as the Functions host computes it (RandomizedExponentialBackoffStrategy in the WebJobs
    SDK): the first retry waits `minimum_interval`; retry n waits minimum + r * 2^(n-2) * minimum with r drawn
    from [0.8, 1.2], until that reaches `maximum_interval`, which every later retry then waits."""

    max_retry_count: int
    minimum_interval: timedelta
    maximum_interval: timedelta

    RANDOMIZATION = 0.2

    def __post_init__(self) -> None:
        if self.max_retry_count < -1:
            raise ValueError("max_retry_count must be -1 (forever) or more")
        if not timedelta(0) <= self.minimum_interval <= self.maximum_interval:
            raise ValueError("need 0 <= minimum_interval <= maximum_interval")

    def delays(self, count: int, draw: Callable[[], float] = random.random) -> list[float]:
        """Seconds waited before each of the first `count` retries; `draw` gives uniform numbers in [0, 1)."""
        minimum, maximum = self.minimum_interval.total_seconds(), self.maximum_interval.total_seconds()
        result: list[float] = []
        current = minimum
        for retry in range(1, count + 1):
            if retry > 1 and current < maximum:
                factor = 1 - self.RANDOMIZATION + 2 * self.RANDOMIZATION * draw()
                current = min(maximum, minimum + factor * 2 ** (retry - 2) * minimum)
            result.append(current)
        return result

    def shortest_window_s(self) -> float:
        """The least time the retries span (every random factor at its lowest): an outage shorter than this, plus
        the time the attempts themselves take, is ridden out."""
        if self.max_retry_count < 0:
            return float("inf")
        return sum(self.delays(self.max_retry_count, draw=lambda: 0.0))

    def function_retry_arguments(self) -> FunctionRetryArguments:
        """The arguments of the Functions decorator `@bp.retry(...)` for this policy."""
        return {"strategy": "exponential_backoff", "max_retry_count": str(self.max_retry_count),
                "minimum_interval": _hh_mm_ss(self.minimum_interval),
                "maximum_interval": _hh_mm_ss(self.maximum_interval)}

    def scaled(self, factor: float) -> RetryPolicy:
        """The same shape with every interval multiplied by `factor` (tests that cannot wait minutes)."""
        return RetryPolicy(self.max_retry_count, self.minimum_interval * factor, self.maximum_interval * factor)


def _hh_mm_ss(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds != value.total_seconds():
        raise ValueError("the Functions host takes whole seconds (hh:mm:ss)")
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# The Event Hub trigger's policy. Retries happen only while an event can be neither processed nor dead-lettered
# (docs/data-model.md, "Nothing lost silently"): while Cosmos and Blob are both down, or Cosmos is unreachable.
# 5 s, then about 9, 13, 21, 37 s, then every 60 s: 16 retries span at least 12.4 minutes, so an outage of up to
# 10 minutes (plus the time each failing attempt takes) ends before the last retry, and after an outage ends
# processing resumes within a minute.
PROCESSING_RETRY = RetryPolicy(max_retry_count=16, minimum_interval=timedelta(seconds=5),
                               maximum_interval=timedelta(seconds=60))
