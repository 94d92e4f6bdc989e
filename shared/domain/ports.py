"""Ports: the small interfaces the services need from the outside world, named by role.

Adapters in shared/adapters implement them by technology (Cosmos, Blob, Event Hubs) and in memory (tests, devkit);
one contract test suite runs against both so the fakes stay honest.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from shared.domain.bookings import Booking, BookingHold, BookingSettings, CalendarChanges, CalendarSource
from shared.domain.errors import DomainError
from shared.domain.events import BeaconAlerts, CloudEvent
from shared.domain.floor_summary import FloorSummary, SpaceSnapshot
from shared.domain.identity import IdentityConfig
from shared.domain.people import AuditEntry, Sharing, SharingChange, Tenant
from shared.domain.presence import BeaconHealth, DeviceState, SpaceState, Visit
from shared.domain.retry import DeliveryAttempt
from shared.domain.site import SiteModel
from shared.domain.subscriptions import Delivery, DeliveryStatus, Subscription
from shared.domain.teams import Team
from shared.domain.tenancy import ApiKeyRecord, BuildingRef


class PreconditionFailed(DomainError):
    """A write carried a version (ETag) that is no longer current."""


class DependencyUnavailable(DomainError):
    """A backing service (Event Hubs, Cosmos, Blob) cannot be reached now; the caller may retry later."""

    def __init__(self, dependency: str, detail: str, retry_after_s: int = 5):
        self.dependency = dependency
        self.retry_after_s = retry_after_s
        super().__init__(f"{dependency} is unavailable: {detail}")


@dataclass(frozen=True)
class OutboundEvent:
    """One event for the hub: one SDK batch, keyed by device so a device's batches stay in order."""

    partition_key: str
    body: bytes
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundEvent:
    """An event as the processing side receives it (from the Event Hub trigger or the in-process adapter)."""

    body: bytes
    partition_key: str | None
    sequence_number: int
    enqueued_time: datetime | None
    partition_id: str = "0"
    properties: dict[str, str] = field(default_factory=dict)


# A delivery of events and which attempt of that delivery it is (the retry policy: shared/domain/retry.py).
EventBatchHandler = Callable[[Sequence[InboundEvent], DeliveryAttempt], Awaitable[None]]


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[OutboundEvent]) -> None:
        """Send the events; raises DependencyUnavailable when the hub cannot take them now."""

    async def check(self) -> None:
        """Raise when the hub cannot be reached (health endpoint)."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class VersionedSite:
    site: SiteModel
    etag: str


class SiteModelStore(Protocol):
    """Site models per tenant, versioned by ETag for optimistic concurrency."""

    async def get(self, building: BuildingRef) -> VersionedSite | None:
        """The model and its ETag; None when there is no such building. A stored model that cannot be read back
        (missing or corrupt, an old schema) raises ValueError, KeyError or TypeError: that building only."""

    async def version(self, building: BuildingRef) -> str | None:
        """The building's current ETag (what `get` would return with the model), None when there is no such
        building: one small point read, no model read or validated (SiteDirectory compares it every refresh)."""

    async def put(self, building: BuildingRef, site: SiteModel, if_match: str | None = None) -> str:
        """Create or replace; with `if_match`, only over that version (else PreconditionFailed). Returns the new ETag.
        `site.building_id` must be `building.building_id`."""

    async def list_buildings(self, tenant_id: str) -> list[BuildingRef]:
        """The tenant's buildings, sorted."""

    async def list_all(self) -> list[BuildingRef]:
        """Every building of every tenant, sorted (the analytics timers)."""

    async def check(self) -> None: ...


