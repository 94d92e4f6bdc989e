"""Teams of opted-in people, uploaded by the tenant's admins: the collaboration metric's only source of membership."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from functions.bodies import read_json_body
from functions.deps import require
from functions.routes.models import PROBLEMS, PathId
from shared.domain.errors import NotFound, validate_model
from shared.domain.teams import Team, TeamIn
from shared.domain.tenancy import Principal, Scope
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/teams", tags=["teams"], responses=PROBLEMS)

class TeamOut(BaseModel):
    team_id: str = Field(alias="teamId")
    name: str
    members: list[str]
    model_config = {"populate_by_name": True}


def _tenant(who: Principal) -> str:
    return who.tenant_id


def _out(team: Team) -> TeamOut:
    return TeamOut(team_id=team.team_id, name=team.name, members=list(team.members))


@router.put("/{teamId}", response_model=TeamOut, response_model_by_alias=True,
            summary="Create or replace a team: user ids of opted-in people (tenant admin key)")
async def put_team(request: Request,
                   teamId: PathId,
                   who: Principal = Depends(require(Scope.admin)), context: AppContext = Depends(get_context)) -> TeamOut:
    tenant_id = _tenant(who)
    body = validate_model(TeamIn, await read_json_body(request))
    team = Team(tenant_id=tenant_id, team_id=teamId, members=tuple(body.members), name=body.name)
    await context.teams.put_team(team)
    return _out(team)


@router.get("", response_model=list[TeamOut], response_model_by_alias=True,
            summary="The tenant's teams (tenant admin key)")
async def list_teams(who: Principal = Depends(require(Scope.admin)),
                     context: AppContext = Depends(get_context)) -> list[TeamOut]:
    return [_out(t) for t in await context.teams.list_teams(_tenant(who))]


@router.delete("/{teamId}", status_code=204, summary="Remove a team (tenant admin key)")
async def delete_team(teamId: PathId,
                      who: Principal = Depends(require(Scope.admin)), context: AppContext = Depends(get_context)) -> Response:
    if not await context.teams.delete_team(_tenant(who), teamId):
        raise NotFound(f"no team '{teamId}'")
    return Response(status_code=204)
