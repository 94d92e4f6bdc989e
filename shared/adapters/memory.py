"""In-memory adapters: the fakes the unit tests and the devkit use, held to the same contract tests as the real ones."""
from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence

from shared.domain.ports import OutboundEvent, PreconditionFailed, VersionedSite
from shared.domain.site import SiteModel
from shared.domain.tenancy import ApiKeyRecord


class InMemorySiteModelStore:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], VersionedSite] = {}
        self._lock = asyncio.Lock()

    async def get(self, tenant_id: str, building_id: str) -> VersionedSite | None:
        return self._items.get((tenant_id, building_id))

    async def put(self, tenant_id: str, site: SiteModel, if_match: str | None = None) -> str:
        async with self._lock:
            current = self._items.get((tenant_id, site.building_id))
            if if_match is not None and (current is None or current.etag != if_match):
                raise PreconditionFailed(f"building '{site.building_id}' is not at version {if_match}")
            etag = f'"{uuid.uuid4()}"'
            self._items[(tenant_id, site.building_id)] = VersionedSite(site, etag)
            return etag

    async def list_building_ids(self, tenant_id: str) -> list[str]:
        return sorted(building for tenant, building in self._items if tenant == tenant_id)

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

    async def check(self) -> None:
        return None


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
