"""The query and admin API through FastAPI (in-memory adapters): tenants and keys, site admin with ETags, live
state, free rooms, routes, amenities, the people finder with its audit log, beacon health, tenant isolation."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.functions.conftest import LOCAL_VALUES
from tests.support.identity import configure_sign_in
from tests.support.pipeline import room_event
from tests.support.sites import small_site

ADMIN = {"x-api-key": LOCAL_VALUES["ADMIN_API_KEY"]}


async def new_tenant(api, tenant_id: str) -> dict[str, dict[str, str]]:
    assert (await api.post("/api/v1/tenants", json={"tenantId": tenant_id, "name": tenant_id.title()},
                           headers=ADMIN)).status_code == 201
    keys = {}
    for scope in ("ingest", "read", "people", "admin"):
        response = await api.post(f"/api/v1/tenants/{tenant_id}/keys", json={"scopes": [scope]}, headers=ADMIN)
        assert response.status_code == 201
        keys[scope] = {"x-api-key": response.json()["key"]}
    return keys


@pytest.fixture
async def acme(api):
    keys = await new_tenant(api, "acme")
    response = await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=keys["admin"])
    assert response.status_code == 201, response.text
    return keys


async def test_tenants_are_created_by_the_bootstrap_admin_only(api, acme):
    assert (await api.post("/api/v1/tenants", json={"tenantId": "acme", "name": "x"}, headers=ADMIN)).status_code == 409
    tenant_admin = await api.post("/api/v1/tenants", json={"tenantId": "other", "name": "x"}, headers=acme["admin"])
    assert tenant_admin.status_code == 403
    bad = await api.post("/api/v1/tenants", json={"tenantId": "A B", "name": ""}, headers=ADMIN)
    assert bad.status_code == 400 and {e["field"] for e in bad.json()["errors"]} == {"tenantId", "name"}
    assert [t["tenantId"] for t in (await api.get("/api/v1/tenants", headers=ADMIN)).json()] == ["acme"]


async def test_keys_are_shown_once_listed_without_secrets_and_revocable(api, acme):
    listed = (await api.get("/api/v1/tenants/acme/keys", headers=acme["admin"])).json()
    assert {k["scopes"][0] for k in listed} == {"ingest", "read", "people", "admin"}
    assert all("key" not in k for k in listed)
    read_key = next(k for k in listed if k["scopes"] == ["read"])
    assert (await api.get("/api/v1/buildings", headers=acme["read"])).status_code == 200
    revoked = await api.delete(f"/api/v1/tenants/acme/keys/{read_key['keyId']}", headers=acme["admin"])
    assert revoked.status_code == 204
    assert (await api.get("/api/v1/buildings", headers=acme["read"])).status_code == 401
    assert (await api.delete("/api/v1/tenants/acme/keys/nokey", headers=acme["admin"])).status_code == 404


async def test_a_tenant_admin_cannot_see_or_touch_another_tenant(api, acme):
    globex = await new_tenant(api, "globex")
    for method, path in (("GET", "/api/v1/tenants/acme/keys"), ("POST", "/api/v1/tenants/acme/keys"),
                         ("DELETE", "/api/v1/tenants/acme/keys/x"), ("GET", "/api/v1/tenants/nosuch/keys")):
        response = await api.request(method, path, headers=globex["admin"], json={"scopes": ["read"]})
        assert response.status_code == 404, (method, path)


async def test_site_admin_with_etags(api, acme):
    got = await api.get("/api/v1/buildings/hq", headers=acme["read"])
    assert got.status_code == 200 and got.json()["buildingId"] == "hq"
    etag = got.headers["etag"]
    assert (await api.get("/api/v1/buildings/hq", headers={**acme["read"], "If-None-Match": etag})).status_code == 304
    changed = small_site("hq")
    changed["name"] = "HQ renovated"
    replaced = await api.put("/api/v1/buildings/hq", json=changed, headers={**acme["admin"], "If-Match": etag})
    assert replaced.status_code == 200 and replaced.headers["etag"] != etag
    stale = await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers={**acme["admin"], "If-Match": etag})
    assert stale.status_code == 412 and stale.json()["status"] == 412
    create_only = await api.put("/api/v1/buildings/hq", json=small_site("hq"),
                                headers={**acme["admin"], "If-None-Match": "*"})
    assert create_only.status_code == 412
    assert (await api.put("/api/v1/buildings/hq", json=changed, headers=acme["read"])).status_code == 403


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["beacons"][0].update(x=500), "beacons[0]"),
        (lambda d: d["spaces"][0].update(polygon=[[0, 0], [10, 8], [10, 0], [0, 8]]), "spaces[0].polygon"),
        (lambda d: d["spaces"][0].update(kind="cafeteria"), "spaces[0].kind"),
        (lambda d: d["navigation"].update(edges=d["navigation"]["edges"][:2]), "navigation"),
        (lambda d: d.update(buildingId="annex"), "buildingId"),
    ],
)
async def test_bad_site_models_name_the_field(api, acme, mutate, field):
    data = small_site("hq")
    mutate(data)
    response = await api.put("/api/v1/buildings/hq", json=data, headers=acme["admin"])
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"] for e in response.json()["errors"]}


BUILDING_ROUTES = ["/api/v1/buildings/hq", "/api/v1/buildings/hq/spaces", "/api/v1/buildings/hq/spaces/r-oak",
                   "/api/v1/buildings/hq/occupancy", "/api/v1/buildings/hq/free-rooms?near=r-oak",
                   "/api/v1/buildings/hq/route?from=r-oak&to=o-1", "/api/v1/buildings/hq/amenities?kind=kitchen",
                   "/api/v1/buildings/hq/beacons/health"]


@pytest.mark.parametrize("path", BUILDING_ROUTES)
async def test_another_tenants_building_is_not_found_like_a_missing_one(api, acme, path):
    globex = await new_tenant(api, "globex")
    theirs = await api.get(path, headers=globex["read"])
    missing = await api.get(path.replace("/hq", "/nowhere"), headers=acme["read"])
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"] == missing.json()["detail"].replace("nowhere", "hq")
    assert (await api.get(path, headers=acme["read"])).status_code == 200


async def occupy(memory_context, room: str, device: str, at: datetime | None = None) -> None:
    at = at or datetime.now(UTC)
    await memory_context.pipeline.process(
        [room_event(at - timedelta(seconds=20 * i), room, device=device, tenant_id="acme") for i in (2, 1, 0)])


async def test_live_state_shows_an_occupied_room(api, acme, memory_context):
    await occupy(memory_context, "r-oak", "install-1")
    oak = (await api.get("/api/v1/buildings/hq/spaces/r-oak", headers=acme["read"])).json()
    assert oak["status"] == "occupied" and oak["headcount"] == 1 and oak["since"]
    assert oak["kind"] == "conferenceroom" and oak["capacity"] == 8 and oak["amenities"] == ["display"]
    occupancy = (await api.get("/api/v1/buildings/hq/occupancy", headers=acme["read"])).json()
    assert occupancy["headcount"] == 1
    assert {f["floor"]: f["headcount"] for f in occupancy["floors"]} == {"f0": 1, "f1": 0}
    free = (await api.get("/api/v1/buildings/hq/spaces?status=free", headers=acme["read"])).json()["items"]
    assert "r-oak" not in {s["id"] for s in free}


async def test_space_listing_filters_and_pages(api, acme):
    first = (await api.get("/api/v1/buildings/hq/spaces?limit=2", headers=acme["read"])).json()
    assert len(first["items"]) == 2 and first["continuationToken"]
    rest = (await api.get(f"/api/v1/buildings/hq/spaces?limit=2&continuationToken={first['continuationToken']}",
                          headers=acme["read"])).json()
    assert [s["id"] for s in first["items"] + rest["items"]] == ["r-oak", "k-0", "o-1"]
    assert rest["continuationToken"] is None
    on_f1 = (await api.get("/api/v1/buildings/hq/spaces?floor=f1", headers=acme["read"])).json()["items"]
    assert [s["id"] for s in on_f1] == ["o-1"]
    big = (await api.get("/api/v1/buildings/hq/spaces?minCapacity=10", headers=acme["read"])).json()["items"]
    assert {s["id"] for s in big} == {"k-0", "o-1"}
    rooms = (await api.get("/api/v1/buildings/hq/spaces?kind=conferenceroom", headers=acme["read"])).json()["items"]
    assert [s["id"] for s in rooms] == ["r-oak"]
    for bad, field in (("continuationToken=garbage", "query.continuationToken"), ("limit=0", "query.limit"),
                       ("floor=f9", "query.floor"), ("minCapacity=-1", "query.minCapacity"),
                       ("status=busy", "query.status"), ("kind=boardroom", "query.kind")):
        response = await api.get(f"/api/v1/buildings/hq/spaces?{bad}", headers=acme["read"])
        assert response.status_code == 400, bad
        assert [e["field"] for e in response.json()["errors"]] == [field], bad


async def test_free_rooms_sorted_by_walking_distance(api, acme, memory_context):
    response = await api.get("/api/v1/buildings/hq/free-rooms?near=k-0&kind=conferenceroom&kind=office",
                             headers=acme["read"])
    page = response.json()
    assert set(page) == {"items", "continuationToken"} and page["continuationToken"] is None  # the v1 list shape
    rooms = page["items"]
    assert [r["id"] for r in rooms] == ["r-oak", "o-1"]  # o-1 is a floor up: farther to walk
    assert rooms[0]["distanceM"] < rooms[1]["distanceM"] and rooms[0]["etaS"] > 0
    await occupy(memory_context, "r-oak", "install-2")
    rooms = (await api.get("/api/v1/buildings/hq/free-rooms?near=35,4,f0&kind=conferenceroom",
                           headers=acme["read"])).json()["items"]
    assert rooms == []
    for bad, field in (("near=nowhere", "query.near"), ("near=1,2,f9", "query.near"), ("", "query.near"),
                       ("near=r-oak&minCapacity=x", "query.minCapacity"), ("near=r-oak&kind=boardroom", "query.kind"),
                       ("near=r-oak&limit=0", "query.limit")):
        response = await api.get(f"/api/v1/buildings/hq/free-rooms?{bad}", headers=acme["read"])
        assert response.status_code == 400, bad
        assert [e["field"] for e in response.json()["errors"]] == [field], bad


async def test_routes_cross_floors_and_respect_accessibility(api, acme):
    route = (await api.get("/api/v1/buildings/hq/route?from=r-oak&to=o-1", headers=acme["read"])).json()
    assert route["distanceM"] > 0 and route["etaS"] > 0
    assert route["legs"][0]["floor"] == "f0" and route["legs"][-1]["floor"] == "f1"
    assert any("stairs" in step.lower() or "elevator" in step.lower() for step in route["instructions"])
    accessible = (await api.get("/api/v1/buildings/hq/route?from=r-oak&to=o-1&accessible=true",
                                headers=acme["read"])).json()
    assert any("elevator" in step.lower() for step in accessible["instructions"])
    assert not any("stairs" in step.lower() for step in accessible["instructions"])
    for bad, field in (("from=r-oak", "query.to"), ("to=o-1", "query.from"), ("from=nowhere&to=o-1", "query.from"),
                       ("from=r-oak&to=1,2,f9", "query.to")):
        response = await api.get(f"/api/v1/buildings/hq/route?{bad}", headers=acme["read"])
        assert response.status_code == 400, bad
        assert [e["field"] for e in response.json()["errors"]] == [field], bad


async def test_no_accessible_route_is_404_with_a_reason(api, acme):
    data = small_site("hq")
    data["navigation"]["edges"] = [e for e in data["navigation"]["edges"] if e.get("kind") != "elevator"
                                   and e["to"] != "el1" and e["from"] != "el1"]
    data["navigation"]["nodes"] = [n for n in data["navigation"]["nodes"] if n["id"] != "el1"]
    assert (await api.put("/api/v1/buildings/hq", json=data, headers=acme["admin"])).status_code == 200
    response = await api.get("/api/v1/buildings/hq/route?from=r-oak&to=o-1&accessible=true", headers=acme["read"])
    assert response.status_code == 404 and "no route" in response.json()["detail"]


async def test_amenities_by_walking_distance(api, acme):
    page = (await api.get("/api/v1/buildings/hq/amenities?kind=kitchen&near=r-oak", headers=acme["read"])).json()
    assert set(page) == {"items", "continuationToken"} and page["continuationToken"] is None  # the v1 list shape
    kitchens = page["items"]
    assert [k["id"] for k in kitchens] == ["k-0"] and kitchens[0]["distanceM"] > 0 and kitchens[0]["etaS"] > 0
    displays = (await api.get("/api/v1/buildings/hq/amenities?kind=display", headers=acme["read"])).json()["items"]
    assert [d["id"] for d in displays] == ["r-oak"]
    assert displays[0]["distanceM"] is None and displays[0]["etaS"] is None  # no `near`: no distance, never 0
    by_kind = (await api.get("/api/v1/buildings/hq/amenities?kind=office", headers=acme["read"])).json()["items"]
    assert [o["id"] for o in by_kind] == ["o-1"]  # a space kind answers too
    for bad, field in (("kind=printr", "query.kind"), ("", "query.kind"), ("kind=kitchen&near=nowhere", "query.near")):
        response = await api.get(f"/api/v1/buildings/hq/amenities?{bad}", headers=acme["read"])
        assert response.status_code == 400, bad
        assert [e["field"] for e in response.json()["errors"]] == [field], bad


async def test_beacon_health_flags_silent_beacons(api, acme, memory_context):
    await occupy(memory_context, "r-oak", "install-3")
    health = (await api.get("/api/v1/buildings/hq/beacons/health", headers=acme["read"])).json()
    by_id = {b["beaconId"]: b for b in health["beacons"]}
    assert len(by_id) == 3
    assert by_id["f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"]["silent"] is False
    assert by_id["edd1ebeac04e5defa017:0000000000a1"]["silent"] is True  # never heard
    assert health["silent"] == sum(b["silent"] for b in health["beacons"])
    assert health["driftFlagged"] == 0 and by_id["edd1ebeac04e5defa017:0000000000a1"]["driftDb"] is None


async def test_beacon_health_shows_a_drifted_beacon(api, acme, memory_context):
    """Positioning's self-calibration keeps each beacon's drift with its health; a drop beyond the bound is
    flagged (battery, turned, moved)."""
    from shared.domain.presence import BeaconDrift, BeaconHealth

    now = datetime.now(UTC)
    beacon = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"
    await memory_context.live_state.save_beacon_health(BeaconHealth(
        "acme", "hq", beacon, now, drift=BeaconDrift(-4.0, 5.5, 1.2, 900, now, flagged=True)))
    health = (await api.get("/api/v1/buildings/hq/beacons/health", headers=acme["read"])).json()
    by_id = {b["beaconId"]: b for b in health["beacons"]}
    assert by_id[beacon]["driftDb"] == -9.5 and by_id[beacon]["driftFlagged"] is True
    assert health["driftFlagged"] == 1


async def test_the_people_finder_answers_only_what_each_person_allows(api, acme, memory_context):
    people = acme["people"]
    issuer = await configure_sign_in(api, "acme", acme["admin"], memory_context.issuer_documents)
    ann = issuer.bearer("ann@acme.example")
    now = datetime.now(UTC)
    events = [room_event(now - timedelta(seconds=20 * i), "r-oak", device="phone-ann", tenant_id="acme",
                         user_id="ann@acme.example") for i in (2, 1, 0)]
    await memory_context.pipeline.process(events)

    async def where():
        return await api.get("/api/v1/people/ann@acme.example/location", headers=people)

    not_opted = await where()
    unknown = await api.get("/api/v1/people/nobody@acme.example/location", headers=people)
    assert not_opted.status_code == unknown.status_code == 404
    assert not_opted.json()["detail"] == unknown.json()["detail"] == "not available"
    expected = {"building": (None, None), "floor": ("f0", None), "space": ("f0", "r-oak")}
    for level, (floor, space) in expected.items():
        assert (await api.put("/api/v1/me/sharing", json={"level": level}, headers=ann)).status_code == 200
        found = (await where()).json()
        assert (found["buildingId"], found["floor"], found["spaceId"]) == ("hq", floor, space)
    expired = (now - timedelta(minutes=1)).isoformat()
    assert (await api.put("/api/v1/me/sharing", json={"level": "space", "until": expired},
                          headers=ann)).status_code == 400
    soon = (now + timedelta(hours=1)).isoformat()
    await api.put("/api/v1/me/sharing", json={"level": "space", "until": soon}, headers=ann)
    assert (await where()).status_code == 200
    await api.put("/api/v1/people/ann@acme.example/sharing", json={"level": "off"}, headers=people)
    assert (await where()).status_code == 404
    assert (await api.get("/api/v1/people/ann@acme.example/location", headers=acme["read"])).status_code == 403
    audit = (await api.get("/api/v1/audit/people-lookups", headers=acme["admin"])).json()
    assert len(audit) == 7
    assert [a["outcome"] for a in audit][:2] == ["not-available", "shared"]
    assert audit[1]["level"] == "space"


async def test_a_person_not_seen_for_ten_minutes_is_not_available(api, acme, memory_context):
    issuer = await configure_sign_in(api, "acme", acme["admin"], memory_context.issuer_documents)
    old = datetime.now(UTC) - timedelta(minutes=11)
    events = [room_event(old - timedelta(seconds=20 * i), "k-0", device="phone-bob", tenant_id="acme",
                         user_id="bob@acme.example") for i in (2, 1, 0)]
    await memory_context.pipeline.process(events)
    await api.put("/api/v1/me/sharing", json={"level": "space"}, headers=issuer.bearer("bob@acme.example"))
    assert (await api.get("/api/v1/people/bob@acme.example/location", headers=acme["people"])).status_code == 404


async def test_openapi_documents_every_route_and_problems(api):
    schema = (await api.get("/api/openapi.json")).json()
    paths = set(schema["paths"])
    for path in ("/api/v1/sightings", "/api/v1/tenants", "/api/v1/buildings/{buildingId}",
                 "/api/v1/buildings/{buildingId}/free-rooms", "/api/v1/buildings/{buildingId}/route",
                 "/api/v1/people/{userId}/location", "/api/v1/audit/people-lookups"):
        assert path in paths, path
    assert "Problem" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"
    bearer = schema["components"]["securitySchemes"]["bearer"]
    assert (bearer["type"], bearer["scheme"], bearer["bearerFormat"]) == ("http", "bearer", "JWT")
    assert schema["security"] == [{"apiKey": []}, {"bearer": []}]
    for path in ("/api/v1/me/sharing", "/api/v1/tenants/{tenantId}/identity", "/api/v1/audit/sharing-changes"):
        assert path in paths, path
    assert (await api.get("/api/docs")).status_code == 200


async def test_openapi_documents_the_events_a_webhook_receives(api):
    schema = (await api.get("/api/openapi.json")).json()
    webhook = schema["webhooks"]["spaceflowEvent"]["post"]
    body = webhook["requestBody"]["content"]["application/cloudevents+json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SpaceflowEvent"}
    assert {p["name"] for p in webhook["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    components = schema["components"]["schemas"]
    assert {"SpaceEventData", "BeaconEventData"} <= set(components)
    text = json.dumps(components["SpaceflowEvent"])
    assert "#/components/schemas/" in text and "$defs" not in text
