"""The co-worker finder: a person's sharing choice and, when they allow it, where they are (people scope)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, Field

from functions.deps import require
from functions.routes.models import PROBLEMS, UserIdPath
from shared.domain.people import SharingLevel
from shared.domain.tenancy import Principal, Scope
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/people", tags=["people"], responses=PROBLEMS)


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
    last_seen: datetime = Field(alias="lastSeen")
    model_config = {"populate_by_name": True}


def _sharing_out(s) -> SharingOut:
    return SharingOut(user_id=s.user_id, level=s.level, until=s.until, updated_at=s.updated_at)


@router.put("/{userId}/sharing", response_model=SharingOut, response_model_by_alias=True,
            summary="Set how (and until when) a person can be found")
async def put_sharing(body: SharingIn, userId: UserIdPath,
                      who: Principal = Depends(require(Scope.people)),
                      context: AppContext = Depends(get_context)) -> SharingOut:
    return _sharing_out(await context.people.set_sharing(who.tenant_id, userId, body.level, body.until))


@router.get("/{userId}/sharing", response_model=SharingOut, response_model_by_alias=True,
            summary="A person's sharing choice (off when never set)")
async def get_sharing(userId: UserIdPath, who: Principal = Depends(require(Scope.people)),
                      context: AppContext = Depends(get_context)) -> SharingOut:
    return _sharing_out(await context.people.get_sharing(who.tenant_id, userId))


@router.get("/{userId}/location", response_model=LocationOut, response_model_by_alias=True,
            summary="Where a person is, at the granularity they chose; 404 'not available' otherwise (audited)",
            responses={404: {"description": "not available: not sharing, expired, not seen in 10 minutes, or unknown"}})
async def location(userId: UserIdPath, who: Principal = Depends(require(Scope.people)),
                   context: AppContext = Depends(get_context)) -> LocationOut:
    found = await context.people.locate(who, userId)
    return LocationOut(user_id=found.user_id, level=found.level, building_id=found.building_id, floor=found.floor,
                       space_id=found.space_id, last_seen=found.last_seen)
