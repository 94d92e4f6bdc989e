"""POST /api/v1/sightings as the SDK calls it: keys, limits, gzip, per-reading verdicts, 503 when the hub is down."""
from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.ingest_event import decode_ingest_event
from shared.domain.people import Tenant
from shared.domain.ports import DependencyUnavailable
from shared.domain.tenancy import Scope
from tests.support.batches import BEACON_A, sdk_batch
from tests.support.pipeline import add_small_site
from tests.support.sites import small_site

NOW = datetime.now(UTC)


@pytest.fixture
async def ingest_key(memory_context) -> str:
    """An ingest key of tenant-a, whose building `hq` has BEACON_A among its beacons."""
    await add_small_site(memory_context.site_models)
    key, _ = await memory_context.auth.mint_key("tenant-a", {Scope.ingest})
    return key


async def test_accepts_a_batch_and_publishes_one_event_keyed_by_device(api, ingest_key, memory_context):
    batch = sdk_batch(NOW, device="install-7f3a9c", readings=[(BEACON_A, -70), (BEACON_A, -130)])
    response = await api.post("/api/v1/sightings", json=batch, headers={"x-api-key": ingest_key})
    assert response.status_code == 202
    body = response.json()
    assert body["batchId"] == batch["batchId"] and body["accepted"] == 1
    assert body["rejected"][0]["index"] == 1 and "rssi" in body["rejected"][0]["reason"]
    [event] = memory_context.publisher.published
    assert event.partition_key == "install-7f3a9c"
    decoded = decode_ingest_event(event.body)
    assert decoded.tenant_id == "tenant-a"
    assert [s.rssi for s in decoded.parsed.batch.sightings] == [-70]


async def test_readings_of_beacons_no_building_of_the_tenant_has_are_rejected_one_by_one(api, ingest_key,
                                                                                         memory_context):
    neighbour = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:999:9"  # another company's beacon through the wall
    batch = sdk_batch(NOW, readings=[(neighbour, -80), (BEACON_A, -66)])
    response = await api.post("/api/v1/sightings", json=batch, headers={"x-api-key": ingest_key})
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"] == [{"index": 0, "reason": "unknown beacon: not placed in any building of "
                                                                  "this tenant"}]
    [event] = memory_context.publisher.published
    assert [s.beacon for s in decode_ingest_event(event.body).parsed.batch.sightings] == [BEACON_A]


async def test_a_tenant_whose_buildings_have_no_beacons_yet_gets_409_saying_so(api, memory_context):
    key, _ = await memory_context.auth.mint_key("tenant-m", {Scope.ingest, Scope.admin})
    await memory_context.tenants.create_tenant(Tenant("tenant-m", "Mapped only", NOW))
    nothing_yet = await api.post("/api/v1/sightings", json=sdk_batch(NOW), headers={"x-api-key": key})
    assert nothing_yet.status_code == 409 and "no buildings yet" in nothing_yet.json()["detail"]
    mapped = small_site("hq")
    mapped["beacons"] = []
    assert (await api.put("/api/v1/buildings/hq", json=mapped, headers={"x-api-key": key})).status_code == 201
    response = await api.post("/api/v1/sightings", json=sdk_batch(NOW), headers={"x-api-key": key})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "mapped but have no beacons yet" in response.json()["detail"] and response.json()["buildings"] == ["hq"]
    assert memory_context.publisher.published == []


async def test_gzip_bodies_are_accepted(api, ingest_key, memory_context):
    payload = gzip.compress(json.dumps(sdk_batch(NOW)).encode())
    response = await api.post("/api/v1/sightings", content=payload,
                              headers={"x-api-key": ingest_key, "content-encoding": "gzip",
                                       "content-type": "application/json"})
    assert response.status_code == 202
    assert len(memory_context.publisher.published) == 1


@pytest.mark.parametrize(
    ("body", "headers", "what"),
    [
        (os.urandom(300 * 1024), {"content-encoding": "gzip"}, "compressed"),
        (b" " * (1024 * 1024 + 1), {}, "uncompressed"),
        (gzip.compress(b" " * (2 * 1024 * 1024)), {"content-encoding": "gzip"}, "decompressed"),
    ],
)
async def test_oversized_bodies_get_413(api, ingest_key, memory_context, body, headers, what):
    response = await api.post("/api/v1/sightings", content=body,
                              headers={"x-api-key": ingest_key, "content-type": "application/json", **headers})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert what in response.json()["detail"]
    assert memory_context.publisher.published == []


