"""Integration events: room and beacon transitions as CloudEvents 1.0 (structured JSON), and the pure rules that
say which transition makes which event.

A space or beacon document carries what these rules need (the last sequence number, the headcount last
reported, the alerts already raised), so the store writes the new state and its events in one atomic batch
(the outbox, docs/events.md): each transition makes its event exactly once, however often the processing runs.
No event carries a device id or a user id: the data is what the space and beacon APIs show.
"""
from __future__ import annotations

import enum
import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.presence import BeaconHealth, SpaceState
from shared.domain.tenancy import BuildingRef

SPEC_VERSION: Literal["1.0"] = "1.0"
DATA_CONTENT_TYPE: Literal["application/json"] = "application/json"
# Structured content mode (CloudEvents HTTP binding): the whole event is the body.
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
EVENTS_SCHEMA_ID = "https://spaceflow.dev/schemas/events-v1.json"


class EventType(str, enum.Enum):
    space_occupied = "dev.spaceflow.space.occupied"
    space_vacated = "dev.spaceflow.space.vacated"
    space_headcount = "dev.spaceflow.space.headcount"
    beacon_silent = "dev.spaceflow.beacon.silent"
    beacon_battery_low = "dev.spaceflow.beacon.battery-low"
    booking_no_show = "dev.spaceflow.booking.no-show"


SPACE_EVENT_TYPES = frozenset({EventType.space_occupied, EventType.space_vacated, EventType.space_headcount})
BEACON_EVENT_TYPES = frozenset({EventType.beacon_silent, EventType.beacon_battery_low})
BOOKING_EVENT_TYPES = frozenset({EventType.booking_no_show})

HEADCOUNT_EVENT_INTERVAL = timedelta(minutes=1)  # at most one headcount event a minute per space
SILENT_AFTER = timedelta(hours=24)  # as the beacon health API says `silent`
BATTERY_LOW_MV = 2500  # below this a beacon's battery is low ...
BATTERY_RECOVERED_MV = 2700  # ... and it is low until it is back above this (solar beacons recharge by day)


class SpaceEventData(BaseModel):
    """A space's new state: the fields `GET /api/v1/buildings/{b}/spaces/{spaceId}` answers."""

    id: str
    name: str
    kind: str
    floor: str
    capacity: int
    amenities: list[str]
    bookable: bool
    status: Literal["free", "occupied"]
    headcount: int
    since: datetime | None = Field(description="when the status last changed")
    model_config = ConfigDict(extra="forbid", frozen=True)


class BeaconEventData(BaseModel):
    """A beacon's new state: the fields of one beacon in `GET /api/v1/buildings/{b}/beacons/health`."""

    beacon_id: str = Field(alias="beaconId")
    floor: str
    x: float
    y: float
    last_heard: datetime | None = Field(alias="lastHeard")
    battery_mv: int | None = Field(alias="batteryMv")
    solar_lux: float | None = Field(alias="solarLux")
    temperature_c: float | None = Field(alias="temperatureC")
    silent: bool = Field(description="not heard for more than 24 hours")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BookingEventData(BaseModel):
    """A booking nobody came to: the booking as `GET .../spaces/{spaceId}/bookings/{bookingId}` shows it, with the
    space's name, kind and floor. No subject, organizer or attendee: spaceflow never stores them."""

    id: str = Field(description="the booking id")
    space_id: str = Field(alias="spaceId")
    name: str
    kind: str
    floor: str
    start: datetime
    end: datetime
    source: Literal["api", "ical", "graph"]
    released: bool = Field(description="the room is given back (the building releases no-shows)")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CloudEvent(BaseModel):
    """One event, CloudEvents 1.0 in structured JSON. `sequence` (the CloudEvents sequence extension) orders the
    events of one subject: zero-padded, so it sorts as text too."""

    specversion: Literal["1.0"] = SPEC_VERSION
    id: str = Field(description="unique per transition; the same on every delivery attempt and replay")
    source: str = Field(description="/tenants/{tenantId}/buildings/{buildingId}")
    type: EventType
    subject: str = Field(description="spaces/{spaceId}, beacons/{beaconId} or spaces/{spaceId}/bookings/{bookingId}")
    time: datetime = Field(description="when the transition happened")
    datacontenttype: Literal["application/json"] = DATA_CONTENT_TYPE
    sequence: str = Field(pattern=r"^[0-9]{12}$", description="order of the subject's events (12 digits)")
    data: SpaceEventData | BeaconEventData | BookingEventData
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        """The structured-mode JSON object (what a webhook body and the outbox hold)."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def building(self) -> BuildingRef:
        return building_of_source(self.source)

    @property
    def sequence_number(self) -> int:
        return int(self.sequence)


def source_of(building: BuildingRef) -> str:
    return f"/tenants/{building.tenant_id}/buildings/{building.building_id}"


def building_of_source(source: str) -> BuildingRef:
    parts = source.split("/")
    if len(parts) != 5 or parts[0] or parts[1] != "tenants" or parts[3] != "buildings":
        raise ValueError(f"not an event source of ours: {source!r}")
    return BuildingRef(parts[2], parts[4])


def space_subject(space_id: str) -> str:
    return f"spaces/{space_id}"


def beacon_subject(beacon_id: str) -> str:
    return f"beacons/{beacon_id}"


def booking_subject(space_id: str, booking_id: str) -> str:
    return f"spaces/{space_id}/bookings/{booking_id}"


def event_id(building: BuildingRef, subject: str, sequence: int, event_type: EventType, at: datetime) -> str:
    """Deterministic: the same transition always has the same id (a UUID in form)."""
    key = f"{building.tenant_id}|{building.building_id}|{subject}|{sequence}|{event_type.value}|{at.isoformat()}"
    return str(uuid.UUID(bytes=hashlib.sha256(key.encode()).digest()[:16]))


def make_event(building: BuildingRef, subject: str, sequence: int, event_type: EventType, at: datetime,
               data: SpaceEventData | BeaconEventData | BookingEventData) -> CloudEvent:
    return CloudEvent(id=event_id(building, subject, sequence, event_type, at), source=source_of(building),
                      type=event_type, subject=subject, time=at, sequence=f"{sequence:012d}", data=data)


def parse_event(document: dict[str, Any]) -> CloudEvent:
    """An event from its JSON (the outbox, the event log); the data is read by the event's type."""
    data = document.get("data") or {}
    kind = EventType(document["type"])
    parsed: SpaceEventData | BeaconEventData | BookingEventData
    if kind in SPACE_EVENT_TYPES:
        parsed = SpaceEventData.model_validate(data)
    elif kind in BOOKING_EVENT_TYPES:
        parsed = BookingEventData.model_validate(data)
    else:
        parsed = BeaconEventData.model_validate(data)
    return CloudEvent.model_validate({**document, "data": parsed})


