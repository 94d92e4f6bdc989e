"""The query API end to end over real HTTP: `devkit serve` (uvicorn on loopback, real emulators, the devkit's
OpenID Connect issuer), seeded through the public API by `devkit seed`, fed real SDK batches, people signed in with
tokens the app verifies against that issuer over HTTP; then a schemathesis run over the OpenAPI document."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devkit.emulators.launcher import free_port
from devkit.identity import KEYS_ENV, KeyRing, issue_token, issuer_url
from devkit.local_settings import local_settings
from devkit.seed import seed

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = local_settings()["ADMIN_API_KEY"]  # what devkit serve uses: the environment over the file


@pytest.fixture(scope="module")
def oidc_keys(tmp_path_factory) -> Path:
    """This module's own devkit signing key (not the developer's .devkit/oidc-keys.json)."""
    return tmp_path_factory.mktemp("oidc") / "oidc-keys.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory, oidc_keys):
    port, azurite_port, cosmos_port = free_port(), free_port(), free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devkit", "serve", "--port", str(port), "--azurite-port", str(azurite_port),
             "--cosmos-port", str(cosmos_port)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", KEYS_ENV: str(oidc_keys)},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log_path.read_text()
            time.sleep(0.2)
        else:
            pytest.fail("devkit serve did not become healthy: " + log_path.read_text())
        yield url
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def tenant(server, oidc_keys):
    return seed(server, ADMIN_KEY, tenant_id="e2e-acme", floors=2, keys_path=oidc_keys)


@pytest.fixture(scope="module")
def other_tenant(server, oidc_keys):
    return seed(server, ADMIN_KEY, tenant_id="e2e-globex", floors=2, keys_path=oidc_keys)


def bearer(server: str, oidc_keys: Path, tenant_id: str, user_id: str) -> dict[str, str]:
    token = issue_token(KeyRing.load(oidc_keys), issuer_url(server, tenant_id), user_id)
    return {"Authorization": f"Bearer {token}"}


def headers(keys: dict, scope: str) -> dict[str, str]:
    return {"x-api-key": keys["keys"][scope]}


def sdk_batches(device: str, room_beacon: str, user_id: str | None = None, count: int = 3) -> list[dict]:
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        sent = now - timedelta(seconds=10 * (count - 1 - n))
        batch = {"schema": "sightings/v1", "batchId": f"00000000-0000-4000-8000-{abs(hash((device, n))) % 10**12:012d}",
                 "deviceId": device, "sentAt": sent.isoformat(), "platform": "ios", "model": "iPhone15,2",
                 "sdkVersion": "2.3.1",
                 "sightings": [{"beacon": room_beacon, "rssi": -55 - (i % 3), "ts": (sent - timedelta(seconds=i)).isoformat()}
                               for i in range(8)]}
        if user_id:
            batch["userId"] = user_id
        out.append(batch)
    return out


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_ingest_then_see_the_room_occupied_and_find_a_free_one(server, tenant):
    building = tenant["buildingId"]
    site = httpx.get(f"{server}/api/v1/buildings/{building}", headers=headers(tenant, "read")).json()
    room = next(s for s in site["spaces"] if s["kind"] == "conferenceroom")
    beacon = next(b for b in site["beacons"] if b["floor"] == room["floor"]
                  and min(p[0] for p in room["polygon"]) <= b["x"] <= max(p[0] for p in room["polygon"])
                  and min(p[1] for p in room["polygon"]) <= b["y"] <= max(p[1] for p in room["polygon"]))
    for batch in sdk_batches("e2e-phone-1", beacon["id"]):
        response = httpx.post(f"{server}/api/v1/sightings", json=batch, headers=headers(tenant, "ingest"))
        assert response.status_code == 202, response.text

    def device_room():
        spaces = httpx.get(f"{server}/api/v1/buildings/{building}/spaces?status=occupied",
                           headers=headers(tenant, "read")).json()["items"]
        return spaces

    occupied = wait_for(device_room)
    assert occupied and occupied[0]["headcount"] == 1
    taken = occupied[0]["id"]
    occupancy = httpx.get(f"{server}/api/v1/buildings/{building}/occupancy", headers=headers(tenant, "read")).json()
    assert occupancy["headcount"] == 1
    free = httpx.get(f"{server}/api/v1/buildings/{building}/free-rooms", params={"near": taken},
                     headers=headers(tenant, "read")).json()["items"]
    assert free and taken not in {r["id"] for r in free}
    assert [r["distanceM"] for r in free] == sorted(r["distanceM"] for r in free)


def test_routes_across_floors_accessible_and_not(server, tenant):
    building = tenant["buildingId"]
    site = httpx.get(f"{server}/api/v1/buildings/{building}", headers=headers(tenant, "read")).json()
    start = next(s["id"] for s in site["spaces"] if s["floor"] == "L0" and s["kind"] == "office")
    end = next(s["id"] for s in site["spaces"] if s["floor"] == "L1" and s["kind"] == "office")
    plain = httpx.get(f"{server}/api/v1/buildings/{building}/route", params={"from": start, "to": end},
                      headers=headers(tenant, "read")).json()
    accessible = httpx.get(f"{server}/api/v1/buildings/{building}/route",
                           params={"from": start, "to": end, "accessible": "true"}, headers=headers(tenant, "read")).json()
    assert {leg["floor"] for leg in plain["legs"]} == {"L0", "L1"}
    assert any("elevator" in step.lower() for step in accessible["instructions"])
    assert not any("stairs" in step.lower() for step in accessible["instructions"])
    assert plain["etaS"] <= accessible["etaS"]


def test_people_finder_with_sharing_levels_and_expiry(server, tenant, oidc_keys):
    building = tenant["buildingId"]
    site = httpx.get(f"{server}/api/v1/buildings/{building}", headers=headers(tenant, "read")).json()
    beacon = site["beacons"][3]["id"]
    for batch in sdk_batches("e2e-phone-ann", beacon, user_id="ann@e2e.example"):
        assert httpx.post(f"{server}/api/v1/sightings", json=batch, headers=headers(tenant, "ingest")).status_code == 202
    people = headers(tenant, "people")
    ann = bearer(server, oidc_keys, tenant["tenantId"], "ann@e2e.example")
    location = f"{server}/api/v1/people/ann@e2e.example/location"
    assert httpx.get(location, headers=people).status_code == 404
    until = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    raising = httpx.put(f"{server}/api/v1/people/ann@e2e.example/sharing", json={"level": "floor"}, headers=people)
    assert raising.status_code == 403 and raising.headers["content-type"].startswith("application/problem+json")
    # ann herself, with a token the app verifies against the devkit issuer's keys fetched over HTTP
    assert httpx.put(f"{server}/api/v1/me/sharing", json={"level": "floor", "until": until},
                     headers=ann).status_code == 200
    found = wait_for(lambda: (r := httpx.get(location, headers=people)).status_code == 200 and r.json())
    assert found and found["floor"] and found["spaceId"] is None
    assert datetime.fromisoformat(found["lastSeen"]).second == 0  # rounded below level space
    time.sleep(4.5)
    expired = httpx.get(location, headers=people)
    assert expired.status_code == 404 and expired.json()["detail"] == "not available"
    audit = httpx.get(f"{server}/api/v1/audit/people-lookups", headers=headers(tenant, "admin")).json()
    assert {a["outcome"] for a in audit} == {"shared", "not-available"}
    changes = httpx.get(f"{server}/api/v1/audit/sharing-changes", headers=headers(tenant, "admin")).json()
    mine = [c for c in changes if c["userId"] == "ann@e2e.example"]
    assert [(c["byUserId"], c["toLevel"]) for c in mine] == [("ann@e2e.example", "floor")]


def test_seeded_people_sign_in_with_the_devkit_issuer_and_find_each_other(server, tenant, oidc_keys):
    identity = tenant["identity"]
    assert identity["issuer"] == issuer_url(server, tenant["tenantId"])
    discovery = httpx.get(identity["discoveryUrl"]).json()  # served beside the app, not by it
    assert discovery["issuer"] == identity["issuer"]
    assert {k["kid"] for k in httpx.get(discovery["jwks_uri"]).json()["keys"]} == {
        k.kid for k in KeyRing.load(oidc_keys).keys}
    ann, bob = ({"Authorization": f"Bearer {p['token']}"} for p in tenant["people"])
    assert httpx.get(f"{server}/api/v1/me/sharing", headers=ann).json()["level"] == "floor"
    assert httpx.get(f"{server}/api/v1/me/sharing", headers=bob).json()["level"] == "space"
    bob_id = tenant["people"][1]["userId"]
    building = tenant["buildingId"]
    site = httpx.get(f"{server}/api/v1/buildings/{building}", headers=ann).json()  # people read the building
    for batch in sdk_batches("e2e-phone-bob", site["beacons"][0]["id"], user_id=bob_id):
        assert httpx.post(f"{server}/api/v1/sightings", json=batch, headers=headers(tenant, "ingest")).status_code == 202
    found = wait_for(lambda: (r := httpx.get(f"{server}/api/v1/people/{bob_id}/location", headers=ann))
                     .status_code == 200 and r.json())
    assert found and found["spaceId"]
    lookups = httpx.get(f"{server}/api/v1/audit/people-lookups", headers=headers(tenant, "admin")).json()
    assert any(e["byUserId"] == tenant["people"][0]["userId"] and e["keyId"] is None for e in lookups)
    # The CLI's token goes the same way; a token of another tenant's issuer is not this tenant's.
    cli = subprocess.run([sys.executable, "-m", "devkit", "token", "--tenant", tenant["tenantId"], "--user",
                          "carol@e2e.example", "--url", server, "--keys", str(oidc_keys)],
                         cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    carol = {"Authorization": f"Bearer {cli.stdout.strip()}"}
    assert httpx.get(f"{server}/api/v1/me/sharing", headers=carol).json()["userId"] == "carol@e2e.example"
    stranger = bearer(server, oidc_keys, "e2e-nobody", "eve@e2e.example")
    refused = httpx.get(f"{server}/api/v1/me/sharing", headers=stranger)
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_tenant_isolation_and_stale_writes(server, tenant, other_tenant):
    building = tenant["buildingId"]  # both seeded tenants have a building of this id: each sees only its own
    mine = httpx.get(f"{server}/api/v1/buildings/{building}", headers=headers(tenant, "read"))
    etag = mine.headers["etag"]
    theirs = httpx.get(f"{server}/api/v1/buildings/{building}", headers=headers(other_tenant, "read"))
    assert theirs.headers["etag"] != etag
    assert httpx.get(f"{server}/api/v1/tenants/{tenant['tenantId']}/keys",
                     headers=headers(other_tenant, "admin")).status_code == 404
    site = mine.json()
    site["name"] = "renamed"
    first = httpx.put(f"{server}/api/v1/buildings/{building}", json=site,
                      headers={**headers(tenant, "admin"), "If-Match": etag})
    assert first.status_code == 200
    stale = httpx.put(f"{server}/api/v1/buildings/{building}", json=site,
                      headers={**headers(tenant, "admin"), "If-Match": etag})
    assert stale.status_code == 412 and stale.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/api/v1/buildings/{b}/spaces?limit=0", None), ("GET", "/api/v1/buildings/{b}/free-rooms?near=x,y", None),
     ("GET", "/api/v1/buildings/{b}/route?from=nowhere&to=nowhere", None),
     ("GET", "/api/v1/buildings/{b}/amenities", None), ("PUT", "/api/v1/people/u/sharing", {"level": "everything"}),
     ("POST", "/api/v1/sightings", {"schema": "sightings/v1"}), ("PUT", "/api/v1/buildings/{b}", {"floors": []}),
     ("POST", "/api/v1/tenants/e2e-acme/keys", {"scopes": ["root"]})],
)
def test_bad_input_on_every_route_is_a_4xx_problem(server, tenant, method, path, body):
    key = tenant["keys"]["admin"]
    response = httpx.request(method, server + path.replace("{b}", tenant["buildingId"]), json=body,
                             headers={"x-api-key": key})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == response.status_code


def room_with_beacon(site: dict, nth: int) -> tuple[str, str]:
    """The nth conference room holding a beacon, and that beacon."""
    found = []
    for room in (s for s in site["spaces"] if s["kind"] == "conferenceroom"):
        xs, ys = [p[0] for p in room["polygon"]], [p[1] for p in room["polygon"]]
        inside = [b["id"] for b in site["beacons"] if b["floor"] == room["floor"]
                  and min(xs) <= b["x"] <= max(xs) and min(ys) <= b["y"] <= max(ys)]
        if inside:
            found.append((room["id"], inside[0]))
    return found[nth]


def live_view(server: str, keys: dict, building: str) -> dict:
    read = headers(keys, "read")
    spaces = httpx.get(f"{server}/api/v1/buildings/{building}/spaces?limit=1000", headers=read).json()["items"]
    beacons = httpx.get(f"{server}/api/v1/buildings/{building}/beacons/health", headers=read).json()["beacons"]
    return {"occupied": {s["id"]: s["headcount"] for s in spaces if s["status"] == "occupied"},
            "headcount": httpx.get(f"{server}/api/v1/buildings/{building}/occupancy", headers=read).json()["headcount"],
            "heard": {b["beaconId"] for b in beacons if b["lastHeard"]}}


def test_two_tenants_with_the_same_building_device_and_user_ids_never_see_each_other(server, tenant, other_tenant,
                                                                                     oidc_keys):
    building = tenant["buildingId"]
    assert other_tenant["buildingId"] == building  # `devkit seed` names every simulated building sim-hq
    got = httpx.get(f"{server}/api/v1/buildings/{building}", headers=headers(tenant, "read"))
    assert got.status_code == 200, got.text
    site = got.json()
    room_a, beacon_a = room_with_beacon(site, 1)
    room_b, beacon_b = room_with_beacon(site, 2)
    before_a, before_b = live_view(server, tenant, building), live_view(server, other_tenant, building)
    assert room_a not in before_b["occupied"] and room_b not in before_a["occupied"]

    # A's phone sits in room_a: A sees it, B's room of the same id stays free, uncounted, its beacon unheard.
    for batch in sdk_batches("twin-phone", beacon_a, user_id="zoe@e2e.example"):
        assert httpx.post(f"{server}/api/v1/sightings", json=batch, headers=headers(tenant, "ingest")).status_code == 202
    assert wait_for(lambda: room_a in live_view(server, tenant, building)["occupied"])
    seen_by_b = live_view(server, other_tenant, building)
    assert seen_by_b == before_b and beacon_a not in seen_by_b["heard"]
    free_for_b = httpx.get(f"{server}/api/v1/buildings/{building}/free-rooms",
                           params={"near": room_a, "limit": 100}, headers=headers(other_tenant, "read")).json()["items"]
    assert room_a in {r["id"] for r in free_for_b}

    # B's phone with the same installation id and user id sits in room_b: a device of B, not A's device moving.
    for batch in sdk_batches("twin-phone", beacon_b, user_id="zoe@e2e.example"):
        assert httpx.post(f"{server}/api/v1/sightings", json=batch,
                          headers=headers(other_tenant, "ingest")).status_code == 202
    assert wait_for(lambda: room_b in live_view(server, other_tenant, building)["occupied"])
    seen_by_a = live_view(server, tenant, building)
    assert room_a in seen_by_a["occupied"] and room_b not in seen_by_a["occupied"]
    assert seen_by_a["headcount"] == before_a["headcount"] + 1 and beacon_b not in seen_by_a["heard"] - before_a["heard"]
    assert live_view(server, other_tenant, building)["headcount"] == before_b["headcount"] + 1

    # Each tenant's Zoe opts in as herself; each tenant's people finder finds its own Zoe, in its own room.
    for keys in (tenant, other_tenant):
        zoe = bearer(server, oidc_keys, keys["tenantId"], "zoe@e2e.example")
        assert httpx.put(f"{server}/api/v1/me/sharing", json={"level": "space"}, headers=zoe).status_code == 200
    for keys, room in ((tenant, room_a), (other_tenant, room_b)):
        found = httpx.get(f"{server}/api/v1/people/zoe@e2e.example/location", headers=headers(keys, "people"))
        assert found.status_code == 200 and found.json()["spaceId"] == room, found.text


def test_schemathesis_finds_no_server_error_and_no_schema_violation(server, tenant, tmp_path):
    report = tmp_path / "schemathesis.json"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", f"{server}/api/openapi.json",
         "--header", f"x-api-key: {tenant['keys']['admin']}", "--checks",
         "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--max-examples", "15", "--seed", "1", "--phases", "examples,coverage,fuzzing",
         "--exclude-path", "/api/ops/stats", "--report", "ndjson", "--report-ndjson-path", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,  # its cache folder lands there, not in the repo
        check=False,
    )
    summary = "\n".join(result.stdout.splitlines()[-25:])
    print(summary)
    assert result.returncode == 0, summary

