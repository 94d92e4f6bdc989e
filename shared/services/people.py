"""The co-worker finder: people choose their sharing; lookups answer only what they allowed, and are audited."""
from __future__ import annotations

import logging
from datetime import datetime

from shared.domain.errors import ContractViolation, FieldError, NotFound
from shared.domain.people import AuditEntry, PersonLocation, Sharing, SharingLevel, shared_location
from shared.domain.ports import AuditLog, LiveStateStore, TenantDirectory
from shared.domain.tenancy import Principal
from shared.services.common import Clock, utc_now

logger = logging.getLogger(__name__)
NOT_AVAILABLE = "not available"


class PeopleService:
    def __init__(self, tenants: TenantDirectory, live: LiveStateStore, audit: AuditLog,
                 clock: Clock = utc_now) -> None:
        self._tenants = tenants
        self._live = live
        self._audit = audit
        self._clock = clock

    async def set_sharing(self, tenant_id: str, user_id: str, level: SharingLevel,
                          until: datetime | None) -> Sharing:
        now = self._clock()
        if until is not None and until <= now and level is not SharingLevel.off:
            raise ContractViolation([FieldError("until", "must be in the future (or omitted)")])
        sharing = Sharing(tenant_id, user_id, level, until, now)
        await self._tenants.put_sharing(sharing)
        return sharing

    async def get_sharing(self, tenant_id: str, user_id: str) -> Sharing:
        sharing = await self._tenants.get_sharing(tenant_id, user_id)
        return sharing or Sharing(tenant_id, user_id, SharingLevel.off, None, self._clock())

    async def locate(self, who: Principal, user_id: str) -> PersonLocation:
        """Where the person may be seen, or NotFound("not available"), whatever the reason. Always audited."""
        now = self._clock()
        sharing = await self._tenants.get_sharing(who.tenant_id, user_id)
        location = None
        if sharing is not None and sharing.active(now):
            location = shared_location(sharing, await self._live.find_devices_of_user(who.tenant_id, user_id), now)
        await self._audit.append(AuditEntry(
            tenant_id=who.tenant_id, at=now, key_id=who.key_id, user_id=user_id,
            outcome="shared" if location else "not-available", level=location.level if location else None,
        ))
        if location is None:
            raise NotFound(NOT_AVAILABLE)
        return location

    async def audit(self, tenant_id: str, limit: int) -> list[AuditEntry]:
        return await self._audit.recent(tenant_id, limit)
