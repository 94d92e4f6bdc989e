"""The co-worker finder: a person's own sharing choice (signed in, /me) and, when people allow it, where they are.

A signed-in person (bearer token) sets and reads only their own sharing and looks colleagues up as themselves; an
integrator's `people` key looks people up and may narrow anyone's sharing, never widen it; the tenant's admin key
reads anyone's choice. Lookups and changes are audited."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from functions.deps import require, require_any, signed_in
from functions.routes.models import PROBLEMS, PathId, UserIdPath
from shared.domain.people import PersonLocation, Sharing, SharingLevel
from shared.domain.tenancy import Principal, Scope
from shared.services.people import MAX_PEOPLE_LISTED
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/people", tags=["people"], responses=PROBLEMS)
me_router = APIRouter(prefix="/v1/me", tags=["people"], responses=PROBLEMS)
building_router = APIRouter(prefix="/v1/buildings", tags=["people"], responses=PROBLEMS)

_FORBIDDEN_CHANGE: dict[int | str, dict[str, Any]] = {403: {"description": "an API key widening someone's sharing (it may only narrow it or turn it "
                                          "off), or a person changing someone else's", **PROBLEMS[403]}}
_SIGNED_IN_ONLY: dict[int | str, dict[str, Any]] = {403: {"description": "not a signed-in person (an API key)", **PROBLEMS[403]}}


class SharingIn(BaseModel):
    level: SharingLevel = Field(description="off, or how precisely the person may be found")
    until: AwareDatetime | None = Field(default=None, description="sharing ends then (RFC 3339); none: until changed")
    model_config = {"extra": "forbid"}


class SharingOut(BaseModel):
    user_id: str = Field(alias="userId")
    level: SharingLevel
    until: datetime | None
    updated_at: datetime = Field(alias="updatedAt")
    model_config = {"populate_by_name": True}


class LocationOut(BaseModel):
    user_id: str = Field(alias="userId")
    level: SharingLevel
    building_id: str = Field(alias="buildingId")
    floor: str | None = Field(description="present when the person shares floor or space")
    space_id: str | None = Field(alias="spaceId", description="present when the person shares their space")
    last_seen: datetime = Field(alias="lastSeen", description="exact at level space; rounded down to 5 minutes "
                                                              "below it, so it gives no room away")
    model_config = {"populate_by_name": True}


class PeoplePage(BaseModel):
    """The v1 list shape: limited (`limit`), so the token is always null."""

    items: list[LocationOut]
    continuation_token: str | None = Field(default=None, alias="continuationToken",
                                           description="always null: the list is limited, not paged")
    model_config = {"populate_by_name": True}


def _location_out(found: PersonLocation) -> LocationOut:
    return LocationOut(user_id=found.user_id, level=found.level, building_id=found.building_id, floor=found.floor,
                       space_id=found.space_id, last_seen=found.last_seen)


def _sharing_out(s: Sharing) -> SharingOut:
    return SharingOut(user_id=s.user_id, level=s.level, until=s.until, updated_at=s.updated_at)


@me_router.get("/sharing", response_model=SharingOut, response_model_by_alias=True, responses=_SIGNED_IN_ONLY,
               summary="My sharing choice (off when never set); bearer token only")
async def get_my_sharing(who: Principal = Depends(signed_in),
                         context: AppContext = Depends(get_context)) -> SharingOut:
    return _sharing_out(await context.people.own_sharing(who))


@me_router.put("/sharing", response_model=SharingOut, response_model_by_alias=True, responses=_SIGNED_IN_ONLY,
               summary="Set how (and until when) I can be found; bearer token only (audited)")
async def put_my_sharing(body: SharingIn, who: Principal = Depends(signed_in),
                         context: AppContext = Depends(get_context)) -> SharingOut:
    assert who.user_id is not None  # signed_in guarantees it
    return _sharing_out(await context.people.change_sharing(who, who.user_id, body.level, body.until))


@router.put("/{userId}/sharing", response_model=SharingOut, response_model_by_alias=True,
            responses=_FORBIDDEN_CHANGE,
            summary="Narrow or turn off a person's sharing (people key); only the person widens it (audited)")
async def put_sharing(body: SharingIn, userId: UserIdPath,
                      who: Principal = Depends(require_any(Scope.people, Scope.people_as_self)),
                      context: AppContext = Depends(get_context)) -> SharingOut:
    return _sharing_out(await context.people.change_sharing(who, userId, body.level, body.until))


@router.get("/{userId}/sharing", response_model=SharingOut, response_model_by_alias=True,
            summary="A person's sharing choice, off when never set (tenant admin key)")
async def get_sharing(userId: UserIdPath, who: Principal = Depends(require(Scope.admin)),
                      context: AppContext = Depends(get_context)) -> SharingOut:
    return _sharing_out(await context.people.sharing_for_admin(who, userId))


@router.get("/{userId}/location", response_model=LocationOut, response_model_by_alias=True,
            summary="Where a person is, at the granularity they chose; 404 'not available' otherwise (audited)",
            responses={404: {"description": "not available: not sharing, expired, not seen in 10 minutes, or unknown"}})
async def location(userId: UserIdPath,
                   who: Principal = Depends(require_any(Scope.people, Scope.people_as_self)),
                   context: AppContext = Depends(get_context)) -> LocationOut:
    return _location_out(await context.people.locate(who, userId))


@building_router.get(
    "/{buildingId}/people", response_model=PeoplePage, response_model_by_alias=True,
    summary="The people who share where they are and were last heard in this building, each at the level they "
            "chose (people key or a signed-in person; each person listed is audited as a lookup)")
async def people_in_building(buildingId: PathId,
                             limit: int = Query(default=200, ge=1, le=MAX_PEOPLE_LISTED),
                             who: Principal = Depends(require_any(Scope.people, Scope.people_as_self)),
                             context: AppContext = Depends(get_context)) -> PeoplePage:
    found = await context.people.in_building(who, who.building(buildingId), limit)
    return PeoplePage(items=[_location_out(p) for p in found], continuation_token=None)
