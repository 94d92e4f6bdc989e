"""Teams in the `tenants` container (partition tenantId, id `team:<teamId>`): no container of their own."""
from __future__ import annotations

from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from shared.adapters.cosmos import ContainerSource, unavailable
from shared.domain.teams import Team

TEAM_PREFIX = "team:"


def team_to_doc(team: Team) -> dict[str, Any]:
    return {"id": TEAM_PREFIX + team.team_id, "tenantId": team.tenant_id, "kind": "team", "teamId": team.team_id,
            "name": team.name, "members": list(team.members)}


def team_from_doc(doc: dict[str, Any]) -> Team:
    return Team(tenant_id=doc["tenantId"], team_id=doc["teamId"], members=tuple(doc.get("members") or ()),
                name=doc.get("name") or "")


class CosmosTeamDirectory:
    def __init__(self, database: ContainerSource, container_name: str = "tenants") -> None:
        self._container = database.get_container_client(container_name)

    async def put_team(self, team: Team) -> None:
        try:
            await self._container.upsert_item(team_to_doc(team))
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def get_team(self, tenant_id: str, team_id: str) -> Team | None:
        try:
            doc = await self._container.read_item(TEAM_PREFIX + team_id, partition_key=tenant_id)
        except CosmosResourceNotFoundError:
            return None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return team_from_doc(doc)

    async def list_teams(self, tenant_id: str) -> list[Team]:
        # One partition; the tenant's other documents (its settings, sharing choices) are filtered out here
        # because only tenantId is indexed.
        try:
            items = self._container.query_items("SELECT * FROM c WHERE c.tenantId = @t",
                                                parameters=[{"name": "@t", "value": tenant_id}],
                                                partition_key=tenant_id)
            docs = [d async for d in items if d.get("kind") == "team" and str(d.get("id", "")).startswith(TEAM_PREFIX)]
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return sorted((team_from_doc(d) for d in docs), key=lambda t: t.team_id)

    async def delete_team(self, tenant_id: str, team_id: str) -> bool:
        try:
            await self._container.delete_item(TEAM_PREFIX + team_id, partition_key=tenant_id)
        except CosmosResourceNotFoundError:
            return False
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return True