class BlobStore(Protocol):
    """Immutable-ish files: dead letters and analytics output."""

    async def put(self, container: str, name: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    async def get(self, container: str, name: str) -> bytes | None: ...

    async def list_names(self, container: str, prefix: str = "") -> list[str]: ...

    async def delete(self, container: str, name: str) -> bool:
        """Remove the blob; False when it was not there."""

    async def check(self) -> None: ...


class TeamDirectory(Protocol):
    """Teams of opted-in people per tenant, as its admins upload them (Cosmos `tenants`, id `team:<teamId>`)."""

    async def put_team(self, team: Team) -> None:
        """Create or replace the team."""

    async def get_team(self, tenant_id: str, team_id: str) -> Team | None: ...

    async def list_teams(self, tenant_id: str) -> list[Team]: ...

    async def delete_team(self, tenant_id: str, team_id: str) -> bool:
        """False when there was no such team."""


class ApiKeyStore(Protocol):
    """API keys by the hash of the key: one point read per lookup."""

    async def get(self, key_hash: str) -> ApiKeyRecord | None: ...

    async def put(self, record: ApiKeyRecord) -> None: ...

    async def list_for_tenant(self, tenant_id: str) -> list[ApiKeyRecord]: ...


FLOOR_BATCH_OPERATIONS = 100  # what one LiveStateStore.save_floor may write: Cosmos's transactional batch limit


class LiveStateStore(Protocol):
    """Devices, spaces, visits and beacon health of the buildings, partitioned by building of a tenant: every read
    names a BuildingRef, and nothing of one tenant's building is ever visible through another's.

    `save_*` with an object whose `etag` is set writes only over that version (else PreconditionFailed); with
    `etag` None it creates (PreconditionFailed when the document already exists). Both return the saved object
    with its new etag.
    """

    async def get_device(self, building: BuildingRef, device_id: str) -> DeviceState | None: ...

    async def save_device(self, device: DeviceState) -> DeviceState: ...

    async def list_devices(self, building: BuildingRef) -> list[DeviceState]: ...

    async def find_devices_of_user(self, tenant_id: str, user_id: str) -> list[DeviceState]:
        """The devices (in any building of the tenant) last reported with this opted-in user id."""

    async def get_space(self, building: BuildingRef, space_id: str) -> SpaceState | None: ...

    async def save_space(self, space: SpaceState, events: Sequence[CloudEvent] = ()) -> SpaceState:
        """Write the space and put `events` (its events, same building) in the outbox, atomically: both or
        neither (one transactional batch in the space's partition). Not for a change of who is in a space of a
        known floor (headcount, status, since): that goes through `save_floor`, with the floor's summary."""

    async def list_spaces(self, building: BuildingRef) -> list[SpaceState]: ...

    async def list_spaces_due(self, now: datetime, limit: int = 1000) -> list[SpaceState]:
        """Spaces (of every building) with a held-back headcount event due by `now`."""

    async def get_snapshots(self, building: BuildingRef, space_ids: Sequence[str]) -> dict[str, SpaceSnapshot]:
        """What the space documents of these spaces say of their headcount and since, by id, for those that have
        one (one single-partition query returning only those fields)."""

    async def get_floor_summary(self, building: BuildingRef, floor_id: str) -> FloorSummary | None:
        """The floor's summary with its sinces (complete() says whether they could be read); None without
        one."""

    async def list_floor_summaries(self, building: BuildingRef, *, sinces: bool = False) -> list[FloorSummary]:
        """The building's floor summaries (one single-partition query), by floor id: only the counts unless
        `sinces`."""

    async def save_floor(self, summary: FloorSummary,
                         spaces: Sequence[tuple[SpaceState, Sequence[CloudEvent]]] = ()) -> FloorSummary:
        """Write the floor's summary and these spaces of it, each with its events into the outbox, atomically:
        all or none (one transactional batch in the building's partition: at most FLOOR_BATCH_OPERATIONS
        documents in all). The counts and each space over their etag, or created when it is None
        (PreconditionFailed otherwise); the sinces as they are when `summary.sinces_saved` is False. Returns the
        saved summary."""

    async def save_visit(self, visit: Visit) -> None:
        """Upsert by the visit's deterministic id."""

    async def list_visits(self, building: BuildingRef, ended_from: datetime, ended_before: datetime) -> list[Visit]: ...

    async def list_silent_devices(self, seen_before: datetime, limit: int = 1000) -> list[DeviceState]:
        """Devices (of every building) last seen before the cutoff that are still in a space or mid-leave."""

    async def save_beacon_health(self, health: BeaconHealth) -> None: ...

    async def list_beacon_health(self, building: BuildingRef) -> list[BeaconHealth]: ...

    async def get_beacon_alerts(self, building: BuildingRef, beacon_id: str) -> BeaconAlerts | None: ...

    async def save_beacon_alerts(self, alerts: BeaconAlerts, events: Sequence[CloudEvent] = (), *,
                                 silence_of: BeaconHealth | None = None) -> BeaconAlerts:
        """Write the alerts (over their etag, or create) and put `events` in the outbox, atomically. With
        `silence_of`, the beacon's health document is marked as reported silent in the same batch, only if it is
        still that version (last heard then; else PreconditionFailed: the beacon was heard meanwhile)."""

    async def list_silent_beacons(self, heard_before: datetime, limit: int = 1000) -> list[BeaconHealth]:
        """Beacons (of every building) last heard before the cutoff whose silence is not reported yet."""


class EventOutbox(Protocol):
    """Events written with their transitions (LiveStateStore.save_space / save_beacon_alerts), not yet handed on."""

    async def pending(self, limit: int = 500) -> list[CloudEvent]:
        """Events in the outbox, each subject's in sequence order."""

    async def remove(self, event: CloudEvent) -> None:
        """Take the event out of the outbox (nothing when it is not there)."""


class BookingStore(Protocol):
    """Bookings per space and each building's booking settings (docs/bookings.md), in the building's partition of
    the spaces container: a no-show is written with its event in the outbox, atomically."""

    async def get(self, building: BuildingRef, space_id: str, booking_id: str) -> Booking | None: ...

    async def save(self, booking: Booking, events: Sequence[CloudEvent] = ()) -> Booking:
        """Create (etag None; PreconditionFailed when it exists) or replace over the booking's etag (else
        PreconditionFailed), with `events` (of the booking's building) in the outbox: both or neither."""

    async def delete(self, building: BuildingRef, space_id: str, booking_id: str) -> bool:
        """False when there was no such booking."""

    async def list_bookings(self, building: BuildingRef, start: datetime, end: datetime,
                            space_id: str | None = None) -> list[Booking]:
        """The building's (or one space's) bookings overlapping [start, end), by start."""

    async def list_running(self, building: BuildingRef, at: datetime) -> list[BookingHold]:
        """The building's bookings running at `at` (start <= at < end), as much of each as a room's status needs,
        by start."""

    async def list_checks_due(self, started_before: datetime, limit: int = 1000) -> list[Booking]:
        """Bookings (of every building) started before the cutoff whose no-show question is still open."""

    async def list_releases_pending(self, limit: int = 1000) -> list[Booking]:
        """Bookings (of every building) whose room is to be given back at its source."""

    async def get_settings(self, building: BuildingRef) -> BookingSettings:
        """The building's settings (the defaults when none were saved)."""

    async def put_settings(self, settings: BookingSettings) -> BookingSettings: ...

    async def get_source(self, building: BuildingRef, space_id: str) -> CalendarSource | None: ...

    async def save_source(self, source: CalendarSource) -> CalendarSource:
        """Create (etag None; PreconditionFailed when it exists) or replace over its etag (else PreconditionFailed)."""

    async def delete_source(self, building: BuildingRef, space_id: str) -> bool: ...

    async def list_sources(self, limit: int = 10_000) -> list[CalendarSource]:
        """Every space's calendar source, of every building (the sync and renewal timers)."""


class BookingSource(Protocol):
    """Where bookings come from: an iCalendar feed, a Graph room mailbox (the API pushes its own, PUT/DELETE)."""

    async def changes(self, source: CalendarSource, now: datetime, zone: ZoneInfo) -> CalendarChanges:
        """What the calendar says now: the whole window, or (Graph, with a cursor) what changed since the last
        round. DependencyUnavailable when the calendar cannot be reached now; ValueError when it cannot be read."""

    async def release(self, source: CalendarSource, booking: Booking) -> str | None:
        """Give a no-show's room back at the source (BookingReleaser.release, with the space's source)."""

    async def close(self) -> None: ...


class BookingReleaser(Protocol):
    """Gives a no-show's room back at the booking's source (Graph: the room mailbox declines the occurrence)."""

    async def release(self, booking: Booking) -> str | None:
        """None when the source has it; else why it cannot, for good (the event is gone, no permission).
        DependencyUnavailable when the source cannot be reached now (tried again later)."""


class AlreadyExists(DomainError):
    """A create for something that exists (409)."""


class TenantDirectory(Protocol):
    """Tenants, each person's sharing choice and each tenant's identity provider (Cosmos `tenants` container,
    partition tenantId; an issuer's claim is kept in a partition of its own, `issuer:<sha256>`)."""

    async def create_tenant(self, tenant: Tenant) -> None:
        """AlreadyExists when the id is taken."""

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]: ...

    async def get_sharing(self, tenant_id: str, user_id: str) -> Sharing | None: ...

    async def put_sharing(self, sharing: Sharing, if_match: str | None = None) -> None:
        """Create or replace; with `if_match` (a Sharing's etag), only over that version, else
        PreconditionFailed (a narrowing computed from a choice the person has changed meanwhile)."""

    async def get_identity(self, tenant_id: str) -> IdentityConfig | None: ...

    async def put_identity(self, config: IdentityConfig) -> None:
        """Create or replace the tenant's identity configuration."""

    async def delete_identity(self, tenant_id: str) -> bool:
        """False when there was none."""

    async def issuer_owner(self, issuer: str) -> str | None:
        """The tenant holding the claim on this issuer URL (a hint: its identity configuration is the truth)."""

    async def claim_issuer(self, issuer: str, tenant_id: str) -> None:
        """Hold the issuer for the tenant; AlreadyExists when another tenant holds it (atomic: one of two tenants
        claiming at once wins)."""

    async def release_issuer(self, issuer: str, tenant_id: str) -> None:
        """Drop the claim if (and only if) that tenant holds it."""


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...

    async def recent(self, tenant_id: str, limit: int = 100) -> list[AuditEntry]:
        """People-finder lookups, newest first."""

    async def append_sharing_change(self, change: SharingChange) -> None: ...

    async def recent_sharing_changes(self, tenant_id: str, limit: int = 100) -> list[SharingChange]:
        """Newest first."""


