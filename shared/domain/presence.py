"""Live presence: each device's tracked state, each space's occupants, and the visits they leave behind.

Pure rules the pipeline and the presence sweep apply. Every change to a space is a set operation on its
occupants keyed by device, so applying the same change twice (a redelivered event, a retried write) is harmless
and two processors changing one space at once cannot lose a count as long as the store writes with etags.
"""
from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from shared.domain.tenancy import BuildingRef

RECENT_BATCHES_KEPT = 16


@functools.lru_cache(maxsize=4096)  # the pipeline asks twice per batch: has_seen, then remember
def batch_key(batch_id: str) -> str:
    """The short key a batch id is remembered by in a device's dedupe window: 8 bytes of its BLAKE2b hash,
    base64url (11 characters instead of a UUID's 36). Two different batches of one device share a key with
    probability 2^-64 per pair: a new batch is taken for one of the 16 remembered with odds 16 / 2^64 (about
    10^-18): about 3 x 10^-7 wrongly skipped batches a year at 100,000 phones sending one every 10 s
    (docs/data-model.md).
    Unkeyed: a phone choosing colliding batch ids can only have its own batches skipped."""
    digest = hashlib.blake2b(batch_id.encode(), digest_size=8).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class DeviceState:
    """What the pipeline keeps per device and building (document id deviceId, partition `tenantId|buildingId`)."""

    tenant_id: str
    building_id: str
    device_id: str
    last_seen: datetime
    tracking: dict[str, Any] = field(default_factory=dict)  # positioning TrackingState, as JSON
    x: float | None = None
    y: float | None = None
    floor: str | None = None
    uncertainty_m: float | None = None
    space_id: str | None = None
    space_since: datetime | None = None
    space_confidence: float = 0.0
    user_id: str | None = None  # only when the person opted in to sharing
    model: str | None = None
    recent_batches: tuple[str, ...] = ()  # batch_key() of the last RECENT_BATCHES_KEPT batches: the dedupe window
    leaving_space_id: str | None = None  # set while a leave is written in two steps (see presence sweep)
    leaving_since: datetime | None = None
    etag: str | None = None

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)

    def has_seen(self, batch_id: str) -> bool:
        return batch_key(batch_id) in self.recent_batches

    def remember(self, batch_id: str) -> DeviceState:
        kept = (self.recent_batches + (batch_key(batch_id),))[-RECENT_BATCHES_KEPT:]
        return self.copy_with(recent_batches=kept)

    def copy_with(self, **changes: Any) -> DeviceState:
        """`dataclasses.replace(self, **changes)` at a fifth of its cost (the pipeline derives a few states per
        batch): the fields are copied as they are, not passed through `__init__` again. TypeError for a name
        that is not a field."""
        if not _DEVICE_FIELDS.issuperset(changes):  # one lookup per change (a set difference walks every field)
            raise TypeError(f"DeviceState has no field(s) {sorted(changes.keys() - _DEVICE_FIELDS)}")
        copied = object.__new__(DeviceState)
        copied.__dict__.update(self.__dict__)
        copied.__dict__.update(changes)
        return copied


_DEVICE_FIELDS = frozenset(f.name for f in fields(DeviceState))


@dataclass(frozen=True)
class OccupancyChange:
    """Put a device into a space or take it out, as of `at`."""

    building: BuildingRef
    space_id: str
    device_id: str
    kind: Literal["enter", "leave"]
    at: datetime


@dataclass(frozen=True)
class Visit:
    """A closed stay of one device in one space: the unit the analytics rollups count."""

    tenant_id: str
    building_id: str
    space_id: str
    device_id: str
    start: datetime
    end: datetime
    user_id: str | None = None

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)

    @property
    def id(self) -> str:
        """Deterministic, so writing the same visit again (redelivery, retry) replaces it instead of adding one."""
        key = f"{self.tenant_id}|{self.building_id}|{self.device_id}|{self.space_id}|{self.start.isoformat()}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class SpaceState:
    """A space's live state (document id spaceId, partition `tenantId|buildingId`)."""

    tenant_id: str
    building_id: str
    space_id: str
    occupants: dict[str, str] = field(default_factory=dict)  # device id -> since (RFC 3339)
    since: datetime | None = None  # when the status last changed
    last_change: datetime | None = None
    # Integration events (shared/domain/events.py): the last event's sequence number, the headcount last
    # reported and when, and when a held-back headcount event is due.
    event_seq: int = 0
    headcount_reported: int = 0
    headcount_reported_at: datetime | None = None
    headcount_due_at: datetime | None = None
    etag: str | None = None

    @classmethod
    def empty(cls, building: BuildingRef, space_id: str) -> SpaceState:
        return cls(building.tenant_id, building.building_id, space_id)

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)

    @property
    def headcount(self) -> int:
        return len(self.occupants)

    @property
    def status(self) -> Literal["free", "occupied"]:
        return "occupied" if self.occupants else "free"


