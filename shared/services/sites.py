"""Which building a batch belongs to, and each building's positioning index, cached per instance.

Blast radius of one site document = that building: a building whose positioning index cannot be built is served
as "mapped, not positioned" (rooms, routes and free rooms still work) and a stored document that cannot even be
read is reported for that building alone; the tenant's other buildings load as usual.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shared.domain.errors import DomainError
from shared.domain.ports import DependencyUnavailable, SiteModelStore
from shared.domain.positioning import SignalModel, SiteIndex
from shared.domain.positioning.signal import signal_for_site
from shared.domain.site import SiteModel
from shared.domain.tenancy import BuildingRef
from shared.domain.wayfinding import NavigationIndex

logger = logging.getLogger(__name__)


class SiteUnavailable(DomainError):
    """The building exists but its stored site model cannot be loaded (503 naming the building; the tenant's other
    buildings are not affected)."""

    def __init__(self, building: BuildingRef, reason: str) -> None:
        self.building = building
        self.reason = reason
        super().__init__(f"the site model of building '{building.building_id}' cannot be loaded: {reason}")


@dataclass(frozen=True)
class Building:
    """A building's site model with what the pipeline needs to position phones in it. `index` is None for a
    building that is mapped but not positioned (no beacons yet, or an index that could not be built:
    `positioning_problem` says why)."""

    ref: BuildingRef
    site: SiteModel
    etag: str
    index: SiteIndex | None
    signal: SignalModel
    positioning_problem: str | None = None
    navigation: NavigationIndex | None = None  # built with the rest, off the event loop (None: the graph failed)

    @property
    def building_id(self) -> str:
        return self.ref.building_id

    @property
    def tenant_id(self) -> str:
        return self.ref.tenant_id

    @property
    def positioned(self) -> bool:
        return self.index is not None


def build_building(ref: BuildingRef, site: SiteModel, etag: str) -> Building:
    """The building with its positioning index; never raises for a valid site model (no beacons, or an index
    the engine refuses, gives a building that is mapped but not positioned)."""
    signal = signal_for_site(site)
    try:
        navigation: NavigationIndex | None = NavigationIndex.from_site(site)
    except (ValueError, KeyError, ArithmeticError) as exc:  # refused at save; a model edited by hand may still
        logger.error("navigation index of building %s failed: %s", ref.building_id, exc)
        navigation = None
    if not site.beacons:
        return Building(ref, site, etag, None, signal, "no beacons placed yet", navigation)
    try:
        index = SiteIndex.from_site_model(site)
    except (ValueError, ArithmeticError) as exc:
        return Building(ref, site, etag, None, signal, f"positioning index failed: {exc}", navigation)
    return Building(ref, site, etag, index, signal, None, navigation)


@dataclass
class _TenantSites:
    buildings: dict[str, Building]
    unavailable: dict[str, str]  # building id -> why its stored site model cannot be loaded
    beacon_owner: dict[str, str]  # beacon id -> building id (positioned buildings only)
    checked_at: float
    clashes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # beacon id -> buildings claiming it


class SiteDirectory:
    """A tenant's buildings and which building each beacon is in. Re-checked every `refresh_s` (one point read of
    each building's version, `SiteModelStore.version`); a building's model is read, and its positioning index
    rebuilt, only when its version changes."""

    def __init__(self, sites: SiteModelStore, refresh_s: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sites = sites
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._tenants: dict[str, _TenantSites] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def building_for(self, tenant_id: str, beacon_ids: Iterable[str]) -> Building | None:
        """The tenant's positioned building whose beacons were heard most in this batch; None when none is known."""
        sites = await self._tenant(tenant_id)
        votes = Counter(map(sites.beacon_owner.get, beacon_ids))  # one C-level pass over a batch's readings
        # the most heard; on a tie the larger id, so the answer never depends on the readings' order
        best = max(((count, building) for building, count in votes.items() if building is not None), default=None)
        return None if best is None else sites.buildings[best[1]]

    async def known_beacons(self, tenant_id: str) -> dict[str, str]:
        """Beacon id -> building id, for every positioned building of the tenant."""
        return (await self._tenant(tenant_id)).beacon_owner

    async def get(self, ref: BuildingRef) -> Building | None:
        """The building, None when the tenant has no such building; SiteUnavailable when it exists but its stored
        model cannot be loaded."""
        sites = await self._tenant(ref.tenant_id)
        if ref.building_id in sites.unavailable:
            raise SiteUnavailable(ref, sites.unavailable[ref.building_id])
        return sites.buildings.get(ref.building_id)

    async def all(self, tenant_id: str) -> list[Building]:
        """The tenant's buildings that load (one that cannot is logged and left out, never failing the list)."""
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
        unavailable: dict[str, str] = {}
        for ref in await self._sites.list_buildings(tenant_id):
            old = previous.buildings.get(ref.building_id) if previous else None
            try:
                if old is not None:
                    # One small point read: the version. The model is read (and validated) only when it changed.
                    etag = await self._sites.version(ref)
                    if etag is None:
                        continue
                    if etag == old.etag:
                        buildings[ref.building_id] = old
                        continue
                versioned = await self._sites.get(ref)
            except (ValueError, KeyError, TypeError) as exc:
                # A stored document that no longer validates (edited by hand, an old schema, a missing or corrupt
                # blob): that building only.
                unavailable[ref.building_id] = type(exc).__name__
                logger.error("site model of tenant %s building %s cannot be loaded: %s", tenant_id, ref.building_id,
                             type(exc).__name__)
                continue
            except DependencyUnavailable as exc:
                if old is None:
                    raise
                # Its new version cannot be read now (Blob storage down): the version before serves until it can.
                buildings[ref.building_id] = old
                logger.warning("tenant %s building %s: new version not readable (%s); serving version %s",
                               tenant_id, ref.building_id, exc, old.etag)
                continue
            if versioned is None:
                continue
            if old is not None and old.etag == versioned.etag:
                buildings[ref.building_id] = old
                continue
            # Building the index is CPU work (a grid per floor): off the event loop.
            building = await asyncio.to_thread(build_building, ref, versioned.site, versioned.etag)
            buildings[ref.building_id] = building
            if building.positioning_problem:
                logger.warning("building %s of tenant %s is mapped, not positioned: %s", ref.building_id, tenant_id,
                               building.positioning_problem)
            else:
                logger.info("site index built: tenant %s building %s version %s", tenant_id, ref.building_id,
                            versioned.etag)
        owner, clashes = beacon_owners(buildings.values())
        for beacon, claimed_by in clashes.items():
            # The API refuses clashing beacon ids (409); a clash here came from a race or an edit by hand.
            logger.error("tenant %s: beacon %s is in buildings %s; sightings of it go to %s", tenant_id, beacon,
                         ", ".join(claimed_by), owner.get(beacon))
        return _TenantSites(buildings, unavailable, owner, self._monotonic(), clashes)


def beacon_owners(buildings: Iterable[Building]) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Beacon id -> its building (positioned buildings, the first by id on a clash) and the clashing beacons."""
    claims: dict[str, list[str]] = {}
    for building in sorted(buildings, key=lambda b: b.building_id):
        if building.index is None:
            continue
        for beacon in building.site.beacons:
            claims.setdefault(beacon.id, []).append(building.building_id)
    owner = {beacon: ids[0] for beacon, ids in claims.items()}
    clashes = {beacon: tuple(ids) for beacon, ids in claims.items() if len(ids) > 1}
    return owner, clashes
