"""Tenants, people's sharing choices (the `tenants` container) and the people-finder audit log (`audit`)."""
from __future__ import annotations

import uuid
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos.aio import DatabaseProxy
from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

from shared.adapters import documents
from shared.adapters.cosmos import unavailable
from shared.domain.people import AuditEntry, Sharing, Tenant
from shared.domain.ports import AlreadyExists


class CosmosTenantDirectory:
    def __init__(self, database: DatabaseProxy) -> None:
        self._container = database.get_container_client("tenants")

    async def _read(self, item_id: str, tenant_id: str) -> dict[str, Any] | None:
        try:
            return await self._container.read_item(item_id, partition_key=tenant_id)
        except CosmosResourceNotFoundError:
            return None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def create_tenant(self, tenant: Tenant) -> None:
        try:
            await self._container.create_item(documents.tenant_to_doc(tenant))
        except CosmosResourceExistsError:
            raise AlreadyExists(f"tenant '{tenant.tenant_id}' exists") from None

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        doc = await self._read("tenant", tenant_id)
        return documents.tenant_from_doc(doc) if doc else None

    async def list_tenants(self) -> list[Tenant]:
        # Rare (bootstrap admin only) and cross-partition on purpose.
        items = self._container.query_items("SELECT * FROM c WHERE c.id = 'tenant'")
        return sorted([documents.tenant_from_doc(d) async for d in items], key=lambda t: t.tenant_id)

    async def get_sharing(self, tenant_id: str, user_id: str) -> Sharing | None:
        doc = await self._read(f"sharing:{user_id}", tenant_id)
        return documents.sharing_from_doc(doc) if doc else None

    async def put_sharing(self, sharing: Sharing) -> None:
        await self._container.upsert_item(documents.sharing_to_doc(sharing))


class CosmosAuditLog:
    def __init__(self, database: DatabaseProxy) -> None:
        self._container = database.get_container_client("audit")

    async def append(self, entry: AuditEntry) -> None:
        await self._container.create_item(documents.audit_to_doc(entry, str(uuid.uuid4())))

    async def recent(self, tenant_id: str, limit: int = 100) -> list[AuditEntry]:
        items = self._container.query_items("SELECT * FROM c WHERE c.tenantId = @t",
                                            parameters=[{"name": "@t", "value": tenant_id}], partition_key=tenant_id)
        entries = [documents.audit_from_doc(d) async for d in items]
        return sorted(entries, key=lambda e: e.at, reverse=True)[:limit]
