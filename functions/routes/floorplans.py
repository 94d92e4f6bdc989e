"""A building's map in and out: IMDF import and export, GeoJSON for maps, beacons placed later, a beacon plan."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from functions.bodies import (
    MAX_IMDF_BYTES,
    MAX_SITE_WIRE_BYTES,
    media_type_of,
    read_json_body,
    read_raw_body,
)
from functions.deps import require
from functions.routes.models import PROBLEMS, PathId, id_query
from shared.domain.errors import ContractViolation, FieldError
from shared.domain.tenancy import Principal, Scope
from shared.services.floorplans import PlanRequest, beacons_from_csv, planned_beacons_out
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/buildings", tags=["floor plans"], responses=PROBLEMS)

# What browsers, curl and HTTP libraries send a zip as (octet-stream: a file of unknown type).
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
GEOJSON = "application/geo+json"
MAX_BEACON_CSV_BYTES = 4 * 1024 * 1024

_ZIP_BODY = {"requestBody": {"required": True, "content": {
    media: {"schema": {"type": "string", "format": "binary"}} for media in ("application/zip", "application/octet-stream")}}}
_BEACONS_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "properties": {"beacons": {
        "type": "array", "items": {"$ref": "#/components/schemas/Beacon"}}}}},  # from the embedded site-v1
    "text/csv": {"schema": {"type": "string", "description": "header id,x,y,floor,measuredPower"}}}}}


class NavigationCounts(BaseModel):
    nodes: int
    edges: int
    generated: bool


class ImportSummary(BaseModel):
    building_id: str = Field(alias="buildingId")
    floors: int
    spaces: int
    doors: int
    beacons: int
    navigation: NavigationCounts
    unreachable_spaces: list[str] = Field(alias="unreachableSpaces")
    warnings: list[str]
    model_config = ConfigDict(populate_by_name=True)


class BeaconsSaved(BaseModel):
    building_id: str = Field(alias="buildingId")
    beacons: int
    model_config = ConfigDict(populate_by_name=True)


class PlanIn(BaseModel):
    min_beacons_per_room: int = Field(default=3, alias="minBeaconsPerRoom", ge=1, le=8)
    min_rssi_dbm: float = Field(default=-85.0, alias="minRssiDbm", ge=-110, le=-30)
    measured_power: int = Field(default=-59, alias="measuredPower", ge=-100, le=0,
                                description="the RSSI at 1 m of the beacons to be mounted")
    max_beacons: int | None = Field(default=None, alias="maxBeacons", ge=1, le=20_000)
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class PlannedBeaconOut(BaseModel):
    floor: str
    x: float
    y: float
    space_id: str | None = Field(alias="spaceId", description="the room whose wall it is mounted on")
    model_config = ConfigDict(populate_by_name=True)


class CoverageOut(BaseModel):
    rooms: int
    rooms_meeting_target: int = Field(alias="roomsMeetingTarget")
    rooms_short: list[str] = Field(alias="roomsShort", description="rooms the beacons do not cover to the target")
    predicted_room_accuracy: float | None = Field(alias="predictedRoomAccuracy",
                                                  description="share of positions the simulation put in the right room")
    model_config = ConfigDict(populate_by_name=True)


class PlanOut(BaseModel):
    beacons: list[PlannedBeaconOut]
    planned: CoverageOut
    existing: CoverageOut | None = Field(description="the same for the beacons placed today (null: none yet)")


@router.post("/{buildingId}/imdf", response_model=ImportSummary, response_model_by_alias=True,
             summary="Create or replace a building from an IMDF archive (zip)",
             responses={200: {"description": "replaced; ETag is the new version"},
                        201: {"description": "created; ETag is its version"},
                        412: {"description": "If-Match names a version that is no longer current"},
                        413: {"description": "the archive, or what it unpacks to, is too large"},
                        415: {"description": "not application/zip"}},
             openapi_extra=_ZIP_BODY)
async def import_imdf(buildingId: PathId, request: Request,
                      if_match: str | None = Header(default=None, alias="If-Match"),
                      if_none_match: str | None = Header(default=None, alias="If-None-Match"),
                      who: Principal = Depends(require(Scope.admin)),
                      context: AppContext = Depends(get_context)) -> Response:
    archive = await read_raw_body(request, ZIP_TYPES, MAX_IMDF_BYTES)
    imported = await context.floorplans.import_imdf(who.building(buildingId), archive, if_match, if_none_match)
    body = ImportSummary.model_validate(imported.summary()).model_dump(mode="json", by_alias=True)
    return JSONResponse(body, status_code=201 if imported.saved.created else 200,
                        headers={"ETag": imported.saved.etag})


@router.get("/{buildingId}/imdf", summary="The building as an IMDF archive (zip)",
            responses={200: {"description": "the archive", "content": {"application/zip": {}}}})
async def export_imdf(buildingId: PathId, who: Principal = Depends(require(Scope.read)),
                      context: AppContext = Depends(get_context)) -> Response:
    archive, etag = await context.floorplans.export_imdf(who.building(buildingId))
    return Response(archive, media_type="application/zip",
                    headers={"ETag": etag, "Content-Disposition": f'attachment; filename="{buildingId}-imdf.zip"'})


@router.get("/{buildingId}/geojson",
            summary="A floor's spaces, doors, amenities, beacons and navigation graph as GeoJSON",
            responses={200: {"description": "a FeatureCollection; `properties.featureType` tells the layers apart",
                             "content": {GEOJSON: {}}}})
async def geojson(buildingId: PathId, floor: str | None = id_query(description="a floor id (default: every floor)"),
                  coordinates: Literal["metres", "wgs84"] = Query(
                      default="metres", description="building metres (x east, y north), or WGS84 longitude/latitude "
                                                    "(RFC 7946) for a building with a geographic origin"),
                  who: Principal = Depends(require(Scope.read)),
                  context: AppContext = Depends(get_context)) -> Response:
    collection, etag = await context.floorplans.geojson(who.building(buildingId), floor, coordinates == "wgs84")
    return JSONResponse(collection, media_type=GEOJSON, headers={"ETag": etag})


@router.put("/{buildingId}/beacons", response_model=BeaconsSaved, response_model_by_alias=True,
            summary="Place or replace every beacon of an existing building (JSON or CSV)",
            responses={412: {"description": "If-Match names a version that is no longer current"},
                       409: {"description": "a beacon id is placed in another building of the tenant"}},
            openapi_extra=_BEACONS_BODY)
async def put_beacons(buildingId: PathId, request: Request,
                      if_match: str | None = Header(default=None, alias="If-Match"),
                      who: Principal = Depends(require(Scope.admin)),
                      context: AppContext = Depends(get_context)) -> Response:
    beacons: Any
    if media_type_of(request) == "text/csv":
        raw = await read_raw_body(request, ("text/csv",), MAX_BEACON_CSV_BYTES)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ContractViolation([FieldError("$", "the CSV is not UTF-8")], title="The CSV is invalid") from None
        beacons = beacons_from_csv(text)
    else:
        data = await read_json_body(request, max_compressed=MAX_SITE_WIRE_BYTES, max_uncompressed=MAX_SITE_WIRE_BYTES)
        beacons = data.get("beacons") if isinstance(data, dict) else data
        if not isinstance(beacons, list):
            raise ContractViolation([FieldError("beacons", "send {\"beacons\": [...]} or a list of beacons")])
    saved = await context.floorplans.put_beacons(who.building(buildingId), beacons, if_match)
    return JSONResponse(BeaconsSaved(building_id=buildingId, beacons=len(saved.site.beacons))
                        .model_dump(by_alias=True), headers={"ETag": saved.etag})


@router.post("/{buildingId}/beacon-plan", response_model=PlanOut, response_model_by_alias=True,
             summary="Where to mount beacons so every room hears enough of them, and the room accuracy predicted")
async def beacon_plan(buildingId: PathId, body: PlanIn | None = None,
                      who: Principal = Depends(require(Scope.admin)),
                      context: AppContext = Depends(get_context)) -> dict[str, Any]:
    body = body or PlanIn()
    plan = await context.floorplans.beacon_plan(
        who.building(buildingId), PlanRequest(body.min_beacons_per_room, body.min_rssi_dbm, body.measured_power,
                                              body.max_beacons))
    return planned_beacons_out(plan)

