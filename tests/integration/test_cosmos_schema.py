"""A database or container that disappears under a running app (a restored backup, a deleted database): calls
re-create it and go on, or answer 503 naming it; never an unhandled 500. Against the Cosmos emulator."""
from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx
import pytest

from devkit.emulators.launcher import cosmos_aio_client
from devkit.local_settings import devkit_environment, load_local_settings
from functions.http_api import create_api
from shared.adapters import documents
from shared.adapters.cosmos import (
    BEACONS,
    COSMOS_CONTAINERS,
    DEVICES,
    SPACES,
    VISITS,
    CosmosApiKeyStore,
    CosmosSiteModelStore,
)
from shared.adapters.cosmos_directory import CosmosAuditLog, CosmosTenantDirectory
from shared.adapters.cosmos_live_state import CosmosLiveStateStore
from shared.adapters.cosmos_schema import CosmosSchema
from shared.adapters.cosmos_teams import CosmosTeamDirectory
from shared.domain.ports import DependencyUnavailable
from shared.domain.presence import Visit
from shared.domain.site import parse_site_model
from shared.domain.tenancy import Scope
from shared.settings import load_settings
from shared.wiring import build_context, get_context
from tests.conftest import unique_name
from tests.support.batches import sdk_batch
from tests.support.pipeline import HQ, IN_ROOM
from tests.support.sites import small_site, store_site

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
async def running(azurite, cosmos):
    """The real wiring on a database of its own, its HTTP API, and a direct client to break the database with."""
    env = {**devkit_environment(load_local_settings(), azurite.port, cosmos.port, environ={}),
           "COSMOS_DATABASE": unique_name("schema"), "DEADLETTER_CONTAINER": unique_name("deadletter"),
           "ANALYTICS_CONTAINER": unique_name("analytics")}
    settings = load_settings(env)
    context = await build_context(settings)
    api = create_api()
    api.dependency_overrides[get_context] = lambda: context
    admin = {"x-api-key": settings.admin_api_key}
    async with cosmos_aio_client(cosmos.port) as client, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api), base_url="http://app") as http:
        try:
            yield SimpleNamespace(context=context, http=http, admin=admin, client=client,
                                  database=settings.cosmos_database)
        finally:
            await context.close()
            await client.delete_database(settings.cosmos_database)


async def containers_of(client, database: str) -> set[str]:
    return {c["id"] async for c in client.get_database_client(database).list_containers()}


async def test_a_deleted_database_is_named_by_health_and_recreated_by_the_next_call(running):
    http, admin, client, database = running.http, running.admin, running.client, running.database
    first = await http.post("/api/v1/tenants", json={"tenantId": "acme", "name": "Acme"}, headers=admin)
    assert first.status_code == 201
    await client.delete_database(database)

    health = await http.get("/api/health")
    assert health.status_code == 503
    assert f"database '{database}' does not exist" in health.json()["dependencies"]["cosmos"]["detail"]
    created = await http.post("/api/v1/tenants", json={"tenantId": "acme", "name": "Acme"}, headers=admin)
    assert created.status_code == 201, created.text  # an empty database again: the tenant is new
    assert await containers_of(client, database) == {spec.name for spec in COSMOS_CONTAINERS}
    assert (await http.get("/api/health")).status_code == 200
    listed = await http.get("/api/v1/tenants", headers=admin)
    assert [t["tenantId"] for t in listed.json()] == ["acme"]


async def test_a_deleted_container_is_named_by_health_and_recreated_for_processing(running):
    context, http, client, database = running.context, running.http, running.client, running.database
    await store_site(context.site_models, "tenant-a", parse_site_model(small_site()))
    key, _ = await context.auth.mint_key("tenant-a", {Scope.ingest})
    await client.get_database_client(database).delete_container(DEVICES)

    health = await http.get("/api/health")
    assert health.status_code == 503
    assert f"container '{DEVICES}' of database '{database}' does not exist" in (
        health.json()["dependencies"]["cosmos"]["detail"])
    batch = sdk_batch(datetime.now(UTC), device="install-9", readings=IN_ROOM["r-oak"])
    assert (await http.post("/api/v1/sightings", json=batch, headers={"x-api-key": key})).status_code == 202
    await asyncio.wait_for(context.publisher.drain(), 30)
    assert (context.processing.processed, context.processing.lost, context.processing.dead_lettered) == (1, 0, 0)
    device = await client.get_database_client(database).get_container_client(DEVICES).read_item(
        "install-9", partition_key=HQ.key)
    assert documents.device_from_doc(device).has_seen(str(batch["batchId"]))
    assert (await http.get("/api/health")).status_code == 200


