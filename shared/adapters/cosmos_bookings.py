"""Bookings in Cosmos DB: documents beside the spaces in their building's partition of `spaces-v2`
(docs/bookings.md, docs/data-model.md), so a no-show and its event's outbox document are one transactional batch."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError, CosmosResourceNotFoundError

from shared.adapters import documents
from shared.adapters.cosmos import SPACES, ContainerSource, unavailable
from shared.domain.bookings import Booking, BookingHold, BookingSettings, CalendarSource
from shared.domain.events import CloudEvent
from shared.domain.ports import PreconditionFailed
from shared.domain.tenancy import BuildingRef

_CONFLICTS = {409, 412, 404}  # exists already / changed since read / deleted since read


class CosmosBookingStore:
    def __init__(self, database: ContainerSource) -> None:
        self._spaces = database.get_container_client(SPACES)

    async def get(self, building: BuildingRef, space_id: str, booking_id: str) -> Booking | None:
        doc = await self._read(documents.booking_id(space_id, booking_id), building.key)
        return documents.booking_from_doc(doc) if doc else None

    async def save(self, booking: Booking, events: Sequence[CloudEvent] = ()) -> Booking:
        doc = documents.booking_to_doc(booking)
        partition = booking.building.key
        try:
            if not events:
                if booking.etag is None:
                    saved = await self._spaces.create_item(doc)
                else:
                    saved = await self._spaces.replace_item(doc["id"], doc, etag=booking.etag,
                                                            match_condition=MatchConditions.IfNotModified)
                return documents.booking_from_doc(saved)
            for event in events:
                if event.building.key != partition:
                    raise ValueError(f"event {event.id} is of another building than its booking")
            write: tuple[Any, ...] = (("create", (doc,)) if booking.etag is None
                                      else ("replace", (doc["id"], doc), {"if_match_etag": booking.etag}))
            operations = [write, *(("create", (documents.outbox_to_doc(e),)) for e in events)]
            results = await self._spaces.execute_item_batch(  # type: ignore[attr-defined]
                batch_operations=operations, partition_key=partition)
            return documents.booking_from_doc(results[0]["resourceBody"])
        except CosmosBatchOperationError as exc:
            if exc.status_code in _CONFLICTS:
                raise PreconditionFailed(f"booking {booking.booking_id}: operation {exc.error_index} answered "
                                         f"{exc.status_code}") from None
            raise
        except CosmosHttpResponseError as exc:
            if exc.status_code in _CONFLICTS:
                raise PreconditionFailed(f"booking {booking.booking_id}: {exc.status_code}") from None
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def delete(self, building: BuildingRef, space_id: str, booking_id: str) -> bool:
        try:
            await self._spaces.delete_item(documents.booking_id(space_id, booking_id), partition_key=building.key)
        except CosmosResourceNotFoundError:
            return False
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return True

    async def list_bookings(self, building: BuildingRef, start: datetime, end: datetime,
                            space_id: str | None = None) -> list[Booking]:
        query = (f"SELECT * FROM c WHERE c.{documents.PARTITION_KEY_FIELD} = @key AND c.tenantId = @tenant "
                 f"AND c.{documents.KIND_FIELD} = @kind AND c.start < @end AND c['end'] > @start")
        parameters: dict[str, Any] = {"@key": building.key, "@tenant": building.tenant_id,
                                      "@kind": documents.BOOKING_KIND, "@start": documents.iso(start),
                                      "@end": documents.iso(end)}
        if space_id is not None:
            query += " AND c.spaceId = @space"
            parameters["@space"] = space_id
        docs = await self._query(query, parameters, partition=building.key)
        docs.sort(key=lambda d: (d["start"], d["spaceId"], d["bookingId"]))
        return [documents.booking_from_doc(d) for d in docs]

    async def list_running(self, building: BuildingRef, at: datetime) -> list[BookingHold]:
        query = (f"SELECT {documents.BOOKING_HOLD_SELECT} FROM c WHERE c.{documents.PARTITION_KEY_FIELD} = @key "
                 f"AND c.tenantId = @tenant AND c.{documents.KIND_FIELD} = @kind AND c.start <= @at "
                 "AND c['end'] > @at")
        docs = await self._query(query, {"@key": building.key, "@tenant": building.tenant_id,
                                         "@kind": documents.BOOKING_KIND, "@at": documents.iso(at)},
                                 partition=building.key)
        docs.sort(key=lambda d: (d["start"], d["spaceId"], d["bookingId"]))
        return [documents.booking_hold_from_doc(d) for d in docs]

    async def list_checks_due(self, started_before: datetime, limit: int = 1000) -> list[Booking]:
        # Cross-partition on purpose, like the presence sweep: one timer serves every building; kind, checkOpen and
        # start are indexed, and few bookings are open at once.
        docs = await self._query(f"SELECT * FROM c WHERE c.{documents.KIND_FIELD} = @kind AND c.checkOpen = true "
                                 "AND c.start <= @cutoff",
                                 {"@kind": documents.BOOKING_KIND, "@cutoff": documents.iso(started_before)})
        docs.sort(key=lambda d: d["start"])
        return [documents.booking_from_doc(d) for d in docs[:limit]]

    async def list_releases_pending(self, limit: int = 1000) -> list[Booking]:
        docs = await self._query(f"SELECT * FROM c WHERE c.{documents.KIND_FIELD} = @kind "
                                 "AND c.releaseState = 'pending'", {"@kind": documents.BOOKING_KIND})
        docs.sort(key=lambda d: d["start"])
        return [documents.booking_from_doc(d) for d in docs[:limit]]

    async def get_settings(self, building: BuildingRef) -> BookingSettings:
        doc = await self._read(documents.BOOKING_SETTINGS_ID, building.key)
        return (documents.booking_settings_from_doc(doc) if doc
                else BookingSettings(building.tenant_id, building.building_id))

    async def put_settings(self, settings: BookingSettings) -> BookingSettings:
        try:
            saved = await self._spaces.upsert_item(documents.booking_settings_to_doc(settings))
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return documents.booking_settings_from_doc(saved)

    async def get_source(self, building: BuildingRef, space_id: str) -> CalendarSource | None:
        doc = await self._read(documents.calendar_id(space_id), building.key)
        return documents.calendar_from_doc(doc) if doc else None

    async def save_source(self, source: CalendarSource) -> CalendarSource:
        doc = documents.calendar_to_doc(source)
        try:
            if source.etag is None:
                saved = await self._spaces.create_item(doc)
            else:
                saved = await self._spaces.replace_item(doc["id"], doc, etag=source.etag,
                                                        match_condition=MatchConditions.IfNotModified)
        except CosmosHttpResponseError as exc:
            if exc.status_code in _CONFLICTS:
                raise PreconditionFailed(f"calendar of space {source.space_id}: {exc.status_code}") from None
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return documents.calendar_from_doc(saved)

    async def delete_source(self, building: BuildingRef, space_id: str) -> bool:
        try:
            await self._spaces.delete_item(documents.calendar_id(space_id), partition_key=building.key)
        except CosmosResourceNotFoundError:
            return False
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        return True

    async def list_sources(self, limit: int = 10_000) -> list[CalendarSource]:
        # Cross-partition on purpose: the sync and renewal timers serve every building; kind is indexed.
        docs = await self._query(f"SELECT * FROM c WHERE c.{documents.KIND_FIELD} = @kind",
                                 {"@kind": documents.CALENDAR_KIND})
        docs.sort(key=lambda d: (d[documents.PARTITION_KEY_FIELD], d["spaceId"]))
        return [documents.calendar_from_doc(d) for d in docs[:limit]]

    async def _read(self, item_id: str, partition: str) -> dict[str, Any] | None:
        try:
            return await self._spaces.read_item(item_id, partition_key=partition)
        except CosmosResourceNotFoundError:
            return None
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def _query(self, query: str, parameters: dict[str, Any], partition: str | None = None,
                     ) -> list[dict[str, Any]]:
        params = [{"name": k, "value": v} for k, v in parameters.items()]
        try:
            if partition is None:
                items = self._spaces.query_items(query, parameters=params)
            else:
                items = self._spaces.query_items(query, parameters=params, partition_key=partition)
            return [item async for item in items]
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
