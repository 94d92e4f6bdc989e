"""Tenants, their API keys and their buildings' site models: what admins do."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from shared.domain.errors import ContractViolation, FieldError, NotFound
from shared.domain.people import Tenant
from shared.domain.ports import ApiKeyStore, PreconditionFailed, SiteModelStore, TenantDirectory, VersionedSite
from shared.domain.site import SiteModel, parse_site_model
from shared.domain.tenancy import ApiKeyRecord, Scope
from shared.services.auth import AuthService
from shared.services.common import Clock, utc_now
from shared.services.sites import SiteDirectory

logger = logging.getLogger(__name__)
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")


@dataclass(frozen=True)
class SavedSite:
    site: SiteModel
    etag: str
    created: bool


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
        if not TENANT_ID.match(tenant_id):
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
    async def put_site(self, tenant_id: str, building_id: str, data: object, if_match: str | None,
                       if_none_match: str | None = None) -> SavedSite:
        """Create or replace a building's site model; with If-Match only over that version (412 otherwise),
        with `If-None-Match: *` only when it does not exist yet."""
        await self.tenant(tenant_id)
        site = parse_site_model(data)
        if site.building_id != building_id:
            raise ContractViolation([FieldError("buildingId", f"must be '{building_id}', the building in the URL")])
        current = await self._sites.get(tenant_id, building_id)
        if if_none_match == "*" and current is not None:
            raise PreconditionFailed(f"building '{building_id}' exists already")
        if if_match is not None and if_match != "*" and current is None:
            raise PreconditionFailed(f"building '{building_id}' does not exist")
        etag = await self._sites.put(tenant_id, site, if_match=None if if_match in (None, "*") else if_match)
        self._directory.invalidate(tenant_id)
        logger.info("site model of building %s (tenant %s) saved", building_id, tenant_id)
        return SavedSite(site, etag, current is None)

    async def get_site(self, tenant_id: str, building_id: str) -> VersionedSite:
        found = await self._sites.get(tenant_id, building_id)
        if found is None:
            raise NotFound(f"no building '{building_id}'")
        return found
