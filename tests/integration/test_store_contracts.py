"""One contract suite per port, run against the in-memory fake and the real adapter on the emulator."""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.storage.blob.aio import BlobServiceClient

from devkit.benchmarks.queries import big_building
from devkit.emulators.launcher import azurite_connection_string, free_port
from shared.adapters import site_documents
from shared.adapters.blob import AzureBlobStore, ensure_blob_containers
from shared.adapters.cosmos import CosmosSiteModelStore
from shared.adapters.memory import InMemorySiteModelStore
from shared.domain.ports import DependencyUnavailable, PreconditionFailed
from shared.domain.site import parse_site_model
from shared.domain.tenancy import BuildingRef
from shared.services.sites import SiteDirectory, SiteUnavailable
from tests.conftest import unique_name
from tests.integration.conftest import emulator_database
from tests.support.sites import small_site, store_site


@contextlib.asynccontextmanager
async def azurite_container(request) -> AsyncIterator[tuple[AzureBlobStore, str]]:
    """A blob container of the test's own on the session's Azurite, deleted afterwards."""
    emulator = request.getfixturevalue("azurite")
    container = unique_name("sites")
    async with BlobServiceClient.from_connection_string(emulator.connection_string) as service:
        await ensure_blob_containers(service, [container])
        try:
            yield AzureBlobStore(service), container
        finally:
            await service.delete_container(container)


@dataclass
class BlobBackedStore:
    """The Cosmos store as the app wires it (models in Blob storage) and what it stands on, for the tests that look
    underneath."""

    store: CosmosSiteModelStore
    documents: Any  # the `buildings` container
    blobs: AzureBlobStore
    container: str

    async def document(self, building: BuildingRef) -> dict:
        return await self.documents.read_item(building.building_id, partition_key=building.tenant_id)

    async def blob_names(self, building: BuildingRef) -> list[str]:
        return await self.blobs.list_names(self.container, site_documents.blob_prefix(building))


@pytest.fixture
async def blob_backed(request) -> AsyncIterator[BlobBackedStore]:
    async with emulator_database(request, "sites") as database, azurite_container(request) as (blobs, container):
        store = CosmosSiteModelStore(database, blobs=blobs, blob_container=container)
        yield BlobBackedStore(store, database.get_container_client("buildings"), blobs, container)


@pytest.fixture(params=["memory", "cosmos", "cosmos-inline"])
async def site_store(request):
    """The in-memory fake; Cosmos with the models in Blob storage (Azurite), as wired; Cosmos alone (inline)."""
    if request.param == "memory":
        yield InMemorySiteModelStore()
        return
    if request.param == "cosmos-inline":
        async with emulator_database(request, "contract") as database:
            yield CosmosSiteModelStore(database)
        return
    async with emulator_database(request, "contract") as database, azurite_container(request) as (blobs, container):
        yield CosmosSiteModelStore(database, blobs=blobs, blob_container=container)


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


async def test_site_store_version_is_the_etag_and_changes_on_put(site_store):
    hq = BuildingRef("tenant-a", "hq")
    assert await site_store.version(hq) is None
    first = await store_site(site_store, "tenant-a", parse_site_model(small_site("hq")))
    assert await site_store.version(hq) == first == (await site_store.get(hq)).etag
    changed = small_site("hq")
    changed["name"] = "Headquarters (renovated)"
    second = await store_site(site_store, "tenant-a", parse_site_model(changed), if_match=first)
    assert await site_store.version(hq) == second != first
    assert await site_store.version(BuildingRef("tenant-b", "hq")) is None


# ----------------------------------------------------------------------------------------- models in Blob storage
def tower(floors: int) -> Any:
    return parse_site_model(big_building(floors))


async def test_a_model_larger_than_a_cosmos_item_round_trips_through_blob_storage(blob_backed):
    site = tower(13)
    raw = site_documents.site_json(site)
    assert len(raw) > 2 * 1024 * 1024  # more than Cosmos takes in one item
    ref = BuildingRef("tenant-a", site.building_id)
    etag = await blob_backed.store.put(ref, site)
    stored = await blob_backed.store.get(ref)
    assert stored is not None and stored.etag == etag and stored.site == site
    document = await blob_backed.document(ref)
    assert len(json.dumps(document)) < 1024 and "site" not in document
    assert document["rawBytes"] == len(raw) and document["spaces"] == len(site.spaces)
    assert document["floors"] == 13 and document["name"] == site.name
    [name] = await blob_backed.blob_names(ref)
    assert name == document["blob"] == f"sites/tenant-a/{site.building_id}/{document['version']}.json.gz"
    blob = await blob_backed.blobs.get(blob_backed.container, name)
    assert len(blob) == document["compressedBytes"] < len(raw) / 5 and gzip.decompress(blob) == raw


async def test_a_store_without_blob_storage_refuses_a_model_too_large_to_keep_inline(request):
    site = tower(13)
    async with emulator_database(request, "inline") as database:
        store = CosmosSiteModelStore(database)
        with pytest.raises(site_documents.SiteTooLarge, match="Blob storage"):
            await store.put(BuildingRef("tenant-a", site.building_id), site)
        assert await store.list_buildings("tenant-a") == []