# --- spaces ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpaceFacts:
    """What the site model says about a space (the static part of an event's data)."""

    name: str
    kind: str
    floor: str
    capacity: int = 0
    amenities: tuple[str, ...] = ()
    bookable: bool = False

    @classmethod
    def unknown(cls, space_id: str) -> SpaceFacts:
        """A space no longer in the site model (removed while people were in it)."""
        return cls(name=space_id, kind="unspecified", floor="")


def space_data(space: SpaceState, facts: SpaceFacts) -> SpaceEventData:
    return SpaceEventData(id=space.space_id, name=facts.name, kind=facts.kind, floor=facts.floor,
                          capacity=facts.capacity, amenities=list(facts.amenities), bookable=facts.bookable,
                          status=space.status, headcount=space.headcount, since=space.since)


def space_events(before: SpaceState, after: SpaceState, facts: SpaceFacts) -> tuple[SpaceState, list[CloudEvent]]:
    """The events of a space going from `before` (as stored) to `after` (occupancy applied), and `after` with the
    bookkeeping that makes them exactly once (sequence, headcount reported, a headcount event due later).

    - free -> occupied and occupied -> free: space.occupied / space.vacated, at the time the status changed;
    - another headcount while occupied: space.headcount at the time of the change, at most one a minute: within
      the minute after the last one, the event is due later (`headcount_due_at`, sent by `due_headcount_event`
      with the headcount of then, unless the headcount is back at the one reported).
    """
    events: list[CloudEvent] = []
    state = after
    building, subject = after.building, space_subject(after.space_id)
    if before.status != after.status:
        kind = EventType.space_occupied if after.status == "occupied" else EventType.space_vacated
        at = after.since or after.last_change
        if at is None:  # apply_occupancy sets both on every change
            raise ValueError(f"space {after.space_id}: a status change without a time")
        sequence = before.event_seq + 1
        state = replace(after, event_seq=sequence, headcount_reported=after.headcount, headcount_due_at=None)
        events.append(make_event(building, subject, sequence, kind, at, space_data(state, facts)))
    elif after.headcount != before.headcount_reported:
        at = after.last_change
        if at is None:
            raise ValueError(f"space {after.space_id}: a headcount change without a time")
        next_allowed = (before.headcount_reported_at + HEADCOUNT_EVENT_INTERVAL
                        if before.headcount_reported_at is not None else None)
        if next_allowed is None or at >= next_allowed:
            state, event = _headcount_event(after, facts, at, at)
            events.append(event)
        else:
            state = replace(after, headcount_due_at=next_allowed)
    else:
        state = replace(after, headcount_due_at=None)
    return state, events


