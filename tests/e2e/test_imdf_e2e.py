"""A 2,000-unit venue of three levels through the HTTP route on the emulators: `devkit serve` (uvicorn, Azurite,
the Cosmos emulator), the archive posted by `devkit import-imdf` as a customer would, then the building served:
its model read back whole, routes across levels, free rooms, the archive exported."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import httpx
import pytest

from devkit.imdf_venue import generate_venue
from shared.domain import space_kinds
from shared.domain.imdf import zip_archive
from tests.e2e.test_query_api_e2e import ADMIN_KEY, REPO, oidc_keys, server  # noqa: F401 - this module's server

UNITS, LEVELS = 2000, 3


@pytest.fixture(scope="module")
def keys(server):  # noqa: F811 - the fixture imported above
    operator = {"x-api-key": ADMIN_KEY}
    assert httpx.post(f"{server}/api/v1/tenants", json={"tenantId": "e2e-venue", "name": "Venue"},
                      headers=operator).status_code == 201
    minted = {}
    for scope in ("admin", "read"):
        response = httpx.post(f"{server}/api/v1/tenants/e2e-venue/keys", json={"scopes": [scope]}, headers=operator)
        minted[scope] = response.json()["key"]
    return minted


@pytest.fixture(scope="module")
def imported(server, keys, tmp_path_factory):  # noqa: F811
    path = tmp_path_factory.mktemp("venue") / "venue.zip"
    path.write_bytes(zip_archive(generate_venue(units=UNITS, levels=LEVELS, seed=3)))
    done = subprocess.run([sys.executable, "-m", "devkit", "import-imdf", str(path), "--building", "tower",
                           "--url", server, "--key", keys["admin"]], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_venue_imports_whole(imported):
    assert imported["spaces"] == UNITS and imported["floors"] == LEVELS
    assert imported["navigation"]["generated"] and imported["navigation"]["nodes"] > UNITS
    assert len(imported["unreachableSpaces"]) < UNITS * 0.01, imported["unreachableSpaces"][:20]


def test_the_stored_venue_reads_back_and_answers_queries(server, keys, imported):  # noqa: F811
    read = {"x-api-key": keys["read"]}
    site = httpx.get(f"{server}/api/v1/buildings/tower", headers=read, timeout=60)
    assert site.status_code == 200 and site.headers["ETag"] == imported["etag"]
    model = site.json()
    assert len(model["spaces"]) == UNITS
    skip = space_kinds.WALKABLE | space_kinds.NOT_OCCUPIABLE | space_kinds.VERTICAL
    unreachable = set(imported["unreachableSpaces"])
    rooms = [s for s in model["spaces"] if s["kind"] not in skip and s["id"] not in unreachable]
    floors = sorted(model["floors"], key=lambda f: f["ordinal"])
    low = next(r for r in rooms if r["floor"] == floors[0]["id"])
    high = next(r for r in reversed(rooms) if r["floor"] == floors[-1]["id"])
    route = httpx.get(f"{server}/api/v1/buildings/tower/route", params={"from": low["id"], "to": high["id"]},
                      headers=read, timeout=60)
    assert route.status_code == 200, route.text
    assert route.json()["legs"][0]["floor"] == floors[0]["id"]
    free = httpx.get(f"{server}/api/v1/buildings/tower/free-rooms", params={"near": low["id"]}, headers=read,
                     timeout=60)
    assert free.status_code == 200 and free.json()["items"]
    exported = httpx.get(f"{server}/api/v1/buildings/tower/imdf", headers=read, timeout=120)
    assert exported.status_code == 200
    units = json.loads(zipfile.ZipFile(io.BytesIO(exported.content)).read("unit.geojson"))
    assert len(units["features"]) == UNITS
