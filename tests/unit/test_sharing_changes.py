"""Sharing changes at the service: a key's narrowing is judged against the person's choice as it is when written,
so a change the person makes meanwhile is never widened by it."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.memory import (
    InMemoryAuditLog,
    InMemoryLiveStateStore,
    InMemorySiteModelStore,
    InMemoryTenantDirectory,
)
from shared.domain.errors import Forbidden
from shared.domain.identity import signed_in_principal
from shared.domain.people import Sharing, SharingLevel
from shared.domain.tenancy import Principal, Scope
from shared.services.people import PeopleService
from shared.services.sites import SiteDirectory

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
INTEGRATOR = Principal("acme", "key-int", frozenset({Scope.people}))


class PersonChangesHerMindWhileRead(InMemoryTenantDirectory):
    """Between the key's read and its write, ann narrows her own sharing to `building`."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get_sharing(self, tenant_id: str, user_id: str):
        read = await super().get_sharing(tenant_id, user_id)
        self.reads += 1
        if self.reads == 1:
            await self.put_sharing(Sharing(tenant_id, user_id, SharingLevel.building, None, NOW))
        return read


async def test_a_keys_narrowing_raced_by_the_person_is_judged_again():
    tenants = PersonChangesHerMindWhileRead()
    await InMemoryTenantDirectory.put_sharing(tenants, Sharing("acme", "ann", SharingLevel.space, None, NOW))
    audit = InMemoryAuditLog()
    service = PeopleService(tenants, InMemoryLiveStateStore(), audit, SiteDirectory(InMemorySiteModelStore()), clock=lambda: NOW)
    # `floor` narrows the `space` the key read, but would widen the `building` ann chose meanwhile.
    with pytest.raises(Forbidden):
        await service.change_sharing(INTEGRATOR, "ann", SharingLevel.floor, None)
    assert (await tenants.get_sharing("acme", "ann")).level is SharingLevel.building
    assert await audit.recent_sharing_changes("acme") == []  # nothing changed, nothing logged


async def test_the_change_logged_is_the_one_written():
    tenants = PersonChangesHerMindWhileRead()
    await InMemoryTenantDirectory.put_sharing(tenants, Sharing("acme", "ann", SharingLevel.space, None, NOW))
    audit = InMemoryAuditLog()
    service = PeopleService(tenants, InMemoryLiveStateStore(), audit, SiteDirectory(InMemorySiteModelStore()), clock=lambda: NOW)
    await service.change_sharing(INTEGRATOR, "ann", SharingLevel.building, None)  # narrows both, retried once
    [change] = await audit.recent_sharing_changes("acme")
    assert (change.from_level, change.to_level, change.by_key_id) == (SharingLevel.building, SharingLevel.building,
                                                                      "key-int")
    assert tenants.reads == 2


async def test_the_persons_own_choice_is_written_as_it_is():
    tenants = InMemoryTenantDirectory()
    audit = InMemoryAuditLog()
    ticks = iter(range(100))
    service = PeopleService(tenants, InMemoryLiveStateStore(), audit, SiteDirectory(InMemorySiteModelStore()),
                            clock=lambda: NOW + timedelta(seconds=next(ticks)))
    ann = signed_in_principal("acme", "ann")
    await service.change_sharing(ann, "ann", SharingLevel.space, None)
    await service.change_sharing(ann, "ann", SharingLevel.floor, None)
    await service.change_sharing(ann, "ann", SharingLevel.space, None)
    assert [(c.from_level, c.to_level, c.by_user_id) for c in await audit.recent_sharing_changes("acme")] == [
        (SharingLevel.floor, SharingLevel.space, "ann"), (SharingLevel.space, SharingLevel.floor, "ann"),
        (None, SharingLevel.space, "ann")]
    with pytest.raises(Forbidden):
        await service.change_sharing(ann, "bob", SharingLevel.off, None)
