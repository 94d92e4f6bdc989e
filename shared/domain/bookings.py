"""Room bookings: what a room's calendar says against what the room's sensors see.

A booking is a space, a start and an end, where it came from (the API, an iCalendar feed, a Graph room mailbox) and
that source's id for it. Nothing else of the meeting is kept: no subject, no organizer, no attendees.

Pure rules (docs/bookings.md):
- a booking's id, validation and what a change to it resets;
- the no-show: a booking whose room stays empty `no_show_after` (NO_SHOW_MINUTES) after its start; a person
  entering counts as check-in;
- a space's live status with its bookings (`booked`, `reclaimable`) and "free for long enough".
"""
from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationInfo, field_validator

from shared.domain.presence import SpaceState
from shared.domain.tenancy import BuildingRef

MAX_BOOKING_LENGTH = timedelta(hours=24)  # a room booking longer than a day is a calendar mistake, not a meeting
MAX_SOURCE_EVENT_ID_LENGTH = 1024  # Graph event ids are ~150 characters of base64; iCalendar UIDs are free text
DEFAULT_NO_SHOW_AFTER = timedelta(minutes=10)
NEXT_BOOKING_HORIZON = timedelta(hours=24)  # how far ahead free rooms look for each room's next booking
RELEASE_CLAIM = timedelta(minutes=2)  # a releaser holds a release this long; after a crash another one retries


class BookingSourceKind(str, enum.Enum):
    api = "api"  # PUT/DELETE .../bookings/{bookingId}: any other booking system
    ical = "ical"  # an iCalendar feed (a URL polled, or an upload)
    graph = "graph"  # a Microsoft 365 room mailbox (Graph delta sync and change notifications)


class ReleaseState(str, enum.Enum):
    """Giving a no-show's room back at its source (only where the building's admin turned it on)."""

    none = "none"  # nothing to do (no no-show, or releasing is off)
    pending = "pending"  # written with the no-show event; the releaser does it
    done = "done"  # the source has it (Graph: the room mailbox declined; iCal/API: the `released` flag is read)
    failed = "failed"  # the source refused for good (the event is gone, no permission): `releaseError` says why


SpaceStatus = Literal["free", "occupied", "booked", "reclaimable"]


@dataclass(frozen=True)
class Booking:
    """One booking of one space (document `booking:<spaceId>:<bookingId>` in the building's partition of the
    spaces container, beside the space and its events' outbox: a no-show and its event are one atomic write)."""

    tenant_id: str
    building_id: str
    space_id: str
    booking_id: str
    start: datetime
    end: datetime
    source: BookingSourceKind = BookingSourceKind.api
    source_event_id: str | None = None
    released: bool = False  # the room was given back (a no-show where releasing is on): sources read this
    # The no-show decision: open until start + no_show_after, then exactly one of these is set.
    checked_in_at: datetime | None = None  # someone was in the room (first moment known)
    no_show_at: datetime | None = None  # nobody came: start + no_show_after
    event_seq: int = 0  # the booking's events (the no-show), in order
    release_state: ReleaseState = ReleaseState.none
    release_claimed_until: datetime | None = None
    release_error: str | None = None
    etag: str | None = None

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)

    @property
    def decided(self) -> bool:
        """Whether the no-show question is answered (checked in, or a no-show)."""
        return self.checked_in_at is not None or self.no_show_at is not None

    @property
    def gives_room_back(self) -> bool:
        """A no-show's room is free to take (whether or not the source has been told yet)."""
        return self.no_show_at is not None or self.released

    def running(self, at: datetime) -> bool:
        return self.start <= at < self.end

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


def derived_booking_id(source: BookingSourceKind, source_event_id: str) -> str:
    """The booking id of a calendar's event (an iCalendar occurrence, a Graph event): deterministic, so a sync
    that sees the same event again updates its booking instead of adding one; a path id (ID_PATTERN)."""
    digest = hashlib.sha256(f"{source.value}|{source_event_id}".encode()).hexdigest()[:40]
    return f"{source.value}-{digest}"


class BookingRequest(BaseModel):
    """`PUT .../spaces/{spaceId}/bookings/{bookingId}`: RFC 3339 with an offset; errors name `start` or `end`."""

    start: AwareDatetime
    end: AwareDatetime
    model_config = ConfigDict(extra="forbid")

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        problem = interval_problem(start, end) if isinstance(start, datetime) else None
        if problem:
            raise ValueError(problem)
        return end


