"""Room calendars: connect a space to an iCalendar feed or a Microsoft 365 room mailbox (admin), upload an
iCalendar file (bookings scope or admin), sync now; and the endpoint Microsoft Graph posts its change
notifications to (no key: each notification carries its subscription's clientState)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from functions.bodies import read_json_body, read_raw_body
from functions.deps import require
from functions.routes.models import PROBLEMS, PathId, TenantIdPath
from shared.adapters.ical import MAX_FEED_BYTES
from shared.domain.bookings import BookingSourceKind, CalendarSource
from shared.domain.tenancy import Principal, Scope
from shared.services.calendars import MAX_VALIDATION_TOKEN, CalendarIn, SyncResult
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/buildings", tags=["bookings"], responses=PROBLEMS)
graph_router = APIRouter(prefix="/v1/graph", tags=["bookings"])


class SyncOut(BaseModel):
    created: int
    moved: int
    removed: int
    error: str | None = Field(description="why the calendar could not be read (null: it was)")


class CalendarOut(BaseModel):
    space_id: str = Field(alias="spaceId")
    kind: Literal["ical", "graph"]
    url: str | None = Field(description="ical: the feed; null: uploaded")
    mailbox: str | None = Field(description="graph: the room mailbox")
    subscription_expires_at: datetime | None = Field(alias="subscriptionExpiresAt",
                                                     description="graph: when the change notifications lapse "
                                                                 "unless renewed (the renewal timer does)")
    last_sync_at: datetime | None = Field(alias="lastSyncAt")
    last_error: str | None = Field(alias="lastError")
    last_sync: SyncOut | None = Field(default=None, alias="lastSync",
                                      description="what this request's sync did (PUT, sync)")
    model_config = ConfigDict(populate_by_name=True)


def _sync_out(result: SyncResult) -> SyncOut:
    return SyncOut(created=result.created, moved=result.moved, removed=result.removed, error=result.error)


def _out(source: CalendarSource, result: SyncResult | None = None) -> CalendarOut:
    # never the clientState: it is what proves a notification comes from Graph
    kind: Literal["ical", "graph"] = "graph" if source.kind is BookingSourceKind.graph else "ical"
    return CalendarOut(space_id=source.space_id, kind=kind, url=source.url, mailbox=source.mailbox,
                       subscription_expires_at=source.subscription_expires_at, last_sync_at=source.last_sync_at,
                       last_error=source.last_error, last_sync=_sync_out(result) if result else None)


CALENDAR = "/{buildingId}/spaces/{spaceId}/calendar"


@router.put(CALENDAR, response_model=CalendarOut, response_model_by_alias=True,
            summary="Connect the space to an iCalendar feed, uploads, or a room mailbox (admin); synced at once",
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": CalendarIn.model_json_schema()}}}})
async def put_calendar(buildingId: PathId, spaceId: PathId, request: Request,
                       who: Principal = Depends(require(Scope.admin)),
                       context: AppContext = Depends(get_context)) -> CalendarOut:
    source, result = await context.calendars.configure(who.building(buildingId), spaceId,
                                                       await read_json_body(request))
    return _out(source, result)


@router.get(CALENDAR, response_model=CalendarOut, response_model_by_alias=True,
            summary="The space's calendar and how its last sync went (admin)")
async def get_calendar(buildingId: PathId, spaceId: PathId, who: Principal = Depends(require(Scope.admin)),
                       context: AppContext = Depends(get_context)) -> CalendarOut:
    return _out(await context.calendars.get(who.building(buildingId), spaceId))


@router.delete(CALENDAR, status_code=204,
               summary="Disconnect the calendar; its bookings from now on go (admin; 204 also when there was none)")
async def delete_calendar(buildingId: PathId, spaceId: PathId, who: Principal = Depends(require(Scope.admin)),
                          context: AppContext = Depends(get_context)) -> Response:
    await context.calendars.remove(who.building(buildingId), spaceId)
    return Response(status_code=204)


@router.post(CALENDAR + "/sync", response_model=CalendarOut, response_model_by_alias=True,
             summary="Sync the space's calendar now (admin)")
async def sync_calendar(buildingId: PathId, spaceId: PathId, who: Principal = Depends(require(Scope.admin)),
                        context: AppContext = Depends(get_context)) -> CalendarOut:
    source = await context.calendars.get(who.building(buildingId), spaceId)
    result, source = await context.calendars.sync(source)
    return _out(source, result)


@router.put(CALENDAR + ".ics", response_model=SyncOut,
            summary="Upload the space's calendar as an iCalendar file (bookings scope or admin; at most 2 MB)",
            openapi_extra={"requestBody": {"required": True, "content": {"text/calendar": {
                "schema": {"type": "string"}}}}})
async def upload_calendar(buildingId: PathId, spaceId: PathId, request: Request,
                          who: Principal = Depends(require(Scope.bookings)),
                          context: AppContext = Depends(get_context)) -> SyncOut:
    data = await read_raw_body(request, ("text/calendar",), MAX_FEED_BYTES)
    return _sync_out(await context.calendars.upload(who.building(buildingId), spaceId, data))


@graph_router.post("/notifications/{tenantId}/{buildingId}/{spaceId}", status_code=202,
                   summary="Microsoft Graph change notifications of a room mailbox (no key: clientState)",
                   responses={200: {"description": "the validation handshake: the token, as text/plain"},
                              202: {"description": "accepted (notifications without the subscription's "
                                                   "clientState are ignored)"}})
async def graph_notifications(tenantId: TenantIdPath, buildingId: PathId, spaceId: PathId, request: Request,
                              validation_token: str | None = Query(default=None, alias="validationToken",
                                                                   max_length=MAX_VALIDATION_TOKEN),
                              context: AppContext = Depends(get_context)) -> Response:
    if validation_token is not None:
        # Graph's handshake when a subscription is created: echo the token, decoded, as plain text within 10 s.
        return PlainTextResponse(validation_token, status_code=200,
                                 headers={"X-Content-Type-Options": "nosniff"})
    await context.calendars.notified(tenantId, buildingId, spaceId, await read_json_body(request))
    return JSONResponse(None, status_code=202)
