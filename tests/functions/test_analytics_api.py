"""GET /api/v1/buildings/{b}/analytics and PUT/GET/DELETE /api/v1/teams through the ASGI app."""
from __future__ import annotations

import csv
import io
from datetime import UTC, date

import pytest

from shared.domain.presence import Visit
from shared.domain.tenancy import Scope
from tests.support.analytics import at, site
from tests.support.sites import store_site


@pytest.fixture
async def keys(memory_context):
    made = {}
    for name, tenant, scope in (("read", "tenant-a", Scope.read), ("admin", "tenant-a", Scope.admin),
                                ("other", "tenant-b", Scope.read), ("ingest", "tenant-a", Scope.ingest)):
        made[name], _ = await memory_context.auth.mint_key(tenant, {scope})
    return {name: {"x-api-key": key} for name, key in made.items()}


@pytest.fixture
async def rolled(memory_context):
    """Thursday 26 Nov 2026 in hq (UTC, 08-18): 6 people in r-oak 09:00-09:30, two opted in."""
    await store_site(memory_context.site_models, "tenant-a", site())
    for i in range(6):
        await memory_context.live_state.save_visit(Visit("tenant-a", "hq", "r-oak", f"d{i}", at(26, 9), at(26, 9, 30),
                                                         f"u{i}" if i < 2 else None))
    await memory_context.rollups.roll_day("tenant-a", site(), date(2026, 11, 26), at(27, 6))


URL = "/api/v1/buildings/hq/analytics"


async def test_daily_json_has_one_row_per_metric_value(api, keys, rolled):
    response = await api.get(URL, params={"from": "2026-11-26", "to": "2026-11-26"}, headers=keys["read"])
    assert response.status_code == 200
    body = response.json()
    assert (body["buildingId"], body["grain"], body["timeZone"], body["minGroupSize"]) == ("hq", "day", "UTC", 5)
    [window] = body["windows"]
    assert window["final"] is True and window["start"] == "2026-11-26T00:00:00Z"
    rows = {(r["scope"], r["scopeId"], r["metric"]): r for r in body["rows"]}
    oak = rows[("space", "r-oak", "occupancy_rate")]
    assert oak["value"] == pytest.approx(0.05) and oak["unit"] == "ratio" and oak["suppressed"] is False  # 30 of 600 min
    assert rows[("space", "r-oak", "peak_headcount")]["value"] == 6
    assert rows[("building", "hq", "unique_visitors")]["value"] == 6
    assert ("space", "k-0", "right_sizing") not in rows  # only meeting rooms are right-sized


async def test_hourly_csv_for_one_space_and_metric(api, keys, rolled):
    response = await api.get(URL, params={"from": "2026-11-26", "to": "2026-11-26", "grain": "hour",
                                          "spaceId": "r-oak", "metric": "occupancy_rate,utilization"},
                             headers={**keys["read"], "accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["scopeId"] for r in rows} == {"r-oak"} and len(rows) == 20  # 10 business hours x 2 metrics
    at9 = {r["metric"]: r for r in rows if r["localHour"] == "9"}
    assert float(at9["occupancy_rate"]["value"]) == 0.5
    assert float(at9["utilization"]["value"]) == pytest.approx(6 / 9)
    assert at9["utilization"]["suppressed"] == "false"


async def test_another_tenants_building_is_not_found(api, keys, rolled):
    response = await api.get(URL, params={"from": "2026-11-26", "to": "2026-11-26"}, headers=keys["other"])
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    missing = await api.get("/api/v1/buildings/nowhere/analytics", params={"from": "2026-11-26", "to": "2026-11-26"},
                            headers=keys["read"])
    assert missing.status_code == 404 and missing.json()["detail"] == response.json()["detail"].replace("hq", "nowhere")
    assert (await api.get(URL, params={"from": "2026-11-26", "to": "2026-11-26"})).status_code == 401
    assert (await api.get(URL, params={"from": "2026-11-26", "to": "2026-11-26"},
                          headers=keys["ingest"])).status_code == 403


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2025-01-01", "to": "2026-01-02"}, "query.to"),  # 367 days
    ({"from": "2026-11-01", "to": "2026-12-05", "grain": "hour"}, "query.to"),
    ({"from": "2026-11-27", "to": "2026-11-26"}, "query.to"),
    ({"from": "2026-11-26", "to": "2026-11-26", "metric": "happiness"}, "query.metric"),
    ({"from": "2026-11-26", "to": "2026-11-26", "spaceId": "nope"}, "query.spaceId"),
    ({"from": "26/11/2026", "to": "2026-11-26"}, "query.from"),
    ({"from": "2026-11-26", "to": "2026-11-26", "grain": "week"}, "query.grain"),
    ({"to": "2026-11-26"}, "query.from"),
])
async def test_bad_parameters_are_400_naming_the_field(api, keys, rolled, params, field):
    response = await api.get(URL, params=params, headers=keys["read"])
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_a_year_is_the_longest_daily_range(api, keys, rolled):
    response = await api.get(URL, params={"from": "2026-01-01", "to": "2026-12-31"}, headers=keys["read"])
    assert response.status_code == 200 and len(response.json()["windows"]) == 1


async def test_teams_are_managed_by_the_tenants_admin(api, keys, memory_context):
    body = {"name": "Design", "members": ["u2", "u1", "u1"]}
    response = await api.put("/api/v1/teams/design", json=body, headers=keys["admin"])
    assert response.status_code == 200 and response.json() == {"teamId": "design", "name": "Design",
                                                                "members": ["u1", "u2"]}
    assert (await api.put("/api/v1/teams/design", json=body, headers=keys["read"])).status_code == 403
    bad = await api.put("/api/v1/teams/design", json={"members": "u1"}, headers=keys["admin"])
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "members"
    assert (await api.put("/api/v1/teams/bad%20id", json=body, headers=keys["admin"])).status_code == 400
    listed = await api.get("/api/v1/teams", headers=keys["admin"])
    assert [t["teamId"] for t in listed.json()] == ["design"]
    assert [t.team_id for t in await memory_context.teams.list_teams("tenant-b")] == []
    assert (await api.delete("/api/v1/teams/design", headers=keys["admin"])).status_code == 204
    assert (await api.delete("/api/v1/teams/design", headers=keys["admin"])).status_code == 404


async def test_the_hourly_timer_writes_rollups_the_api_then_serves(api, keys, memory_context, functions_by_name):
    from datetime import datetime, timedelta

    from azure.functions.timer import TimerRequest

    now = datetime.now(UTC)
    open_all_day = site(start="00:00", end="24:00", days=range(1, 8))
    await store_site(memory_context.site_models, "tenant-a", open_all_day)
    previous_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    for i in range(5):
        await memory_context.live_state.save_visit(
            Visit("tenant-a", "hq", "k-0", f"d{i}", previous_hour, previous_hour + timedelta(minutes=30)))
    await functions_by_name["hourly_rollup"].get_user_function()(TimerRequest(past_due=False))
    day = previous_hour.date().isoformat()
    response = await api.get(URL, params={"from": day, "to": day, "grain": "hour", "spaceId": "k-0",
                                          "metric": "unique_visitors"}, headers=keys["read"])
    assert [r["value"] for r in response.json()["rows"] if r["windowStart"] == previous_hour.strftime(
        "%Y-%m-%dT%H:%M:%SZ")] == [5]