def due_headcount_event(space: SpaceState, facts: SpaceFacts,
                        now: datetime) -> tuple[SpaceState, CloudEvent | None] | None:
    """A headcount event held back by the one-a-minute rule, once it is due: the space to write and its event
    (None when the headcount is back at the one reported: nothing to say). None when nothing is due yet."""
    if space.headcount_due_at is None or space.headcount_due_at > now:
        return None
    if space.headcount == space.headcount_reported or space.status == "free":
        return replace(space, headcount_due_at=None), None
    at = space.last_change or space.headcount_due_at
    state, event = _headcount_event(space, facts, at, max(at, space.headcount_due_at))
    return state, event


def _headcount_event(space: SpaceState, facts: SpaceFacts, at: datetime,
                     reported_at: datetime) -> tuple[SpaceState, CloudEvent]:
    sequence = space.event_seq + 1
    state = replace(space, event_seq=sequence, headcount_reported=space.headcount, headcount_reported_at=reported_at,
                    headcount_due_at=None)
    return state, make_event(space.building, space_subject(space.space_id), sequence, EventType.space_headcount, at,
                             space_data(state, facts))


# --- beacons -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BeaconFacts:
    floor: str
    x: float
    y: float


@dataclass(frozen=True)
class BeaconAlerts:
    """The alerts already raised for a beacon (document `alerts:<beaconId>` beside its health, same partition):
    what makes each beacon event exactly once."""

    tenant_id: str
    building_id: str
    beacon_id: str
    event_seq: int = 0
    battery_low: bool = False
    silent_reported_for: datetime | None = None  # the lastHeard whose silence was reported
    etag: str | None = None

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)

    @classmethod
    def none(cls, building: BuildingRef, beacon_id: str) -> BeaconAlerts:
        return cls(building.tenant_id, building.building_id, beacon_id)


def beacon_data(health: BeaconHealth, facts: BeaconFacts, silent: bool) -> BeaconEventData:
    return BeaconEventData(beacon_id=health.beacon_id, floor=facts.floor, x=facts.x, y=facts.y,
                           last_heard=health.last_heard, battery_mv=health.battery_mv, solar_lux=health.solar_lux,
                           temperature_c=health.temperature_c, silent=silent)


def battery_event(alerts: BeaconAlerts, health: BeaconHealth,
                  facts: BeaconFacts) -> tuple[BeaconAlerts, CloudEvent | None] | None:
    """beacon.battery-low when the battery falls below BATTERY_LOW_MV (once, until it has recovered above
    BATTERY_RECOVERED_MV). None when the alerts stay as they are."""
    battery = health.battery_mv
    if battery is None:
        return None
    if not alerts.battery_low and battery < BATTERY_LOW_MV:
        sequence = alerts.event_seq + 1
        at = health.telemetry_at or health.last_heard
        event = make_event(alerts.building, beacon_subject(alerts.beacon_id), sequence, EventType.beacon_battery_low,
                           at, beacon_data(health, facts, silent=False))
        return replace(alerts, event_seq=sequence, battery_low=True), event
    if alerts.battery_low and battery >= BATTERY_RECOVERED_MV:
        return replace(alerts, battery_low=False), None
    return None


def silence_event(alerts: BeaconAlerts, health: BeaconHealth, facts: BeaconFacts,
                  now: datetime) -> tuple[BeaconAlerts, CloudEvent] | None:
    """beacon.silent once a beacon has not been heard for SILENT_AFTER (once per silence: heard again and silent
    again is a new one). A beacon never heard has no transition to report."""
    if now - health.last_heard <= SILENT_AFTER or alerts.silent_reported_for == health.last_heard:
        return None
    sequence = alerts.event_seq + 1
    event = make_event(alerts.building, beacon_subject(alerts.beacon_id), sequence, EventType.beacon_silent,
                       health.last_heard + SILENT_AFTER, beacon_data(health, facts, silent=True))
    return replace(alerts, event_seq=sequence, silent_reported_for=health.last_heard), event


def events_json_schema() -> dict[str, Any]:
    """JSON Schema of the events (docs/schemas/events-v1.schema.json): a space, beacon or booking event."""
    from pydantic import TypeAdapter

    class SpaceEvent(CloudEvent):
        type: Literal[EventType.space_occupied, EventType.space_vacated, EventType.space_headcount]
        data: SpaceEventData

    class BeaconEvent(CloudEvent):
        type: Literal[EventType.beacon_silent, EventType.beacon_battery_low]
        data: BeaconEventData

    class BookingEvent(CloudEvent):
        type: Literal[EventType.booking_no_show]
        data: BookingEventData

    schema = TypeAdapter(SpaceEvent | BeaconEvent | BookingEvent).json_schema(by_alias=True, mode="serialization")
    schema["$id"] = EVENTS_SCHEMA_ID
    schema["title"] = "spaceflow events (CloudEvents 1.0, structured JSON)"
    return schema