def interval_problem(start: datetime, end: datetime) -> str | None:
    """Why [start, end) cannot be a booking (said of `end`), or None."""
    if end <= start:
        return "end must be after start"
    if end - start > MAX_BOOKING_LENGTH:
        return f"a booking lasts at most {int(MAX_BOOKING_LENGTH.total_seconds() // 3600)} hours"
    return None


def rescheduled(booking: Booking, start: datetime, end: datetime) -> Booking:
    """The booking at a new time: its no-show decision starts over (a meeting moved to later is not a no-show
    of the earlier time); the event sequence goes on, so a new no-show is a new event."""
    if (booking.start, booking.end) == (start, end):
        return booking
    return replace(booking, start=start, end=end, checked_in_at=None, no_show_at=None, released=False,
                   release_state=ReleaseState.none, release_claimed_until=None, release_error=None)


# ---------------------------------------------------------------------------------------------- no-shows
@dataclass(frozen=True)
class NoShowDecision:
    booking: Booking  # with the decision recorded
    no_show: bool


def decide_no_show(booking: Booking, space: SpaceState | None, now: datetime, no_show_after: timedelta,
                   release: bool) -> NoShowDecision | None:
    """Whether the booking is a no-show, once `no_show_after` past its start (None before, or when decided).

    The space's live state says it: a room free now whose status last changed at or before the booking's start
    (or never) has had nobody in it since the start: a no-show. A room occupied now, or one that became free
    after the start, had someone in it since the start: checked in. With `release`, a no-show also gives the
    room back (`released`, and a release at the source is due)."""
    deadline = booking.start + no_show_after
    if booking.decided or now < deadline:
        return None
    state_since = space.since if space is not None else None
    occupied = space is not None and space.status == "occupied"
    if not occupied and (state_since is None or state_since <= booking.start):
        decided = replace(booking, no_show_at=deadline, released=release,
                          release_state=ReleaseState.pending if release else ReleaseState.none)
        return NoShowDecision(decided, True)
    # Someone was there: in since the start (or before it), or entered after it, or left after it.
    entered_late = occupied and state_since is not None and state_since > booking.start
    checked_in = state_since if entered_late and state_since is not None else booking.start
    return NoShowDecision(replace(booking, checked_in_at=min(checked_in, now)), False)


def claim_release(booking: Booking, now: datetime) -> Booking | None:
    """The booking claimed for its release at the source (written over its etag, so one releaser wins), or None
    when there is nothing to release or another releaser holds it."""
    if booking.release_state is not ReleaseState.pending:
        return None
    if booking.release_claimed_until is not None and booking.release_claimed_until > now:
        return None
    return replace(booking, release_claimed_until=now + RELEASE_CLAIM)


def release_outcome(booking: Booking, error: str | None) -> Booking:
    """After the source answered: done, or failed for good with the reason."""
    state = ReleaseState.done if error is None else ReleaseState.failed
    return replace(booking, release_state=state, release_claimed_until=None, release_error=error)


# ---------------------------------------------------------------------------------------------- live views
class _Running(Protocol):
    @property
    def start(self) -> datetime: ...

    @property
    def booking_id(self) -> str: ...

    def running(self, at: datetime) -> bool: ...


_Held = TypeVar("_Held", bound=_Running)


@dataclass(frozen=True)
class BookingHold:
    """What a room's live status needs of a booking running in it (`BookingStore.list_running`): a projection of
    the booking document, a third of its bytes, for the live stream's poll."""

    space_id: str
    booking_id: str
    start: datetime
    end: datetime
    gives_room_back: bool  # a no-show's, or released: the room is free to take

    def running(self, at: datetime) -> bool:
        return self.start <= at < self.end


def running_booking(bookings: Iterable[_Held], at: datetime) -> _Held | None:
    """The booking of a space that runs at `at` (the earliest-starting one when a calendar overlaps itself)."""
    running = [b for b in bookings if b.running(at)]
    return min(running, key=lambda b: (b.start, b.booking_id)) if running else None


def live_status(space: SpaceState | None, bookings: Sequence[Booking], now: datetime) -> SpaceStatus:
    """`occupied` when someone is in; else `booked` while a booking runs, `reclaimable` once that booking is a
    no-show (or was released); else `free`."""
    if space is not None and space.status == "occupied":
        return "occupied"
    booking = running_booking(bookings, now)
    if booking is None:
        return "free"
    return "reclaimable" if booking.gives_room_back else "booked"


def holds_room(booking: Booking) -> bool:
    """Whether a booking keeps others out of its room: every booking except a no-show's (its room is given back)."""
    return not booking.gives_room_back


