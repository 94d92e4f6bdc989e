"""The query API end to end over real HTTP: `devkit serve` (uvicorn on loopback, real emulators), seeded through
the public API by `devkit seed`, fed real SDK batches; then a schemathesis run over the OpenAPI document."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from devkit.emulators.launcher import free_port
from devkit.local_settings import load_local_settings
from devkit.seed import seed

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = load_local_settings()["ADMIN_API_KEY"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port, azurite_port, cosmos_port = free_port(), free_port(), free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "devkit", "serve", "--port", str(port), "--azurite-port", str(azurite_port),
         "--cosmos-port", str(cosmos_port)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
    log.close()


@pytest.fixture(scope="module")
def tenant(server):
    return seed(server, ADMIN_KEY, tenant_id="e2e-acme", floors=2)


@pytest.fixture(scope="module")
def other_tenant(server):
    return seed(server, ADMIN_KEY, tenant_id="e2e-globex", floors=2)


def headers(keys: dict, scope: str) -> dict[str, str]:
    return {"x-api-key": keys["keys"][scope]}


def sdk_batches(device: str, room_beacon: str, user_id: str | None = None, count: int = 3) -> list[dict]:
    now = datetime.now(timezone.utc)
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
                     headers=headers(tenant, "read")).json()
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


def test_people_finder_with_sharing_levels_and_expiry(server, tenant):
    building = tenant["buildingId"]
    site = httpx.get(f"{server}/api/v1/buildings/{building}", headers=headers(tenant, "read")).json()
    beacon = site["beacons"][3]["id"]
    for batch in sdk_batches("e2e-phone-ann", beacon, user_id="ann@e2e.example"):
        assert httpx.post(f"{server}/api/v1/sightings", json=batch, headers=headers(tenant, "ingest")).status_code == 202
    people = headers(tenant, "people")
    location = f"{server}/api/v1/people/ann@e2e.example/location"
    assert httpx.get(location, headers=people).status_code == 404
    until = (datetime.now(timezone.utc) + timedelta(seconds=4)).isoformat()
    assert httpx.put(f"{server}/api/v1/people/ann@e2e.example/sharing", json={"level": "floor", "until": until},
                     headers=people).status_code == 200
    found = wait_for(lambda: (r := httpx.get(location, headers=people)).status_code == 200 and r.json())
    assert found and found["floor"] and found["spaceId"] is None
    time.sleep(4.5)
    expired = httpx.get(location, headers=people)
    assert expired.status_code == 404 and expired.json()["detail"] == "not available"
    audit = httpx.get(f"{server}/api/v1/audit/people-lookups", headers=headers(tenant, "admin")).json()
    assert {a["outcome"] for a in audit} == {"shared", "not-available"}


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


def test_schemathesis_finds_no_server_error_and_no_schema_violation(server, tenant, tmp_path):
    report = tmp_path / "schemathesis.json"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", f"{server}/api/openapi.json",
         "--header", f"x-api-key: {tenant['keys']['admin']}", "--checks",
         "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--max-examples", "15", "--seed", "1", "--phases", "examples,coverage,fuzzing",
         "--exclude-path", "/api/ops/stats", "--report", "ndjson", "--report-ndjson-path", str(report)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,  # its cache folder lands there, not in the repo
    )
    summary = "\n".join(result.stdout.splitlines()[-25:])
    print(summary)
    assert result.returncode == 0, summary
