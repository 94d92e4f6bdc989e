"""Cosmos DB (NoSQL) adapters: the client factory, the container layout, the bootstrap and the stores."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.cosmos import PartitionKey
from azure.cosmos.aio import CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.adapters import site_documents
from shared.domain.ports import BlobStore, DependencyUnavailable, PreconditionFailed, VersionedSite
from shared.domain.site import SiteModel
from shared.domain.tenancy import ApiKeyRecord, BuildingRef, Scope
from shared.settings import COSMOS_PREFIX, Settings

logger = logging.getLogger(__name__)


class CosmosContainer(Protocol):
    """The container calls the stores make: an SDK ContainerProxy, or the GuardedContainer of cosmos_schema.py."""

    def read_item(self, item: str, partition_key: str, **kwargs: Any) -> Awaitable[dict[str, Any]]: ...

    def create_item(self, body: dict[str, Any], **kwargs: Any) -> Awaitable[dict[str, Any]]: ...

    def upsert_item(self, body: dict[str, Any], **kwargs: Any) -> Awaitable[dict[str, Any]]: ...

    def replace_item(self, item: str, body: dict[str, Any], **kwargs: Any) -> Awaitable[dict[str, Any]]: ...

    def delete_item(self, item: str, partition_key: str, **kwargs: Any) -> Awaitable[None]: ...

    def query_items(self, query: str, **kwargs: Any) -> AsyncIterator[dict[str, Any]]: ...


class ContainerSource(Protocol):
    """Where the stores get their containers: an SDK DatabaseProxy, or the GuardedDatabase of cosmos_schema.py
    (what the app gives them, so a missing database or container is re-created or named)."""

    def get_container_client(self, container: str) -> CosmosContainer: ...

    def read(self, **kwargs: Any) -> Awaitable[dict[str, Any]]: ...


@dataclass(frozen=True)
class ContainerSpec:
    """One Cosmos container: its partition key and the paths it indexes (everything else is excluded)."""

    name: str
    partition_key: str
    indexed_paths: tuple[str, ...] = ()
    default_ttl_s: int | None = None
    description: str = ""

    def indexing_policy(self) -> dict[str, Any]:
        return {
            "indexingMode": "consistent",
            "automatic": True,
            "includedPaths": [{"path": path} for path in self.indexed_paths],
            "excludedPaths": [{"path": "/*"}, {"path": '/"_etag"/?'}],
        }


AUDIT_RETENTION_S = 365 * 86400

# Live-state containers by role; the names carry a version because the partition key changed (data-model.md).
DEVICES, SPACES, VISITS, BEACONS = "devices-v2", "spaces-v2", "visits-v2", "beacons-v2"
# Integration events (docs/events.md): subscriptions, each event's delivery to each, the event log for replays.
SUBSCRIPTIONS, DELIVERIES, EVENT_LOG = "subscriptions", "deliveries", "events"
LEASES = "leases"  # the change feed trigger's leases (functions/events.py)
EVENT_RETENTION_S = 7 * 86400

# The containers the app needs. Bicep (infra/bicep) declares the same set; a test holds the two together.
# Every container excludes all paths from the index except the ones a query filters or sorts on: writes cost
# ~5.5 RU instead of ~19 RU for a 1 KB document (docs/data-model.md).
COSMOS_CONTAINERS: tuple[ContainerSpec, ...] = (
    ContainerSpec("tenants", "/tenantId", ("/tenantId/?",), description="tenants and their settings"),
    ContainerSpec("apikeys", "/id", ("/tenantId/?",),
                  description="API keys by SHA-256 of the key (id = partition key: one 1 RU point read a lookup)"),
    ContainerSpec("buildings", "/tenantId", ("/tenantId/?",), description="site models, versioned by ETag"),
    # Live state: partitioned by the synthetic key `tenantId|buildingId` (docs/data-model.md: why not hierarchical
    # keys, and the migration from the `/buildingId` containers of before, which Cosmos cannot re-key in place).
    ContainerSpec("devices-v2", "/buildingKey", ("/buildingKey/?", "/tenantId/?", "/lastSeen/?", "/spaceId/?",
                                                 "/leavingSpaceId/?", "/userId/?"),
                  description="each phone's position, floor, space and filter state"),
    ContainerSpec("spaces-v2", "/buildingKey", ("/buildingKey/?", "/tenantId/?", "/status/?", "/kind/?",
                                                "/headcountDueAt/?", "/spaceId/?", "/start/?", "/end/?", "/checkOpen/?",
                                                "/releaseState/?"),
                  description="each space's live state: status, headcount, since; its bookings; the outbox of its "
                              "events"),
    ContainerSpec("visits-v2", "/buildingKey", ("/buildingKey/?", "/tenantId/?", "/end/?", "/start/?"),
                  description="closed visits (device, space, start, end) for the analytics rollups"),
    ContainerSpec("beacons-v2", "/buildingKey", ("/buildingKey/?", "/tenantId/?", "/lastHeard/?", "/kind/?",
                                                 "/silenceReported/?"),
                  description="beacon fleet health from the SDK's telemetry; its alerts and their events' outbox"),
    ContainerSpec("subscriptions", "/tenantId", ("/tenantId/?",),
                  description="event subscriptions: webhook, Event Hub or Event Grid; types, building, secrets"),
    ContainerSpec("deliveries", "/subscriptionKey", ("/subscriptionKey/?", "/status/?", "/nextAttemptAt/?",
                                                    "/subject/?"), default_ttl_s=EVENT_RETENTION_S,
                  description="each event for each subscription with its attempts (id: the event id); a week"),
    ContainerSpec("events", "/buildingKey", ("/buildingKey/?", "/tenantId/?", "/time/?"),
                  default_ttl_s=EVENT_RETENTION_S, description="every event handed on, for replays; a week"),
    ContainerSpec("leases", "/id", description="change feed leases of the event relay (Functions Cosmos DB trigger)"),
    ContainerSpec("audit", "/tenantId", ("/tenantId/?", "/at/?"), default_ttl_s=AUDIT_RETENTION_S,
                  description="people-finder lookups, for the tenant's admins; kept a year"),
)


@dataclass(frozen=True)
class CosmosConnection:
    endpoint: str
    key: str | None = None
    local: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def parse_cosmos_connection(settings: Settings) -> CosmosConnection:
    """Where and how to connect: a connection string locally, the endpoint + managed identity in Azure."""
    if settings.cosmos_connection_string:
        parts = dict(
            part.split("=", 1) for part in settings.cosmos_connection_string.strip().split(";") if "=" in part
        )
        endpoint, key = parts.get("AccountEndpoint"), parts.get("AccountKey")
        if not endpoint or not key:
            raise ValueError("COSMOS must look like AccountEndpoint=https://...;AccountKey=...;")
    else:
        endpoint, key = settings.cosmos_endpoint, None
        if not endpoint:  # Settings checks one of the two is set
            raise ValueError(f"{COSMOS_PREFIX}__accountEndpoint (or {COSMOS_PREFIX}) is not set")
    local = _is_loopback(endpoint)
    # The local emulators serve a self-signed, expired certificate and know no regions: trust them only on loopback.
    options = {"connection_verify": False, "enable_endpoint_discovery": False} if local else {}
    return CosmosConnection(endpoint=endpoint, key=key, local=local, options=options)


def create_cosmos_client(settings: Settings, credential: Any | None = None) -> CosmosClient:
    connection = parse_cosmos_connection(settings)
    if connection.key is not None:
        return CosmosClient(connection.endpoint, credential=connection.key, **connection.options)
    if credential is None:
        raise ValueError("a credential is needed to connect to Cosmos DB by endpoint")
    return CosmosClient(connection.endpoint, credential=credential, **connection.options)


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def ensure_cosmos_schema(client: CosmosClient, database_name: str,
                               containers: tuple[ContainerSpec, ...] = COSMOS_CONTAINERS) -> DatabaseProxy:
    """Create the database and containers when missing; leaves existing ones (and their data) as they are."""
    database = await client.create_database_if_not_exists(database_name)
    for spec in containers:
        kwargs: dict[str, Any] = {"indexing_policy": spec.indexing_policy()}
        if spec.default_ttl_s is not None:
            kwargs["default_ttl"] = spec.default_ttl_s
        await database.create_container_if_not_exists(spec.name, partition_key=PartitionKey(spec.partition_key), **kwargs)
    logger.info("cosmos schema ready: database %s, %d containers", database_name, len(containers))
    return database


def unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable("cosmos", type(exc).__name__)


async def query_all(container: CosmosContainer, query: str, parameters: dict[str, Any],
                    partition: str | None = None) -> list[dict[str, Any]]:
    """Every item the query finds (in one partition when `partition` is given); DependencyUnavailable when Cosmos
    cannot be reached."""
    params = [{"name": k, "value": v} for k, v in parameters.items()]
    try:
        if partition is None:
            items = container.query_items(query, parameters=params)
        else:
            items = container.query_items(query, parameters=params, partition_key=partition)
        return [item async for item in items]
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise unavailable(exc) from exc


class CosmosSiteModelStore:
    """Site models: a pointer document in the `buildings` container (id = buildingId, partition key = tenantId),
    whose `_etag` is the building's version, and the model itself as gzip-compressed JSON in Blob storage, named by
    its SHA-256 (shared/adapters/site_documents.py; docs/data-model.md, "Site models"). A document written by older
    code still holds the model inline (`site`) and reads as before; the next save moves it to Blob storage.

    Without `blobs` (a benchmark or a test on Cosmos alone) models are kept inline, as before, up to
    INLINE_LIMIT_BYTES of JSON; larger ones are refused (SiteTooLarge)."""

    _UNCONDITIONAL_ATTEMPTS = 5

    def __init__(self, database: ContainerSource, container_name: str = "buildings", *,
                 blobs: BlobStore | None = None, blob_container: str = "sites") -> None:
        self._database = database
        self._container = database.get_container_client(container_name)
        self._blobs = blobs
        self._blob_container = blob_container

    async def _read(self, building: BuildingRef) -> dict[str, Any] | None:
        try:
            return await self._container.read_item(building.building_id, partition_key=building.tenant_id)
        except CosmosResourceNotFoundError:
            return None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def version(self, building: BuildingRef) -> str | None:
        item = await self._read(building)
        return None if item is None else str(item["_etag"])

    async def get(self, building: BuildingRef) -> VersionedSite | None:
        item = await self._read(building)
        if item is None:
            return None
        etag: str = item["_etag"]
        if site_documents.is_inline(item):
            data = item[site_documents.INLINE_SITE]
            if not isinstance(data, dict):
                raise TypeError(f"building document '{building.building_id}' holds no site model")
            large = len(data.get("spaces") or ()) + len((data.get("navigation") or {}).get("nodes") or ()) > 500
            site = await asyncio.to_thread(SiteModel.model_validate, data) if large else SiteModel.model_validate(data)
            return VersionedSite(site, etag)
        name, version = site_documents.pointed_blob(item)
        if self._blobs is None:
            raise ValueError(f"the model of building '{building.building_id}' is in Blob storage; this store has none")
        blob = await self._blobs.get(self._blob_container, name)
        if blob is None:
            raise KeyError(f"site blob {name} of building '{building.building_id}' is missing")
        raw_bytes = item.get(site_documents.RAW_BYTES)
        if isinstance(raw_bytes, int) and raw_bytes <= site_documents.THREAD_THRESHOLD_BYTES:
            site = site_documents.decode_site(blob, version)
        else:  # decompressing and validating a large model takes a while: not on the event loop
            site = await asyncio.to_thread(site_documents.decode_site, blob, version)
        return VersionedSite(site, etag)

    async def put(self, building: BuildingRef, site: SiteModel, if_match: str | None = None) -> str:
        if site.building_id != building.building_id:
            raise ValueError(f"site {site.building_id} saved as building {building.building_id}")
        if self._blobs is None:
            document = await asyncio.to_thread(site_documents.inline_document, building, site)
            return await self._write(building, document, if_match)
        encoded = await asyncio.to_thread(site_documents.encode_site, site)
        name = encoded.blob_name(building)
        # The blob first: content-addressed, so writing it again is harmless, and a pointer write that fails after
        # it leaves an orphan blob, never a pointer to nothing.
        await self._blobs.put(self._blob_container, name, encoded.compressed, site_documents.BLOB_CONTENT_TYPE)
        for _attempt in range(self._UNCONDITIONAL_ATTEMPTS):
            current = await self._read(building)
            if if_match is not None and (current is None or current["_etag"] != if_match):
                raise self._stale(building, if_match)
            kept = site_documents.current_blob(current)
            if kept == name:  # the same model again: its predecessor stays the one kept
                kept = site_documents.previous_blob(current)
            document = site_documents.pointer_document(building, site, encoded, kept)
            try:
                etag = await self._write(building, document, current["_etag"] if current else None,
                                         create=current is None)
            except PreconditionFailed:
                if if_match is not None:
                    raise
                continue  # an unconditional save lost a race: last writer wins, so go again over the newer version
            await self._drop_superseded(site_documents.previous_blob(current), keep={name, kept})
            return etag
        # Still racing after several rounds: write regardless. The version this replaces keeps its blob (an orphan,
        # never a dangling pointer).
        return await self._write(building, site_documents.pointer_document(building, site, encoded, None), None)

    async def _write(self, building: BuildingRef, document: dict[str, Any], if_match: str | None, *,
                     create: bool = False) -> str:
        """Upsert the document; with `if_match` replace only that version; with `create` only create it."""
        try:
            if create:
                result = await self._container.create_item(document)
            elif if_match is None:
                result = await self._container.upsert_item(document)
            else:
                from azure.core import MatchConditions

                result = await self._container.replace_item(
                    building.building_id, document, etag=if_match, match_condition=MatchConditions.IfNotModified
                )
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError, CosmosResourceExistsError):
            raise self._stale(building, if_match) from None
        except CosmosHttpResponseError as exc:
            if exc.status_code in (409, 412):
                raise self._stale(building, if_match) from None
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        etag: str = result["_etag"]
        return etag

    @staticmethod
    def _stale(building: BuildingRef, if_match: str | None) -> PreconditionFailed:
        return PreconditionFailed(f"building '{building.building_id}' is not at version {if_match}")

    async def _drop_superseded(self, name: str | None, keep: set[str | None]) -> None:
        """Best effort: delete the blob of the version before the previous one (the previous one stays for readers
        that hold its pointer). A failure only leaves a blob behind."""
        if name is None or name in keep or self._blobs is None:
            return
        try:
            await self._blobs.delete(self._blob_container, name)
        except (DependencyUnavailable, AzureError) as exc:  # never fail a save that has happened
            logger.warning("superseded site blob %s not deleted: %s", name, type(exc).__name__)

    async def list_buildings(self, tenant_id: str) -> list[BuildingRef]:
        query = "SELECT c.id FROM c WHERE c.tenantId = @tenantId"
        try:
            items = self._container.query_items(query, parameters=[{"name": "@tenantId", "value": tenant_id}],
                                                partition_key=tenant_id)
            return sorted([BuildingRef(tenant_id, item["id"]) async for item in items])
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def list_all(self) -> list[BuildingRef]:
        # Cross-partition on purpose (the analytics timers, once an hour); sorted here: no ORDER BY needed.
        try:
            items = self._container.query_items("SELECT c.tenantId, c.id FROM c")
            return sorted([BuildingRef(item["tenantId"], item["id"]) async for item in items])
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def check(self) -> None:
        try:
            await self._database.read()
        except AzureError as exc:
            raise unavailable(exc) from exc


class CosmosApiKeyStore:
    """API keys in the `apikeys` container: id = partition key = the key's hash."""

    def __init__(self, database: ContainerSource, container_name: str = "apikeys") -> None:
        self._container = database.get_container_client(container_name)

    async def get(self, key_hash: str) -> ApiKeyRecord | None:
        try:
            item = await self._container.read_item(key_hash, partition_key=key_hash)
        except CosmosResourceNotFoundError:
            return None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return _key_from_item(item)

    async def put(self, record: ApiKeyRecord) -> None:
        await self._container.upsert_item({
            "id": record.key_hash, "keyId": record.key_id, "tenantId": record.tenant_id,
            "scopes": sorted(s.value for s in record.scopes), "createdAt": record.created_at.isoformat(),
            "revoked": record.revoked, "name": record.name,
        })

    async def list_for_tenant(self, tenant_id: str) -> list[ApiKeyRecord]:
        items = self._container.query_items(
            "SELECT * FROM c WHERE c.tenantId = @tenantId", parameters=[{"name": "@tenantId", "value": tenant_id}]
        )
        records = [_key_from_item(item) async for item in items]
        return sorted(records, key=lambda r: r.created_at)


def _key_from_item(item: dict[str, Any]) -> ApiKeyRecord:
    from datetime import datetime

    return ApiKeyRecord(
        key_hash=item["id"], key_id=item["keyId"], tenant_id=item["tenantId"],
        scopes=frozenset(Scope(s) for s in item["scopes"]), created_at=datetime.fromisoformat(item["createdAt"]),
        revoked=bool(item.get("revoked")), name=item.get("name", ""),
    )