async def test_when_the_schema_cannot_be_recreated_calls_answer_503_naming_it(running, monkeypatch):
    http, admin, client, database = running.http, running.admin, running.client, running.database
    attempts = []

    async def forbidden(*args):  # what Azure answers an identity with data-plane roles only
        attempts.append(args)
        raise PermissionError("403 Forbidden")

    monkeypatch.setattr("shared.adapters.cosmos_schema.ensure_cosmos_schema", forbidden)
    await client.get_database_client(database).delete_container("tenants")
    answers = await asyncio.gather(*(
        http.post("/api/v1/tenants", json={"tenantId": f"t-{i:03d}", "name": "T"}, headers=admin)
        for i in range(20)))
    assert {a.status_code for a in answers} == {503}
    assert all(a.headers["content-type"].startswith("application/problem+json") for a in answers)
    assert all(f"container 'tenants' of database '{database}' does not exist" in a.json()["detail"]
               for a in answers)
    assert int(answers[0].headers["retry-after"]) >= 1
    assert len(attempts) == 1  # the storm waited for one attempt, then failed fast during the backoff


# Every Cosmos adapter, one call each into the container it uses, after that container was deleted.
ADAPTER_CALLS = {
    "buildings": lambda db: CosmosSiteModelStore(db).list_buildings("tenant-a"),
    "apikeys": lambda db: CosmosApiKeyStore(db).get(hashlib.sha256(b"no such key").hexdigest()),
    "tenants": lambda db: CosmosTenantDirectory(db).get_tenant("tenant-a"),
    "audit": lambda db: CosmosAuditLog(db).recent("tenant-a"),
    DEVICES: lambda db: CosmosLiveStateStore(db).get_device(HQ, "install-1"),
    SPACES: lambda db: CosmosLiveStateStore(db).list_spaces(HQ),
    VISITS: lambda db: CosmosLiveStateStore(db).save_visit(
        Visit("tenant-a", "hq", "r-oak", "install-1", T0, T0 + timedelta(minutes=5), None)),
    BEACONS: lambda db: CosmosLiveStateStore(db).list_beacon_health(HQ),
}


@pytest.mark.parametrize("container", sorted(ADAPTER_CALLS))
async def test_every_adapter_recreates_its_deleted_container(cosmos, container):
    async with cosmos_aio_client(cosmos.port) as client:
        name = unique_name("adapters")
        schema = CosmosSchema(client, name)
        await schema.ensure()
        try:
            await client.get_database_client(name).delete_container(container)
            await ADAPTER_CALLS[container](schema.database)  # no error: re-created, then the call went through
            assert container in await containers_of(client, name)
            assert schema.recreated == 1
        finally:
            await client.delete_database(name)


async def test_teams_recreate_the_tenants_container_and_a_missing_item_is_not_a_missing_container(cosmos):
    async with cosmos_aio_client(cosmos.port) as client:
        name = unique_name("adapters")
        schema = CosmosSchema(client, name)
        await schema.ensure()
        try:
            teams = CosmosTeamDirectory(schema.database)
            assert await teams.get_team("tenant-a", "no-such-team") is None
            assert schema.recreated == 0  # a missing item is only a missing item
            await client.get_database_client(name).delete_container("tenants")
            assert await teams.list_teams("tenant-a") == []
            assert schema.recreated == 1
        finally:
            await client.delete_database(name)


async def test_the_bootstrap_backs_off_and_tries_again_later(cosmos):
    now = [0.0]
    attempts = []

    async def flaky(*args):
        attempts.append(now[0])
        if len(attempts) < 3:
            raise PermissionError("403 Forbidden")
        from shared.adapters.cosmos import ensure_cosmos_schema

        await ensure_cosmos_schema(*args)

    async with cosmos_aio_client(cosmos.port) as client:
        name = unique_name("backoff")
        schema = CosmosSchema(client, name, bootstrap=flaky, monotonic=lambda: now[0])
        await CosmosSchema(client, name).ensure()
        tenants = CosmosTenantDirectory(schema.database)
        try:
            await client.get_database_client(name).delete_container("tenants")
            for expected_attempts, at in ((1, 0.0), (1, 0.5), (2, 1.0), (2, 2.5), (3, 3.0)):
                now[0] = at
                if expected_attempts < 3:
                    with pytest.raises(DependencyUnavailable, match="container 'tenants'"):
                        await tenants.get_tenant("tenant-a")
                else:
                    assert await tenants.get_tenant("tenant-a") is None  # re-created at last
                assert len(attempts) == expected_attempts, at
        finally:
            await client.delete_database(name)