async def test_etag_conditions_hold_over_blob_storage_and_a_stale_write_leaves_the_pointer_whole(blob_backed):
    store, hq = blob_backed.store, BuildingRef("tenant-a", "hq")
    first = await store.put(hq, parse_site_model(small_site("hq")))
    renamed = small_site("hq")
    renamed["name"] = "Renamed"
    second = await store.put(hq, parse_site_model(renamed), if_match=first)
    stale = small_site("hq")
    stale["name"] = "Stale"
    with pytest.raises(PreconditionFailed):
        await store.put(hq, parse_site_model(stale), if_match=first)
    with pytest.raises(PreconditionFailed):  # a condition on a building that does not exist
        await store.put(BuildingRef("tenant-a", "new"), parse_site_model(small_site("new")), if_match=second)
    current = await store.get(hq)
    assert current.etag == second and current.site.name == "Renamed"
    # The refused write's blob went first: an orphan next to the two kept versions, never pointed at.
    document = await blob_backed.document(hq)
    assert len(await blob_backed.blob_names(hq)) == 3 and document["blob"] in await blob_backed.blob_names(hq)


async def test_saving_keeps_the_current_and_the_previous_version_and_drops_older_ones(blob_backed):
    store, hq = blob_backed.store, BuildingRef("tenant-a", "hq")
    versions = []
    for i in range(4):
        data = small_site("hq")
        data["name"] = f"version {i}"
        await store.put(hq, parse_site_model(data))
        versions.append((await blob_backed.document(hq))["blob"])
    assert await blob_backed.blob_names(hq) == sorted(versions[-2:])
    assert (await blob_backed.document(hq))["previousBlob"] == versions[-2]
    again = small_site("hq")
    again["name"] = "version 3"  # the same model again: the same blob, and its predecessor stays
    etag = await store.put(hq, parse_site_model(again))
    assert await blob_backed.blob_names(hq) == sorted(versions[-2:])
    assert (await blob_backed.document(hq))["previousBlob"] == versions[-2]
    assert (await store.get(hq)).etag == etag


async def test_a_document_written_by_older_code_reads_and_moves_to_blob_storage_on_save(blob_backed):
    hq = BuildingRef("tenant-a", "hq")
    site = parse_site_model(small_site("hq"))
    old = await blob_backed.documents.upsert_item(
        {"id": "hq", "tenantId": "tenant-a", "site": site.model_dump(mode="json", by_alias=True)})
    stored = await blob_backed.store.get(hq)
    assert stored.site == site and stored.etag == old["_etag"] == await blob_backed.store.version(hq)
    etag = await blob_backed.store.put(hq, site, if_match=old["_etag"])
    document = await blob_backed.document(hq)
    assert "site" not in document and document["format"] == site_documents.POINTER_FORMAT
    assert document["previousBlob"] is None and await blob_backed.blob_names(hq) == [document["blob"]]
    assert (await blob_backed.store.get(hq)) == type(stored)(site, etag)


async def test_a_missing_or_corrupt_blob_makes_that_building_unavailable_not_the_others(blob_backed):
    store = blob_backed.store
    for building in ("hq", "annex", "lab"):
        await store.put(BuildingRef("tenant-a", building), parse_site_model(small_site(building)))
    annex, lab = BuildingRef("tenant-a", "annex"), BuildingRef("tenant-a", "lab")
    [annex_blob] = await blob_backed.blob_names(annex)
    assert await blob_backed.blobs.delete(blob_backed.container, annex_blob)
    [lab_blob] = await blob_backed.blob_names(lab)
    await blob_backed.blobs.put(blob_backed.container, lab_blob, b"not gzip at all")
    with pytest.raises(KeyError):
        await store.get(annex)
    with pytest.raises(ValueError):
        await store.get(lab)
    directory = SiteDirectory(store)
    assert [b.building_id for b in await directory.all("tenant-a")] == ["hq"]
    for ref in (annex, lab):
        with pytest.raises(SiteUnavailable):
            await directory.get(ref)
    assert (await directory.get(BuildingRef("tenant-a", "hq"))).positioned


async def test_a_blob_holding_another_version_than_its_name_is_refused(blob_backed):
    store, hq = blob_backed.store, BuildingRef("tenant-a", "hq")
    await store.put(hq, parse_site_model(small_site("hq")))
    [name] = await blob_backed.blob_names(hq)
    other = site_documents.encode_site(parse_site_model(small_site("hq-other")))
    await blob_backed.blobs.put(blob_backed.container, name, other.compressed)
    with pytest.raises(ValueError, match="does not hold version"):
        await store.get(hq)


async def test_blob_storage_down_is_a_dependency_outage_and_versions_still_read(blob_backed, request):
    hq = BuildingRef("tenant-a", "hq")
    etag = await blob_backed.store.put(hq, parse_site_model(small_site("hq")))
    database = blob_backed.store._database  # the same database, with Blob storage nobody listens on
    async with BlobServiceClient.from_connection_string(azurite_connection_string(free_port()),
                                                        retry_total=0) as nowhere:
        store = CosmosSiteModelStore(database, blobs=AzureBlobStore(nowhere), blob_container=blob_backed.container)
        assert await store.version(hq) == etag  # the pointer alone: no Blob storage needed
        with pytest.raises(DependencyUnavailable):
            await store.get(hq)
        with pytest.raises(DependencyUnavailable):
            await store.put(hq, parse_site_model(small_site("hq")))
    assert (await blob_backed.store.get(hq)).etag == etag  # a save that could not write its blob wrote nothing


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
