"""Scheduled work by job name: the Functions timers and the devkit timer runner both call `run`."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)

ScheduledJob = Callable[[datetime], Any]


class ScheduledJobs:
    """The timer triggers' work by job name; the Functions timers and the devkit timer runner both call `run`."""

    PRESENCE_SWEEP = "presence-sweep"
    HOURLY_ROLLUP = "hourly-rollup"
    DAILY_ROLLUP = "daily-rollup"
    EVENT_DELIVERY = "event-delivery"
    NO_SHOWS = "no-shows"
    BOOKING_SYNC = "booking-sync"
    GRAPH_RENEWAL = "graph-renewal"

    def __init__(self, jobs: Mapping[str, ScheduledJob] | None = None) -> None:
        self._jobs = dict(jobs or {})

    def register(self, name: str, job: ScheduledJob) -> None:
        self._jobs[name] = job

    async def run(self, name: str, now: datetime) -> bool:
        """Run the job; False when no work is registered under that name yet."""
        job = self._jobs.get(name)
        if job is None:
            logger.info("timer %s: no work registered", name)
            return False
        started = time.perf_counter()
        await job(now)
        logger.info("timer %s finished in %.0f ms", name, (time.perf_counter() - started) * 1000)
        return True
