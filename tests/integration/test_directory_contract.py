"""Tenant directory and audit log contract: in-memory fake and Cosmos on the emulator."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.adapters.cosmos_directory import CosmosAuditLog, CosmosTenantDirectory
from shared.adapters.memory import InMemoryAuditLog, InMemoryTenantDirectory
from shared.domain.people import AuditEntry, Sharing, SharingLevel, Tenant
from shared.domain.ports import AlreadyExists
from tests.integration.conftest import emulator_database

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["memory", "cosmos"])
async def stores(request):
    if request.param == "memory":
        yield InMemoryTenantDirectory(), InMemoryAuditLog()
        return
    async with emulator_database(request, "directory") as database:
        yield CosmosTenantDirectory(database), CosmosAuditLog(database)


async def test_tenants_are_created_once_and_listed(stores):
    directory, _ = stores
    await directory.create_tenant(Tenant("acme", "Acme", T0))
    await directory.create_tenant(Tenant("globex", "Globex", T0))
    with pytest.raises(AlreadyExists):
        await directory.create_tenant(Tenant("acme", "Acme again", T0))
    assert (await directory.get_tenant("acme")).name == "Acme"
    assert await directory.get_tenant("initech") is None
    assert [t.tenant_id for t in await directory.list_tenants()] == ["acme", "globex"]


async def test_sharing_is_per_tenant_and_replaced(stores):
    directory, _ = stores
    first = Sharing("acme", "ann@acme.example", SharingLevel.floor, T0 + timedelta(hours=8), T0)
    await directory.put_sharing(first)
    assert await directory.get_sharing("acme", "ann@acme.example") == first
    assert await directory.get_sharing("globex", "ann@acme.example") is None
    second = Sharing("acme", "ann@acme.example", SharingLevel.off, None, T0 + timedelta(minutes=1))
    await directory.put_sharing(second)
    assert await directory.get_sharing("acme", "ann@acme.example") == second


async def test_audit_entries_newest_first_per_tenant(stores):
    _, audit = stores
    for minute in (1, 3, 2):
        await audit.append(AuditEntry("acme", T0 + timedelta(minutes=minute), "key1", "ann", "shared",
                                      SharingLevel.space))
    await audit.append(AuditEntry("globex", T0, "key9", "bob", "not-available"))
    entries = await audit.recent("acme", limit=2)
    assert [e.at.minute for e in entries] == [3, 2]
    assert entries[0].level is SharingLevel.space
    assert [e.user_id for e in await audit.recent("globex")] == ["bob"]
