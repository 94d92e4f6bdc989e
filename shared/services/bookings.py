"""Bookings from any booking system through the API, and the building's booking settings (docs/bookings.md)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.domain.bookings import (
    Booking,
    BookingRequest,
    BookingSettings,
    BookingSourceKind,
    rescheduled,
)
from shared.domain.errors import Conflict, ContractViolation, FieldError, NotFound, validate_model
from shared.domain.ports import BookingStore, PreconditionFailed
from shared.domain.site import Space
from shared.domain.tenancy import BuildingRef
from shared.services.sites import SiteDirectory

logger = logging.getLogger(__name__)

MAX_LIST_RANGE = timedelta(days=31)


@dataclass(frozen=True)
class SavedBooking:
    booking: Booking
    created: bool


class BookingService:
    def __init__(self, store: BookingStore, sites: SiteDirectory, max_retries: int = 5) -> None:
        self._store = store
        self._sites = sites
        self._max_retries = max_retries

    async def bookable_space(self, building: BuildingRef, space_id: str) -> Space:
        """The space of the tenant's building; NotFound alike for a missing building or space, Conflict for a
        space that is not bookable (site model `bookable`)."""
        loaded = await self._sites.get(building)
        if loaded is None:
            raise NotFound(f"no building '{building.building_id}'")
        space = next((s for s in loaded.site.spaces if s.id == space_id), None)
        if space is None:
            raise NotFound(f"no space '{space_id}' in building '{building.building_id}'")
        if not space.bookable:
            raise Conflict(f"space '{space_id}' is not bookable (its site model says `bookable: false`)",
                           spaceId=space_id)
        return space

    async def put(self, building: BuildingRef, space_id: str, booking_id: str, body: Any) -> SavedBooking:
        """Create or move an API booking: idempotent (the same times again change nothing)."""
        request = validate_model(BookingRequest, body)
        await self.bookable_space(building, space_id)
        for _attempt in range(self._max_retries):
            current = await self._store.get(building, space_id, booking_id)
            if current is None:
                booking = Booking(building.tenant_id, building.building_id, space_id, booking_id, request.start,
                                  request.end, BookingSourceKind.api)
                try:
                    return SavedBooking(await self._store.save(booking), True)
                except PreconditionFailed:
                    continue  # created meanwhile by a retry of the same request: decide again from it
            self._own(current)
            updated = rescheduled(current, request.start, request.end)
            if updated is current:
                return SavedBooking(current, False)
            try:
                return SavedBooking(await self._store.save(updated), False)
            except PreconditionFailed:
                continue  # the no-show timer decided meanwhile: move the fresh version
        raise Conflict(f"booking '{booking_id}' keeps changing; try again", bookingId=booking_id)

    async def delete(self, building: BuildingRef, space_id: str, booking_id: str) -> None:
        """Cancel an API booking; deleting one that is not there is fine (idempotent)."""
        await self.bookable_space(building, space_id)
        current = await self._store.get(building, space_id, booking_id)
        if current is None:
            return
        self._own(current)
        await self._store.delete(building, space_id, booking_id)

    async def get(self, building: BuildingRef, space_id: str, booking_id: str) -> Booking:
        await self.bookable_space(building, space_id)
        booking = await self._store.get(building, space_id, booking_id)
        if booking is None:
            raise NotFound(f"no booking '{booking_id}' of space '{space_id}'")
        return booking

    async def list(self, building: BuildingRef, space_id: str, start: datetime, end: datetime) -> list[Booking]:
        """A space's bookings overlapping [start, end) (at most 31 days): what a source reads the `released`
        flag from."""
        if end <= start:
            raise ContractViolation([FieldError("query.to", "must be after from")])
        if end - start > MAX_LIST_RANGE:
            raise ContractViolation([FieldError("query.to", "at most 31 days after from")])
        await self.bookable_space(building, space_id)
        return await self._store.list_bookings(building, start, end, space_id)

    async def settings(self, building: BuildingRef) -> BookingSettings:
        await self._building(building)
        return await self._store.get_settings(building)

    async def put_settings(self, building: BuildingRef, release_no_shows: bool) -> BookingSettings:
        await self._building(building)
        current = await self._store.get_settings(building)
        saved = await self._store.put_settings(replace(current, release_no_shows=release_no_shows))
        logger.info("booking settings of %s: release no-shows %s", building.key, release_no_shows)
        return saved

    async def _building(self, building: BuildingRef) -> None:
        if await self._sites.get(building) is None:
            raise NotFound(f"no building '{building.building_id}'")

    @staticmethod
    def _own(booking: Booking) -> None:
        if booking.source is not BookingSourceKind.api:
            raise Conflict(f"booking '{booking.booking_id}' comes from the room's calendar ({booking.source.value}): "
                           "change it there", bookingId=booking.booking_id, source=booking.source.value)
