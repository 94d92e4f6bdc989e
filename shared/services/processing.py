"""The Event Hub side of the pipeline: decode, validate, dead-letter what cannot be processed."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.domain.errors import ContractViolation
from shared.domain.ingest_event import IngestEvent, decode_ingest_event
from shared.domain.ports import BlobStore, InboundEvent
from shared.services.common import Clock, utc_now

logger = logging.getLogger(__name__)


class ValidBatchHandler(Protocol):
    async def __call__(self, batches: Sequence[tuple[InboundEvent, IngestEvent]]) -> None: ...


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
        self.last_lag_s = 0.0  # from ingest to processing, of the newest event processed (a health signal)
        self.dead_lettered = 0

    async def process(self, events: Sequence[InboundEvent]) -> ProcessingReport:
        report = ProcessingReport(events=len(events))
        valid: list[tuple[InboundEvent, IngestEvent]] = []
        now = self._clock()
        for event in events:
            try:
                decoded = decode_ingest_event(event.body)
            except ContractViolation as exc:
                await self._dead_letter(event, "invalid", [e.as_dict() for e in exc.errors], now)
                report.dead_lettered += 1
                self.dead_lettered += 1
                continue
            valid.append((event, decoded))
        report.valid = len(valid)
        if not valid:
            return report
        self.last_lag_s = max(0.0, (now - max(decoded.received_at for _e, decoded in valid)).total_seconds())
        try:
            await self._on_valid(valid)
        except Exception as exc:
            # The trigger's checkpoint moves on even when we raise: keep the batches where they can be replayed
            # (everything the pipeline writes is idempotent), then fail loudly.
            problem = [{"field": "$", "message": f"processing failed: {type(exc).__name__}"}]
            for event, _decoded in valid:
                await self._dead_letter(event, "processing-failed", problem, now)
            self.dead_lettered += len(valid)
            raise
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
        for attempt in range(3):  # a dead letter is the last copy of the event: try hard before giving up
            try:
                await self._dead_letters.put(self._container, name, json.dumps(document).encode(), "application/json")
                break
            except Exception:
                if attempt == 2:
                    logger.error("could not dead-letter partition %s sequence %s: the event is lost",
                                 event.partition_id, event.sequence_number)
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        logger.warning("dead-lettered event: partition %s sequence %s (%s, %d errors)",
                       event.partition_id, event.sequence_number, reason, len(errors))
