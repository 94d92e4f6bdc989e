"""No-shows: a booking whose room stays empty NO_SHOW_MINUTES after its start (docs/bookings.md).

The timer decides each open booking once its deadline has passed, from the space's live state. A no-show is
written with its `dev.spaceflow.booking.no-show` event in one atomic batch over the booking's etag (the outbox of
docs/events.md), so racing timers and repeated runs make exactly one event. Where the building's admin turned it
on, the no-show also gives the room back: the booking is `released` in the same write and a release at its source
is due; the releaser claims it over the etag first, so however often it runs, the source is asked once (again
only after a claim lapsed, when a releaser died between asking and recording the answer).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from shared.domain.bookings import (
    Booking,
    BookingSourceKind,
    claim_release,
    decide_no_show,
    release_outcome,
)
from shared.domain.events import BookingEventData, CloudEvent, EventType, SpaceFacts, booking_subject, make_event
from shared.domain.ports import BookingReleaser, BookingStore, DependencyUnavailable, LiveStateStore, PreconditionFailed
from shared.domain.tenancy import BuildingRef
from shared.services.transitions import SiteFacts

logger = logging.getLogger(__name__)


def no_show_event(booking: Booking, facts: SpaceFacts) -> CloudEvent:
    """The no-show's CloudEvent: subject `spaces/{spaceId}/bookings/{bookingId}`, at the no-show's time."""
    if booking.no_show_at is None:
        raise ValueError(f"booking {booking.booking_id} is no no-show")
    data = BookingEventData(id=booking.booking_id, space_id=booking.space_id, name=facts.name, kind=facts.kind,
                            floor=facts.floor, start=booking.start, end=booking.end, source=booking.source.value,
                            released=booking.released)
    return make_event(booking.building, booking_subject(booking.space_id, booking.booking_id), booking.event_seq,
                      EventType.booking_no_show, booking.no_show_at, data)


class FlagRelease:
    """Releasing at an iCalendar or API source: nothing to call, the booking's `released` flag is what it reads."""

    async def release(self, booking: Booking) -> str | None:
        return None


class NoShowService:
    def __init__(self, store: BookingStore, live: LiveStateStore, facts: SiteFacts,
                 releasers: Mapping[BookingSourceKind, BookingReleaser], no_show_after: timedelta,
                 max_retries: int = 5) -> None:
        self._store = store
        self._live = live
        self._facts = facts
        self._releasers = dict(releasers)
        self._no_show_after = no_show_after
        self._max_retries = max_retries
        self.no_shows = 0
        self.checked_in = 0
        self.released = 0

    async def sweep(self, now: datetime) -> int:
        """Decide the bookings whose deadline has passed, then release what is due; returns the no-shows written."""
        written = 0
        release_on: dict[BuildingRef, bool] = {}
        for booking in await self._store.list_checks_due(now - self._no_show_after):
            building = booking.building
            if building not in release_on:
                release_on[building] = (await self._store.get_settings(building)).release_no_shows
            written += await self._decide(booking, now, release_on[building])
        await self.release_due(now)
        if written:
            logger.info("no-shows: %d", written)
        return written

    async def _decide(self, booking: Booking, now: datetime, release: bool) -> int:
        for _attempt in range(self._max_retries):
            space = await self._live.get_space(booking.building, booking.space_id)
            decision = decide_no_show(booking, space, now, self._no_show_after, release)
            if decision is None:
                return 0
            try:
                if decision.no_show:
                    decided = replace(decision.booking, event_seq=booking.event_seq + 1)
                    facts = await self._facts.space(booking.building, booking.space_id)
                    await self._store.save(decided, [no_show_event(decided, facts)])
                    self.no_shows += 1
                    return 1
                await self._store.save(decision.booking)
                self.checked_in += 1
                return 0
            except PreconditionFailed:
                # another timer decided it, or the booking was moved or cancelled: decide again from what is there
                fresh = await self._store.get(booking.building, booking.space_id, booking.booking_id)
                if fresh is None:
                    return 0
                booking = fresh
        logger.warning("no-show of a booking in building %s: gave up after conflicting writes", booking.building_id)
        return 0

    async def release_due(self, now: datetime) -> int:
        """Give the rooms of pending no-shows back at their sources, each once; returns how many were released."""
        done = 0
        for booking in await self._store.list_releases_pending():
            claimed = claim_release(booking, now)
            if claimed is None:
                continue
            try:
                claimed = await self._store.save(claimed)
            except PreconditionFailed:
                continue  # another releaser claimed it first
            releaser = self._releasers.get(booking.source, FlagRelease())
            try:
                error = await releaser.release(claimed)
            except DependencyUnavailable as exc:
                logger.warning("release of a booking in building %s: %s; retried after the claim lapses",
                               booking.building_id, exc)
                continue
            try:
                await self._store.save(release_outcome(claimed, error))
            except PreconditionFailed:
                continue  # moved or cancelled meanwhile: its release no longer matters
            if error is None:
                done += 1
                self.released += 1
            else:
                logger.warning("release of a booking in building %s failed: %s", booking.building_id, error)
        return done
