"""Tenants, their API keys and their buildings' site models: what admins do."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from shared.domain.errors import Conflict, ContractViolation, FieldError, NotFound
from shared.domain.people import Tenant
from shared.domain.ports import ApiKeyStore, PreconditionFailed, SiteModelStore, TenantDirectory, VersionedSite
from shared.domain.site import SiteModel, parse_site_model, site_problems
from shared.domain.tenancy import ApiKeyRecord, BuildingRef, Scope, is_tenant_id
from shared.domain.wayfinding import GeneratedNavigation, NavigationIndex, unreachable_spaces, with_navigation
from shared.services.auth import AuthService
from shared.services.common import Clock, utc_now
from shared.services.sites import SiteDirectory, build_building

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedSite:
    site: SiteModel
    etag: str
    created: bool
    generated: GeneratedNavigation | None = None  # the navigation graph generated from the geometry, if it was
    unreachable_spaces: tuple[str, ...] = ()  # rooms no route reaches


class AdminService:
    def __init__(self, tenants: TenantDirectory, keys: ApiKeyStore, auth: AuthService, sites: SiteModelStore,
                 directory: SiteDirectory, clock: Clock = utc_now) -> None:
        self._tenants = tenants
        self._keys = keys
        self._auth = auth
        self._sites = sites
        self._directory = directory
        self._clock = clock

    # ---- tenants and keys ----------------------------------------------------------------------------------------
    async def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        if not is_tenant_id(tenant_id):
            raise ContractViolation([FieldError("tenantId", "3-63 lower-case letters, digits and dashes")])
        tenant = Tenant(tenant_id, name, self._clock())
        await self._tenants.create_tenant(tenant)
        logger.info("tenant %s created", tenant_id)
        return tenant

    async def tenant(self, tenant_id: str) -> Tenant:
        tenant = await self._tenants.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant '{tenant_id}'")
        return tenant

    async def list_tenants(self) -> list[Tenant]:
        return await self._tenants.list_tenants()

    async def mint_key(self, tenant_id: str, scopes: set[Scope], name: str) -> tuple[str, ApiKeyRecord]:
        await self.tenant(tenant_id)
        if not scopes:
            raise ContractViolation([FieldError("scopes", "name at least one scope")])
        return await self._auth.mint_key(tenant_id, scopes, name)

    async def list_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        await self.tenant(tenant_id)
        return await self._keys.list_for_tenant(tenant_id)

    async def revoke_key(self, tenant_id: str, key_id: str) -> None:
        for record in await self.list_keys(tenant_id):
            if record.key_id == key_id:
                await self._keys.put(replace(record, revoked=True))
                self._auth.forget(record.key_hash)
                logger.info("key %s of tenant %s revoked", key_id, tenant_id)
                return
        raise NotFound(f"no key '{key_id}'")

    # ---- site models ---------------------------------------------------------------------------------------------
    async def put_site(self, building: BuildingRef, data: object, if_match: str | None,
                       if_none_match: str | None = None) -> SavedSite:
        """Create or replace a building's site model (parsed JSON, site/v1); see `save_site`."""
        site = parse_site_model(data)
        if site.building_id != building.building_id:
            raise ContractViolation([FieldError("buildingId", f"must be '{building.building_id}', the building in the URL")])
        return await self.save_site(building, site, if_match, if_none_match)

    async def save_site(self, building: BuildingRef, site: SiteModel, if_match: str | None,
                        if_none_match: str | None = None) -> SavedSite:
        """Save a validated site model; with If-Match only over that version (412 otherwise), with
        `If-None-Match: *` only when it does not exist yet. A model without a navigation graph (or with a generated
        one its geometry no longer matches) gets one generated from its geometry. Every model accepted here loads:
        one whose positioning index or navigation graph cannot be built is refused (400), and beacon ids used by
        another building of the tenant are refused (409) so every sighting has one building."""
        await self.tenant(building.tenant_id)
        site, generated = await asyncio.to_thread(_prepare, building, site)
        await self._check_beacons_unique(building, site)
        current_etag = await self._sites.version(building)
        if if_none_match == "*" and current_etag is not None:
            raise PreconditionFailed(f"building '{building.building_id}' exists already")
        if if_match is not None and if_match != "*" and current_etag is None:
            raise PreconditionFailed(f"building '{building.building_id}' does not exist")
        etag = await self._sites.put(building, site, if_match=None if if_match in (None, "*") else if_match)
        self._directory.invalidate(building.tenant_id)
        logger.info("site model of building %s (tenant %s) saved", building.building_id, building.tenant_id)
        unreachable = generated.unreachable_spaces if generated is not None else tuple(unreachable_spaces(site))
        return SavedSite(site, etag, current_etag is None, generated, unreachable)

    async def get_site(self, building: BuildingRef) -> VersionedSite:
        found = await self._sites.get(building)
        if found is None:
            raise NotFound(f"no building '{building.building_id}'")
        return found

    async def _check_beacons_unique(self, building: BuildingRef, site: SiteModel) -> None:
        mine = {b.id for b in site.beacons}
        if not mine:
            return
        for other in await self._sites.list_buildings(building.tenant_id):
            if other == building:
                continue
            try:
                stored = await self._sites.get(other)
            except (ValueError, KeyError, TypeError):
                continue  # a stored model that no longer loads claims no beacons (SiteDirectory reports it)
            clashing = sorted(mine & {b.id for b in stored.site.beacons}) if stored else []
            if clashing:
                shown = ", ".join(clashing[:20]) + (f" and {len(clashing) - 20} more" if len(clashing) > 20 else "")
                raise Conflict(f"beacons {shown} are already placed in building '{other.building_id}'",
                               beacons=clashing, buildingId=other.building_id)


def _prepare(building: BuildingRef, site: SiteModel) -> tuple[SiteModel, GeneratedNavigation | None]:
    """The navigation graph generated where the model needs one, then everything built once: CPU work (a thread)."""
    site, generated = with_navigation(site)
    if generated is not None:
        problems = [FieldError(path, message) for path, message in site_problems(site)]
        if problems:  # a generator defect, never the customer's data: still a clear answer, not a 500
            logger.error("generated navigation of building %s is inconsistent: %s", building.building_id, problems[:3])
            raise ContractViolation([FieldError("navigation", f"the navigation graph generated from the geometry "
                                                              f"is inconsistent: {problems[0].message}")])
    _check_loads(building, site)
    return site, generated


def _check_loads(building: BuildingRef, site: SiteModel) -> None:
    """What the pipeline and the query API will build from the model, built once now: refuse what would fail."""
    loaded = build_building(building, site, etag="")
    if site.beacons and loaded.index is None:
        raise ContractViolation([FieldError("beacons", loaded.positioning_problem or "positioning index failed")])
    if loaded.navigation is not None:
        return
    try:
        NavigationIndex.from_site(site)  # again, for the reason it fails
    except (ValueError, KeyError, ArithmeticError) as exc:
        raise ContractViolation([FieldError("navigation", f"the navigation graph cannot be indexed: {exc}")]) from None
    raise ContractViolation([FieldError("navigation", "the navigation graph cannot be indexed")])
