"""Live state in Cosmos DB: devices, spaces, visits and beacons, each container partitioned by `tenantId|buildingId`."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError, CosmosResourceNotFoundError

from shared.adapters import documents
from shared.adapters.cosmos import (
    BEACONS,
    DEVICES,
    SPACES,
    VISITS,
    ContainerSource,
    CosmosContainer,
    query_all,
    unavailable,
)
from shared.domain.events import BeaconAlerts, CloudEvent
from shared.domain.floor_summary import FloorSummary, SpaceSnapshot
from shared.domain.ports import PreconditionFailed
from shared.domain.presence import BeaconHealth, DeviceState, SpaceState, Visit
from shared.domain.tenancy import BuildingRef

logger = logging.getLogger(__name__)

_CONFLICTS = {409, 412, 404}  # exists already / changed since read / deleted since read


def _guarded(doc: dict[str, Any], etag: str | None) -> tuple[Any, ...]:
    """A batch operation writing `doc` over that etag, or creating it when there is none."""
    return ("create", (doc,)) if etag is None else ("replace", (doc["id"], doc), {"if_match_etag": etag})


# State documents have no `kind`; the outbox and alert documents beside them (same partition) have one.
_STATE_ONLY = f"AND NOT IS_DEFINED(c.{documents.KIND_FIELD})"


class CosmosLiveStateStore:
    """Also the EventOutbox: events are written into the partition of their transition, in the same transactional
    batch (an outbox document per event), and read from there until they are handed on."""

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

    def _meter_query(self, name: str, docs: list[dict[str, Any]]) -> None:
        """One query: metered as one read of everything it returned (documents.estimated_query_ru)."""
        self.meter.read(name, sum(len(json.dumps(d, separators=(",", ":"))) for d in docs), len(docs))

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

    async def _batch(self, container: CosmosContainer, name: str, partition: str,
                     operations: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """One transactional batch in one partition: every operation or none."""
        try:
            results: list[dict[str, Any]] = await container.execute_item_batch(  # type: ignore[attr-defined]
                batch_operations=operations, partition_key=partition)
        except CosmosBatchOperationError as exc:
            if exc.status_code in _CONFLICTS:
                raise PreconditionFailed(f"{name} batch in {partition}: operation {exc.error_index} answered "
                                         f"{exc.status_code}") from None
            raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        for operation in operations:
            self.meter.write(name, len(json.dumps(operation[1][-1], separators=(",", ":"), default=str)))
        return results

    @staticmethod
    def _outbox_operations(partition: str, events: Sequence[CloudEvent]) -> list[tuple[Any, ...]]:
        for event in events:
            if event.building.key != partition:
                raise ValueError(f"event {event.id} is of another building than its transition")
        return [("create", (documents.outbox_to_doc(event),)) for event in events]

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
        docs = await query_all(self._devices, "SELECT * FROM c WHERE c.userId = @u AND c.tenantId = @t",
                                 {"@u": user_id, "@t": tenant_id})
        return [documents.device_from_doc(d) for d in docs]

    async def get_space(self, building: BuildingRef, space_id: str) -> SpaceState | None:
        doc = await self._read(self._spaces, "spaces", space_id, building.key)
        return documents.space_from_doc(doc) if doc else None

    async def save_space(self, space: SpaceState, events: Sequence[CloudEvent] = ()) -> SpaceState:
        doc = documents.space_to_doc(space)
        if not events:
            return documents.space_from_doc(await self._write(self._spaces, "spaces", doc, space.etag))
        write: tuple[Any, ...] = (("create", (doc,)) if space.etag is None
                                  else ("replace", (doc["id"], doc), {"if_match_etag": space.etag}))
        results = await self._batch(self._spaces, "spaces", space.building.key,
                                    [write, *self._outbox_operations(space.building.key, events)])
        return documents.space_from_doc(results[0]["resourceBody"])

    async def list_spaces(self, building: BuildingRef) -> list[SpaceState]:
        docs = await self._query_building(self._spaces, building, _STATE_ONLY)
        self._meter_query("spaces", docs)
        return sorted((documents.space_from_doc(d) for d in docs), key=lambda s: s.space_id)

    async def list_spaces_due(self, now: datetime, limit: int = 1000) -> list[SpaceState]:
        # Cross-partition on purpose, like the presence sweep; headcountDueAt is indexed and rarely set.
        docs = await query_all(self._spaces, "SELECT * FROM c WHERE IS_STRING(c.headcountDueAt) "
                                               "AND c.headcountDueAt <= @now", {"@now": documents.iso(now)})
        docs.sort(key=lambda d: d["headcountDueAt"])
        return [documents.space_from_doc(d) for d in docs[:limit]]

    async def get_snapshots(self, building: BuildingRef, space_ids: Sequence[str]) -> dict[str, SpaceSnapshot]:
        if not space_ids:
            return {}
        docs = await query_all(
            self._spaces, f"SELECT {documents.SNAPSHOT_PROJECTION} FROM c WHERE c.{documents.PARTITION_KEY_FIELD} = "
            f"@key AND c.tenantId = @tenant AND ARRAY_CONTAINS(@ids, c.id) {_STATE_ONLY}",
            {"@key": building.key, "@tenant": building.tenant_id, "@ids": list(dict.fromkeys(space_ids))},
            partition=building.key)
        self._meter_query("spaces", docs)
        return dict(documents.snapshot_from_doc(d) for d in docs)

    async def get_floor_summary(self, building: BuildingRef, floor_id: str) -> FloorSummary | None:
        counts, sinces = await asyncio.gather(
            self._read(self._spaces, "spaces", documents.floor_summary_id(floor_id), building.key),
            self._read(self._spaces, "spaces", documents.floor_sinces_id(floor_id), building.key))
        return documents.floor_summary_from_docs(counts, sinces) if counts else None

    async def list_floor_summaries(self, building: BuildingRef, *, sinces: bool = False) -> list[FloorSummary]:
        kinds = {"@counts": documents.FLOOR_SUMMARY_KIND, "@sinces": documents.FLOOR_SINCES_KIND}
        condition = f"AND (c.{documents.KIND_FIELD} = @counts OR c.{documents.KIND_FIELD} = @sinces)" if sinces \
            else f"AND c.{documents.KIND_FIELD} = @counts"
        docs = await self._query_building(self._spaces, building, condition,
                                          kinds if sinces else {"@counts": kinds["@counts"]})
        self._meter_query("spaces", docs)
        found = {d["floor"]: d for d in docs if d.get(documents.KIND_FIELD) == documents.FLOOR_SINCES_KIND}
        counts = sorted((d for d in docs if d.get(documents.KIND_FIELD) == documents.FLOOR_SUMMARY_KIND),
                        key=lambda d: str(d["floor"]))
        return [documents.floor_summary_from_docs(d, found.get(d["floor"])) for d in counts]

    async def save_floor(self, summary: FloorSummary,
                         spaces: Sequence[tuple[SpaceState, Sequence[CloudEvent]]] = ()) -> FloorSummary:
        partition = summary.building.key
        operations = [_guarded(documents.floor_summary_to_doc(summary), summary.etag)]
        if not summary.sinces_saved:
            operations.append(("upsert", (documents.floor_sinces_to_doc(summary),)))
        for space, events in spaces:
            if space.building.key != partition:
                raise ValueError(f"space {space.space_id} is of another building than the floor summary")
            operations += [_guarded(documents.space_to_doc(space), space.etag),
                           *self._outbox_operations(partition, events)]
        results = await self._batch(self._spaces, "spaces", partition, operations)
        return replace(summary, etag=results[0]["resourceBody"]["_etag"], sinces_saved=True)

    async def save_visit(self, visit: Visit) -> None:
        await self._write(self._visits, "visits", documents.visit_to_doc(visit), None, upsert=True)

    async def list_visits(self, building: BuildingRef, ended_from: datetime, ended_before: datetime) -> list[Visit]:
        docs = await self._query_building(self._visits, building, "AND c['end'] >= @from AND c['end'] < @to",
                                          {"@from": documents.iso(ended_from), "@to": documents.iso(ended_before)})
        return sorted((documents.visit_from_doc(d) for d in docs), key=lambda v: (v.end, v.id))

    async def list_silent_devices(self, seen_before: datetime, limit: int = 1000) -> list[DeviceState]:
        # Cross-partition on purpose: one sweep covers every building; lastSeen and spaceId are indexed.
        docs = await query_all(
            self._devices,
            "SELECT * FROM c WHERE c.lastSeen < @cutoff AND (IS_STRING(c.spaceId) OR IS_STRING(c.leavingSpaceId))",
            {"@cutoff": documents.iso(seen_before)},
        )
        docs.sort(key=lambda d: d["lastSeen"])
        return [documents.device_from_doc(d) for d in docs[:limit]]

    async def save_beacon_health(self, health: BeaconHealth) -> None:
        await self._write(self._beacons, "beacons", documents.beacon_to_doc(health), None, upsert=True)

    async def list_beacon_health(self, building: BuildingRef) -> list[BeaconHealth]:
        docs = await self._query_building(self._beacons, building, _STATE_ONLY)
        return sorted((documents.beacon_from_doc(d) for d in docs), key=lambda b: b.beacon_id)

    async def get_beacon_alerts(self, building: BuildingRef, beacon_id: str) -> BeaconAlerts | None:
        doc = await self._read(self._beacons, "beacons", documents.alerts_id(beacon_id), building.key)
        return documents.alerts_from_doc(doc) if doc else None

    async def save_beacon_alerts(self, alerts: BeaconAlerts, events: Sequence[CloudEvent] = (), *,
                                 silence_of: BeaconHealth | None = None) -> BeaconAlerts:
        partition = alerts.building.key
        doc = documents.alerts_to_doc(alerts)
        operations: list[tuple[Any, ...]] = [("create", (doc,)) if alerts.etag is None
                                             else ("replace", (doc["id"], doc), {"if_match_etag": alerts.etag})]
        if silence_of is not None:
            # Only that version of the health document: a beacon heard meanwhile fails the batch (412).
            heard = documents.iso(silence_of.last_heard)
            operations.append(("patch", (silence_of.beacon_id, [
                {"op": "set", "path": f"/{documents.SILENCE_REPORTED}", "value": True}]),
                {"filter_predicate": f"FROM c WHERE c.lastHeard = '{heard}'"}))
        operations += self._outbox_operations(partition, events)
        results = await self._batch(self._beacons, "beacons", partition, operations)
        return documents.alerts_from_doc(results[0]["resourceBody"])

    async def list_silent_beacons(self, heard_before: datetime, limit: int = 1000) -> list[BeaconHealth]:
        docs = await query_all(
            self._beacons,
            f"SELECT * FROM c WHERE c.lastHeard < @cutoff AND NOT IS_DEFINED(c.{documents.SILENCE_REPORTED}) "
            f"{_STATE_ONLY}", {"@cutoff": documents.iso(heard_before)})
        docs.sort(key=lambda d: d["lastHeard"])
        return [documents.beacon_from_doc(d) for d in docs[:limit]]

    # EventOutbox

    async def pending(self, limit: int = 500) -> list[CloudEvent]:
        docs: list[dict[str, Any]] = []
        for container in (self._spaces, self._beacons):
            docs += await query_all(container, f"SELECT * FROM c WHERE c.{documents.KIND_FIELD} = @kind",
                                      {"@kind": documents.OUTBOX_KIND})
        docs.sort(key=lambda d: (d[documents.PARTITION_KEY_FIELD], d["subject"], d["sequence"]))
        return [documents.outbox_from_doc(d) for d in docs[:limit]]

    async def remove(self, event: CloudEvent) -> None:
        container = self._spaces if event.subject.startswith("spaces/") else self._beacons
        try:
            await container.delete_item(documents.outbox_id(event.id), partition_key=event.building.key)
        except CosmosResourceNotFoundError:
            return
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc

    async def _query_building(self, container: CosmosContainer, building: BuildingRef, condition: str = "",
                              parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One building's documents: a single-partition query that names the partition key and the tenant in
        WHERE too (the local Cosmos server needs the key there; the tenant filter is a second seal)."""
        query = f"SELECT * FROM c WHERE c.{documents.PARTITION_KEY_FIELD} = @key AND c.tenantId = @tenant {condition}"
        return await query_all(container, query.strip(),
                                 {"@key": building.key, "@tenant": building.tenant_id, **(parameters or {})},
                                 partition=building.key)
