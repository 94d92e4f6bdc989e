"""Events end to end over real HTTP: `devkit serve` (real emulators, the outbox on the Cosmos server, the local
poller), seeded by `devkit seed`, a subscription to `devkit webhook-receiver` (a separate process that verifies
signatures with the standardwebhooks library), a phone posting real SDK batches: the receiver prints the room's
space.occupied event."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devkit.emulators.launcher import free_port
from devkit.local_settings import local_settings
from devkit.seed import seed
from tests.e2e.test_query_api_e2e import REPO, headers, room_with_beacon, sdk_batches

ADMIN_KEY = local_settings()["ADMIN_API_KEY"]


@pytest.fixture(scope="module")
def tenant(live_server, devkit_keys):
    return seed(live_server, ADMIN_KEY, tenant_id="e2e-events", floors=2, keys_path=devkit_keys)


def read_until(path: Path, text: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        output = path.read_text()
        if text in output:
            return output
        assert process.poll() is None, output
        time.sleep(0.1)
    pytest.fail(f"{text!r} did not appear within {timeout_s} s:\n{path.read_text()}")


def test_a_subscribed_receiver_hears_the_room_a_phone_walks_into(live_server, tenant, tmp_path):
    building = tenant["buildingId"]
    site = httpx.get(f"{live_server}/api/v1/buildings/{building}", headers=headers(tenant, "read")).json()
    room, beacon = room_with_beacon(site, 0)
    port = free_port()
    created = httpx.post(f"{live_server}/api/v1/subscriptions", headers=headers(tenant, "admin"), json={
        "url": f"http://127.0.0.1:{port}/hooks/spaceflow", "types": ["dev.spaceflow.space.occupied"],
        "buildingId": building})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    log_path = tmp_path / "receiver.log"
    with open(log_path, "wb") as log:
        receiver = subprocess.Popen([sys.executable, "-m", "devkit", "webhook-receiver", "--port", str(port),
                                     "--secret", secret], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                    env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"})
    try:
        read_until(log_path, "webhook receiver on", receiver)
        # a request signed with nothing is refused and never printed as an event
        forged = httpx.post(f"http://127.0.0.1:{port}/hooks/spaceflow", json={"type": "forged"},
                            headers={"webhook-id": "x", "webhook-timestamp": str(int(time.time())),
                                     "webhook-signature": "v1,AAAA"})
        assert forged.status_code == 401
        for batch in sdk_batches("e2e-events-phone", beacon):
            response = httpx.post(f"{live_server}/api/v1/sightings", json=batch, headers=headers(tenant, "ingest"))
            assert response.status_code == 202, response.text
        output = read_until(log_path, f"spaces/{room}", receiver)
        [line] = [line for line in output.splitlines() if f"spaces/{room}" in line]
        assert "dev.spaceflow.space.occupied" in line and f"/tenants/e2e-events/buildings/{building}" in line
        assert "forged" not in output
        deliveries = httpx.get(f"{live_server}/api/v1/subscriptions/{created.json()['id']}/deliveries",
                               headers=headers(tenant, "admin")).json()["items"]
        assert [(d["subject"], d["status"]) for d in deliveries] == [(f"spaces/{room}", "delivered")]
        assert deliveries[0]["attempts"][-1]["statusCode"] == 204
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
