"""Live state in Cosmos DB: devices, spaces, visits and beacons, each container partitioned by `tenantId|buildingId`."""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import CosmosHttpResponseError, CosmosResourceNotFoundError

from shared.adapters import documents
from shared.adapters.cosmos import BEACONS, DEVICES, SPACES, VISITS, ContainerSource, CosmosContainer, unavailable
from shared.domain.ports import PreconditionFailed
from shared.domain.presence import BeaconHealth, DeviceState, SpaceState, Visit
from shared.domain.tenancy import BuildingRef

logger = logging.getLogger(__name__)

_CONFLICTS = {409, 412, 404}  # exists already / changed since read / deleted since read


class CosmosLiveStateStore:
    def __init__(self, database: ContainerSource) -> None:
        self._devices = database.get_container_client(DEVICES)
        self._spaces = database.get_container_client(SPACES)
        self._visits = database.get_container_client(VISITS)
        self._beacons = database.get_container_client(BEACONS)
        # What this instance wrote and read: the pipeline benchmark turns it into RU per sighting.
        self.meter = documents.StoreMeter()

    async def _read(self, container: CosmosContainer, name: str, item_id: str, partition: str) -> dict[str, Any] | None:
        try:
            doc = await container.read_item(item_id, partition_key=partition)
        except CosmosResourceNotFoundError:
            self.meter.read(name, 0)
            return None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        self.meter.read(name, len(json.dumps(doc, separators=(",", ":"))))
        return doc

    async def _write(self, container: CosmosContainer, name: str, doc: dict[str, Any], etag: str | None, *,
                     upsert: bool = False) -> dict[str, Any]:
        try:
            if upsert:
                saved = await container.upsert_item(doc)
            elif etag is None:
                saved = await container.create_item(doc)
            else:
                saved = await container.replace_item(doc["id"], doc, etag=etag,
                                                     match_condition=MatchConditions.IfNotModified)
        except CosmosHttpResponseError as exc:
            if exc.status_code in _CONFLICTS and not upsert:
                raise PreconditionFailed(f"{name}/{doc['id']}: {exc.status_code}") from None
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        self.meter.write(name, len(json.dumps(doc, separators=(",", ":"))))
        return saved

    async def get_device(self, building: BuildingRef, device_id: str) -> DeviceState | None:
        doc = await self._read(self._devices, "devices", device_id, building.key)
        return documents.device_from_doc(doc) if doc else None

    async def save_device(self, device: DeviceState) -> DeviceState:
        saved = await self._write(self._devices, "devices", documents.device_to_doc(device), device.etag)
        return documents.device_from_doc(saved)

    async def list_devices(self, building: BuildingRef) -> list[DeviceState]:
        docs = await self._query_building(self._devices, building)
        return sorted((documents.device_from_doc(d) for d in docs), key=lambda d: d.device_id)

    async def find_devices_of_user(self, tenant_id: str, user_id: str) -> list[DeviceState]:
        # Across buildings (a person moves between them); userId is indexed, tenantId checked on the few hits.
        docs = await self._query(self._devices, "SELECT * FROM c WHERE c.userId = @u AND c.tenantId = @t",
                                 {"@u": user_id, "@t": tenant_id})
        return [documents.device_from_doc(d) for d in docs]

    async def get_space(self, building: BuildingRef, space_id: str) -> SpaceState | None:
        doc = await self._read(self._spaces, "spaces", space_id, building.key)
        return documents.space_from_doc(doc) if doc else None

    async def save_space(self, space: SpaceState) -> SpaceState:
        saved = await self._write(self._spaces, "spaces", documents.space_to_doc(space), space.etag)
        return documents.space_from_doc(saved)

    async def list_spaces(self, building: BuildingRef) -> list[SpaceState]:
        docs = await self._query_building(self._spaces, building)
        return sorted((documents.space_from_doc(d) for d in docs), key=lambda s: s.space_id)

    async def save_visit(self, visit: Visit) -> None:
        await self._write(self._visits, "visits", documents.visit_to_doc(visit), None, upsert=True)

    async def list_visits(self, building: BuildingRef, ended_from: datetime, ended_before: datetime) -> list[Visit]:
        docs = await self._query_building(self._visits, building, "AND c['end'] >= @from AND c['end'] < @to",
                                          {"@from": documents.iso(ended_from), "@to": documents.iso(ended_before)})
        return sorted((documents.visit_from_doc(d) for d in docs), key=lambda v: (v.end, v.id))

    async def list_silent_devices(self, seen_before: datetime, limit: int = 1000) -> list[DeviceState]:
        # Cross-partition on purpose: one sweep covers every building; lastSeen and spaceId are indexed.
        docs = await self._query(
            self._devices,
            "SELECT * FROM c WHERE c.lastSeen < @cutoff AND (IS_STRING(c.spaceId) OR IS_STRING(c.leavingSpaceId))",
            {"@cutoff": documents.iso(seen_before)},
        )
        docs.sort(key=lambda d: d["lastSeen"])
        return [documents.device_from_doc(d) for d in docs[:limit]]

    async def save_beacon_health(self, health: BeaconHealth) -> None:
        await self._write(self._beacons, "beacons", documents.beacon_to_doc(health), None, upsert=True)

    async def list_beacon_health(self, building: BuildingRef) -> list[BeaconHealth]:
        docs = await self._query_building(self._beacons, building)
        return sorted((documents.beacon_from_doc(d) for d in docs), key=lambda b: b.beacon_id)

    async def _query_building(self, container: CosmosContainer, building: BuildingRef, condition: str = "",
                              parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One building's documents: a single-partition query that names the partition key and the tenant in
        WHERE too (the local Cosmos server needs the key there; the tenant filter is a second seal)."""
        query = f"SELECT * FROM c WHERE c.{documents.PARTITION_KEY_FIELD} = @key AND c.tenantId = @tenant {condition}"
        return await self._query(container, query.strip(),
                                 {"@key": building.key, "@tenant": building.tenant_id, **(parameters or {})},
                                 partition=building.key)

    async def _query(self, container: CosmosContainer, query: str, parameters: dict[str, Any],
                     partition: str | None = None) -> list[dict[str, Any]]:
        params = [{"name": k, "value": v} for k, v in parameters.items()]
        try:
            if partition is None:
                items = container.query_items(query, parameters=params)
            else:
                items = container.query_items(query, parameters=params, partition_key=partition)
            return [item async for item in items]
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
