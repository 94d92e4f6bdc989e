"""Ports: the small interfaces the services need from the outside world, named by role.

Adapters in shared/adapters implement them by technology (Cosmos, Blob, Event Hubs) and in memory (tests, devkit);
one contract test suite runs against both so the fakes stay honest.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shared.domain.errors import DomainError
from shared.domain.people import AuditEntry, Sharing, Tenant
from shared.domain.presence import BeaconHealth, DeviceState, SpaceState, Visit
from shared.domain.retry import DeliveryAttempt
from shared.domain.site import SiteModel
from shared.domain.teams import Team
from shared.domain.tenancy import ApiKeyRecord


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

    async def get(self, tenant_id: str, building_id: str) -> VersionedSite | None: ...

    async def put(self, tenant_id: str, site: SiteModel, if_match: str | None = None) -> str:
        """Create or replace; with `if_match`, only over that version (else PreconditionFailed). Returns the new ETag."""

    async def list_building_ids(self, tenant_id: str) -> list[str]: ...

    async def list_all(self) -> list[tuple[str, str]]:
        """(tenant id, building id) of every building of every tenant, sorted (the analytics timers)."""

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


class LiveStateStore(Protocol):
    """Devices, spaces, visits and beacon health of the buildings, partitioned by building.

    `save_*` with an object whose `etag` is set writes only over that version (else PreconditionFailed); with
    `etag` None it creates (PreconditionFailed when the document already exists). Both return the saved object
    with its new etag.
    """

    async def get_device(self, building_id: str, device_id: str) -> DeviceState | None: ...

    async def save_device(self, device: DeviceState) -> DeviceState: ...

    async def list_devices(self, building_id: str) -> list[DeviceState]: ...

    async def find_devices_of_user(self, tenant_id: str, user_id: str) -> list[DeviceState]:
        """The devices (in any building of the tenant) last reported with this opted-in user id."""

    async def get_space(self, building_id: str, space_id: str) -> SpaceState | None: ...

    async def save_space(self, space: SpaceState) -> SpaceState: ...

    async def list_spaces(self, building_id: str) -> list[SpaceState]: ...

    async def save_visit(self, visit: Visit) -> None:
        """Upsert by the visit's deterministic id."""

    async def list_visits(self, building_id: str, ended_from: datetime, ended_before: datetime) -> list[Visit]: ...

    async def list_silent_devices(self, seen_before: datetime, limit: int = 1000) -> list[DeviceState]:
        """Devices (of every building) last seen before the cutoff that are still in a space or mid-leave."""

    async def save_beacon_health(self, health: BeaconHealth) -> None: ...

    async def list_beacon_health(self, building_id: str) -> list[BeaconHealth]: ...


class AlreadyExists(DomainError):
    """A create for something that exists (409)."""


class TenantDirectory(Protocol):
    """Tenants and each person's sharing choice (Cosmos `tenants` container, partition tenantId)."""

    async def create_tenant(self, tenant: Tenant) -> None:
        """AlreadyExists when the id is taken."""

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]: ...

    async def get_sharing(self, tenant_id: str, user_id: str) -> Sharing | None: ...

    async def put_sharing(self, sharing: Sharing) -> None: ...


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...

    async def recent(self, tenant_id: str, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""
