"""Event subscriptions, their deliveries and the event log in Cosmos DB (docs/events.md, docs/data-model.md)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import CosmosHttpResponseError, CosmosResourceExistsError, CosmosResourceNotFoundError

from shared.adapters import documents
from shared.adapters.cosmos import (
    DELIVERIES,
    EVENT_LOG,
    SUBSCRIPTIONS,
    ContainerSource,
    CosmosContainer,
    query_all,
    unavailable,
)
from shared.domain.events import CloudEvent
from shared.domain.ports import AlreadyExists, PreconditionFailed
from shared.domain.subscriptions import Delivery, DeliveryStatus, Subscription


async def _read(container: CosmosContainer, item_id: str, partition: str) -> dict[str, Any] | None:
    try:
        return await container.read_item(item_id, partition_key=partition)
    except CosmosResourceNotFoundError:
        return None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise unavailable(exc) from exc


async def _replace(container: CosmosContainer, doc: dict[str, Any], etag: str | None, what: str) -> dict[str, Any]:
    try:
        return await container.replace_item(doc["id"], doc, etag=etag, match_condition=MatchConditions.IfNotModified)
    except CosmosHttpResponseError as exc:
        if exc.status_code in (404, 412):
            raise PreconditionFailed(f"{what} changed since it was read") from None
        raise
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise unavailable(exc) from exc


class CosmosSubscriptionStore:
    def __init__(self, database: ContainerSource) -> None:
        self._container = database.get_container_client(SUBSCRIPTIONS)

    async def create(self, subscription: Subscription) -> Subscription:
        try:
            saved = await self._container.create_item(documents.subscription_to_doc(subscription))
        except CosmosResourceExistsError:
            raise AlreadyExists(f"subscription '{subscription.subscription_id}' exists") from None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return documents.subscription_from_doc(saved)

    async def get(self, tenant_id: str, subscription_id: str) -> Subscription | None:
        doc = await _read(self._container, subscription_id, tenant_id)
        return documents.subscription_from_doc(doc) if doc else None

    async def list_for_tenant(self, tenant_id: str) -> list[Subscription]:
        docs = await query_all(self._container, "SELECT * FROM c WHERE c.tenantId = @t", {"@t": tenant_id}, tenant_id)
        return sorted((documents.subscription_from_doc(d) for d in docs), key=lambda s: (s.created_at, s.subscription_id))

    async def list_all(self) -> list[Subscription]:
        docs = await query_all(self._container, "SELECT * FROM c", {})
        return sorted((documents.subscription_from_doc(d) for d in docs),
                      key=lambda s: (s.tenant_id, s.created_at, s.subscription_id))

    async def save(self, subscription: Subscription) -> Subscription:
        doc = await _replace(self._container, documents.subscription_to_doc(subscription), subscription.etag,
                             f"subscription '{subscription.subscription_id}'")
        return documents.subscription_from_doc(doc)

    async def delete(self, tenant_id: str, subscription_id: str) -> bool:
        try:
            await self._container.delete_item(subscription_id, partition_key=tenant_id)
        except CosmosResourceNotFoundError:
            return False
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return True


class CosmosDeliveryStore:
    def __init__(self, database: ContainerSource) -> None:
        self._container = database.get_container_client(DELIVERIES)

    async def add(self, delivery: Delivery) -> bool:
        try:
            await self._container.create_item(documents.delivery_to_doc(delivery))
        except CosmosResourceExistsError:
            return False
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return True

    async def put(self, delivery: Delivery) -> Delivery:
        try:
            return documents.delivery_from_doc(await self._container.upsert_item(documents.delivery_to_doc(delivery)))
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def save(self, delivery: Delivery) -> Delivery:
        doc = await _replace(self._container, documents.delivery_to_doc(delivery), delivery.etag,
                             f"delivery of event {delivery.event_id}")
        return documents.delivery_from_doc(doc)

    async def get(self, tenant_id: str, subscription_id: str, event_id: str) -> Delivery | None:
        doc = await _read(self._container, event_id, f"{tenant_id}|{subscription_id}")
        return documents.delivery_from_doc(doc) if doc else None

    async def due(self, now: datetime, limit: int = 500) -> list[Delivery]:
        # Cross-partition on purpose: one worker serves every subscription; status and nextAttemptAt are indexed.
        docs = await query_all(self._container, "SELECT * FROM c WHERE c.status = 'pending' AND c.nextAttemptAt <= @now",
                            {"@now": documents.iso(now)})
        docs.sort(key=lambda d: d["nextAttemptAt"])
        return [documents.delivery_from_doc(d) for d in docs[:limit]]

    async def open_for_subscription(self, tenant_id: str, subscription_id: str) -> list[Delivery]:
        key = f"{tenant_id}|{subscription_id}"
        docs = await query_all(self._container, "SELECT * FROM c WHERE c.subscriptionKey = @k "
                                             "AND (c.status = 'pending' OR c.status = 'held')", {"@k": key}, key)
        docs.sort(key=lambda d: (d["subject"], d["sequence"]))
        return [documents.delivery_from_doc(d) for d in docs]

    async def with_status(self, tenant_id: str, subscription_id: str, status: DeliveryStatus,
                          limit: int = 1000) -> list[Delivery]:
        key = f"{tenant_id}|{subscription_id}"
        docs = await query_all(self._container, "SELECT * FROM c WHERE c.subscriptionKey = @k AND c.status = @status",
                            {"@k": key, "@status": status.value}, key)
        docs.sort(key=lambda d: (d["subject"], d["sequence"]))
        return [documents.delivery_from_doc(d) for d in docs[:limit]]

    async def recent(self, tenant_id: str, subscription_id: str, limit: int = 100) -> list[Delivery]:
        key = f"{tenant_id}|{subscription_id}"
        docs = await query_all(self._container, "SELECT * FROM c WHERE c.subscriptionKey = @k", {"@k": key}, key)
        docs.sort(key=lambda d: (d["eventTime"], d["id"]), reverse=True)
        return [documents.delivery_from_doc(d) for d in docs[:limit]]

    async def delete_all(self, tenant_id: str, subscription_id: str) -> int:
        key = f"{tenant_id}|{subscription_id}"
        docs = await query_all(self._container, "SELECT c.id FROM c WHERE c.subscriptionKey = @k", {"@k": key}, key)
        for doc in docs:
            try:
                await self._container.delete_item(doc["id"], partition_key=key)
            except CosmosResourceNotFoundError:
                continue
            except (ServiceRequestError, ServiceResponseError) as exc:
                raise unavailable(exc) from exc
        return len(docs)


class CosmosEventLog:
    def __init__(self, database: ContainerSource) -> None:
        self._container = database.get_container_client(EVENT_LOG)

    async def append(self, event: CloudEvent) -> None:
        try:
            await self._container.upsert_item(documents.event_log_to_doc(event))
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def since(self, tenant_id: str, building_id: str | None, start: datetime,
                    limit: int = 10_000) -> list[CloudEvent]:
        parameters: dict[str, Any] = {"@t": tenant_id, "@from": documents.iso(start)}
        if building_id is None:  # across the tenant's buildings: tenantId and time are indexed
            docs = await query_all(self._container, "SELECT * FROM c WHERE c.tenantId = @t AND c.time >= @from",
                                parameters)
        else:
            key = f"{tenant_id}|{building_id}"
            docs = await query_all(self._container, f"SELECT * FROM c WHERE c.{documents.PARTITION_KEY_FIELD} = @k "
                                                 "AND c.tenantId = @t AND c.time >= @from",
                                {**parameters, "@k": key}, key)
        docs.sort(key=lambda d: (d["time"], d["id"]))
        return [documents.outbox_from_doc(d) for d in docs[:limit]]
