"""Buildings: site models (admin) and what people and integrators read (live state, free rooms, routes...)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from functions.bodies import MAX_SITE_WIRE_BYTES, read_json_body
from functions.deps import require
from functions.routes.models import PROBLEMS, PathId, id_query
from shared.domain.tenancy import Principal, Scope
from shared.services.queries import Nearby, SpaceView
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/buildings", tags=["buildings"], responses=PROBLEMS)

MAX_SITE_BYTES = 32 * 1024 * 1024  # uncompressed: a 2,000-unit IMDF venue with holes, doors and its graph is ~10 MB


class BuildingSummary(BaseModel):
    building_id: str = Field(alias="buildingId")
    name: str
    time_zone: str = Field(alias="timeZone")
    floors: int
    spaces: int
    beacons: int
    model_config = {"populate_by_name": True}


class SpaceOut(BaseModel):
    id: str
    name: str
    kind: str
    floor: str
    capacity: int
    amenities: list[str]
    bookable: bool
    status: Literal["free", "occupied", "booked", "reclaimable"] = Field(
        description="occupied: someone is in; booked: a booking runs and nobody is in; reclaimable: that booking "
                    "is a no-show (nobody came within NO_SHOW_MINUTES); free: none of these")
    headcount: int
    since: datetime | None = Field(description="when the occupancy (free / occupied) last changed")


class SpacePage(BaseModel):
    items: list[SpaceOut]
    continuation_token: str | None = Field(alias="continuationToken")
    model_config = {"populate_by_name": True}


class FloorCount(BaseModel):
    floor: str
    name: str
    headcount: int


class Occupancy(BaseModel):
    building_id: str = Field(alias="buildingId")
    as_of: datetime = Field(alias="asOf")
    headcount: int
    floors: list[FloorCount]
    model_config = {"populate_by_name": True}


class NearbySpace(SpaceOut):
    distance_m: float | None = Field(alias="distanceM", description="walking distance along the navigation graph "
                                                                    "from `near`; null when no `near` was given")
    eta_s: float | None = Field(alias="etaS", description="walking time, stairs and lifts included; null when no "
                                                          "`near` was given")
    model_config = {"populate_by_name": True}


class BookingTimes(BaseModel):
    start: datetime
    end: datetime


class FreeRoom(NearbySpace):
    next_booking: BookingTimes | None = Field(alias="nextBooking",
                                              description="the room's next booking within 24 hours; null: none")
    model_config = {"populate_by_name": True}


class FreeRoomPage(BaseModel):
    """The v1 list shape: limited (`limit`), so the token is always null."""

    items: list[FreeRoom]
    continuation_token: str | None = Field(default=None, alias="continuationToken",
                                           description="always null: the list is limited, not paged")
    model_config = {"populate_by_name": True}


class NearbyPage(BaseModel):
    """The v1 list shape (as `spaces`): these lists are limited (`limit`), so the token is always null."""

    items: list[NearbySpace]
    continuation_token: str | None = Field(default=None, alias="continuationToken",
                                           description="always null: the list is limited, not paged")
    model_config = {"populate_by_name": True}


class Leg(BaseModel):
    floor: str
    distance_m: float = Field(alias="distanceM")
    polyline: list[tuple[float, float]]
    model_config = {"populate_by_name": True}


class RouteOut(BaseModel):
    distance_m: float = Field(alias="distanceM")
    eta_s: float = Field(alias="etaS")
    accessible: bool
    legs: list[Leg]
    instructions: list[str]
    model_config = {"populate_by_name": True}


class BeaconOut(BaseModel):
    beacon_id: str = Field(alias="beaconId")
    floor: str
    x: float
    y: float
    last_heard: datetime | None = Field(alias="lastHeard")
    battery_mv: int | None = Field(alias="batteryMv")
    solar_lux: float | None = Field(alias="solarLux")
    temperature_c: float | None = Field(alias="temperatureC")
    silent: bool = Field(description="not heard for more than 24 hours (or never)")
    drift_db: float | None = Field(
        alias="driftDb", description="change of the beacon's measured power seen by positioning's self-calibration "
        "(dB, negative = weaker), null until its level settled")
    drift_flagged: bool = Field(alias="driftFlagged", description="drift beyond the bound: battery, turned or moved")
    model_config = {"populate_by_name": True}


class BeaconHealthOut(BaseModel):
    beacons: list[BeaconOut]
    silent: int
    drift_flagged: int = Field(alias="driftFlagged")
    model_config = {"populate_by_name": True}


def _space_out(view: SpaceView) -> SpaceOut:
    s = view.space
    return SpaceOut(id=s.id, name=s.name, kind=s.kind.value, floor=s.floor, capacity=s.capacity,
                    amenities=list(s.amenities), bookable=s.bookable, status=view.status, headcount=view.headcount,
                    since=view.since)


def _nearby_out(n: Nearby) -> NearbySpace:
    return NearbySpace(**_space_out(n.view).model_dump(),
                       distance_m=round(n.distance_m, 1) if n.distance_m is not None else None,
                       eta_s=round(n.eta_s) if n.eta_s is not None else None)


def _free_room_out(n: Nearby) -> FreeRoom:
    upcoming = n.view.next_booking
    return FreeRoom(**_nearby_out(n).model_dump(),
                    next_booking=BookingTimes(start=upcoming.start, end=upcoming.end) if upcoming else None)


NEAR = Query(description="a space id, or `x,y,floor` in building metres", max_length=200)


@router.get("", response_model=list[BuildingSummary], response_model_by_alias=True,
            summary="The tenant's buildings")
async def list_buildings(who: Principal = Depends(require(Scope.read)),
                         context: AppContext = Depends(get_context)) -> list[BuildingSummary]:
    return [BuildingSummary(building_id=b.building_id, name=b.site.name, time_zone=b.site.time_zone,
                            floors=len(b.site.floors), spaces=len(b.site.spaces), beacons=len(b.site.beacons))
            for b in await context.queries.buildings(who.tenant_id)]


@router.put("/{buildingId}", summary="Create or replace a building's site model (site/v1)",
            responses={200: {"description": "replaced; ETag is the new version"},
                       201: {"description": "created; ETag is its version"},
                       412: {"description": "If-Match names a version that is no longer current"}},
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "https://spaceflow.dev/schemas/site-v1.json"}}}}})
async def put_building(buildingId: PathId, request: Request,
                       if_match: str | None = Header(default=None, alias="If-Match"),
                       if_none_match: str | None = Header(default=None, alias="If-None-Match"),
                       who: Principal = Depends(require(Scope.admin)),
                       context: AppContext = Depends(get_context)) -> Response:
    data = await read_json_body(request, max_compressed=MAX_SITE_WIRE_BYTES, max_uncompressed=MAX_SITE_BYTES)
    saved = await context.admin.put_site(who.building(buildingId), data, if_match, if_none_match)
    return JSONResponse(saved.site.model_dump(mode="json", by_alias=True), status_code=201 if saved.created else 200,
                        headers={"ETag": saved.etag})


@router.get("/{buildingId}", summary="A building's site model; ETag carries its version",
            responses={200: {"description": "the site model (site/v1)"}, 304: {"description": "not modified"}})
async def get_building(buildingId: PathId,
                       if_none_match: str | None = Header(default=None, alias="If-None-Match"),
                       who: Principal = Depends(require(Scope.read)),
                       context: AppContext = Depends(get_context)) -> Response:
    found = await context.admin.get_site(who.building(buildingId))
    if if_none_match is not None and if_none_match == found.etag:
        return Response(status_code=304, headers={"ETag": found.etag})
    return JSONResponse(found.site.model_dump(mode="json", by_alias=True), headers={"ETag": found.etag})


@router.get("/{buildingId}/spaces", response_model=SpacePage, response_model_by_alias=True,
            summary="Spaces with their live state, filtered and paged")
async def list_spaces(buildingId: PathId,
                      floor: str | None = id_query(description="a floor id"),
                      kind: str | None = Query(default=None, max_length=64,
                                               description="a space kind (IMDF unit category); unknown: 400"),
                      status: Literal["free", "occupied", "booked", "reclaimable"] | None = None,
                      min_capacity: int | None = Query(default=None, alias="minCapacity", ge=0, le=100_000),
                      amenity: str | None = Query(default=None, max_length=64),
                      limit: int = Query(default=100, ge=1, le=1000),
                      continuation_token: str | None = Query(default=None, alias="continuationToken",
                                                             max_length=512),
                      who: Principal = Depends(require(Scope.read)),
                      context: AppContext = Depends(get_context)) -> SpacePage:
    page = await context.queries.spaces(who.building(buildingId), floor=floor, kind=kind, status=status,
                                        min_capacity=min_capacity, amenity=amenity, limit=limit,
                                        continuation=continuation_token)
    return SpacePage(items=[_space_out(v) for v in page.items], continuation_token=page.continuation)


@router.get("/{buildingId}/spaces/{spaceId}", response_model=SpaceOut, summary="One space and its live state")
async def get_space(buildingId: PathId, spaceId: PathId,
                    who: Principal = Depends(require(Scope.read)),
                    context: AppContext = Depends(get_context)) -> SpaceOut:
    return _space_out(await context.queries.space(who.building(buildingId), spaceId))


@router.get("/{buildingId}/occupancy", response_model=Occupancy, response_model_by_alias=True,
            summary="Headcount per floor and for the building, now")
async def occupancy(buildingId: PathId, who: Principal = Depends(require(Scope.read)),
                    context: AppContext = Depends(get_context)) -> Occupancy:
    building = await context.queries.building(who.building(buildingId))
    as_of, per_floor = await context.queries.occupancy(who.building(buildingId))
    names = {f.id: f.name or f.id for f in building.site.floors}
    return Occupancy(building_id=buildingId, as_of=as_of, headcount=sum(per_floor.values()),
                     floors=[FloorCount(floor=f, name=names[f], headcount=n) for f, n in per_floor.items()])


@router.get("/{buildingId}/free-rooms", response_model=FreeRoomPage, response_model_by_alias=True,
            summary="Meeting rooms free now and for `freeFor` minutes, by walking distance from `near`")
async def free_rooms(buildingId: PathId, near: str = NEAR,
                     free_for: int = Query(default=30, alias="freeFor", ge=1, le=1440,
                                           description="minutes the room must stay free: no booking holds it "
                                                       "within them (a no-show's booking does not)"),
                     min_capacity: int | None = Query(default=None, alias="minCapacity", ge=0, le=100_000),
                     amenity: str | None = Query(default=None, max_length=64),
                     kind: list[str] | None = Query(default=None, max_length=10,
                                                    description="space kinds (default: conferenceroom, huddleroom); "
                                                                "unknown: 400"),
                     accessible: bool = False,
                     limit: int = Query(default=10, ge=1, le=100),
                     who: Principal = Depends(require(Scope.read)),
                     context: AppContext = Depends(get_context)) -> FreeRoomPage:
    rooms = await context.queries.free_rooms(who.building(buildingId), near, min_capacity=min_capacity,
                                             amenity=amenity, kinds=kind, limit=limit, accessible=accessible,
                                             free_for_=timedelta(minutes=free_for))
    return FreeRoomPage(items=[_free_room_out(n) for n in rooms], continuation_token=None)


@router.get("/{buildingId}/route", response_model=RouteOut, response_model_by_alias=True,
            summary="The way from one place to another, across floors, with turn-by-turn instructions",
            responses={404: {"description": "no such building, or no route (the detail says why)"}})
async def route(buildingId: PathId,
                from_: str = Query(alias="from", max_length=200, description="a space id, or `x,y,floor`"),
                to: str = Query(max_length=200, description="a space id, or `x,y,floor`"),
                accessible: bool = Query(default=False, description="avoid stairs"),
                who: Principal = Depends(require(Scope.read)),
                context: AppContext = Depends(get_context)) -> RouteOut:
    found = await context.queries.route(who.building(buildingId), from_, to, accessible)
    return RouteOut(distance_m=round(found.distance_m, 1), eta_s=round(found.eta_s), accessible=accessible,
                    legs=[Leg(floor=leg.floor, distance_m=round(leg.distance_m, 1),
                              polyline=[(round(x, 2), round(y, 2)) for x, y in leg.polyline]) for leg in found.legs],
                    instructions=list(found.instructions))


@router.get("/{buildingId}/amenities", response_model=NearbyPage, response_model_by_alias=True,
            summary="Amenities (kitchen, restroom, printer, ...) by walking distance from `near`")
async def amenities(buildingId: PathId,
                    kind: str = Query(min_length=1, max_length=64,
                                      description="an amenity search (kitchen, restroom...), a space kind, or an "
                                                  "amenity a space of the building lists (printer...); else 400"),
                    near: str | None = Query(default=None, max_length=200,
                                             description="a space id, or `x,y,floor`; without it, distanceM and "
                                                         "etaS are null"),
                    accessible: bool = False,
                    limit: int = Query(default=10, ge=1, le=100),
                    who: Principal = Depends(require(Scope.read)),
                    context: AppContext = Depends(get_context)) -> NearbyPage:
    found = await context.queries.amenities(who.building(buildingId), kind, near, limit=limit,
                                            accessible=accessible)
    return NearbyPage(items=[_nearby_out(n) for n in found], continuation_token=None)


@router.get("/{buildingId}/beacons/health", response_model=BeaconHealthOut, response_model_by_alias=True,
            summary="Beacon fleet health: last heard, battery, solar, silent for more than 24 hours, drift")
async def beacon_health(buildingId: PathId, who: Principal = Depends(require(Scope.read)),
                        context: AppContext = Depends(get_context)) -> BeaconHealthOut:
    beacons = await context.queries.beacon_health(who.building(buildingId))
    out = [BeaconOut(beacon_id=b.beacon_id, floor=b.floor, x=b.x, y=b.y, last_heard=b.last_heard,
                     battery_mv=b.battery_mv, solar_lux=b.solar_lux, temperature_c=b.temperature_c, silent=b.silent,
                     drift_db=b.drift_db, drift_flagged=b.drift_flagged)
           for b in beacons]
    return BeaconHealthOut(beacons=out, silent=sum(b.silent for b in out),
                           drift_flagged=sum(b.drift_flagged for b in out))
