"""Replaying dead letters: events parked because processing failed go back to the hub once the cause is fixed.

Processing is idempotent (batch ids are deduplicated, occupancy changes are set operations), so replaying an
event that was in fact processed changes nothing. A letter is deleted only after its event was published.
"""
from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from shared.domain.ports import BlobStore, EventPublisher, OutboundEvent

logger = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    letters: int = 0
    replayed: int = 0
    kept: dict[str, int] = field(default_factory=dict)  # reason -> letters left alone

    def as_dict(self) -> dict[str, Any]:
        return {"letters": self.letters, "replayed": self.replayed, "kept": self.kept}


class DeadLetterReplay:
    def __init__(self, blobs: BlobStore, container: str, publisher: EventPublisher) -> None:
        self._blobs = blobs
        self._container = container
        self._publisher = publisher

    async def replay(self, prefix: str = "", reasons: frozenset[str] = frozenset({"processing-failed"}),
                     dry_run: bool = False) -> ReplayReport:
        """Publish again the events of the letters under `prefix` whose reason is in `reasons` (by default only
        those whose processing failed: an invalid event stays invalid)."""
        report = ReplayReport()
        for name in await self._blobs.list_names(self._container, prefix):
            raw = await self._blobs.get(self._container, name)
            if raw is None:
                continue
            report.letters += 1
            letter = json.loads(raw)
            reason = letter.get("reason", "?")
            if reason not in reasons:
                report.kept[reason] = report.kept.get(reason, 0) + 1
                continue
            if not dry_run:
                body = base64.b64decode(letter["bodyBase64"])
                await self._publisher.publish([OutboundEvent(letter.get("partitionKey") or "", body)])
                await self._blobs.delete(self._container, name)
            report.replayed += 1
        logger.info("dead letters: %d read, %d replayed%s", report.letters, report.replayed,
                    " (dry run)" if dry_run else "")
        return report
