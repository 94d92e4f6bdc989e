"""A customer's own building through the HTTP API: IMDF in and out, rooms, routes and free rooms before any beacon,
beacons placed (JSON and CSV) and planned, GeoJSON for maps; bad archives answered 4xx naming what is wrong."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from devkit.import_imdf import archive_bytes
from shared.domain import space_kinds
from tests.functions.test_query_api import new_tenant
from tests.support.sites import small_site

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "imdf" / "demo-office"
ZIP = {"Content-Type": "application/zip"}


@pytest.fixture
async def acme(api):
    return await new_tenant(api, "acme")


@pytest.fixture(scope="module")
def demo_archive() -> bytes:
    return archive_bytes(DEMO)


async def post_imdf(api, keys, building: str, archive: bytes, **headers: str) -> httpx.Response:
    return await api.post(f"/api/v1/buildings/{building}/imdf", content=archive,
                          headers={**keys["admin"], **ZIP, **headers})


def rooms_of(site: dict) -> list[dict]:
    return [s for s in site["spaces"]
            if s["kind"] not in space_kinds.WALKABLE | space_kinds.NOT_OCCUPIABLE | space_kinds.VERTICAL]


async def test_an_imported_building_has_rooms_routes_and_free_rooms_before_any_beacon(api, acme, demo_archive):
    response = await post_imdf(api, acme, "imported", demo_archive)
    assert response.status_code == 201, response.text
    summary = response.json()
    assert response.headers["ETag"]
    assert summary["buildingId"] == "imported" and summary["floors"] == 2 and summary["beacons"] == 0
    assert summary["navigation"]["generated"] and summary["navigation"]["nodes"] > 0
    assert summary["navigation"]["edges"] >= summary["navigation"]["nodes"] - 1
    site = (await api.get("/api/v1/buildings/imported", headers=acme["read"])).json()
    assert summary["spaces"] == len(site["spaces"]) and summary["doors"] == len(site["doors"])
    rooms = rooms_of(site)
    assert len(rooms) > 10
    reachable = [r for r in rooms if r["id"] not in summary["unreachableSpaces"]]
    assert len(reachable) == len(rooms), summary["unreachableSpaces"]

    floors = sorted(site["floors"], key=lambda f: f["ordinal"])
    low = next(r for r in reachable if r["floor"] == floors[0]["id"])
    high = next(r for r in reachable if r["floor"] == floors[-1]["id"])
    route = await api.get("/api/v1/buildings/imported/route", params={"from": low["id"], "to": high["id"]},
                          headers=acme["read"])
    assert route.status_code == 200, route.text
    assert {leg["floor"] for leg in route.json()["legs"]} == {floors[0]["id"], floors[-1]["id"]}
    step_free = await api.get("/api/v1/buildings/imported/route",
                              params={"from": low["id"], "to": high["id"], "accessible": "true"}, headers=acme["read"])
    assert step_free.status_code == 200, step_free.text
    assert any("elevator" in line.lower() for line in step_free.json()["instructions"])

    free = await api.get("/api/v1/buildings/imported/free-rooms", params={"near": low["id"]}, headers=acme["read"])
    assert free.status_code == 200, free.text
    found = free.json()["items"]
    assert found, "rooms are free: nobody is in the building"
    assert [r["distanceM"] for r in found] == sorted(r["distanceM"] for r in found)


async def test_if_match_guards_a_reimport_and_if_none_match_a_first_one(api, acme, demo_archive):
    first = await post_imdf(api, acme, "hq2", demo_archive)
    assert first.status_code == 201
    again = await post_imdf(api, acme, "hq2", demo_archive, **{"If-None-Match": "*"})
    assert again.status_code == 412
    replaced = await post_imdf(api, acme, "hq2", demo_archive, **{"If-Match": first.headers["ETag"]})
    assert replaced.status_code == 200, replaced.text
    stale = await post_imdf(api, acme, "hq2", demo_archive, **{"If-Match": first.headers["ETag"]})
    assert stale.status_code == 412


async def test_export_then_import_gives_the_same_building(api, acme, demo_archive):
    assert (await post_imdf(api, acme, "one", demo_archive)).status_code == 201
    exported = await api.get("/api/v1/buildings/one/imdf", headers=acme["read"])
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    assert "manifest.json" in zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert (await post_imdf(api, acme, "two", exported.content)).status_code == 201
    one = (await api.get("/api/v1/buildings/one", headers=acme["read"])).json()
    two = (await api.get("/api/v1/buildings/two", headers=acme["read"])).json()
    for part in ("floors", "spaces", "doors", "amenities", "connectors", "navigation"):
        assert one[part] == two[part], part
    assert one["origin"] == two["origin"]


async def test_geojson_serves_one_floor_and_names_an_unknown_one(api, acme, demo_archive):
    assert (await post_imdf(api, acme, "map", demo_archive)).status_code == 201
    site = (await api.get("/api/v1/buildings/map", headers=acme["read"])).json()
    floor = site["floors"][0]["id"]
    response = await api.get("/api/v1/buildings/map/geojson", params={"floor": floor}, headers=acme["read"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/geo+json")
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    kinds = {f["properties"]["featureType"] for f in collection["features"]}
    assert {"floor", "space", "navNode", "navEdge"} <= kinds
    assert {f["properties"]["floor"] for f in collection["features"]} == {floor}
    spaces = [f for f in collection["features"] if f["properties"]["featureType"] == "space"]
    assert len(spaces) == sum(1 for s in site["spaces"] if s["floor"] == floor)
    ring = spaces[0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1], "GeoJSON rings are closed"
    unknown = await api.get("/api/v1/buildings/map/geojson", params={"floor": "nowhere"}, headers=acme["read"])
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "query.floor"


async def test_beacons_are_placed_later_as_json_or_csv(api, acme, demo_archive):
    created = await post_imdf(api, acme, "b", demo_archive)
    site = (await api.get("/api/v1/buildings/b", headers=acme["read"])).json()
    room = rooms_of(site)[0]
    (x0, y0), (x1, y1) = room["polygon"][0], room["polygon"][2]
    beacon = {"id": "f7826da6-4fa2-4e98-8024-bc5b71e0893e:9:1", "x": (x0 + x1) / 2, "y": (y0 + y1) / 2,
              "floor": room["floor"], "measuredPower": -59}
    placed = await api.put("/api/v1/buildings/b/beacons", json={"beacons": [beacon]},
                           headers={**acme["admin"], "If-Match": created.headers["ETag"]})
    assert placed.status_code == 200, placed.text
    assert placed.json()["beacons"] == 1
    stale = await api.put("/api/v1/buildings/b/beacons", json=[beacon],
                          headers={**acme["admin"], "If-Match": created.headers["ETag"]})
    assert stale.status_code == 412

    csv_text = ("id,x,y,floor,measuredPower\n"
                f"{beacon['id']},{beacon['x']},{beacon['y']},{beacon['floor']},-61\n"
                f"f7826da6-4fa2-4e98-8024-bc5b71e0893e:9:2,{beacon['x']},{beacon['y']},{beacon['floor']},-59\n")
    as_csv = await api.put("/api/v1/buildings/b/beacons", content=csv_text.encode(),
                           headers={**acme["admin"], "Content-Type": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    stored = (await api.get("/api/v1/buildings/b", headers=acme["read"])).json()
    assert [b["measuredPower"] for b in stored["beacons"]] == [-61, -59]
    assert stored["navigation"] == site["navigation"], "placing beacons keeps the map and its graph"

    bad_row = await api.put("/api/v1/buildings/b/beacons", content=b"id,x,y,floor,measuredPower\nb-1,east,2,f,-59\n",
                            headers={**acme["admin"], "Content-Type": "text/csv"})
    assert bad_row.status_code == 400 and bad_row.json()["errors"][0]["field"] == "line 2"
    outside = await api.put("/api/v1/buildings/b/beacons", json=[{**beacon, "x": 99_000}], headers=acme["admin"])
    assert outside.status_code == 400
    assert outside.json()["errors"][0]["field"].startswith("beacons[0]")
    missing = await api.put("/api/v1/buildings/nowhere/beacons", json=[beacon], headers=acme["admin"])
    assert missing.status_code == 404


async def test_a_beacon_plan_covers_every_room_and_predicts_accuracy(api, acme, demo_archive):
    assert (await post_imdf(api, acme, "p", demo_archive)).status_code == 201
    response = await api.post("/api/v1/buildings/p/beacon-plan", json={"minBeaconsPerRoom": 3, "minRssiDbm": -85},
                              headers=acme["admin"])
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["existing"] is None
    assert plan["beacons"] and plan["planned"]["roomsShort"] == []
    assert plan["planned"]["roomsMeetingTarget"] == plan["planned"]["rooms"]
    assert 0.5 <= plan["planned"]["predictedRoomAccuracy"] <= 1.0
    stricter = await api.post("/api/v1/buildings/p/beacon-plan", json={"minBeaconsPerRoom": 4, "minRssiDbm": -75},
                              headers=acme["admin"])
    assert len(stricter.json()["beacons"]) > len(plan["beacons"])
    bad = await api.post("/api/v1/buildings/p/beacon-plan", json={"minBeaconsPerRoom": 0}, headers=acme["admin"])
    assert bad.status_code == 400 and "minBeaconsPerRoom" in bad.json()["errors"][0]["field"]


async def test_a_site_saved_without_a_navigation_graph_gets_one(api, acme):
    data = small_site("plain")
    data["navigation"] = {"nodes": [], "edges": []}
    for floor in ("f0", "f1"):  # a corridor along the rooms, an elevator and stairs stacked at its ends
        data["spaces"] += [
            {"id": f"c-{floor}", "name": "Corridor", "kind": "walkway", "floor": floor,
             "polygon": [[0, 8], [40, 8], [40, 16], [0, 16]]},
            {"id": f"el-{floor}", "name": "Lift", "kind": "elevator", "floor": floor,
             "polygon": [[0, 16], [4, 16], [4, 20], [0, 20]]},
            {"id": f"st-{floor}", "name": "Stairs", "kind": "stairs", "floor": floor,
             "polygon": [[36, 16], [40, 16], [40, 20], [36, 20]]}]
    response = await api.put("/api/v1/buildings/plain", json=data, headers=acme["admin"])
    assert response.status_code == 201, response.text
    assert response.json()["navigation"]["generated"] and response.json()["navigation"]["nodes"]
    route = await api.get("/api/v1/buildings/plain/route", params={"from": "r-oak", "to": "o-1"}, headers=acme["read"])
    assert route.status_code == 200, route.text
    assert {leg["floor"] for leg in route.json()["legs"]} == {"f0", "f1"}
    free = await api.get("/api/v1/buildings/plain/free-rooms", params={"near": "k-0"}, headers=acme["read"])
    assert [r["id"] for r in free.json()["items"]] == ["r-oak"]


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"not a zip at all", "application/zip", 400),
    (b"PK\x03\x04 truncated", "application/zip", 400),
    (b"{}", "application/json", 415),
    (b"", "application/zip", 400),
])
async def test_bad_archives_are_refused_naming_the_problem(api, acme, body, content_type, status):
    response = await api.post("/api/v1/buildings/x/imdf", content=body,
                              headers={**acme["admin"], "Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await api.get("/api/v1/buildings/x", headers=acme["read"])).status_code == 404


async def test_a_feature_error_names_the_file_and_the_feature(api, acme, demo_archive):
    files = {n: zipfile.ZipFile(io.BytesIO(demo_archive)).read(n) for n in
             zipfile.ZipFile(io.BytesIO(demo_archive)).namelist()}
    import json

    units = json.loads(files["unit.geojson"])
    broken = units["features"][3]
    broken["geometry"] = {"type": "Point", "coordinates": [0, 0]}
    files["unit.geojson"] = json.dumps(units).encode()
    from shared.domain.imdf import zip_archive

    response = await post_imdf(api, acme, "broken", zip_archive(files))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["file"] == "unit.geojson" and problem["featureId"] == broken["id"]


async def test_an_archive_over_the_limit_is_refused_before_it_is_read(api, acme):
    from functions.bodies import MAX_IMDF_BYTES

    response = await api.post("/api/v1/buildings/x/imdf", content=b"\0" * (MAX_IMDF_BYTES + 1),
                              headers={**acme["admin"], **ZIP})
    assert response.status_code == 413


async def test_only_admins_import_and_other_tenants_see_nothing(api, acme, demo_archive):
    assert (await post_imdf(api, {"admin": acme["read"]}, "z", demo_archive)).status_code == 403
    assert (await post_imdf(api, acme, "z", demo_archive)).status_code == 201
    globex = await new_tenant(api, "globex")
    for path in ("/imdf", "/geojson", ""):
        assert (await api.get(f"/api/v1/buildings/z{path}", headers=globex["read"])).status_code == 404
    plan = await api.post("/api/v1/buildings/z/beacon-plan", json={}, headers=globex["admin"])
    assert plan.status_code == 404


async def test_geojson_in_wgs84_lands_where_the_imdf_archive_put_the_venue(api, acme, demo_archive):
    import json

    assert (await post_imdf(api, acme, "geo", demo_archive)).status_code == 201
    venue = json.loads(zipfile.ZipFile(io.BytesIO(demo_archive)).read("venue.geojson"))["features"][0]
    lon0, lat0 = venue["properties"]["display_point"]["coordinates"]
    units = {f["id"]: f for f in json.loads(zipfile.ZipFile(io.BytesIO(demo_archive)).read("unit.geojson"))["features"]}
    response = await api.get("/api/v1/buildings/geo/geojson", params={"coordinates": "wgs84"}, headers=acme["read"])
    assert response.status_code == 200, response.text
    spaces = [f for f in response.json()["features"] if f["properties"]["featureType"] == "space"]
    for feature in spaces[:20]:
        ours = feature["geometry"]["coordinates"][0]
        theirs = units[feature["id"]]["geometry"]["coordinates"][0]
        lon, lat = ours[0]
        assert abs(lon - lon0) < 0.01 and abs(lat - lat0) < 0.01  # within a kilometre of the display point
        # the same corners as the archive drew (1e-7 degree is ~1 cm)
        assert any(abs(lon - x) < 1e-7 and abs(lat - y) < 1e-7 for x, y in theirs)
    plain = small_site("flat")
    assert (await api.put("/api/v1/buildings/flat", json=plain, headers=acme["admin"])).status_code == 201
    refused = await api.get("/api/v1/buildings/flat/geojson", params={"coordinates": "wgs84"}, headers=acme["read"])
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "query.coordinates"
