"""Which building a batch belongs to, and each building's positioning index, cached per instance."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.domain.ports import SiteModelStore
from shared.domain.positioning import SignalModel, SiteIndex
from shared.domain.positioning.signal import signal_for_site
from shared.domain.site import SiteModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Building:
    tenant_id: str
    site: SiteModel
    index: SiteIndex
    etag: str
    signal: SignalModel

    @property
    def building_id(self) -> str:
        return self.site.building_id


@dataclass
class _TenantSites:
    buildings: dict[str, Building]
    beacon_owner: dict[str, str]  # beacon id -> building id
    checked_at: float


class SiteDirectory:
    """A tenant's buildings and which building each beacon is in. Re-checked every `refresh_s` (one point read
    per building to compare versions); a building's positioning index is rebuilt only when its version changes."""

    def __init__(self, sites: SiteModelStore, refresh_s: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sites = sites
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._tenants: dict[str, _TenantSites] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def building_for(self, tenant_id: str, beacon_ids: Iterable[str]) -> Building | None:
        """The tenant's building whose beacons were heard most in this batch; None when none is known."""
        sites = await self._tenant(tenant_id)
        votes = Counter(sites.beacon_owner[b] for b in beacon_ids if b in sites.beacon_owner)
        if not votes:
            return None
        building_id = max(votes.items(), key=lambda kv: (kv[1], kv[0]))[0]
        return sites.buildings[building_id]

    async def get(self, tenant_id: str, building_id: str) -> Building | None:
        return (await self._tenant(tenant_id)).buildings.get(building_id)

    async def all(self, tenant_id: str) -> list[Building]:
        sites = await self._tenant(tenant_id)
        return [sites.buildings[b] for b in sorted(sites.buildings)]

    def invalidate(self, tenant_id: str) -> None:
        self._tenants.pop(tenant_id, None)

    async def _tenant(self, tenant_id: str) -> _TenantSites:
        cached = self._tenants.get(tenant_id)
        if cached is not None and self._monotonic() - cached.checked_at < self._refresh_s:
            return cached
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            cached = self._tenants.get(tenant_id)
            if cached is not None and self._monotonic() - cached.checked_at < self._refresh_s:
                return cached
            fresh = await self._load(tenant_id, cached)
            self._tenants[tenant_id] = fresh
            return fresh

    async def _load(self, tenant_id: str, previous: _TenantSites | None) -> _TenantSites:
        buildings: dict[str, Building] = {}
        for building_id in await self._sites.list_building_ids(tenant_id):
            versioned = await self._sites.get(tenant_id, building_id)
            if versioned is None:
                continue
            old = previous.buildings.get(building_id) if previous else None
            if old is not None and old.etag == versioned.etag:
                buildings[building_id] = old
                continue
            # Building the index is CPU work (a grid per floor): off the event loop.
            index = await asyncio.to_thread(SiteIndex.from_site_model, versioned.site)
            buildings[building_id] = Building(tenant_id, versioned.site, index, versioned.etag,
                                              signal_for_site(versioned.site))
            logger.info("site index built: tenant %s building %s version %s", tenant_id, building_id, versioned.etag)
        owner: dict[str, str] = {}
        for building_id in sorted(buildings):
            for beacon in buildings[building_id].site.beacons:
                owner.setdefault(beacon.id, building_id)
        return _TenantSites(buildings, owner, self._monotonic())
