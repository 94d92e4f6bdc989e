"""The co-worker finder: each person chooses whether and how precisely they can be found, and until when.

Privacy rules, pure: a location is shown only while sharing is on and unexpired, only at the chosen granularity
(building, floor or space) and only when the person's phone was heard in the last ten minutes. Every other case
is the same answer: not available (so nobody can tell "not opted in" from "unknown" from "not here").
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.presence import DeviceState

SEEN_WITHIN = timedelta(minutes=10)


class SharingLevel(str, enum.Enum):
    off = "off"
    building = "building"
    floor = "floor"
    space = "space"


@dataclass(frozen=True)
class Sharing:
    tenant_id: str
    user_id: str
    level: SharingLevel
    until: datetime | None
    updated_at: datetime

    def active(self, now: datetime) -> bool:
        return self.level is not SharingLevel.off and (self.until is None or now < self.until)


@dataclass(frozen=True)
class PersonLocation:
    user_id: str
    level: SharingLevel
    building_id: str
    floor: str | None
    space_id: str | None
    last_seen: datetime


def shared_location(sharing: Sharing | None, devices: list[DeviceState], now: datetime) -> PersonLocation | None:
    """What may be shown of where the person is, or None ("not available")."""
    if sharing is None or not sharing.active(now):
        return None
    recent = [d for d in devices if d.user_id == sharing.user_id and now - d.last_seen <= SEEN_WITHIN
              and d.last_seen <= now + timedelta(minutes=5)]
    if not recent:
        return None
    latest = max(recent, key=lambda d: d.last_seen)
    level = sharing.level
    return PersonLocation(
        user_id=sharing.user_id, level=level, building_id=latest.building_id,
        floor=latest.floor if level in (SharingLevel.floor, SharingLevel.space) else None,
        space_id=latest.space_id if level is SharingLevel.space else None,
        last_seen=latest.last_seen,
    )


@dataclass(frozen=True)
class AuditEntry:
    """One people-finder lookup: who asked (key id), about whom, when, and what they got."""

    tenant_id: str
    at: datetime
    key_id: str
    user_id: str
    outcome: str  # "shared" or "not-available"
    level: SharingLevel | None = None


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: datetime
