"""Ingest: a decoded SDK batch in, one Event Hubs event out (partition key = device), per-reading verdicts back."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.domain.ingest_event import encode_ingest_event
from shared.domain.ports import EventPublisher, OutboundEvent
from shared.domain.sightings import RejectedReading, parse_sightings_batch
from shared.services.common import Clock, utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    accepted: int
    rejected: list[RejectedReading] = field(default_factory=list)
    published: bool = True


class IngestService:
    def __init__(self, publisher: EventPublisher, clock: Clock = utc_now) -> None:
        self._publisher = publisher
        self._clock = clock

    async def ingest(self, tenant_id: str, data: object) -> IngestResult:
        """Validate and publish. ContractViolation for a bad envelope; DependencyUnavailable when the hub is not
        taking events (the SDK retries with the same batchId; processing dedupes on it)."""
        now = self._clock()
        parsed = parse_sightings_batch(data, now)
        batch = parsed.batch
        has_work = bool(batch.sightings or batch.beacon_telemetry)
        if has_work:
            body = encode_ingest_event(tenant_id, now, batch)
            await self._publisher.publish([OutboundEvent(partition_key=batch.device_id, body=body)])
        return IngestResult(batch_id=str(batch.batch_id), accepted=len(batch.sightings), rejected=parsed.rejected,
                            published=has_work)