def free_for(space: SpaceState | None, bookings: Sequence[Booking], now: datetime, duration: timedelta) -> bool:
    """Nobody in now and no booking holding the room within [now, now + duration)."""
    if space is not None and space.status == "occupied":
        return False
    return not any(holds_room(b) and b.overlaps(now, now + duration) for b in bookings)


def next_booking(bookings: Sequence[Booking], now: datetime) -> Booking | None:
    """The first booking holding the room that has not started yet (a free room's next booking)."""
    upcoming = [b for b in bookings if holds_room(b) and b.start >= now]
    return min(upcoming, key=lambda b: (b.start, b.booking_id)) if upcoming else None


@dataclass(frozen=True)
class BookingSettings:
    """A building's booking rules, set by its admin: whether a no-show's room is given back at its source."""

    tenant_id: str
    building_id: str
    release_no_shows: bool = False
    etag: str | None = None

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)


# ---------------------------------------------------------------------------------------------- calendars
CALENDAR_LOOKBACK = timedelta(days=1)  # a sync keeps the bookings of the last day (analytics of today)
CALENDAR_LOOKAHEAD = timedelta(days=14)  # ... and reads this far ahead
GRAPH_WINDOW_RENEW_BEFORE = timedelta(days=7)  # a Graph delta window this close to its end starts over
MAX_MAILBOX_LENGTH = 320


@dataclass(frozen=True)
class CalendarSource:
    """Where a space's bookings come from (document `calendar:<spaceId>` beside the space): an iCalendar feed URL
    (or uploads: no URL), or a Microsoft 365 room mailbox, with that source's sync state."""

    tenant_id: str
    building_id: str
    space_id: str
    kind: BookingSourceKind  # ical or graph
    url: str | None = None  # ical: the feed, polled by the sync timer; None: the calendar is uploaded
    mailbox: str | None = None  # graph: the room mailbox (its address or user id)
    cursor: str | None = None  # graph: the @odata.deltaLink of the last round
    window_start: datetime | None = None  # graph: the calendarView window the cursor tracks
    window_end: datetime | None = None
    subscription_id: str | None = None  # graph: the change notification subscription
    client_state: str | None = None  # graph: the secret every notification must carry
    subscription_expires_at: datetime | None = None
    sync_requested: bool = False  # a change notification came: sync now
    last_sync_at: datetime | None = None
    last_error: str | None = None
    etag: str | None = None

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)


@dataclass(frozen=True)
class CalendarEvent:
    """One occurrence as a calendar has it: the source's id of it and its times (never its subject or people)."""

    source_event_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CalendarChanges:
    """What a sync read: occurrences added or changed, ids removed (or cancelled), whether `events` is the whole
    calendar within [window_start, window_end) (then anything else of this source in the window is gone), and the
    cursor to read from next time (Graph's delta link)."""

    events: tuple[CalendarEvent, ...]
    removed: tuple[str, ...] = ()
    complete: bool = True
    window_start: datetime | None = None
    window_end: datetime | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class Reconciled:
    save: tuple[Booking, ...]  # created (etag None) or changed
    delete: tuple[Booking, ...]


def reconcile(building: BuildingRef, space_id: str, source: BookingSourceKind, existing: Sequence[Booking],
              changes: CalendarChanges) -> Reconciled:
    """The bookings to write and delete so the space's bookings of `source` match what the calendar says.
    `existing` are the space's bookings (of any source) overlapping the window read; bookings of other sources are
    never touched. An event longer than MAX_BOOKING_LENGTH is no room booking and is left out."""
    mine = {b.booking_id: b for b in existing if b.source is source}
    to_save: list[Booking] = []
    seen: set[str] = set()
    for event in changes.events:
        if interval_problem(event.start, event.end):
            continue
        booking_id = derived_booking_id(source, event.source_event_id)
        seen.add(booking_id)
        current = mine.get(booking_id)
        if current is None:
            to_save.append(Booking(building.tenant_id, building.building_id, space_id, booking_id, event.start,
                                   event.end, source, event.source_event_id))
        elif (current.start, current.end) != (event.start, event.end):
            to_save.append(rescheduled(current, event.start, event.end))
    gone = {derived_booking_id(source, removed) for removed in changes.removed}
    to_delete = [b for b in mine.values() if b.booking_id in gone and b.booking_id not in seen]
    if changes.complete:
        to_delete += [b for b in mine.values() if b.booking_id not in seen and b.booking_id not in gone
                      and (changes.window_start is None or changes.window_end is None
                           or b.overlaps(changes.window_start, changes.window_end))]
    return Reconciled(tuple(to_save), tuple(to_delete))
