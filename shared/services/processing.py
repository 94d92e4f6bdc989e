"""The Event Hub side of the pipeline: decode, validate, process; park what cannot be processed; lose nothing
silently (docs/data-model.md, "Nothing lost silently")."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.domain.errors import ContractViolation
from shared.domain.ingest_event import IngestEvent, decode_ingest_event
from shared.domain.ports import BlobStore, DependencyUnavailable, InboundEvent
from shared.domain.retry import DeliveryAttempt
from shared.services.common import Clock, utc_now

logger = logging.getLogger(__name__)

# Failures that say "a store cannot be reached now", not "this event cannot be processed": the delivery is retried
# instead of parking its events (the adapters turn the SDKs' connection errors into DependencyUnavailable).
TRANSIENT_FAILURES: tuple[type[BaseException], ...] = (DependencyUnavailable, ConnectionError, TimeoutError)


class ValidBatchHandler(Protocol):
    async def __call__(self, batches: Sequence[tuple[InboundEvent, IngestEvent]]) -> None: ...


class EventsNotSecured(RuntimeError):
    """Some events of a delivery were neither processed nor dead-lettered. Raised so that the delivery is retried
    (the trigger's retry policy, the in-process hub); when raised on the final attempt, those events are lost and
    were counted and logged as such."""

    def __init__(self, events: Sequence[InboundEvent], final: bool) -> None:
        self.events = list(events)
        self.final = final
        what = "lost" if final else "not secured yet, the delivery must be retried"
        super().__init__(f"{len(self.events)} events {what}: " + ", ".join(
            f"partition {e.partition_id} sequence {e.sequence_number}" for e in self.events[:5])
            + (" ..." if len(self.events) > 5 else ""))


@dataclass
class ProcessingReport:
    events: int = 0
    valid: int = 0
    processed: int = 0
    dead_lettered: int = 0
    already_secured: int = 0  # processed or dead-lettered by an earlier attempt of the same delivery


class EventProcessingService:
    """Every event of a delivery ends in exactly one of three places: processed, parked in the dead-letter
    container (with its reason, replayable), or counted and logged as lost. Lost means a failure outlived the
    delivery's retries: the event could be neither processed nor dead-lettered on its final attempt.

    - An event that cannot be decoded or validated is dead-lettered on its own ("invalid").
    - Valid batches go to `on_valid` together, in arrival order. When that fails because a store is unreachable
      (TRANSIENT_FAILURES) and a retry will follow, the delivery is failed so it is retried with the same events
      (the partition waits): they are processed once the store is back. Parked batches would have to be replayed
      by hand, and a batch replayed after newer batches of its phone contributes nothing (its readings are older
      than the device's lastSeen).
    - Any other processing failure, or a transient one on the final attempt, has each valid event processed again
      on its own: only those that fail alone are dead-lettered ("processing-failed"), so one poison event does not
      park its neighbours; one failing put does not stop the others.
    - When every event is processed or parked the call returns normally, even after a processing failure: raising
      would have the delivery run again and a retry that succeeds would leave events both applied and parked.
    - Otherwise it raises EventsNotSecured. The retry skips the events this attempt did secure (remembered by
      partition and sequence number), so none is both parked and applied; processing is idempotent (batch-id
      dedupe, set-based occupancy) for redeliveries this memory cannot see (another instance, a restart).
    """

    def __init__(self, dead_letters: BlobStore, dead_letter_container: str, on_valid: ValidBatchHandler,
                 clock: Clock = utc_now, dead_letter_tries: int = 2, dead_letter_pause_s: float = 0.2,
                 dead_letter_concurrency: int = 50, remembered_events: int = 100_000) -> None:
        self._dead_letters = dead_letters
        self._container = dead_letter_container
        self._on_valid = on_valid
        self._clock = clock
        self._dead_letter_tries = dead_letter_tries
        self._dead_letter_pause_s = dead_letter_pause_s
        self._dead_letter_concurrency = dead_letter_concurrency
        self._remembered_events = remembered_events
        self._secured: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.last_lag_s = 0.0  # from ingest to processing, of the newest event processed (a health signal)
        # This instance's counters (GET /api/ops/stats): events processed, parked, lost; deliveries failed for retry.
        self.processed = 0
        self.dead_lettered = 0
        self.retries = 0
        self.lost = 0

    async def process(self, events: Sequence[InboundEvent],
                      attempt: DeliveryAttempt = DeliveryAttempt()) -> ProcessingReport:
        """Process one delivery (attempt `attempt`); raises EventsNotSecured when some event is neither processed nor
        dead-lettered."""
        report = ProcessingReport(events=len(events))
        pending = [event for event in events if _key(event) not in self._secured]
        report.already_secured = len(events) - len(pending)
        now = self._clock()
        valid: list[tuple[InboundEvent, IngestEvent]] = []
        secured: list[InboundEvent] = []
        unsecured: list[InboundEvent] = []
        failure: BaseException | None = None
        invalid: list[tuple[InboundEvent, list[dict[str, str]]]] = []
        for event in pending:
            try:
                decoded = decode_ingest_event(event.body)
            except ContractViolation as exc:
                invalid.append((event, [e.as_dict() for e in exc.errors]))
                continue
            valid.append((event, decoded))
        report.valid = len(valid)
        if invalid:
            for (event, _errors), error in zip(invalid, await self._dead_letter_each(
                    [(event, "invalid", errors) for event, errors in invalid], now)):
                if error is None:
                    secured.append(event)
                    report.dead_lettered += 1
                else:
                    unsecured.append(event)
                    failure = error
        if valid:
            self.last_lag_s = max(0.0, (now - max(decoded.received_at for _e, decoded in valid)).total_seconds())
            try:
                await self._on_valid(valid)
            except Exception as exc:  # noqa: BLE001 - whatever failed, each event is processed, parked or retried
                failure = exc
                if isinstance(exc, TRANSIENT_FAILURES) and not attempt.final:
                    unsecured.extend(event for event, _decoded in valid)
                else:
                    # One poison event must not park its neighbours (other devices, buildings, tenants): each
                    # event is processed again on its own (idempotent), and only those that fail are parked.
                    done, poison, retry = await self._isolate(valid, attempt)
                    secured.extend(done)
                    report.processed = len(done)
                    unsecured.extend(retry)
                    errors = await self._dead_letter_each(
                        [(event, "processing-failed",
                          [{"field": "$", "message": f"processing failed: {type(error).__name__}"}])
                         for event, error in poison], now)
                    for (event, _error), put_error in zip(poison, errors, strict=True):
                        if put_error is None:
                            secured.append(event)
                            report.dead_lettered += 1
                        else:
                            unsecured.append(event)
            else:
                secured.extend(event for event, _decoded in valid)
                report.processed = len(valid)
        self.processed += report.processed
        self.dead_lettered += report.dead_lettered
        if not unsecured:
            self._forget(events)
            return report
        order = {_key(event): index for index, event in enumerate(events)}
        unsecured.sort(key=lambda event: order[_key(event)])
        if attempt.final:
            self._forget(events)
            self.lost += len(unsecured)
            for event in unsecured:
                logger.error("lost event: partition %s sequence %s could be neither processed nor dead-lettered "
                             "(%s, after %d retries)", event.partition_id, event.sequence_number,
                             type(failure).__name__, attempt.retry)
            raise EventsNotSecured(unsecured, final=True) from failure
        self._remember(secured)
        self.retries += 1
        logger.warning("partition %s: %d of %d events neither processed nor dead-lettered (%s), sequence numbers "
                       "%s-%s: the delivery will be retried (retry %d of %s)", unsecured[0].partition_id,
                       len(unsecured), len(events), type(failure).__name__, unsecured[0].sequence_number,
                       unsecured[-1].sequence_number, attempt.retry + 1,
                       attempt.max_retries if attempt.max_retries >= 0 else "unlimited")
        raise EventsNotSecured(unsecured, final=False) from failure

    async def _isolate(self, valid: Sequence[tuple[InboundEvent, IngestEvent]], attempt: DeliveryAttempt,
                       ) -> tuple[list[InboundEvent], list[tuple[InboundEvent, Exception]], list[InboundEvent]]:
        """Each event processed on its own, in order: (processed, failed with their error, to retry because a store
        became unreachable meanwhile)."""
        done: list[InboundEvent] = []
        poison: list[tuple[InboundEvent, Exception]] = []
        retry: list[InboundEvent] = []
        for event, decoded in valid:
            try:
                await self._on_valid([(event, decoded)])
            except Exception as exc:  # noqa: BLE001 - sorting failures is the point: retry, or park this one only
                if isinstance(exc, TRANSIENT_FAILURES) and not attempt.final:
                    retry.append(event)
                else:
                    poison.append((event, exc))
                    logger.warning("partition %s sequence %s failed on its own (%s): parked", event.partition_id,
                                   event.sequence_number, type(exc).__name__)
            else:
                done.append(event)
        return done, poison, retry

    async def _dead_letter_each(self, letters: list[tuple[InboundEvent, str, list[dict[str, str]]]],
                                now: datetime) -> list[Exception | None]:
        """Dead-letter every event on its own, concurrently (while Blob is down each put takes seconds to fail, and
        one failing put must not hold up or stop the others); per event, None when written, else the error."""
        limit = asyncio.Semaphore(self._dead_letter_concurrency)

        async def one(event: InboundEvent, reason: str, errors: list[dict[str, str]]) -> Exception | None:
            async with limit:
                return await self._dead_letter(event, reason, errors, now)

        return list(await asyncio.gather(*(one(*letter) for letter in letters)))

    async def _dead_letter(self, event: InboundEvent, reason: str, errors: list[dict[str, str]],
                           now: datetime) -> Exception | None:
        """Write the event's dead letter; None when written, else the last error (never raises)."""
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
        data = json.dumps(document).encode()
        error: Exception | None = None
        # A second try for a hiccup (the Blob SDK retries inside each); an outage is ridden out by retrying the
        # whole delivery.
        for attempt in range(self._dead_letter_tries):
            if attempt:
                await asyncio.sleep(self._dead_letter_pause_s * attempt)
            try:
                await self._dead_letters.put(self._container, name, data, "application/json")
            except Exception as exc:  # noqa: BLE001 - whatever the store raises, the event is tracked, not dropped
                error = exc
                continue
            logger.warning("dead-lettered event: partition %s sequence %s (%s, %d errors)",
                           event.partition_id, event.sequence_number, reason, len(errors))
            return None
        logger.warning("could not dead-letter partition %s sequence %s (%s): %s", event.partition_id,
                       event.sequence_number, reason, type(error).__name__)
        return error

    def _remember(self, events: Iterable[InboundEvent]) -> None:
        for event in events:
            self._secured[_key(event)] = None
        while len(self._secured) > self._remembered_events:
            self._secured.popitem(last=False)

    def _forget(self, events: Iterable[InboundEvent]) -> None:
        for event in events:
            self._secured.pop(_key(event), None)


def _key(event: InboundEvent) -> tuple[str, int]:
    # Sequence numbers are unique within a partition: together they name one event across redeliveries.
    return (event.partition_id, event.sequence_number)
