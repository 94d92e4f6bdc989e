"""One building can never break its tenant: a building mapped without beacons, one reusing another's beacon ids and
one whose stored model no longer loads each affect that building only (in-memory adapters, through FastAPI)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.site import SiteModel
from shared.domain.tenancy import BuildingRef
from shared.services import sites as sites_module
from shared.services.sites import build_building
from tests.functions.test_query_api import new_tenant
from tests.support.batches import BEACON_A, sdk_batch
from tests.support.sites import small_site

NOW = datetime.now(UTC)


@pytest.fixture
async def acme(api):
    keys = await new_tenant(api, "acme")
    assert (await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=keys["admin"])).status_code == 201
    return keys


def mapped_only(building_id: str) -> dict:
    site = small_site(building_id)
    site["beacons"] = []
    return site


async def assert_building_works(api, keys, building_id: str) -> None:
    read = keys["read"]
    assert (await api.get(f"/api/v1/buildings/{building_id}/spaces", headers=read)).status_code == 200
    assert (await api.get(f"/api/v1/buildings/{building_id}/occupancy", headers=read)).status_code == 200
    free = await api.get(f"/api/v1/buildings/{building_id}/free-rooms", params={"near": "k-0"}, headers=read)
    assert free.status_code == 200 and [r["id"] for r in free.json()["items"]] == ["r-oak"]
    route = await api.get(f"/api/v1/buildings/{building_id}/route", params={"from": "r-oak", "to": "o-1"},
                          headers=read)
    assert route.status_code == 200 and route.json()["instructions"]


async def test_a_building_without_beacons_is_mapped_not_positioned_and_the_tenant_keeps_working(api, acme,
                                                                                              memory_context):
    saved = await api.put("/api/v1/buildings/annex", json=mapped_only("annex"), headers=acme["admin"])
    assert saved.status_code == 201, saved.text
    await assert_building_works(api, acme, "annex")  # rooms, routes and free rooms before a single beacon
    await assert_building_works(api, acme, "hq")
    listed = (await api.get("/api/v1/buildings", headers=acme["read"])).json()
    assert {(b["buildingId"], b["beacons"]) for b in listed} == {("hq", 3), ("annex", 0)}
    health = await api.get("/api/v1/buildings/annex/beacons/health", headers=acme["read"])
    assert health.status_code == 200 and health.json() == {"beacons": [], "silent": 0, "driftFlagged": 0}
    posted = await api.post("/api/v1/sightings", json=sdk_batch(NOW, readings=[(BEACON_A, -60)]),
                            headers=acme["ingest"])
    assert posted.status_code == 202 and posted.json()["accepted"] == 1  # hq's beacon: positioned as before


async def test_beacon_ids_of_another_building_of_the_tenant_are_refused_naming_them(api, acme, memory_context):
    clash = small_site("annex")
    clash["beacons"][0]["x"] = 12  # same beacon id as hq's first beacon, somewhere else
    refused = await api.put("/api/v1/buildings/annex", json=clash, headers=acme["admin"])
    assert refused.status_code == 409
    body = refused.json()
    assert body["buildingId"] == "hq" and body["beacons"] == sorted(b["id"] for b in small_site("hq")["beacons"])
    assert "hq" in body["detail"] and refused.headers["content-type"].startswith("application/problem+json")
    assert (await api.get("/api/v1/buildings/annex", headers=acme["read"])).status_code == 404
    await assert_building_works(api, acme, "hq")
    # Replacing hq itself with its own beacons is no clash; another tenant may use the same ids.
    assert (await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=acme["admin"])).status_code == 200
    globex = await new_tenant(api, "globex")
    assert (await api.put("/api/v1/buildings/annex", json=clash, headers=globex["admin"])).status_code == 201


async def test_a_stored_site_that_no_longer_loads_affects_only_that_building(api, acme, memory_context):
    assert (await api.put("/api/v1/buildings/annex", json=mapped_only("annex"), headers=acme["admin"])).status_code == 201
    broken = BuildingRef("acme", "annex")
    store = memory_context.site_models
    original_get = store.get

    async def get(building: BuildingRef):
        if building == broken:  # what a document edited by hand into an invalid model reads as
            SiteModel.model_validate({"schema": "site/v1", "buildingId": "annex"})
        return await original_get(building)

    store.get = get
    memory_context.sites.invalidate("acme")
    answer = await api.get("/api/v1/buildings/annex/spaces", headers=acme["read"])
    assert answer.status_code == 503 and answer.json()["buildingId"] == "annex"
    assert "annex" in answer.json()["detail"]
    await assert_building_works(api, acme, "hq")
    assert [b["buildingId"] for b in (await api.get("/api/v1/buildings", headers=acme["read"])).json()] == ["hq"]
    posted = await api.post("/api/v1/sightings", json=sdk_batch(NOW), headers=acme["ingest"])
    assert posted.status_code == 202


async def test_a_site_whose_positioning_index_fails_is_refused_and_never_half_saved(api, acme, monkeypatch):
    def refuse(site, **options):
        raise ValueError("beacon grid is degenerate")

    monkeypatch.setattr(sites_module.SiteIndex, "from_site_model", refuse)
    refused = await api.put("/api/v1/buildings/annex", json=small_site("annex"), headers=acme["admin"])
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"field": "beacons", "message": "positioning index failed: beacon grid is "
                                                                        "degenerate"}]
    assert (await api.get("/api/v1/buildings/annex", headers=acme["read"])).status_code == 404


def test_a_building_whose_index_cannot_be_built_is_mapped_not_positioned(monkeypatch):
    from shared.domain.site import parse_site_model

    site = parse_site_model(small_site("hq"))
    assert build_building(BuildingRef("acme", "hq"), site, "e1").positioned

    def refuse(site, **options):
        raise ValueError("no grid")

    monkeypatch.setattr(sites_module.SiteIndex, "from_site_model", refuse)
    building = build_building(BuildingRef("acme", "hq"), site, "e1")
    assert not building.positioned and building.positioning_problem == "positioning index failed: no grid"
