"""Runs the app's timer jobs on their NCRONTAB schedules, as the Functions host would (devkit only)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from shared.domain.ncrontab import parse_ncrontab
from shared.services import ScheduledJobs

logger = logging.getLogger(__name__)


async def run_timers(jobs: ScheduledJobs, schedules: Mapping[str, str]) -> None:
    """Forever: each job at each of its schedule's instants (UTC, like the Functions host on Linux)."""
    await asyncio.gather(*(_run_one(jobs, name, expression) for name, expression in schedules.items()))


async def _run_one(jobs: ScheduledJobs, name: str, expression: str) -> None:
    schedule = parse_ncrontab(expression)
    while True:
        now = datetime.now(UTC)
        due = schedule.next_after(now)
        await asyncio.sleep((due - now).total_seconds())
        try:
            await jobs.run(name, due)
        except Exception:  # like the host, a failed run is logged and the next one still happens
            logger.exception("timer %s failed", name)
