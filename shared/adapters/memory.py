"""In-memory adapters: the fakes the unit tests and the devkit use, held to the same contract tests as the real ones."""
from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.adapters import documents
from shared.domain.bookings import Booking, BookingHold, BookingSettings, CalendarSource
from shared.domain.events import BeaconAlerts, CloudEvent
from shared.domain.floor_summary import FloorSummary, SpaceSnapshot
from shared.domain.identity import IdentityConfig
from shared.domain.people import AuditEntry, Sharing, SharingChange, Tenant
from shared.domain.ports import (
    FLOOR_BATCH_OPERATIONS,
    AlreadyExists,
    DependencyUnavailable,
    OutboundEvent,
    PreconditionFailed,
    VersionedSite,
)
from shared.domain.presence import BeaconHealth, DeviceState, SpaceState, Visit
from shared.domain.site import SiteModel
from shared.domain.subscriptions import Delivery, DeliveryStatus, Subscription
from shared.domain.teams import Team
from shared.domain.tenancy import ApiKeyRecord, BuildingRef

Document = dict[str, Any]  # a JSON document, as Cosmos stores it


class InMemorySiteModelStore:
    def __init__(self) -> None:
        self._items: dict[BuildingRef, VersionedSite] = {}
        self._lock = asyncio.Lock()

    async def get(self, building: BuildingRef) -> VersionedSite | None:
        return self._items.get(building)

    async def version(self, building: BuildingRef) -> str | None:
        current = self._items.get(building)
        return None if current is None else current.etag

    async def put(self, building: BuildingRef, site: SiteModel, if_match: str | None = None) -> str:
        if site.building_id != building.building_id:
            raise ValueError(f"site {site.building_id} saved as building {building.building_id}")
        async with self._lock:
            current = self._items.get(building)
            if if_match is not None and (current is None or current.etag != if_match):
                raise PreconditionFailed(f"building '{site.building_id}' is not at version {if_match}")
            etag = f'"{uuid.uuid4()}"'
            self._items[building] = VersionedSite(site, etag)
            return etag

    async def list_buildings(self, tenant_id: str) -> list[BuildingRef]:
        return sorted(ref for ref in self._items if ref.tenant_id == tenant_id)

    async def list_all(self) -> list[BuildingRef]:
        return sorted(self._items)

    async def check(self) -> None:
        return None


class InMemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, dict[str, bytes]] = defaultdict(dict)

    async def put(self, container: str, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._blobs[container][name] = bytes(data)

    async def get(self, container: str, name: str) -> bytes | None:
        return self._blobs.get(container, {}).get(name)

    async def list_names(self, container: str, prefix: str = "") -> list[str]:
        return sorted(name for name in self._blobs.get(container, {}) if name.startswith(prefix))

    async def delete(self, container: str, name: str) -> bool:
        return self._blobs.get(container, {}).pop(name, None) is not None

    async def check(self) -> None:
        return None


class InMemoryTeamDirectory:
    def __init__(self) -> None:
        self._teams: dict[tuple[str, str], Team] = {}

    async def put_team(self, team: Team) -> None:
        self._teams[(team.tenant_id, team.team_id)] = team

    async def get_team(self, tenant_id: str, team_id: str) -> Team | None:
        return self._teams.get((tenant_id, team_id))

    async def list_teams(self, tenant_id: str) -> list[Team]:
        return [team for (tenant, _), team in sorted(self._teams.items()) if tenant == tenant_id]

    async def delete_team(self, tenant_id: str, team_id: str) -> bool:
        return self._teams.pop((tenant_id, team_id), None) is not None


class RecordingEventPublisher:
    """Keeps what was published; `fail_with` makes the next publishes raise (to test 503 paths)."""

    def __init__(self) -> None:
        self.published: list[OutboundEvent] = []
        self.fail_with: Exception | None = None

    async def publish(self, events: Sequence[OutboundEvent]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.extend(events)

    async def check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def close(self) -> None:
        return None


class InMemoryApiKeyStore:
    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}

    async def get(self, key_hash: str) -> ApiKeyRecord | None:
        return self._keys.get(key_hash)

    async def put(self, record: ApiKeyRecord) -> None:
        self._keys[record.key_hash] = record

    async def list_for_tenant(self, tenant_id: str) -> list[ApiKeyRecord]:
        return sorted((r for r in self._keys.values() if r.tenant_id == tenant_id), key=lambda r: r.created_at)


class InMemoryLiveStateStore:
    """Keeps the same JSON documents as the Cosmos store, with etags, so both behave alike under the contract tests.

    `meter` counts reads and writes by container with their estimated RU (the pipeline benchmark's budget)."""

    def __init__(self) -> None:
        self._docs: dict[str, dict[tuple[str, str], Document]] = defaultdict(dict)
        self._summaries: dict[str, set[str]] = {}  # partition -> the floors with a summary
        self.meter = documents.StoreMeter()

    def _get(self, container: str, partition: str, item_id: str) -> Document | None:
        doc = self._docs[container].get((partition, item_id))
        if doc is None:
            self.meter.read(container, 0)
            return None
        # a copy through JSON, as Cosmos hands one out (and several times faster than deepcopy)
        text = json.dumps(doc, separators=(",", ":"))
        self.meter.read(container, len(text))
        return json.loads(text)  # type: ignore[no-any-return]

    def _meter_query(self, container: str, docs: list[Document]) -> None:
        """One query, metered as Cosmos's store meters it: one read of everything it returned."""
        self.meter.read(container, sum(len(json.dumps(d, separators=(",", ":"))) for d in docs), len(docs))

    def _save(self, container: str, partition: str, doc: Document, etag: str | None,
              upsert: bool = False) -> Document:
        key = (partition, doc["id"])
        current = self._docs[container].get(key)
        if not upsert:
            if etag is None and current is not None:
                raise PreconditionFailed(f"{container}/{doc['id']} already exists")
            if etag is not None and (current is None or current["_etag"] != etag):
                raise PreconditionFailed(f"{container}/{doc['id']} changed since it was read")
        text = json.dumps(doc, separators=(",", ":"))
        etag = f'"{uuid.uuid4()}"'
        self._docs[container][key] = {**json.loads(text), "_etag": etag}  # stored as JSON, as Cosmos would
        self.meter.write(container, len(text))
        return {**json.loads(text), "_etag": etag}

    def _partition(self, container: str, building: BuildingRef) -> list[Document]:
        return [d for (p, _), d in self._docs[container].items()
                if p == building.key and documents.KIND_FIELD not in d]

    def _check_outbox_free(self, container: str, partition: str, events: Sequence[CloudEvent]) -> None:
        for event in events:
            if event.building.key != partition:
                raise ValueError(f"event {event.id} is of another building than its transition")
            if (partition, documents.outbox_id(event.id)) in self._docs[container]:
                raise PreconditionFailed(f"{container}/outbox:{event.id} already exists")

    def _put_outbox(self, container: str, events: Sequence[CloudEvent]) -> None:
        for event in events:
            self._save(container, event.building.key, documents.outbox_to_doc(event), None)

    async def get_device(self, building: BuildingRef, device_id: str) -> DeviceState | None:
        doc = self._get("devices", building.key, device_id)
        return documents.device_from_doc(doc) if doc else None

    async def save_device(self, device: DeviceState) -> DeviceState:
        return documents.device_from_doc(
            self._save("devices", device.building.key, documents.device_to_doc(device), device.etag))

    async def list_devices(self, building: BuildingRef) -> list[DeviceState]:
        docs = self._partition("devices", building)
        return sorted((documents.device_from_doc(copy.deepcopy(d)) for d in docs), key=lambda d: d.device_id)

    async def find_devices_of_user(self, tenant_id: str, user_id: str) -> list[DeviceState]:
        docs = [d for d in self._docs["devices"].values() if d.get("userId") == user_id and d["tenantId"] == tenant_id]
        return [documents.device_from_doc(copy.deepcopy(d)) for d in docs]

    async def get_space(self, building: BuildingRef, space_id: str) -> SpaceState | None:
        doc = self._get("spaces", building.key, space_id)
        return documents.space_from_doc(doc) if doc else None

    async def save_space(self, space: SpaceState, events: Sequence[CloudEvent] = ()) -> SpaceState:
        # No await between the checks and the writes: all of it or none, like the transactional batch.
        self._check_outbox_free("spaces", space.building.key, events)
        saved = documents.space_from_doc(
            self._save("spaces", space.building.key, documents.space_to_doc(space), space.etag))
        self._put_outbox("spaces", events)
        return saved

    async def list_spaces_due(self, now: datetime, limit: int = 1000) -> list[SpaceState]:
        cutoff = documents.iso(now)
        docs = [d for d in self._docs["spaces"].values()
                if documents.KIND_FIELD not in d and d.get("headcountDueAt") and d["headcountDueAt"] <= cutoff]
        docs.sort(key=lambda d: d["headcountDueAt"])
        return [documents.space_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    async def list_spaces(self, building: BuildingRef) -> list[SpaceState]:
        docs = self._partition("spaces", building)
        self._meter_query("spaces", docs)
        return sorted((documents.space_from_doc(d) for d in docs), key=lambda s: s.space_id)

    async def get_snapshots(self, building: BuildingRef, space_ids: Sequence[str]) -> dict[str, SpaceSnapshot]:
        spaces = self._docs["spaces"]
        docs = [documents.snapshot_fields(doc) for space_id in dict.fromkeys(space_ids)
                if (doc := spaces.get((building.key, space_id))) is not None and documents.KIND_FIELD not in doc]
        self._meter_query("spaces", docs)  # what the projection returns
        return dict(documents.snapshot_from_doc(d) for d in docs)

    async def get_floor_summary(self, building: BuildingRef, floor_id: str) -> FloorSummary | None:
        counts = self._get("spaces", building.key, documents.floor_summary_id(floor_id))
        if counts is None:
            return None
        return documents.floor_summary_from_docs(
            counts, self._get("spaces", building.key, documents.floor_sinces_id(floor_id)))

    async def list_floor_summaries(self, building: BuildingRef, *, sinces: bool = False) -> list[FloorSummary]:
        # by the ids written (Cosmos finds them by the indexed kind), not a scan of the whole container
        spaces = self._docs["spaces"]
        floors = sorted(self._summaries.get(building.key, ()))
        counts = [copy.deepcopy(spaces[(building.key, documents.floor_summary_id(f))]) for f in floors]
        found = ({f: copy.deepcopy(doc) for f in floors
                  if (doc := spaces.get((building.key, documents.floor_sinces_id(f)))) is not None}
                 if sinces else {})
        self._meter_query("spaces", counts + list(found.values()))
        return [documents.floor_summary_from_docs(doc, found.get(f)) if sinces
                else documents.floor_summary_from_docs(doc) for f, doc in zip(floors, counts)]

    async def save_floor(self, summary: FloorSummary,
                         spaces: Sequence[tuple[SpaceState, Sequence[CloudEvent]]] = ()) -> FloorSummary:
        partition = summary.building.key
        # Every condition first, then every write, with no await between: all or none, like the batch.
        writes = [(documents.floor_summary_to_doc(summary), summary.etag)]
        writes += [(documents.space_to_doc(space), space.etag) for space, _events in spaces]
        if len({doc["id"] for doc, _etag in writes}) != len(writes):
            raise ValueError("a space twice in one floor's batch")
        for doc, etag in writes:
            if doc[documents.PARTITION_KEY_FIELD] != partition:
                raise ValueError(f"space {doc['id']} is of another building than the floor summary")
            current = self._docs["spaces"].get((partition, doc["id"]))
            if (etag is None) != (current is None) or (current is not None and current["_etag"] != etag):
                raise PreconditionFailed(f"spaces/{doc['id']} changed since it was read")
        sinces = None if summary.sinces_saved else documents.floor_sinces_to_doc(summary)
        events = [event for _space, made in spaces for event in made]
        if len(writes) + (sinces is not None) + len(events) > FLOOR_BATCH_OPERATIONS:
            raise ValueError(f"{len(writes) + len(events)} operations in one floor's batch")  # as Cosmos refuses
        self._check_outbox_free("spaces", partition, events)
        if len({event.id for event in events}) != len(events):
            raise PreconditionFailed("one event twice in a floor's batch")
        saved = [self._save("spaces", partition, doc, etag) for doc, etag in writes]
        if sinces is not None:
            self._save("spaces", partition, sinces, None, upsert=True)
        self._summaries.setdefault(partition, set()).add(summary.floor_id)
        self._put_outbox("spaces", events)
        return replace(summary, etag=saved[0]["_etag"], sinces_saved=True)

    async def save_visit(self, visit: Visit) -> None:
        self._save("visits", visit.building.key, documents.visit_to_doc(visit), None, upsert=True)

    async def list_visits(self, building: BuildingRef, ended_from: datetime, ended_before: datetime) -> list[Visit]:
        low, high = documents.iso(ended_from), documents.iso(ended_before)
        docs = [d for d in self._partition("visits", building) if low <= d["end"] < high]
        return sorted((documents.visit_from_doc(d) for d in docs), key=lambda v: (v.end, v.id))

    async def list_silent_devices(self, seen_before: datetime, limit: int = 1000) -> list[DeviceState]:
        cutoff = documents.iso(seen_before)
        docs = [d for d in self._docs["devices"].values()
                if d["lastSeen"] < cutoff and (d.get("spaceId") or d.get("leavingSpaceId"))]
        docs.sort(key=lambda d: d["lastSeen"])
        return [documents.device_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    async def save_beacon_health(self, health: BeaconHealth) -> None:
        self._save("beacons", health.building.key, documents.beacon_to_doc(health), None, upsert=True)

    async def list_beacon_health(self, building: BuildingRef) -> list[BeaconHealth]:
        docs = self._partition("beacons", building)
        return sorted((documents.beacon_from_doc(d) for d in docs), key=lambda b: b.beacon_id)

    async def get_beacon_alerts(self, building: BuildingRef, beacon_id: str) -> BeaconAlerts | None:
        doc = self._get("beacons", building.key, documents.alerts_id(beacon_id))
        return documents.alerts_from_doc(doc) if doc else None

    async def save_beacon_alerts(self, alerts: BeaconAlerts, events: Sequence[CloudEvent] = (), *,
                                 silence_of: BeaconHealth | None = None) -> BeaconAlerts:
        partition = alerts.building.key
        self._check_outbox_free("beacons", partition, events)
        current = self._docs["beacons"].get((partition, documents.alerts_id(alerts.beacon_id)))
        if (alerts.etag is None) != (current is None) or (current is not None and current["_etag"] != alerts.etag):
            raise PreconditionFailed(f"beacons/alerts:{alerts.beacon_id} changed since it was read")
        health_doc = None
        if silence_of is not None:
            health_doc = self._docs["beacons"].get((partition, silence_of.beacon_id))
            if health_doc is None or health_doc["lastHeard"] != documents.iso(silence_of.last_heard):
                raise PreconditionFailed(f"beacons/{silence_of.beacon_id} was heard since it was read")
        saved = documents.alerts_from_doc(
            self._save("beacons", partition, documents.alerts_to_doc(alerts), alerts.etag))
        if health_doc is not None:
            health_doc[documents.SILENCE_REPORTED] = True
            health_doc["_etag"] = f'"{uuid.uuid4()}"'
        self._put_outbox("beacons", events)
        return saved

    async def list_silent_beacons(self, heard_before: datetime, limit: int = 1000) -> list[BeaconHealth]:
        cutoff = documents.iso(heard_before)
        docs = [d for d in self._docs["beacons"].values() if documents.KIND_FIELD not in d
                and d["lastHeard"] < cutoff and not d.get(documents.SILENCE_REPORTED)]
        docs.sort(key=lambda d: d["lastHeard"])
        return [documents.beacon_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    # EventOutbox: the outbox documents beside the spaces and beacons

    async def pending(self, limit: int = 500) -> list[CloudEvent]:
        docs = [d for container in ("spaces", "beacons") for d in self._docs[container].values()
                if d.get(documents.KIND_FIELD) == documents.OUTBOX_KIND]
        docs.sort(key=lambda d: (d[documents.PARTITION_KEY_FIELD], d["subject"], d["sequence"]))
        return [documents.outbox_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    async def remove(self, event: CloudEvent) -> None:
        for container in ("spaces", "beacons"):
            self._docs[container].pop((event.building.key, documents.outbox_id(event.id)), None)


class InMemoryTenantDirectory:
    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], Document] = {}

    async def create_tenant(self, tenant: Tenant) -> None:
        key = (tenant.tenant_id, "tenant")
        if key in self._docs:
            raise AlreadyExists(f"tenant '{tenant.tenant_id}' exists")
        self._docs[key] = documents.tenant_to_doc(tenant)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        doc = self._docs.get((tenant_id, "tenant"))
        return documents.tenant_from_doc(doc) if doc else None

    async def list_tenants(self) -> list[Tenant]:
        docs = [d for (_t, i), d in self._docs.items() if i == "tenant"]
        return sorted((documents.tenant_from_doc(d) for d in docs), key=lambda t: t.tenant_id)

    async def get_sharing(self, tenant_id: str, user_id: str) -> Sharing | None:
        doc = self._docs.get((tenant_id, f"sharing:{user_id}"))
        return documents.sharing_from_doc(doc) if doc else None

    async def put_sharing(self, sharing: Sharing, if_match: str | None = None) -> None:
        key = (sharing.tenant_id, f"sharing:{sharing.user_id}")
        current = self._docs.get(key)
        if if_match is not None and (current is None or current["_etag"] != if_match):
            raise PreconditionFailed(f"the sharing of '{sharing.user_id}' changed since it was read")
        self._docs[key] = {**documents.sharing_to_doc(sharing), "_etag": f'"{uuid.uuid4()}"'}

    async def get_identity(self, tenant_id: str) -> IdentityConfig | None:
        doc = self._docs.get((tenant_id, "identity"))
        return documents.identity_from_doc(copy.deepcopy(doc)) if doc else None

    async def put_identity(self, config: IdentityConfig) -> None:
        self._docs[(config.tenant_id, "identity")] = documents.identity_to_doc(config)

    async def delete_identity(self, tenant_id: str) -> bool:
        return self._docs.pop((tenant_id, "identity"), None) is not None

    async def issuer_owner(self, issuer: str) -> str | None:
        doc = self._docs.get((documents.issuer_partition(issuer), documents.ISSUER_CLAIM_ID))
        return doc["owner"] if doc else None

    async def claim_issuer(self, issuer: str, tenant_id: str) -> None:
        key = (documents.issuer_partition(issuer), documents.ISSUER_CLAIM_ID)
        current = self._docs.get(key)
        if current is not None and current["owner"] != tenant_id:
            raise AlreadyExists("this issuer is configured for another tenant")
        self._docs[key] = documents.issuer_claim_to_doc(issuer, tenant_id)

    async def release_issuer(self, issuer: str, tenant_id: str) -> None:
        key = (documents.issuer_partition(issuer), documents.ISSUER_CLAIM_ID)
        if (current := self._docs.get(key)) is not None and current["owner"] == tenant_id:
            del self._docs[key]


class InMemoryAuditLog:
    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []
        self._changes: list[SharingChange] = []

    async def append(self, entry: AuditEntry) -> None:
        self._entries.append(entry)

    async def recent(self, tenant_id: str, limit: int = 100) -> list[AuditEntry]:
        mine = [e for e in self._entries if e.tenant_id == tenant_id]
        return sorted(mine, key=lambda e: e.at, reverse=True)[:limit]

    async def append_sharing_change(self, change: SharingChange) -> None:
        self._changes.append(change)

    async def recent_sharing_changes(self, tenant_id: str, limit: int = 100) -> list[SharingChange]:
        mine = [c for c in self._changes if c.tenant_id == tenant_id]
        return sorted(mine, key=lambda c: c.at, reverse=True)[:limit]


class InMemoryIssuerDocuments:
    """An issuer's discovery document and key set held in memory (tests, in-memory benchmarks): `serve(url, doc)`
    publishes a document, `withdraw(url)` removes it, `fetched` lists the URLs asked for, in order."""

    def __init__(self) -> None:
        self._documents: dict[str, Document] = {}
        self.fetched: list[str] = []

    def serve(self, url: str, document: Document) -> None:
        self._documents[url] = copy.deepcopy(document)

    def withdraw(self, url: str) -> None:
        self._documents.pop(url, None)

    async def fetch_json(self, url: str) -> Document:
        self.fetched.append(url)
        if url not in self._documents:
            raise DependencyUnavailable("identity provider", "HTTP 404")
        return copy.deepcopy(self._documents[url])

    async def close(self) -> None:
        return None


class InMemorySubscriptionStore:
    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], Document] = {}

    async def create(self, subscription: Subscription) -> Subscription:
        key = (subscription.tenant_id, subscription.subscription_id)
        if key in self._docs:
            raise AlreadyExists(f"subscription '{subscription.subscription_id}' exists")
        self._docs[key] = {**documents.subscription_to_doc(subscription), "_etag": f'"{uuid.uuid4()}"'}
        return documents.subscription_from_doc(copy.deepcopy(self._docs[key]))

    async def get(self, tenant_id: str, subscription_id: str) -> Subscription | None:
        doc = self._docs.get((tenant_id, subscription_id))
        return documents.subscription_from_doc(copy.deepcopy(doc)) if doc else None

    async def list_for_tenant(self, tenant_id: str) -> list[Subscription]:
        subs = [documents.subscription_from_doc(copy.deepcopy(d)) for (t, _), d in self._docs.items() if t == tenant_id]
        return sorted(subs, key=lambda s: (s.created_at, s.subscription_id))

    async def list_all(self) -> list[Subscription]:
        return sorted((documents.subscription_from_doc(copy.deepcopy(d)) for d in self._docs.values()),
                      key=lambda s: (s.tenant_id, s.created_at, s.subscription_id))

    async def save(self, subscription: Subscription) -> Subscription:
        key = (subscription.tenant_id, subscription.subscription_id)
        current = self._docs.get(key)
        if current is None or current["_etag"] != subscription.etag:
            raise PreconditionFailed(f"subscription '{subscription.subscription_id}' changed since it was read")
        self._docs[key] = {**documents.subscription_to_doc(subscription), "_etag": f'"{uuid.uuid4()}"'}
        return documents.subscription_from_doc(copy.deepcopy(self._docs[key]))

    async def delete(self, tenant_id: str, subscription_id: str) -> bool:
        return self._docs.pop((tenant_id, subscription_id), None) is not None


class InMemoryDeliveryStore:
    """`fail_with` makes every call raise (a store outage in the delivery tests)."""

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], Document] = {}
        self.fail_with: Exception | None = None

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def _stored(self, delivery: Delivery) -> Delivery:
        key = (delivery.subscription_key, delivery.event_id)
        self._docs[key] = {**documents.delivery_to_doc(delivery), "_etag": f'"{uuid.uuid4()}"'}
        return documents.delivery_from_doc(copy.deepcopy(self._docs[key]))

    def _all(self, tenant_id: str, subscription_id: str) -> list[Document]:
        key = f"{tenant_id}|{subscription_id}"
        return [d for (k, _), d in self._docs.items() if k == key]

    async def add(self, delivery: Delivery) -> bool:
        self._check()
        if (delivery.subscription_key, delivery.event_id) in self._docs:
            return False
        self._stored(delivery)
        return True

    async def put(self, delivery: Delivery) -> Delivery:
        self._check()
        return self._stored(delivery)

    async def save(self, delivery: Delivery) -> Delivery:
        self._check()
        current = self._docs.get((delivery.subscription_key, delivery.event_id))
        if current is None or current["_etag"] != delivery.etag:
            raise PreconditionFailed(f"delivery of event {delivery.event_id} changed since it was read")
        return self._stored(delivery)

    async def get(self, tenant_id: str, subscription_id: str, event_id: str) -> Delivery | None:
        self._check()
        doc = self._docs.get((f"{tenant_id}|{subscription_id}", event_id))
        return documents.delivery_from_doc(copy.deepcopy(doc)) if doc else None

    async def due(self, now: datetime, limit: int = 500) -> list[Delivery]:
        self._check()
        cutoff = documents.iso(now) or ""
        docs = [d for d in self._docs.values() if d["status"] == "pending" and d["nextAttemptAt"] <= cutoff]
        docs.sort(key=lambda d: d["nextAttemptAt"])
        return [documents.delivery_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    async def open_for_subscription(self, tenant_id: str, subscription_id: str) -> list[Delivery]:
        self._check()
        docs = [d for d in self._all(tenant_id, subscription_id) if d["status"] in ("pending", "held")]
        docs.sort(key=lambda d: (d["subject"], d["sequence"]))
        return [documents.delivery_from_doc(copy.deepcopy(d)) for d in docs]

    async def with_status(self, tenant_id: str, subscription_id: str, status: DeliveryStatus,
                          limit: int = 1000) -> list[Delivery]:
        self._check()
        docs = [d for d in self._all(tenant_id, subscription_id) if d["status"] == status.value]
        docs.sort(key=lambda d: (d["subject"], d["sequence"]))
        return [documents.delivery_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    async def recent(self, tenant_id: str, subscription_id: str, limit: int = 100) -> list[Delivery]:
        self._check()
        docs = sorted(self._all(tenant_id, subscription_id), key=lambda d: (d["eventTime"], d["id"]), reverse=True)
        return [documents.delivery_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    async def delete_all(self, tenant_id: str, subscription_id: str) -> int:
        self._check()
        key = f"{tenant_id}|{subscription_id}"
        doomed = [k for k in self._docs if k[0] == key]
        for k in doomed:
            del self._docs[k]
        return len(doomed)


class InMemoryEventLog:
    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], Document] = {}

    async def append(self, event: CloudEvent) -> None:
        self._docs[(event.building.key, event.id)] = documents.event_log_to_doc(event)

    async def since(self, tenant_id: str, building_id: str | None, start: datetime,
                    limit: int = 10_000) -> list[CloudEvent]:
        cutoff = documents.iso(start) or ""
        docs = [d for d in self._docs.values() if d["tenantId"] == tenant_id and d["time"] >= cutoff
                and (building_id is None or d["buildingId"] == building_id)]
        docs.sort(key=lambda d: (d["time"], d["id"]))
        return [documents.outbox_from_doc(copy.deepcopy(d)) for d in docs[:limit]]


class InMemoryBookingStore:
    """Bookings beside the spaces of an InMemoryLiveStateStore (the same documents in the same container dict), so a
    no-show's event lands in the outbox the relay reads, as in Cosmos."""

    def __init__(self, live: InMemoryLiveStateStore) -> None:
        self._live = live

    def _bookings(self) -> list[Document]:
        return [d for d in self._live._docs["spaces"].values() if d.get(documents.KIND_FIELD) == documents.BOOKING_KIND]

    async def get(self, building: BuildingRef, space_id: str, booking_id: str) -> Booking | None:
        doc = self._live._get("spaces", building.key, documents.booking_id(space_id, booking_id))
        return documents.booking_from_doc(doc) if doc else None

    async def save(self, booking: Booking, events: Sequence[CloudEvent] = ()) -> Booking:
        # No await between the checks and the writes: all of it or none, like the transactional batch.
        partition = booking.building.key
        self._live._check_outbox_free("spaces", partition, events)
        saved = documents.booking_from_doc(
            self._live._save("spaces", partition, documents.booking_to_doc(booking), booking.etag))
        self._live._put_outbox("spaces", events)
        return saved

    async def delete(self, building: BuildingRef, space_id: str, booking_id: str) -> bool:
        key = (building.key, documents.booking_id(space_id, booking_id))
        return self._live._docs["spaces"].pop(key, None) is not None

    async def list_bookings(self, building: BuildingRef, start: datetime, end: datetime,
                            space_id: str | None = None) -> list[Booking]:
        low, high = documents.iso(start) or "", documents.iso(end) or ""
        docs = [d for d in self._bookings() if d[documents.PARTITION_KEY_FIELD] == building.key
                and d["start"] < high and d["end"] > low and (space_id is None or d["spaceId"] == space_id)]
        docs.sort(key=lambda d: (d["start"], d["spaceId"], d["bookingId"]))
        return [documents.booking_from_doc(json.loads(json.dumps(d))) for d in docs]  # a copy, as _get's

    async def list_running(self, building: BuildingRef, at: datetime) -> list[BookingHold]:
        moment = documents.iso(at) or ""
        docs = [d for d in self._bookings() if d[documents.PARTITION_KEY_FIELD] == building.key
                and d["start"] <= moment < d["end"]]
        docs.sort(key=lambda d: (d["start"], d["spaceId"], d["bookingId"]))
        return [documents.booking_hold_from_doc(documents.booking_hold_projection(d)) for d in docs]

    async def list_checks_due(self, started_before: datetime, limit: int = 1000) -> list[Booking]:
        cutoff = documents.iso(started_before) or ""
        docs = [d for d in self._bookings() if d.get("checkOpen") and d["start"] <= cutoff]
        docs.sort(key=lambda d: d["start"])
        return [documents.booking_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    async def list_releases_pending(self, limit: int = 1000) -> list[Booking]:
        docs = [d for d in self._bookings() if d.get("releaseState") == "pending"]
        docs.sort(key=lambda d: d["start"])
        return [documents.booking_from_doc(copy.deepcopy(d)) for d in docs[:limit]]

    async def get_settings(self, building: BuildingRef) -> BookingSettings:
        doc = self._live._get("spaces", building.key, documents.BOOKING_SETTINGS_ID)
        return documents.booking_settings_from_doc(doc) if doc else BookingSettings(building.tenant_id,
                                                                                    building.building_id)

    async def put_settings(self, settings: BookingSettings) -> BookingSettings:
        doc = self._live._save("spaces", settings.building.key, documents.booking_settings_to_doc(settings), None,
                               upsert=True)
        return documents.booking_settings_from_doc(doc)

    async def get_source(self, building: BuildingRef, space_id: str) -> CalendarSource | None:
        doc = self._live._get("spaces", building.key, documents.calendar_id(space_id))
        return documents.calendar_from_doc(doc) if doc else None

    async def save_source(self, source: CalendarSource) -> CalendarSource:
        return documents.calendar_from_doc(
            self._live._save("spaces", source.building.key, documents.calendar_to_doc(source), source.etag))

    async def delete_source(self, building: BuildingRef, space_id: str) -> bool:
        return self._live._docs["spaces"].pop((building.key, documents.calendar_id(space_id)), None) is not None

    async def list_sources(self, limit: int = 10_000) -> list[CalendarSource]:
        docs = [d for d in self._live._docs["spaces"].values()
                if d.get(documents.KIND_FIELD) == documents.CALENDAR_KIND]
        docs.sort(key=lambda d: (d[documents.PARTITION_KEY_FIELD], d["spaceId"]))
        return [documents.calendar_from_doc(copy.deepcopy(d)) for d in docs[:limit]]