class IssuerDocuments(Protocol):
    """The JSON documents an OpenID Connect issuer publishes: discovery and the key set (JWKS)."""

    async def fetch_json(self, url: str) -> dict[str, Any]:
        """The document at `url`; DependencyUnavailable when it cannot be fetched in time or is no JSON object."""

    async def close(self) -> None: ...


class SubscriptionStore(Protocol):
    """Event subscriptions per tenant (Cosmos `subscriptions`, partition tenantId)."""

    async def create(self, subscription: Subscription) -> Subscription:
        """AlreadyExists when the id is taken."""

    async def get(self, tenant_id: str, subscription_id: str) -> Subscription | None: ...

    async def list_for_tenant(self, tenant_id: str) -> list[Subscription]:
        """The tenant's subscriptions, oldest first."""

    async def list_all(self) -> list[Subscription]:
        """Every tenant's subscriptions (the dispatcher's view)."""

    async def save(self, subscription: Subscription) -> Subscription:
        """Replace over the subscription's etag (else PreconditionFailed)."""

    async def delete(self, tenant_id: str, subscription_id: str) -> bool: ...


class DeliveryStore(Protocol):
    """Each event for each subscription that takes it, with its attempts (Cosmos `deliveries`, partition
    `tenantId|subscriptionId`, id = the event id)."""

    async def add(self, delivery: Delivery) -> bool:
        """Create; False when the subscription has this event already (a repeated hand-on)."""

    async def put(self, delivery: Delivery) -> Delivery:
        """Create or replace whatever is there (a replay)."""

    async def save(self, delivery: Delivery) -> Delivery:
        """Replace over the delivery's etag (else PreconditionFailed)."""

    async def get(self, tenant_id: str, subscription_id: str, event_id: str) -> Delivery | None: ...

    async def due(self, now: datetime, limit: int = 500) -> list[Delivery]:
        """Pending deliveries of every subscription whose next attempt is due, the earliest first."""

    async def open_for_subscription(self, tenant_id: str, subscription_id: str) -> list[Delivery]:
        """The subscription's pending and held deliveries, by subject (space or beacon) in sequence order."""

    async def with_status(self, tenant_id: str, subscription_id: str, status: DeliveryStatus,
                          limit: int = 1000) -> list[Delivery]: ...

    async def recent(self, tenant_id: str, subscription_id: str, limit: int = 100) -> list[Delivery]:
        """The subscription's deliveries, the newest event first."""

    async def delete_all(self, tenant_id: str, subscription_id: str) -> int: ...


class EventLog(Protocol):
    """Every event handed on from the outbox, kept for replays (Cosmos `events`, partition `tenantId|buildingId`,
    seven days)."""

    async def append(self, event: CloudEvent) -> None:
        """Upsert by the event's id."""

    async def since(self, tenant_id: str, building_id: str | None, start: datetime,
                    limit: int = 10_000) -> list[CloudEvent]:
        """The tenant's events (of one building, or all) whose time is `start` or later, oldest first."""


@dataclass(frozen=True)
class SinkAnswer:
    """What a target said to one attempt: an HTTP status (Event Hubs and Event Grid map theirs to one), or None
    with the reason when there was no answer (timeout, refused connection, a target refused by our SSRF rules)."""

    status_code: int | None
    error: str | None = None


class EventSink(Protocol):
    """Sends one event to one subscription's target (a signed webhook POST, an Event Hub, Event Grid)."""

    async def send(self, subscription: Subscription, event: CloudEvent, body: bytes) -> SinkAnswer:
        """Never raises for the target's failures: they are the answer."""

    async def close(self) -> None: ...
