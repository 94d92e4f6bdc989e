"""Ingest: a decoded SDK batch in, one Event Hubs event out (partition key = device), per-reading verdicts back."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.domain.errors import Conflict
from shared.domain.ingest_event import encode_ingest_event
from shared.domain.ports import EventPublisher, OutboundEvent
from shared.domain.sightings import RejectedReading, parse_sightings_batch
from shared.services.common import Clock, utc_now
from shared.services.sites import SiteDirectory

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    accepted: int
    rejected: list[RejectedReading] = field(default_factory=list)
    published: bool = True


class NotPositioned(Conflict):
    """The tenant has no building with beacons yet: nothing it sends can be positioned (409)."""


class IngestService:
    def __init__(self, publisher: EventPublisher, sites: SiteDirectory, clock: Clock = utc_now) -> None:
        self._publisher = publisher
        self._sites = sites
        self._clock = clock

    async def ingest(self, tenant_id: str, data: object) -> IngestResult:
        """Validate and publish the readings of the tenant's beacons. ContractViolation for a bad envelope;
        NotPositioned when no building of the tenant has beacons; DependencyUnavailable when the hub is not
        taking events (the SDK retries with the same batchId; processing dedupes on it)."""
        now = self._clock()
        known = await self._sites.known_beacons(tenant_id)
        parsed = parse_sightings_batch(data, now, known_beacons=known)  # a malformed batch is a 400 first
        if not known:
            mapped = [b.building_id for b in await self._sites.all(tenant_id)]
            where = (f"its buildings ({', '.join(mapped[:10])}) are mapped but have no beacons yet" if mapped
                     else "it has no buildings yet")
            raise NotPositioned(f"nothing can be positioned for tenant '{tenant_id}': {where}", buildings=mapped)
        batch = parsed.batch
        has_work = bool(batch.sightings or batch.beacon_telemetry)
        if has_work:
            body = encode_ingest_event(tenant_id, now, batch)
            await self._publisher.publish([OutboundEvent(partition_key=batch.device_id, body=body)])
        return IngestResult(batch_id=str(batch.batch_id), accepted=len(batch.sightings), rejected=parsed.rejected,
                            published=has_work)
