"""The pure booking rules: no-shows from the space's live state, live status, free for long enough, ids."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.bookings import (
    Booking,
    BookingSourceKind,
    ReleaseState,
    claim_release,
    decide_no_show,
    derived_booking_id,
    free_for,
    live_status,
    next_booking,
    release_outcome,
    rescheduled,
)
from shared.domain.presence import SpaceState
from shared.domain.tenancy import BuildingRef, is_id

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HQ = BuildingRef("acme", "hq")
TEN = timedelta(minutes=10)


def booking(minutes: int = 0, length: int = 60, booking_id: str = "b1", **changes) -> Booking:
    base = Booking("acme", "hq", "r-oak", booking_id, T0 + timedelta(minutes=minutes),
                   T0 + timedelta(minutes=minutes + length))
    return replace(base, **changes)


def room(occupied: bool, since_minutes: float | None) -> SpaceState:
    since = None if since_minutes is None else T0 + timedelta(minutes=since_minutes)
    occupants = {"phone-1": (since or T0).isoformat()} if occupied else {}
    return replace(SpaceState.empty(HQ, "r-oak"), occupants=occupants, since=since, last_change=since)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(("space", "no_show"), [
    (None, True),                      # never anyone in the room at all
    (room(False, None), True),         # a state, never occupied
    (room(False, -30), True),          # emptied half an hour before the start
    (room(False, 0), True),            # emptied exactly at the start: nobody since
    (room(False, 4), False),           # someone left 4 minutes in: they were there
    (room(True, -5), False),           # in since before the start
    (room(True, 7), False),            # came 7 minutes late: checked in
])
def test_a_room_empty_since_the_start_is_a_no_show(space, no_show):
    decision = decide_no_show(booking(), space, at(10), TEN, release=False)
    assert decision is not None and decision.no_show is no_show
    if no_show:
        assert decision.booking.no_show_at == at(10) and decision.booking.checked_in_at is None
        assert not decision.booking.released and decision.booking.release_state is ReleaseState.none
    else:
        assert decision.booking.checked_in_at is not None and decision.booking.no_show_at is None


def test_check_in_time_is_the_start_or_the_late_arrival():
    assert decide_no_show(booking(), room(True, -5), at(10), TEN, False).booking.checked_in_at == T0
    assert decide_no_show(booking(), room(True, 7), at(10), TEN, False).booking.checked_in_at == at(7)


def test_nothing_is_decided_before_the_deadline_or_twice():
    assert decide_no_show(booking(), None, at(9.99), TEN, release=False) is None
    decided = decide_no_show(booking(), None, at(10), TEN, release=False).booking
    assert decide_no_show(decided, None, at(20), TEN, release=False) is None
    checked_in = booking(checked_in_at=at(2))
    assert decide_no_show(checked_in, None, at(30), TEN, release=False) is None


def test_a_late_timer_still_dates_the_no_show_at_the_deadline():
    decided = decide_no_show(booking(), room(False, -60), at(90), TEN, release=False).booking
    assert decided.no_show_at == at(10)


def test_with_release_a_no_show_gives_the_room_back_and_a_release_is_due():
    decided = decide_no_show(booking(), None, at(10), TEN, release=True).booking
    assert decided.released and decided.release_state is ReleaseState.pending and decided.gives_room_back
    claimed = claim_release(decided, at(11))
    assert claimed is not None and claimed.release_claimed_until > at(11)
    assert claim_release(claimed, at(11.5)) is None  # another releaser holds it
    assert claim_release(claimed, at(20)) is not None  # the claim lapsed (a crashed releaser)
    assert release_outcome(claimed, None).release_state is ReleaseState.done
    failed = release_outcome(claimed, "404 the event is gone")
    assert failed.release_state is ReleaseState.failed and failed.release_error == "404 the event is gone"
    assert claim_release(release_outcome(claimed, None), at(30)) is None


def test_live_status():
    running = booking(-5)
    assert live_status(None, [], at(0)) == "free"
    assert live_status(room(False, -60), [running], at(0)) == "booked"
    assert live_status(room(True, -1), [running], at(0)) == "occupied"
    assert live_status(None, [replace(running, no_show_at=at(5))], at(6)) == "reclaimable"
    assert live_status(None, [running], at(55)) == "free"  # ended at +55
    assert live_status(None, [booking(30)], at(0)) == "free"  # not started yet


def test_free_for_long_enough():
    later = booking(10)
    assert not free_for(None, [later], at(0), timedelta(minutes=30))
    assert free_for(None, [later], at(0), timedelta(minutes=10))  # [now, now + 10) ends as it starts
    assert not free_for(None, [later], at(0), timedelta(minutes=11))
    assert not free_for(room(True, -3), [], at(0), timedelta(minutes=1))
    no_show = booking(-15, no_show_at=at(-5))
    assert free_for(None, [no_show], at(0), timedelta(minutes=30))  # a no-show's room is free to take
    assert not free_for(None, [booking(-15)], at(0), timedelta(minutes=30))  # a booking running now


def test_next_booking_skips_no_shows_and_running_ones():
    bookings = [booking(-15, booking_id="now"), booking(120, booking_id="later"), booking(45, booking_id="soon"),
                booking(60, booking_id="gone", no_show_at=at(70))]
    assert next_booking(bookings, at(0)).booking_id == "soon"
    assert next_booking([], at(0)) is None


def test_derived_ids_are_stable_path_ids_per_source():
    a = derived_booking_id(BookingSourceKind.graph, "AAMkAGI2TG93AAA=")
    assert a == derived_booking_id(BookingSourceKind.graph, "AAMkAGI2TG93AAA=") and is_id(a)
    assert a != derived_booking_id(BookingSourceKind.ical, "AAMkAGI2TG93AAA=")
    assert a.startswith("graph-") and len(a) <= 64


def test_moving_a_booking_starts_its_decision_over():
    decided = booking(no_show_at=at(10), released=True, release_state=ReleaseState.done, event_seq=1)
    assert rescheduled(decided, decided.start, decided.end) is decided
    moved = rescheduled(decided, at(60), at(90))
    assert (moved.no_show_at, moved.released, moved.release_state) == (None, False, ReleaseState.none)
    assert moved.event_seq == 1  # a new no-show is a new event