async def test_malformed_batches_get_400_naming_each_field(api, ingest_key, memory_context):
    batch = sdk_batch(NOW, platform="symbian", batchId="42")
    del batch["deviceId"]
    response = await api.post("/api/v1/sightings", json=batch, headers={"x-api-key": ingest_key})
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"platform", "batchId", "deviceId"}
    assert memory_context.publisher.published == []


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [(b"{not json", {"content-type": "application/json"}, 400),
     (b"\x1f\x8b broken", {"content-type": "application/json", "content-encoding": "gzip"}, 400),
     (b"{}", {"content-type": "text/plain"}, 415),
     (b"{}", {"content-type": "application/json", "content-encoding": "br"}, 415)],
)
async def test_undecodable_bodies_get_4xx_problems(api, ingest_key, content, headers, status):
    response = await api.post("/api/v1/sightings", content=content, headers={"x-api-key": ingest_key, **headers})
    assert response.status_code == status
    assert response.json()["status"] == status


async def test_keys_are_required_and_scoped(api, memory_context):
    batch = sdk_batch(NOW)
    assert (await api.post("/api/v1/sightings", json=batch)).status_code == 401
    missing = await api.post("/api/v1/sightings", json=batch, headers={"x-api-key": "sf_00000000_" + "x" * 43})
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("ApiKey")
    read_key, _ = await memory_context.auth.mint_key("tenant-a", {Scope.read})
    assert (await api.post("/api/v1/sightings", json=batch, headers={"x-api-key": read_key})).status_code == 403
    assert memory_context.publisher.published == []


async def test_a_revoked_key_stops_working(memory_context):
    from dataclasses import replace

    from shared.services.auth import AuthService

    auth = AuthService(memory_context.api_keys, cache_ttl_s=0)
    key, record = await auth.mint_key("tenant-a", {Scope.ingest})
    assert (await auth.authenticate(key)).tenant_id == "tenant-a"
    await memory_context.api_keys.put(replace(record, revoked=True))
    with pytest.raises(Exception, match="not valid"):
        await auth.authenticate(key)


async def test_hub_unavailable_answers_503_with_retry_after_and_the_retry_succeeds(api, ingest_key, memory_context):
    batch = sdk_batch(NOW)
    memory_context.publisher.fail_with = DependencyUnavailable("event hub", "ConnectError", retry_after_s=7)
    refused = await api.post("/api/v1/sightings", json=batch, headers={"x-api-key": ingest_key})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
    memory_context.publisher.fail_with = None
    retried = await api.post("/api/v1/sightings", json=batch, headers={"x-api-key": ingest_key})
    assert retried.status_code == 202
    [event] = memory_context.publisher.published  # the refused attempt published nothing
    assert str(decode_ingest_event(event.body).parsed.batch.batch_id) == batch["batchId"]


async def test_a_batch_whose_readings_all_fail_is_acknowledged_but_not_published(api, ingest_key, memory_context):
    stale = sdk_batch(NOW, readings=[(BEACON_A, -70)])
    stale["sightings"][0]["ts"] = (NOW - timedelta(days=2)).isoformat()
    response = await api.post("/api/v1/sightings", json=stale, headers={"x-api-key": ingest_key})
    assert response.status_code == 202 and response.json()["accepted"] == 0
    assert "stale" in response.json()["rejected"][0]["reason"]
    assert memory_context.publisher.published == []


async def test_through_the_functions_http_trigger(worker, ingest_key, memory_context):
    response = await worker.post("/api/v1/sightings", json=sdk_batch(NOW), headers={"x-api-key": ingest_key})
    assert response.status_code == 202
    assert len(memory_context.publisher.published) == 1


async def test_ops_stats_need_the_admin_key_and_count_processing(api, ingest_key, memory_context):
    from tests.functions.conftest import LOCAL_VALUES

    assert (await api.get("/api/ops/stats", headers={"x-api-key": ingest_key})).status_code == 403
    response = await api.get("/api/ops/stats", headers={"x-api-key": LOCAL_VALUES["ADMIN_API_KEY"]})
    assert response.status_code == 200
    assert response.json()["pipeline"]["batches"] == 0 and response.json()["hub"]["backlog"] is None
