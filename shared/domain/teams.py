"""Teams: which opted-in people belong to which team, as the tenant's admins upload it (the collaboration metric)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.domain.tenancy import ID_MAX_LENGTH, ID_PATTERN, USER_ID_MAX_LENGTH, USER_ID_PATTERN

MAX_TEAM_MEMBERS = 10_000

TeamId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
# The pattern of the SDK's userId: a member the ingest path could never have seen would match no visit.
UserId = Annotated[str, Field(min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=USER_ID_PATTERN)]


@dataclass(frozen=True)
class Team:
    """A team of a tenant: its members are the user ids opted-in people share (visits carry no other identity)."""

    tenant_id: str
    team_id: str
    members: tuple[str, ...]
    name: str = ""


class TeamIn(BaseModel):
    """Body of PUT /api/v1/teams/{teamId}: the whole membership (replaces the previous one)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=128)
    members: list[UserId] = Field(
        max_length=MAX_TEAM_MEMBERS, description="user ids of opted-in people (the SDK's `userId`)")

    @field_validator("members")
    @classmethod
    def _unique(cls, members: list[str]) -> list[str]:
        return sorted(set(members))


def teams_of_user(teams: list[Team]) -> dict[str, list[str]]:
    """user id -> the ids of the teams the user is in."""
    found: dict[str, list[str]] = {}
    for team in sorted(teams, key=lambda t: t.team_id):
        for user in team.members:
            found.setdefault(user, []).append(team.team_id)
    return found
