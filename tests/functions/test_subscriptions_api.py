"""The subscriptions API (tenant admin key) through FastAPI over the in-memory context: the secret shown once,
targets refused for SSRF, pause and types, rotation with 24 h of overlap, tenant isolation, replay windows."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.subscriptions import SECRET_PREFIX
from tests.functions.test_query_api import new_tenant
from tests.support.sites import small_site

OCCUPIED = "dev.spaceflow.space.occupied"


@pytest.fixture
async def acme(api):
    keys = await new_tenant(api, "acme")
    assert (await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=keys["admin"])).status_code == 201
    return keys


async def subscribe(api, keys, **body):
    return await api.post("/api/v1/subscriptions", json={"url": "https://hooks.example.com/spaceflow", **body},
                          headers=keys["admin"])


async def test_a_webhook_subscription_shows_its_secret_once(api, acme):
    created = await subscribe(api, acme, types=[OCCUPIED], buildingId="hq")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith(SECRET_PREFIX) and len(body["secret"]) > 40
    assert (body["status"], body["types"], body["buildingId"], body["eventGrid"]) == ("active", [OCCUPIED], "hq", False)
    listed = (await api.get("/api/v1/subscriptions", headers=acme["admin"])).json()
    assert [s["id"] for s in listed["items"]] == [body["id"]] and listed["continuationToken"] is None
    one = (await api.get(f"/api/v1/subscriptions/{body['id']}", headers=acme["admin"])).json()
    assert "secret" not in one and "secret" not in listed["items"][0]
    assert body["secret"] not in str(listed) + str(one)


async def test_only_a_tenant_admin_key_manages_subscriptions(api, acme):
    assert (await subscribe(api, acme)).status_code == 201
    for scope in ("read", "ingest", "people"):
        response = await api.post("/api/v1/subscriptions", json={"url": "https://a.example.com/"},
                                  headers=acme[scope])
        assert response.status_code == 403, scope
        assert (await api.get("/api/v1/subscriptions", headers=acme[scope])).status_code == 403


@pytest.mark.parametrize("url, reason", [
    ("http://hooks.example.com/x", "https"),
    ("https://127.0.0.1/x", "loopback"),
    ("https://localhost:8443/x", "loopback"),
    ("https://[::1]/x", "loopback"),
    ("https://10.0.0.8/x", "internal"),
    ("https://192.168.1.20/x", "internal"),
    ("https://169.254.169.254/metadata/instance", "internal"),
    ("https://[fd00::1]/x", "internal"),
    ("https://[::ffff:10.0.0.1]/x", "internal"),
    ("https://100.64.0.1/x", "internal"),
    ("https://user:pw@hooks.example.com/x", "user name"),
    ("https://intranet/x", "public host"),
    ("https://printer.local/x", "public host"),
    ("ftp://hooks.example.com/x", "https"),
])
async def test_internal_and_plain_targets_are_refused(api, acme, url, reason, memory_context):
    object.__setattr__(memory_context.subscriptions, "_allow_loopback", False)  # as in Azure
    response = await subscribe(api, acme, url=url)
    assert response.status_code == 400, url
    [error] = response.json()["errors"]
    assert error["field"] == "url" and reason in error["message"], error


async def test_loopback_receivers_only_where_the_devkit_setting_allows_them(api, acme, memory_context):
    assert memory_context.settings.webhook_allow_loopback  # local.settings.json: the devkit's receiver
    assert (await subscribe(api, acme, url="http://127.0.0.1:9911/hook")).status_code == 201
    object.__setattr__(memory_context.subscriptions, "_allow_loopback", False)
    assert (await subscribe(api, acme, url="http://127.0.0.1:9911/hook")).status_code == 400


async def test_bad_bodies_name_their_field(api, acme):
    cases = [({"url": "https://a.example.com/", "types": ["space.occupied"]}, "types[0]"),
             ({"url": "https://a.example.com/", "buildingId": "nowhere"}, "buildingId"),
             ({"url": "https://a.example.com/", "buildingId": "../x"}, "buildingId"),
             ({"url": "https://a.example.com/", "secret": "mine"}, "secret"),
             ({}, "$"),
             ({"url": "https://a.example.com/", "eventGrid": True}, "$"),
             ({"eventHub": {"namespace": "10.0.0.1", "hub": "h"}}, "eventHub.namespace"),
             ({"url": "https://a.example.com/" + "x" * 3000}, "url")]
    for body, field in cases:
        response = await api.post("/api/v1/subscriptions", json=body, headers=acme["admin"])
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in response.json()["errors"]}, (body, response.json())


async def test_pause_resume_and_types(api, acme):
    sub = (await subscribe(api, acme)).json()
    path = f"/api/v1/subscriptions/{sub['id']}"
    paused = await api.patch(path, json={"paused": True}, headers=acme["admin"])
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    typed = await api.patch(path, json={"types": [OCCUPIED, "dev.spaceflow.beacon.silent"]}, headers=acme["admin"])
    assert typed.json()["types"] == ["dev.spaceflow.beacon.silent", OCCUPIED] and typed.json()["status"] == "paused"
    resumed = await api.patch(path, json={"paused": False}, headers=acme["admin"])
    assert resumed.json()["status"] == "active"
    assert (await api.patch(path, json={"paused": "maybe"}, headers=acme["admin"])).status_code == 400
    assert (await api.patch(path, json={"url": "https://b.example.com/"}, headers=acme["admin"])).status_code == 400


async def test_rotation_keeps_the_previous_secret_signing_for_a_day(api, acme, memory_context):
    sub = (await subscribe(api, acme)).json()
    first = sub["secret"]
    rotated = await api.post(f"/api/v1/subscriptions/{sub['id']}/rotate-secret", headers=acme["admin"])
    assert rotated.status_code == 200
    second = rotated.json()["secret"]
    assert second.startswith(SECRET_PREFIX) and second != first
    until = datetime.fromisoformat(rotated.json()["previousValidUntil"])
    assert timedelta(hours=23, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=24)
    stored = await memory_context.subscription_store.get("acme", sub["id"])
    assert stored.signing_secrets(datetime.now(UTC)) == [first, second]
    assert stored.signing_secrets(until + timedelta(seconds=1)) == [second]


async def test_another_tenant_sees_no_subscription_of_ours(api, acme):
    globex = await new_tenant(api, "globex")
    sub = (await subscribe(api, acme)).json()
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret"),
                           ("GET", "/deliveries"), ("POST", "/replay?from=2030-01-01T00:00:00Z")):
        kwargs = {"json": {"paused": True}} if method == "PATCH" else {}
        response = await api.request(method, f"/api/v1/subscriptions/{sub['id']}{suffix}", headers=globex["admin"],
                                     **kwargs)
        assert response.status_code == 404, (method, suffix, response.status_code)
    assert (await api.get("/api/v1/subscriptions", headers=globex["admin"])).json()["items"] == []
    assert (await api.get(f"/api/v1/subscriptions/{sub['id']}", headers=acme["admin"])).json()["status"] == "active"


async def test_delete_and_replay_windows(api, acme):
    sub = (await subscribe(api, acme)).json()
    path = f"/api/v1/subscriptions/{sub['id']}"
    now = datetime.now(UTC)
    for start, expected in ((now - timedelta(hours=1), 202), (now - timedelta(days=8), 400),
                            (now + timedelta(hours=1), 400)):
        response = await api.post(f"{path}/replay", params={"from": start.isoformat()}, headers=acme["admin"])
        assert response.status_code == expected, response.text
        if expected == 400:
            assert response.json()["errors"][0]["field"] == "query.from"
    naive = await api.post(f"{path}/replay", params={"from": "2026-01-01T00:00:00"}, headers=acme["admin"])
    assert naive.status_code == 400 and naive.json()["errors"][0]["field"] == "query.from"
    assert (await api.get(f"{path}/deliveries", headers=acme["admin"])).json() == {"items": [],
                                                                                 "continuationToken": None}
    assert (await api.delete(path, headers=acme["admin"])).status_code == 204
    assert (await api.get(path, headers=acme["admin"])).status_code == 404
    assert (await api.delete(path, headers=acme["admin"])).status_code == 404
