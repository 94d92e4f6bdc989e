"""Tenants, people's sharing choices, identity providers and issuer claims (the `tenants` container) and the
audit log of people-finder lookups and sharing changes (`audit`)."""
from __future__ import annotations

import uuid
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.adapters import documents
from shared.adapters.cosmos import ContainerSource, unavailable
from shared.domain.identity import IdentityConfig
from shared.domain.people import AuditEntry, Sharing, SharingChange, Tenant
from shared.domain.ports import AlreadyExists, PreconditionFailed


class CosmosTenantDirectory:
    def __init__(self, database: ContainerSource) -> None:
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

    async def put_sharing(self, sharing: Sharing, if_match: str | None = None) -> None:
        doc = documents.sharing_to_doc(sharing)
        if if_match is None:
            await self._container.upsert_item(doc)
            return
        try:
            await self._container.replace_item(doc["id"], doc, etag=if_match,
                                               match_condition=MatchConditions.IfNotModified)
        except (CosmosResourceNotFoundError, CosmosAccessConditionFailedError):
            raise PreconditionFailed(f"the sharing of '{sharing.user_id}' changed since it was read") from None
        except CosmosHttpResponseError as exc:
            if exc.status_code != 412:
                raise
            raise PreconditionFailed(f"the sharing of '{sharing.user_id}' changed since it was read") from None

    async def get_identity(self, tenant_id: str) -> IdentityConfig | None:
        doc = await self._read("identity", tenant_id)
        return documents.identity_from_doc(doc) if doc else None

    async def put_identity(self, config: IdentityConfig) -> None:
        await self._container.upsert_item(documents.identity_to_doc(config))

    async def delete_identity(self, tenant_id: str) -> bool:
        try:
            await self._container.delete_item("identity", partition_key=tenant_id)
        except CosmosResourceNotFoundError:
            return False
        return True

    async def issuer_owner(self, issuer: str) -> str | None:
        doc = await self._read(documents.ISSUER_CLAIM_ID, documents.issuer_partition(issuer))
        return doc["owner"] if doc else None

    async def claim_issuer(self, issuer: str, tenant_id: str) -> None:
        # create_item is the atomic step: of two tenants claiming one issuer at once, one gets 409.
        try:
            await self._container.create_item(documents.issuer_claim_to_doc(issuer, tenant_id))
        except CosmosResourceExistsError:
            if await self.issuer_owner(issuer) != tenant_id:
                raise AlreadyExists("this issuer is configured for another tenant") from None

    async def release_issuer(self, issuer: str, tenant_id: str) -> None:
        partition = documents.issuer_partition(issuer)
        doc = await self._read(documents.ISSUER_CLAIM_ID, partition)
        if doc is None or doc["owner"] != tenant_id:
            return
        try:  # only the claim as read: a claim taken over meanwhile stays
            await self._container.delete_item(documents.ISSUER_CLAIM_ID, partition_key=partition,
                                              etag=doc["_etag"], match_condition=MatchConditions.IfNotModified)
        except CosmosResourceNotFoundError:
            return
        except CosmosHttpResponseError as exc:
            if exc.status_code != 412:
                raise


class CosmosAuditLog:
    def __init__(self, database: ContainerSource) -> None:
        self._container = database.get_container_client("audit")

    async def append(self, entry: AuditEntry) -> None:
        await self._container.create_item(documents.audit_to_doc(entry, str(uuid.uuid4())))

    async def recent(self, tenant_id: str, limit: int = 100) -> list[AuditEntry]:
        entries = [documents.audit_from_doc(d) for d in await self._of_kind(tenant_id, documents.LOOKUP_KIND)]
        return sorted(entries, key=lambda e: e.at, reverse=True)[:limit]

    async def append_sharing_change(self, change: SharingChange) -> None:
        await self._container.create_item(documents.sharing_change_to_doc(change, str(uuid.uuid4())))

    async def recent_sharing_changes(self, tenant_id: str, limit: int = 100) -> list[SharingChange]:
        docs = await self._of_kind(tenant_id, documents.SHARING_CHANGE_KIND)
        changes = [documents.sharing_change_from_doc(d) for d in docs]
        return sorted(changes, key=lambda c: c.at, reverse=True)[:limit]

    async def _of_kind(self, tenant_id: str, kind: str) -> list[dict[str, Any]]:
        # `kind` is not indexed (and lookups written before it existed have none): filtered here, not in the query.
        items = self._container.query_items("SELECT * FROM c WHERE c.tenantId = @t",
                                            parameters=[{"name": "@t", "value": tenant_id}], partition_key=tenant_id)
        return [d async for d in items if documents.audit_kind(d) == kind]
