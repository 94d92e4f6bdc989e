"""Bookings of a building's rooms: any booking system puts and cancels its bookings here (`bookings` scope or
admin) and reads them back with their `released` flag; the building's admin sets whether no-shows are released."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from functions.bodies import read_json_body
from functions.deps import require, require_any
from functions.routes.models import PROBLEMS, PathId
from shared.domain.bookings import Booking
from shared.domain.errors import validate_model
from shared.domain.tenancy import Principal, Scope
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/buildings", tags=["bookings"], responses=PROBLEMS)


class BookingOut(BaseModel):
    id: str
    space_id: str = Field(alias="spaceId")
    start: datetime
    end: datetime
    source: Literal["api", "ical", "graph"]
    released: bool = Field(description="the room was given back: a no-show where the building releases no-shows")
    checked_in_at: datetime | None = Field(alias="checkedInAt",
                                           description="someone was in the room (the first moment known)")
    no_show_at: datetime | None = Field(alias="noShowAt",
                                        description="nobody came: NO_SHOW_MINUTES after the start")
    model_config = ConfigDict(populate_by_name=True)


class BookingList(BaseModel):
    items: list[BookingOut]
    continuation_token: str | None = Field(default=None, alias="continuationToken",
                                           description="always null: the list is bounded by from/to")
    model_config = ConfigDict(populate_by_name=True)


class BookingIn(BaseModel):
    """RFC 3339 times with an offset; end after start, at most 24 hours."""

    start: AwareDatetime
    end: AwareDatetime
    model_config = ConfigDict(extra="forbid")


class BookingSettingsIO(BaseModel):
    release_no_shows: bool = Field(alias="releaseNoShows",
                                   description="give a no-show's room back at its source (Graph: the room mailbox "
                                               "declines; iCal and API: the `released` flag)")
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


def booking_out(booking: Booking) -> BookingOut:
    return BookingOut(id=booking.booking_id, space_id=booking.space_id, start=booking.start, end=booking.end,
                      source=booking.source.value, released=booking.released, checked_in_at=booking.checked_in_at,
                      no_show_at=booking.no_show_at)


def _json(booking: Booking, status: int) -> JSONResponse:
    return JSONResponse(booking_out(booking).model_dump(mode="json", by_alias=True), status_code=status)


@router.put("/{buildingId}/spaces/{spaceId}/bookings/{bookingId}", response_model=BookingOut,
            response_model_by_alias=True, summary="Create or move a booking (bookings scope or admin; idempotent)",
            responses={200: {"description": "replaced, or already so"}, 201: {"description": "created"},
                       409: {"description": "the space is not bookable, or the booking comes from a calendar"}},
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": BookingIn.model_json_schema()}}}})
async def put_booking(buildingId: PathId, spaceId: PathId, bookingId: PathId, request: Request,
                      who: Principal = Depends(require(Scope.bookings)),
                      context: AppContext = Depends(get_context)) -> Response:
    body = await read_json_body(request)
    saved = await context.bookings.put(who.building(buildingId), spaceId, bookingId, body)
    return _json(saved.booking, 201 if saved.created else 200)


@router.delete("/{buildingId}/spaces/{spaceId}/bookings/{bookingId}", status_code=204,
               summary="Cancel a booking (bookings scope or admin; 204 also when it was not there)")
async def delete_booking(buildingId: PathId, spaceId: PathId, bookingId: PathId,
                         who: Principal = Depends(require(Scope.bookings)),
                         context: AppContext = Depends(get_context)) -> Response:
    await context.bookings.delete(who.building(buildingId), spaceId, bookingId)
    return Response(status_code=204)


@router.get("/{buildingId}/spaces/{spaceId}/bookings/{bookingId}", response_model=BookingOut,
            response_model_by_alias=True, summary="One booking, with its no-show decision and `released` flag")
async def get_booking(buildingId: PathId, spaceId: PathId, bookingId: PathId,
                      who: Principal = Depends(require_any(Scope.read, Scope.bookings)),
                      context: AppContext = Depends(get_context)) -> BookingOut:
    return booking_out(await context.bookings.get(who.building(buildingId), spaceId, bookingId))


@router.get("/{buildingId}/spaces/{spaceId}/bookings", response_model=BookingList, response_model_by_alias=True,
            summary="A space's bookings overlapping [from, to) (at most 31 days)")
async def list_bookings(buildingId: PathId, spaceId: PathId,
                        from_: AwareDatetime = Query(alias="from", description="RFC 3339 with an offset"),
                        to: AwareDatetime = Query(description="RFC 3339 with an offset; at most 31 days after from"),
                        who: Principal = Depends(require_any(Scope.read, Scope.bookings)),
                        context: AppContext = Depends(get_context)) -> BookingList:
    found = await context.bookings.list(who.building(buildingId), spaceId, from_, to)
    return BookingList(items=[booking_out(b) for b in found], continuation_token=None)


@router.get("/{buildingId}/booking-settings", response_model=BookingSettingsIO, response_model_by_alias=True,
            summary="Whether no-shows are released at their source (admin)")
async def get_booking_settings(buildingId: PathId, who: Principal = Depends(require(Scope.admin)),
                               context: AppContext = Depends(get_context)) -> BookingSettingsIO:
    settings = await context.bookings.settings(who.building(buildingId))
    return BookingSettingsIO(release_no_shows=settings.release_no_shows)


@router.put("/{buildingId}/booking-settings", response_model=BookingSettingsIO, response_model_by_alias=True,
            summary="Turn releasing no-shows at their source on or off (admin)")
async def put_booking_settings(buildingId: PathId, request: Request, who: Principal = Depends(require(Scope.admin)),
                               context: AppContext = Depends(get_context)) -> BookingSettingsIO:
    body = validate_model(BookingSettingsIO, await read_json_body(request))
    saved = await context.bookings.put_settings(who.building(buildingId), body.release_no_shows)
    return BookingSettingsIO(release_no_shows=saved.release_no_shows)
