"""The co-worker finder: each person chooses whether and how precisely they can be found, and until when.

Privacy rules, pure: a location is shown only while sharing is on and unexpired, only at the chosen granularity
(building, floor or space) and only when the person's phone was heard in the last ten minutes. Every other case
is the same answer: not available (so nobody can tell "not opted in" from "unknown" from "not here"). Below
`space`, the time last seen is rounded down: an exact time would match the `since` of the one space on the floor
whose state that sighting changed, and give the room away. Only the person widens their sharing; anyone else
allowed to change it (an integrator's key) may only narrow it or turn it off.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.domain.presence import DeviceState

SEEN_WITHIN = timedelta(minutes=10)
# lastSeen below level `space` is rounded down to this: coarse enough that it equals no space's `since`
# (those are exact to the microsecond), fine enough that "seen 5 minutes ago" still helps.
LAST_SEEN_GRANULARITY = timedelta(minutes=5)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SharingLevel(str, enum.Enum):
    off = "off"
    building = "building"
    floor = "floor"
    space = "space"

    @property
    def rank(self) -> int:
        """How much the level reveals: off 0 < building 1 < floor 2 < space 3."""
        return _RANKS[self]


_RANKS = {SharingLevel.off: 0, SharingLevel.building: 1, SharingLevel.floor: 2, SharingLevel.space: 3}


@dataclass(frozen=True)
class Sharing:
    tenant_id: str
    user_id: str
    level: SharingLevel
    until: datetime | None
    updated_at: datetime
    etag: str | None = field(default=None, compare=False)  # the stored version, for conditional writes

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


def coarse_last_seen(moment: datetime, level: SharingLevel) -> datetime:
    """The time last seen as it may be shown at `level`: exact at `space` (the room is shown anyway), rounded down
    to LAST_SEEN_GRANULARITY (UTC) below it."""
    if level is SharingLevel.space:
        return moment
    step = LAST_SEEN_GRANULARITY
    return _EPOCH + ((moment - _EPOCH) // step) * step


def shared_location(sharing: Sharing | None, user_id: str, devices: list[DeviceState],
                    now: datetime) -> PersonLocation | None:
    """What may be shown of where the person is, or None ("not available")."""
    # The devices are filtered before the sharing is looked at, so every "not available" costs the same work.
    recent = [d for d in devices if d.user_id == user_id and now - d.last_seen <= SEEN_WITHIN
              and d.last_seen <= now + timedelta(minutes=5)]
    if sharing is None or sharing.user_id != user_id or not sharing.active(now) or not recent:
        return None
    latest = max(recent, key=lambda d: d.last_seen)
    level = sharing.level
    return PersonLocation(
        user_id=user_id, level=level, building_id=latest.building_id,
        floor=latest.floor if level in (SharingLevel.floor, SharingLevel.space) else None,
        space_id=latest.space_id if level is SharingLevel.space else None,
        last_seen=coarse_last_seen(latest.last_seen, level),
    )


def narrows(current: Sharing | None, level: SharingLevel, until: datetime | None, now: datetime) -> bool:
    """Whether changing `current` to (`level`, `until`) reveals no more at any moment from `now` on: a lower or
    equal level, ending no later. What someone other than the person may do. Expired or never set counts as off,
    so the answer (and a refusal) is the same for "never opted in", "off" and "expired"."""
    if level is SharingLevel.off:
        return True
    if current is None or not current.active(now) or level.rank > current.level.rank:
        return False
    return current.until is None or (until is not None and until <= current.until)


@dataclass(frozen=True)
class SharingChange:
    """One change of a person's sharing: whose (`user_id`), by whom (the person, or a key), from what to what."""

    tenant_id: str
    at: datetime
    user_id: str
    by_user_id: str | None  # the signed-in person who changed it (themselves)
    by_key_id: str | None  # the API key that changed it (an integrator, an admin)
    from_level: SharingLevel | None  # None: never set before
    from_until: datetime | None
    to_level: SharingLevel
    to_until: datetime | None


@dataclass(frozen=True)
class AuditEntry:
    """One people-finder lookup: who asked (the signed-in person, or an integrator's key), about whom
    (`user_id`), when, and what they got."""

    tenant_id: str
    at: datetime
    key_id: str | None  # the API key that asked; None when a signed-in person asked
    user_id: str
    outcome: str  # "shared" or "not-available"
    level: SharingLevel | None = None
    by_user_id: str | None = None  # the signed-in person who asked


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: datetime
