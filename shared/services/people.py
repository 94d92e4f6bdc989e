"""The co-worker finder: people choose their sharing; lookups answer only what they allowed, and are audited.

Only the person widens their own sharing (signed in with a bearer token); an integrator's key may narrow it or
turn it off. Every change and every lookup is in the tenant's audit log, naming who did it.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar

from shared.domain.errors import ContractViolation, FieldError, Forbidden, NotFound
from shared.domain.people import (
    SEEN_WITHIN,
    AuditEntry,
    PersonLocation,
    Sharing,
    SharingChange,
    SharingLevel,
    narrows,
    shared_location,
)
from shared.domain.ports import AuditLog, LiveStateStore, PreconditionFailed, TenantDirectory
from shared.domain.tenancy import BuildingRef, Principal, Scope
from shared.services.common import Clock, utc_now
from shared.services.sites import SiteDirectory

logger = logging.getLogger(__name__)
T = TypeVar("T")
NOT_AVAILABLE = "not available"
ONLY_NARROWER = "an API key may only narrow a person's sharing or turn it off: only the person widens it"
ONLY_YOUR_OWN = "a signed-in person changes only their own sharing"
WRITE_ATTEMPTS = 3  # a key's narrowing raced by the person's own change is judged again this many times
MAX_PEOPLE_LISTED = 1000
STORE_CALLS_AT_ONCE = 16  # a listing's reads and audit writes in flight together: bounded, not one per person


class PeopleService:
    def __init__(self, tenants: TenantDirectory, live: LiveStateStore, audit: AuditLog, sites: SiteDirectory,
                 clock: Clock = utc_now) -> None:
        self._tenants = tenants
        self._live = live
        self._audit = audit
        self._sites = sites
        self._clock = clock

    async def change_sharing(self, who: Principal, user_id: str, level: SharingLevel,
                             until: datetime | None) -> Sharing:
        """Set the person's sharing. The person may choose anything; a key holding `people` (or `admin`) may
        only narrow it (Forbidden otherwise, whatever the current choice is). Audited."""
        now = self._clock()
        if until is not None and until <= now and level is not SharingLevel.off:
            raise ContractViolation([FieldError("until", "must be in the future (or omitted)")])
        if who.user_id is not None:
            if who.user_id != user_id or not who.allows(Scope.people_as_self):
                raise Forbidden(ONLY_YOUR_OWN)
        elif not who.allows(Scope.people):
            raise Forbidden("this key does not have the 'people' scope")
        sharing = Sharing(who.tenant_id, user_id, level, until, now)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            current = await self._tenants.get_sharing(who.tenant_id, user_id)
            # The person's own choice is written as it is. A key's narrowing is judged against the choice as read
            # and written only over that version: were the person to change it meanwhile, judged again.
            conditional = who.user_id is None and level is not SharingLevel.off
            if conditional and not narrows(current, level, until, now):
                raise Forbidden(ONLY_NARROWER)
            try:
                await self._tenants.put_sharing(sharing, if_match=current.etag if conditional and current else None)
                break
            except PreconditionFailed:
                if attempt == WRITE_ATTEMPTS:
                    raise
        change = SharingChange(
            tenant_id=who.tenant_id, at=now, user_id=user_id, by_user_id=who.user_id,
            by_key_id=None if who.user_id is not None else who.key_id,
            from_level=current.level if current else None, from_until=current.until if current else None,
            to_level=level, to_until=until,
        )
        try:
            await self._audit.append_sharing_change(change)
        except Exception:
            # Written but not in the tenant's log: the app's log keeps it, so it is still found.
            logger.exception("sharing change of %s in tenant %s (%s -> %s, by %s) could not be audited", user_id,
                             who.tenant_id, change.from_level, level.value, who.user_id or who.key_id)
            raise
        return sharing

    async def own_sharing(self, who: Principal) -> Sharing:
        """The signed-in person's own choice (off when never set)."""
        if who.user_id is None:
            raise Forbidden("sign in: this is the signed-in person's own sharing")
        return await self._sharing(who.tenant_id, who.user_id)

    async def sharing_for_admin(self, who: Principal, user_id: str) -> Sharing:
        """Anyone's choice, for the tenant's admin only (an integrator's key learns levels only through lookups
        of people who share)."""
        if Scope.admin not in who.scopes:
            raise Forbidden("only the tenant's admin key reads another person's sharing")
        return await self._sharing(who.tenant_id, user_id)

    async def _sharing(self, tenant_id: str, user_id: str) -> Sharing:
        sharing = await self._tenants.get_sharing(tenant_id, user_id)
        return sharing or Sharing(tenant_id, user_id, SharingLevel.off, None, self._clock())

    async def locate(self, who: Principal, user_id: str) -> PersonLocation:
        """Where the person may be seen, or NotFound("not available"), whatever the reason. Always audited."""
        now = self._clock()
        sharing = await self._tenants.get_sharing(who.tenant_id, user_id)
        # The devices are read whatever the sharing says: "never opted in", "off", "expired" and "not seen" do
        # the same store work, so their timing does not tell them apart.
        devices = await self._live.find_devices_of_user(who.tenant_id, user_id)
        location = shared_location(sharing, user_id, devices, now)
        await self._audit.append(AuditEntry(
            tenant_id=who.tenant_id, at=now, key_id=None if who.user_id is not None else who.key_id,
            user_id=user_id, outcome="shared" if location else "not-available",
            level=location.level if location else None, by_user_id=who.user_id,
        ))
        if location is None:
            raise NotFound(NOT_AVAILABLE)
        return location

    async def in_building(self, who: Principal, building: BuildingRef, limit: int) -> list[PersonLocation]:
        """The people who share where they are and whose phone was last heard in `building`, each exactly as a
        lookup of them would answer (the level they chose; their latest phone in any building decides), sorted
        by user id, at most `limit`. Nobody who does not share is listed. Every person listed is audited as a
        lookup by `who`; NotFound for a building the tenant does not have."""
        if await self._sites.get(building) is None:
            raise NotFound(f"no building '{building.building_id}'")
        now = self._clock()
        heard_here = sorted({d.user_id for d in await self._live.list_devices(building)
                             if d.user_id is not None and now - d.last_seen <= SEEN_WITHIN})
        sharings = await self._bounded([self._tenants.get_sharing(who.tenant_id, u) for u in heard_here])
        sharing_now = [(u, s) for u, s in zip(heard_here, sharings, strict=True) if s is not None and s.active(now)]
        devices = await self._bounded([self._live.find_devices_of_user(who.tenant_id, u) for u, _ in sharing_now])
        located = [shared_location(sharing, user_id, found, now)
                   for (user_id, sharing), found in zip(sharing_now, devices, strict=True)]
        here = [p for p in located if p is not None and p.building_id == building.building_id][:limit]
        await self._bounded([self._audit.append(AuditEntry(
            tenant_id=who.tenant_id, at=now, key_id=None if who.user_id is not None else who.key_id,
            user_id=p.user_id, outcome="shared", level=p.level, by_user_id=who.user_id)) for p in here])
        return here

    @staticmethod
    async def _bounded(calls: list[Awaitable[T]]) -> list[T]:
        at_once = asyncio.Semaphore(STORE_CALLS_AT_ONCE)

        async def one(call: Awaitable[T]) -> T:
            async with at_once:
                return await call
        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def audit(self, tenant_id: str, limit: int) -> list[AuditEntry]:
        return await self._audit.recent(tenant_id, limit)

    async def sharing_changes(self, tenant_id: str, limit: int) -> list[SharingChange]:
        return await self._audit.recent_sharing_changes(tenant_id, limit)
