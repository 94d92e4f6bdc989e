"""How site models are kept and re-checked: SiteDirectory compares versions and reads a model only when it changed;
the stored form (shared/adapters/site_documents.py) round-trips and refuses what it cannot read back."""
from __future__ import annotations

import gzip

import pytest

from shared.adapters import site_documents
from shared.adapters.memory import InMemorySiteModelStore
from shared.domain.ports import DependencyUnavailable, VersionedSite
from shared.domain.site import parse_site_model
from shared.domain.tenancy import BuildingRef
from shared.services.sites import SiteDirectory
from tests.support.sites import small_site, store_site

HQ, ANNEX = BuildingRef("tenant-a", "hq"), BuildingRef("tenant-a", "annex")
ANNEX_UUID = "0b5f2d1e-7c3a-4e29-9a41-5d6c8e7f9012"


class CountingStore(InMemorySiteModelStore):
    """The in-memory store, counting the model reads and version reads per building."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[BuildingRef] = []
        self.versions: list[BuildingRef] = []
        self.get_fails: Exception | None = None

    async def get(self, building: BuildingRef) -> VersionedSite | None:
        self.gets.append(building)
        if self.get_fails is not None:
            raise self.get_fails
        return await super().get(building)

    async def version(self, building: BuildingRef) -> str | None:
        self.versions.append(building)
        return await super().version(building)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store() -> CountingStore:
    store = CountingStore()
    for building in ("hq", "annex"):
        await store_site(store, "tenant-a", parse_site_model(small_site(building)))
    return store


async def test_a_refresh_reads_versions_only_and_no_model_that_did_not_change(store):
    clock = Clock()
    directory = SiteDirectory(store, refresh_s=60, monotonic=clock)
    first = {b.building_id: b for b in await directory.all("tenant-a")}
    assert sorted(store.gets) == [ANNEX, HQ] and store.versions == []  # the first load reads each model once
    store.gets.clear()
    for _ in range(3):
        clock.now += 61
        again = {b.building_id: b for b in await directory.all("tenant-a")}
        assert all(again[b] is first[b] for b in first)  # the same Building objects: no index rebuilt
    assert store.gets == [] and sorted(store.versions) == [ANNEX, ANNEX, ANNEX, HQ, HQ, HQ]


async def test_a_changed_version_reads_that_building_only(store):
    clock = Clock()
    directory = SiteDirectory(store, refresh_s=60, monotonic=clock)
    before = await directory.get(HQ)
    renamed = small_site("hq")
    renamed["name"] = "Renamed"
    await store_site(store, "tenant-a", parse_site_model(renamed))
    store.gets.clear()
    clock.now += 61
    after = await directory.get(HQ)
    assert store.gets == [HQ] and after.site.name == "Renamed" and after.etag != before.etag


async def test_a_building_gone_between_refreshes_is_dropped(store):
    clock = Clock()
    directory = SiteDirectory(store, refresh_s=60, monotonic=clock)
    await directory.all("tenant-a")
    original = store.version

    async def gone(building: BuildingRef) -> str | None:
        return None if building == ANNEX else await original(building)

    store.version = gone  # deleted after the listing
    clock.now += 61
    assert [b.building_id for b in await directory.all("tenant-a")] == ["hq"]


async def test_a_new_version_that_cannot_be_read_now_keeps_the_one_before_serving(store):
    clock = Clock()
    directory = SiteDirectory(store, refresh_s=60, monotonic=clock)
    before = await directory.get(HQ)
    renamed = small_site("hq")
    renamed["name"] = "Renamed"
    await store_site(store, "tenant-a", parse_site_model(renamed))
    store.get_fails = DependencyUnavailable("blob", "ServiceRequestError")
    clock.now += 61
    assert await directory.get(HQ) is before  # Blob storage down: the last version read
    store.get_fails = None
    clock.now += 61
    assert (await directory.get(HQ)).site.name == "Renamed"


async def test_a_first_load_that_cannot_read_a_model_is_an_outage():
    store = CountingStore()
    await store_site(store, "tenant-a", parse_site_model(small_site("hq")))
    store.get_fails = DependencyUnavailable("blob", "ServiceRequestError")
    with pytest.raises(DependencyUnavailable):
        await SiteDirectory(store).get(HQ)


def test_the_stored_form_round_trips_and_is_named_by_its_content():
    site = parse_site_model(small_site("hq"))
    encoded = site_documents.encode_site(site)
    assert site_documents.decode_site(encoded.compressed, encoded.version) == site
    assert encoded == site_documents.encode_site(parse_site_model(small_site("hq")))  # same model, same bytes
    assert encoded.blob_name(HQ) == f"sites/tenant-a/hq/{encoded.version}.json.gz"
    assert gzip.decompress(encoded.compressed) == site_documents.site_json(site)
    pointer = site_documents.pointer_document(HQ, site, encoded, previous_blob="sites/tenant-a/hq/old.json.gz")
    assert site_documents.pointed_blob(pointer) == (encoded.blob_name(HQ), encoded.version)
    assert site_documents.previous_blob(pointer) == "sites/tenant-a/hq/old.json.gz"
    assert {pointer["rawBytes"], pointer["compressedBytes"]} == {encoded.raw_bytes, len(encoded.compressed)}


@pytest.mark.parametrize("data", [b"", b"not gzip", gzip.compress(b"{not json"), gzip.compress(b'{"schema": 1}')])
def test_a_blob_that_is_no_model_is_a_value_error(data):
    with pytest.raises(ValueError):
        site_documents.decode_site(data)


def test_a_blob_of_another_version_is_a_value_error():
    encoded = site_documents.encode_site(parse_site_model(small_site("hq")))
    with pytest.raises(ValueError, match="does not hold version"):
        site_documents.decode_site(encoded.compressed, "0" * 64)


def test_a_pointer_of_unknown_form_is_in_the_error_family_of_unloadable_buildings():
    with pytest.raises(KeyError):
        site_documents.pointed_blob({"id": "hq", "tenantId": "tenant-a"})
    with pytest.raises(TypeError):
        site_documents.pointed_blob({"format": site_documents.POINTER_FORMAT, "blob": None, "version": "v"})


def test_inline_documents_are_capped_below_the_cosmos_item_limit(monkeypatch):
    site = parse_site_model(small_site("hq"))
    assert site_documents.inline_document(HQ, site)["site"]["buildingId"] == "hq"
    monkeypatch.setattr(site_documents, "INLINE_LIMIT_BYTES", 100)
    with pytest.raises(site_documents.SiteTooLarge, match="Blob storage"):
        site_documents.inline_document(HQ, site)
    assert issubclass(site_documents.SiteTooLarge, ValueError)


async def test_a_batch_goes_to_the_building_whose_beacons_it_heard_most_whatever_their_order():
    store = InMemorySiteModelStore()
    annex = small_site("annex")
    for number, beacon in enumerate(annex["beacons"]):
        beacon["id"] = f"{ANNEX_UUID}:200:{number}"
    await store_site(store, "tenant-a", parse_site_model(small_site("hq")))
    await store_site(store, "tenant-a", parse_site_model(annex))
    directory = SiteDirectory(store)
    hq_beacon = small_site("hq")["beacons"][0]["id"]
    annex_beacons = [f"{ANNEX_UUID}:200:{number}" for number in range(3)]
    heard = [hq_beacon, annex_beacons[0], f"{ANNEX_UUID}:999:9", hq_beacon, annex_beacons[1], annex_beacons[2]]
    chosen = await directory.building_for("tenant-a", heard)
    assert chosen is not None and chosen.ref == ANNEX  # three of the annex's against two of the headquarters'
    for tie in ([hq_beacon, annex_beacons[0]], [annex_beacons[0], hq_beacon]):
        chosen = await directory.building_for("tenant-a", tie)
        assert chosen is not None and chosen.ref == HQ  # a tie goes to the larger id, in either order
    assert await directory.building_for("tenant-a", [f"{ANNEX_UUID}:999:9"]) is None
    assert await directory.building_for("tenant-a", []) is None
    assert await directory.building_for("tenant-b", heard) is None  # another tenant's directory knows none of them