def apply_occupancy(space: SpaceState, change: OccupancyChange) -> SpaceState | None:
    """The space after the change, or None when the change is already applied (nothing to write)."""
    present = change.device_id in space.occupants
    if (change.kind == "enter") == present:
        return None
    occupants = dict(space.occupants)
    if change.kind == "enter":
        occupants[change.device_id] = change.at.isoformat()
    else:
        del occupants[change.device_id]
    status_changed = bool(occupants) != bool(space.occupants)
    since = change.at if status_changed or space.since is None else space.since
    last_change = max(change.at, space.last_change) if space.last_change else change.at
    return replace(space, occupants=occupants, since=since, last_change=last_change)


@dataclass(frozen=True)
class Transition:
    """What moving a device from one space to another (either may be None) means for the store."""

    changes: tuple[OccupancyChange, ...]
    visit: Visit | None


def transition(before: DeviceState | None, after: DeviceState, at: datetime) -> Transition:
    """Occupancy changes and the closed visit when `after` is in another space than `before`."""
    old_space = before.space_id if before else None
    if old_space == after.space_id:
        return Transition((), None)
    changes: list[OccupancyChange] = []
    visit = None
    if old_space is not None and before is not None:
        changes.append(OccupancyChange(after.building, old_space, after.device_id, "leave", at))
        if before.space_since is not None and at > before.space_since:
            visit = Visit(after.tenant_id, after.building_id, old_space, after.device_id, before.space_since, at,
                          before.user_id)
    if after.space_id is not None:
        changes.append(OccupancyChange(after.building, after.space_id, after.device_id, "enter", at))
    return Transition(tuple(changes), visit)


@dataclass(frozen=True)
class BeaconDrift:
    """A beacon's measured-power drift as positioning's self-calibration sees it (dB): its apparent level, the
    baseline the level settled at (None until it did), the level's standard deviation, how many residuals went
    in, when, and whether the drift (level - baseline) is beyond the bound (battery, turned, moved)."""

    level_db: float
    baseline_db: float | None
    sd_db: float
    observations: int
    at: datetime
    flagged: bool = False

    @property
    def drift_db(self) -> float | None:
        return None if self.baseline_db is None else self.level_db - self.baseline_db


@dataclass(frozen=True)
class BeaconHealth:
    """A beacon's latest life signs, from the SDK's `beaconTelemetry`, from being heard at all, and from
    positioning's self-calibration (its drift)."""

    tenant_id: str
    building_id: str
    beacon_id: str
    last_heard: datetime
    battery_mv: int | None = None
    solar_lux: float | None = None
    temperature_c: float | None = None
    telemetry_at: datetime | None = None
    drift: BeaconDrift | None = None
    # Set (by the beacon.silent event's batch) when this silence was reported; a health write drops it.
    silence_reported: bool = False

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)

    def merged(self, newer: BeaconHealth) -> BeaconHealth:
        """Keep the latest of each signal: readings can arrive out of order from different phones."""
        take_telemetry = newer.telemetry_at is not None and (
            self.telemetry_at is None or newer.telemetry_at > self.telemetry_at)
        source = newer if take_telemetry else self
        drift = self.drift
        if newer.drift is not None and (drift is None or newer.drift.at >= drift.at):
            drift = newer.drift
        return replace(
            self, last_heard=max(self.last_heard, newer.last_heard), battery_mv=source.battery_mv,
            solar_lux=source.solar_lux, temperature_c=source.temperature_c, telemetry_at=source.telemetry_at,
            drift=drift,
        )
