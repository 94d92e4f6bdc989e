"""Tenant directory and audit log contract: in-memory fake and Cosmos on the emulator."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.cosmos_directory import CosmosAuditLog, CosmosTenantDirectory
from shared.adapters.memory import InMemoryAuditLog, InMemoryTenantDirectory
from shared.domain.identity import IdentityConfig
from shared.domain.people import AuditEntry, Sharing, SharingChange, SharingLevel, Tenant
from shared.domain.ports import AlreadyExists, PreconditionFailed
from tests.integration.conftest import emulator_database

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


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


async def test_identity_configuration_per_tenant(stores):
    directory, _ = stores
    assert await directory.get_identity("acme") is None
    config = IdentityConfig("acme", "https://login.microsoftonline.com/tid/v2.0", "api://spaceflow", None, "oid", T0)
    await directory.put_identity(config)
    assert await directory.get_identity("acme") == config
    assert await directory.get_identity("globex") is None
    moved = IdentityConfig("acme", "https://idp.example.com/", "api://x", "https://idp.example.com/keys", "sub",
                           T0 + timedelta(minutes=1), dashboard_client_id="spaceflow-dashboard",
                           dashboard_scope="api://x/access_as_user")
    await directory.put_identity(moved)
    assert await directory.get_identity("acme") == moved
    assert await directory.delete_identity("acme") is True
    assert await directory.delete_identity("acme") is False
    assert await directory.get_identity("acme") is None


async def test_an_issuer_is_claimed_by_one_tenant_at_a_time(stores):
    directory, _ = stores
    await directory.create_tenant(Tenant("acme", "Acme", T0))
    issuer = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
    assert await directory.issuer_owner(issuer) is None
    await directory.claim_issuer(issuer, "acme")
    await directory.claim_issuer(issuer, "acme")  # again by the holder: fine
    with pytest.raises(AlreadyExists):
        await directory.claim_issuer(issuer, "globex")
    assert await directory.issuer_owner(issuer) == "acme"
    await directory.release_issuer(issuer, "globex")  # not the holder: nothing happens
    assert await directory.issuer_owner(issuer) == "acme"
    await directory.release_issuer(issuer, "acme")
    assert await directory.issuer_owner(issuer) is None
    await directory.claim_issuer(issuer, "globex")
    assert await directory.issuer_owner(issuer) == "globex"
    # Claims live beside the tenants, never among them.
    assert [t.tenant_id for t in await directory.list_tenants()] == ["acme"]


async def test_sharing_changes_and_lookups_are_kept_apart_newest_first(stores):
    _, audit = stores
    until = T0 + timedelta(hours=8)
    for minute, (before, after) in enumerate([(None, SharingLevel.space), (SharingLevel.space, SharingLevel.floor)]):
        await audit.append_sharing_change(SharingChange(
            "acme", T0 + timedelta(minutes=minute), "ann", "ann" if before is None else None,
            None if before is None else "key1", before, until if before else None, after, until))
    await audit.append(AuditEntry("acme", T0, None, "ann", "shared", SharingLevel.floor, by_user_id="bob"))
    changes = await audit.recent_sharing_changes("acme")
    assert [(c.from_level, c.to_level) for c in changes] == [(SharingLevel.space, SharingLevel.floor),
                                                             (None, SharingLevel.space)]
    assert (changes[0].by_key_id, changes[0].by_user_id, changes[0].from_until) == ("key1", None, until)
    assert (changes[1].by_user_id, changes[1].by_key_id, changes[1].from_until) == ("ann", None, None)
    lookups = await audit.recent("acme")
    assert [(e.by_user_id, e.key_id) for e in lookups] == [("bob", None)]
    assert await audit.recent_sharing_changes("globex") == []


async def test_sharing_is_written_over_a_version_only_when_asked(stores):
    directory, _ = stores
    await directory.put_sharing(Sharing("acme", "ann", SharingLevel.space, None, T0))
    read = await directory.get_sharing("acme", "ann")
    assert read.etag
    await directory.put_sharing(Sharing("acme", "ann", SharingLevel.building, None, T0 + timedelta(minutes=1)))
    with pytest.raises(PreconditionFailed):  # what `read` was judged on has changed
        await directory.put_sharing(Sharing("acme", "ann", SharingLevel.floor, None, T0), if_match=read.etag)
    assert (await directory.get_sharing("acme", "ann")).level is SharingLevel.building
    current = await directory.get_sharing("acme", "ann")
    await directory.put_sharing(Sharing("acme", "ann", SharingLevel.off, None, T0), if_match=current.etag)
    assert (await directory.get_sharing("acme", "ann")).level is SharingLevel.off
    with pytest.raises(PreconditionFailed):
        await directory.put_sharing(Sharing("acme", "bob", SharingLevel.off, None, T0), if_match=current.etag)
