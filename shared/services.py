"""Service layer: what the triggers call. Each service takes its ports in the constructor and does no wiring."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from shared.domain.errors import ContractViolation
from shared.domain.ports import BlobStore, InboundEvent
from shared.domain.sightings import ParsedBatch, parse_sightings_batch

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Checkable(Protocol):
    async def check(self) -> None: ...


@dataclass(frozen=True)
class DependencyStatus:
    name: str
    ok: bool
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"status": "ok" if self.ok else "down", "latencyMs": self.latency_ms}
        if self.detail:
            result["detail"] = self.detail
        return result


class HealthService:
    """Asks every dependency for a real round trip, concurrently, each bounded by a timeout."""

    def __init__(self, dependencies: Mapping[str, Checkable], timeout_s: float = 3.0) -> None:
        self._dependencies = dict(dependencies)
        self._timeout_s = timeout_s

    async def check(self) -> list[DependencyStatus]:
        return list(await asyncio.gather(*(self._check_one(n, d) for n, d in self._dependencies.items())))

    async def _check_one(self, name: str, dependency: Checkable) -> DependencyStatus:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(dependency.check(), self._timeout_s)
            ok, detail = True, ""
        except asyncio.TimeoutError:
            ok, detail = False, f"no answer within {self._timeout_s:g} s"
        except Exception as exc:  # a health check reports any failure instead of raising it
            ok, detail = False, str(exc) or type(exc).__name__
            logger.warning("health: %s is down: %s", name, type(exc).__name__)
        return DependencyStatus(name, ok, round((time.perf_counter() - started) * 1000, 1), detail)


class ValidBatchHandler(Protocol):
    async def __call__(self, batches: Sequence[tuple[InboundEvent, ParsedBatch]]) -> None: ...


@dataclass
class ProcessingReport:
    events: int = 0
    valid: int = 0
    dead_lettered: int = 0


class EventProcessingService:
    """The Event Hub side: decode and validate each event; what cannot be processed goes to a dead-letter blob.

    A bad event never blocks its partition and is never dropped silently. Valid batches go to `on_valid`, in the
    order they arrived.
    """

    def __init__(self, dead_letters: BlobStore, dead_letter_container: str, on_valid: ValidBatchHandler,
                 clock: Clock = utc_now) -> None:
        self._dead_letters = dead_letters
        self._container = dead_letter_container
        self._on_valid = on_valid
        self._clock = clock

    async def process(self, events: Sequence[InboundEvent]) -> ProcessingReport:
        report = ProcessingReport(events=len(events))
        valid: list[tuple[InboundEvent, ParsedBatch]] = []
        now = self._clock()
        for event in events:
            try:
                parsed = parse_sightings_batch(decode_event_body(event.body), now=now)
            except ContractViolation as exc:
                await self._dead_letter(event, "invalid", [e.as_dict() for e in exc.errors], now)
                report.dead_lettered += 1
                continue
            valid.append((event, parsed))
        report.valid = len(valid)
        if valid:
            await self._on_valid(valid)
        return report

    async def _dead_letter(self, event: InboundEvent, reason: str, errors: list[dict[str, str]], now: datetime) -> None:
        # Named by the event itself, so a redelivered bad event overwrites its own dead letter instead of adding one.
        name = (f"{now:%Y/%m/%d}/partition={event.partition_id}/"
                f"{event.sequence_number:020d}-{hashlib.sha256(event.body).hexdigest()[:16]}.json")
        document = {
            "reason": reason,
            "errors": errors,
            "partitionId": event.partition_id,
            "partitionKey": event.partition_key,
            "sequenceNumber": event.sequence_number,
            "enqueuedTime": event.enqueued_time.isoformat() if event.enqueued_time else None,
            "deadLetteredAt": now.isoformat(),
            "bodyBase64": base64.b64encode(event.body).decode(),
        }
        await self._dead_letters.put(self._container, name, json.dumps(document).encode(), "application/json")
        logger.warning("dead-lettered event: partition %s sequence %s (%s, %d errors)",
                       event.partition_id, event.sequence_number, reason, len(errors))


def decode_event_body(body: bytes) -> object:
    """The JSON of an event body; ContractViolation when it is not UTF-8 JSON."""
    from shared.domain.errors import FieldError

    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractViolation([FieldError("$", f"the event body is not JSON: {type(exc).__name__}")]) from None


ScheduledJob = Callable[[datetime], Any]


class ScheduledJobs:
    """The timer triggers' work by job name; the Functions timers and the devkit timer runner both call `run`."""

    PRESENCE_SWEEP = "presence-sweep"
    HOURLY_ROLLUP = "hourly-rollup"
    DAILY_ROLLUP = "daily-rollup"

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
