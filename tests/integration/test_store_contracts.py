"""One contract suite per port, run against the in-memory fake and the real adapter on the emulator."""
from __future__ import annotations

import asyncio

import pytest

from shared.adapters.cosmos import CosmosSiteModelStore
from shared.adapters.memory import InMemorySiteModelStore
from shared.domain.ports import PreconditionFailed
from shared.domain.site import parse_site_model
from shared.domain.tenancy import BuildingRef
from tests.conftest import unique_name
from tests.integration.conftest import emulator_database
from tests.support.sites import small_site, store_site


@pytest.fixture(params=["memory", "cosmos"])
async def site_store(request):
    if request.param == "memory":
        yield InMemorySiteModelStore()
        return
    async with emulator_database(request, "contract") as database:
        yield CosmosSiteModelStore(database)


async def test_site_store_round_trips_a_site(site_store):
    site = parse_site_model(small_site("hq"))
    etag = await store_site(site_store, "tenant-a", site)
    stored = await site_store.get(BuildingRef("tenant-a", "hq"))
    assert stored is not None and stored.etag == etag
    assert stored.site == site


async def test_site_store_missing_and_other_tenants_are_none(site_store):
    await store_site(site_store, "tenant-a", parse_site_model(small_site("hq")))
    assert await site_store.get(BuildingRef("tenant-a", "annex")) is None
    assert await site_store.get(BuildingRef("tenant-b", "hq")) is None
    assert await site_store.list_buildings("tenant-b") == []


async def test_site_store_two_tenants_with_the_same_building_id_keep_their_own(site_store):
    a_site = parse_site_model(small_site("hq"))
    b_data = small_site("hq")
    b_data["name"] = "Tenant B's HQ"
    a_etag = await store_site(site_store, "tenant-a", a_site)
    b_etag = await store_site(site_store, "tenant-b", parse_site_model(b_data))
    assert (await site_store.get(BuildingRef("tenant-a", "hq"))).site.name == "Headquarters"
    assert (await site_store.get(BuildingRef("tenant-b", "hq"))).site.name == "Tenant B's HQ"
    with pytest.raises(PreconditionFailed):  # A's version does not guard B's document
        await store_site(site_store, "tenant-b", a_site, if_match=a_etag)
    assert (await site_store.get(BuildingRef("tenant-b", "hq"))).etag == b_etag
    assert await site_store.list_all() == [BuildingRef("tenant-a", "hq"), BuildingRef("tenant-b", "hq")]


async def test_site_store_if_match_guards_against_stale_writes(site_store):
    first = await store_site(site_store, "tenant-a", parse_site_model(small_site("hq")))
    changed = small_site("hq")
    changed["name"] = "Headquarters (renovated)"
    second = await store_site(site_store, "tenant-a", parse_site_model(changed), if_match=first)
    assert second != first
    with pytest.raises(PreconditionFailed):
        await store_site(site_store, "tenant-a", parse_site_model(small_site("hq")), if_match=first)
    with pytest.raises(PreconditionFailed):
        await store_site(site_store, "tenant-a", parse_site_model(small_site("new")), if_match=first)
    assert (await site_store.get(BuildingRef("tenant-a", "hq"))).site.name == "Headquarters (renovated)"


async def test_site_store_concurrent_writers_with_the_same_etag_only_one_wins(site_store):
    etag = await store_site(site_store, "tenant-a", parse_site_model(small_site("hq")))
    variants = []
    for i in range(5):
        data = small_site("hq")
        data["name"] = f"variant {i}"
        variants.append(parse_site_model(data))
    results = await asyncio.gather(*(store_site(site_store, "tenant-a", v, if_match=etag) for v in variants),
                                   return_exceptions=True)
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(r, PreconditionFailed) for r in results if not isinstance(r, str))


async def test_site_store_lists_a_tenants_buildings(site_store):
    for building in ("b2", "b1"):
        await store_site(site_store, "tenant-a", parse_site_model(small_site(building)))
    await store_site(site_store, "tenant-b", parse_site_model(small_site("b3")))
    assert await site_store.list_buildings("tenant-a") == [BuildingRef("tenant-a", "b1"), BuildingRef("tenant-a", "b2")]


async def test_blob_store_put_get_overwrite(blob_store):
    store, container = blob_store
    await store.put(container, "a/1.json", b"{}", "application/json")
    await store.put(container, "a/1.json", b'{"v": 2}', "application/json")
    assert await store.get(container, "a/1.json") == b'{"v": 2}'
    assert await store.get(container, "a/missing.json") is None


async def test_blob_store_put_creates_a_missing_container(blob_store):
    # A deleted dead-letter container (or a restored account) must not turn dead letters into lost events.
    store, _container = blob_store
    fresh = unique_name("created")
    await store.put(fresh, "2026/11/26/letter.json", b"{}", "application/json")
    assert await store.get(fresh, "2026/11/26/letter.json") == b"{}"
    assert await store.list_names(fresh) == ["2026/11/26/letter.json"]


async def test_blob_store_lists_by_prefix_in_name_order(blob_store):
    store, container = blob_store
    for name in ("day=2/x", "day=1/b", "day=1/a", "other"):
        await store.put(container, name, b"x")
    assert await store.list_names(container, "day=1/") == ["day=1/a", "day=1/b"]
    assert await store.list_names(container) == ["day=1/a", "day=1/b", "day=2/x", "other"]
    assert await store.list_names(unique_name("absent")) == []
