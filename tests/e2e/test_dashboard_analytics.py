"""The dashboard's analytics panel in a real browser (Debian's chromium, Playwright) against `devkit serve` with
weeks of history: the per-room utilization heatmap and today against a typical weekday, each number checked
against the analytics API.

The history is written by `python -m devkit history` into the very emulators the server runs on: visits through
the app's own store, then the real rollup service (ingest takes no sightings of past days). Set
SPACEFLOW_SCREENSHOT=1 to copy the panel's screenshot to docs/images/dashboard-analytics.png."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from devkit.emulators.launcher import azurite_connection_string, cosmos_connection_string, free_port
from devkit.local_settings import local_settings
from devkit.seed import seed
from shared.domain.analytics import Grain
from shared.services.rollups import MAX_RANGE_DAYS
from tests.e2e.conftest import REPO, serve_devkit, stop_devkit

ADMIN_KEY = local_settings()["ADMIN_API_KEY"]
# 24 days back: the 4th same weekday before today (28 days) has no data, so the typical weekday must be the mean of
# the 3 weeks that have it, not a mean over 4 with a hole counted as zero
HISTORY_DAYS = 24
SCREENSHOT_ENV = "SPACEFLOW_SCREENSHOT"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, devkit_keys) -> Iterator[tuple[str, dict[str, str]]]:
    """`devkit serve` on ports the test knows, and the settings that reach its emulators."""
    ports = (free_port(), free_port(), free_port())
    process, url = serve_devkit(tmp_path_factory.mktemp("serve") / "serve.log", devkit_keys, ports=ports)
    yield url, {"ANALYTICS_STORAGE": azurite_connection_string(ports[1]), "COSMOS": cosmos_connection_string(ports[2])}
    stop_devkit(process)


@pytest.fixture(scope="module")
def live_server(stack) -> str:
    return stack[0]


def zone_at_two_pm() -> str:
    """A fixed-offset zone where it is now 14:xx, so that today has a morning of data whenever the test runs."""
    offset = 14 - datetime.now(UTC).hour  # -9 .. +14, all real offsets
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # the Etc/ names count the other way round


@pytest.fixture(scope="module")
def history(stack, devkit_keys) -> dict:
    """A seeded tenant whose building is open all week, in a zone where it is early afternoon, with
    HISTORY_DAYS days of office life before today (and today's morning) rolled up."""
    url, emulators = stack
    tenant = seed(url, ADMIN_KEY, tenant_id=f"e2e-heat-{uuid.uuid4().hex[:6]}", floors=2, keys_path=devkit_keys)
    admin = {"x-api-key": tenant["keys"]["admin"]}
    building = f"{url}/api/v1/buildings/{tenant['buildingId']}"
    current = httpx.get(building, headers=admin)
    site = {**current.json(), "timeZone": zone_at_two_pm(),
            # open every day, all day: the test's weekday and hour never leave today without business time
            "businessHours": {"start": "00:00", "end": "24:00", "days": [1, 2, 3, 4, 5, 6, 7]}}
    saved = httpx.put(building, json=site, headers={**admin, "If-Match": current.headers["etag"]})
    assert saved.status_code == 200, saved.text
    done = subprocess.run(
        [sys.executable, "-m", "devkit", "history", "--building", tenant["buildingId"], "--tenant",
         tenant["tenantId"], "--days", str(HISTORY_DAYS), "--people", "60", "--seed", "11", "--json"],
        check=False, cwd=REPO, env={**os.environ, **emulators}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    print(f"\nhistory: {summary['visits']} visits, {summary['windows']} windows in {summary['seconds']} s "
          f"(visits written in {summary['writeSeconds']} s)")
    return {**tenant, "site": saved.json(), "zone": ZoneInfo(site["timeZone"]), "summary": summary}


def read(tenant: dict) -> dict[str, str]:
    return {"x-api-key": tenant["keys"]["read"]}


def analytics(server: str, tenant: dict, first: date, last: date, grain: str, metric: str) -> dict:
    response = httpx.get(f"{server}/api/v1/buildings/{tenant['buildingId']}/analytics", headers=read(tenant),
                         params={"from": first.isoformat(), "to": last.isoformat(), "grain": grain, "metric": metric})
    assert response.status_code == 200, response.text
    return response.json()


def open_dashboard(page, server: str, tenant: dict) -> None:
    page.goto(f"{server}/app/#key={tenant['keys']['read']}&building={tenant['buildingId']}")
    page.wait_for_selector("#heatmap[data-state=ready]", state="attached", timeout=30_000)


def heatmap_cells(page) -> list[dict]:
    return page.eval_on_selector_all("#heatmap td", """tds => tds.map(td => ({
        spaceId: td.dataset.spaceId, date: td.dataset.date, state: td.dataset.state, value: td.dataset.value ?? null,
        suppressed: td.dataset.suppressed ?? null, title: td.title}))""")


def test_heatmap_cells_are_the_apis_utilization_per_room_and_day(page, live_server, history, tmp_path):
    server, site = live_server, history["site"]
    today = datetime.now(history["zone"]).date()
    open_dashboard(page, server, history)
    # default: the last 7 whole local days of the building's time zone
    assert (page.input_value("#heatmap-from"), page.input_value("#heatmap-to")) == (
        (today - timedelta(days=7)).isoformat(), (today - timedelta(days=1)).isoformat())

    # pick a range that starts before the history does (no data there) and ends inside it
    first, last = today - timedelta(days=HISTORY_DAYS + 3), today - timedelta(days=HISTORY_DAYS - 6)
    page.fill("#heatmap-from", first.isoformat())
    page.fill("#heatmap-to", last.isoformat())
    page.wait_for_function("([f, t]) => { const h = document.getElementById('heatmap');"
                           " return h.dataset.state === 'ready' && h.dataset.from === f && h.dataset.to === t; }",
                           arg=[first.isoformat(), last.isoformat()])
    answer = analytics(server, history, first, last, "day", "utilization")
    rows = {(r["scopeId"], r["localDate"]): r for r in answer["rows"] if r["scope"] == "space"}
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    seen: dict[str, int] = {}
    floors = [f["id"] for f in sorted(site["floors"], key=lambda f: f["ordinal"])]
    for n, floor in enumerate(floors):
        page.locator(f"[data-floor='{floor}']").click()
        page.wait_for_selector(f"#heatmap[data-floor-shown='{floor}'][data-state=ready]", state="attached")
        cells = heatmap_cells(page)
        rooms = {s["id"] for s in site["spaces"] if s["floor"] == floor and s.get("capacity", 0) > 0}
        assert {(c["spaceId"], c["date"]) for c in cells} == {(r, d) for r in rooms for d in days}
        assert len(cells) == len(rooms) * len(days)
        for cell in cells:
            row = rows.get((cell["spaceId"], cell["date"]))
            where = f"{cell['spaceId']} on {cell['date']}"
            if row is None:  # before the history: no window rolled up at all
                assert date.fromisoformat(cell["date"]) < today - timedelta(days=HISTORY_DAYS), where
                assert cell["state"] == "no-data" and cell["value"] is None, where
            elif row["suppressed"]:
                assert (cell["state"], cell["suppressed"], cell["value"]) == ("suppressed", "true", None), where
                assert "fewer than 5 people" in cell["title"]
            elif row["value"] is None:
                assert cell["state"] == "unused" and cell["value"] is None, where
            else:
                assert cell["state"] == "value" and float(cell["value"]) == row["value"], where
                assert f"utilization {round(row['value'] * 100)} %" in cell["title"]
            seen[cell["state"]] = seen.get(cell["state"], 0) + 1
        if n == 0:
            page.locator("#heatmap-panel").screenshot(path=str(tmp_path / "heatmap.png"))
    print(f"heatmap cells by state over {len(floors)} floors: {seen}")
    assert seen.get("value", 0) >= 10 and seen.get("suppressed", 0) >= 1 and seen.get("no-data", 0) >= 1
    assert not [r for r in answer["rows"] if r["scope"] == "space" and r["localDate"] not in days]

    # a range longer than the API allows is refused in the page, without asking the API
    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url) if "/analytics" in request.url else None)
    too_long = last - timedelta(days=MAX_RANGE_DAYS[Grain.day])
    page.fill("#heatmap-from", too_long.isoformat())
    page.wait_for_function("() => document.getElementById('heatmap-range').dataset.invalid === 'true'")
    assert f"at most {MAX_RANGE_DAYS[Grain.day]} days" in page.inner_text("#heatmap-note")
    assert page.get_attribute("#heatmap", "data-from") == first.isoformat() and not calls
    longest = last - timedelta(days=MAX_RANGE_DAYS[Grain.day] - 1)
    page.fill("#heatmap-from", longest.isoformat())
    page.wait_for_function("f => document.getElementById('heatmap').dataset.from === f", arg=longest.isoformat())
    assert page.get_attribute("#heatmap-range", "data-invalid") == "false" and len(calls) == 1


def typical_weekday(answers: list[dict]) -> tuple[dict[int, float], dict[int, tuple[float, int]]]:
    """Today's building mean headcount per local hour, and per hour the mean over the earlier weeks that have a
    (published) value for it, with how many weeks that is."""
    def hourly(answer: dict) -> dict[int, float]:
        values: dict[int, list[float]] = {}
        for row in answer["rows"]:
            if row["scope"] == "building" and row["metric"] == "mean_headcount" and row["value"] is not None:
                values.setdefault(row["localHour"], []).append(row["value"])
        return {hour: sum(v) / len(v) for hour, v in values.items()}

    today, *weeks = [hourly(a) for a in answers]
    typical = {}
    for hour in range(24):
        values = [week[hour] for week in weeks if hour in week]
        if values:
            typical[hour] = (sum(values) / len(values), len(values))
    return today, typical


def test_today_against_the_mean_of_the_same_weekday_in_the_weeks_with_data(page, live_server, history, tmp_path):
    server = live_server
    today = datetime.now(history["zone"]).date()
    open_dashboard(page, server, history)
    page.wait_for_selector("#weekday[data-state=ready]", state="attached")
    days = [today - timedelta(weeks=w) for w in range(5)]
    answers = [analytics(server, history, day, day, "hour", "mean_headcount") for day in days]
    expected_today, expected_typical = typical_weekday(answers)
    assert expected_today and expected_typical  # a morning of today, and weeks before it
    assert max(weeks for _, weeks in expected_typical.values()) == 3  # the 4th week back is before the history
    assert any(value > 0 for value in expected_today.values())

    shown = page.eval_on_selector_all("#weekday-table tbody tr", """trs => trs.map(tr => ({
        hour: Number(tr.dataset.hour), today: tr.dataset.today ?? null, typical: tr.dataset.typical ?? null,
        weeks: Number(tr.dataset.weeks)}))""")
    hours = {row["hour"] for row in shown}
    assert set(expected_today) | set(expected_typical) <= hours
    for row in shown:
        hour = row["hour"]
        if hour in expected_today:
            assert float(row["today"]) == pytest.approx(expected_today[hour], rel=1e-12), hour
        else:
            assert row["today"] is None, hour
        if hour in expected_typical:
            mean, weeks = expected_typical[hour]
            assert float(row["typical"]) == pytest.approx(mean, rel=1e-12) and row["weeks"] == weeks, hour
        else:
            assert row["typical"] is None and row["weeks"] == 0, hour
    name = today.strftime("%A")
    assert page.inner_text("#weekday-title") == f"Today against a typical {name}"
    note = page.inner_text("#analytics-note")
    assert f"previous 4 {name}s" in note and "3 of 4 had data" in note
    assert page.get_attribute("#weekday", "data-weeks") == "3"
    assert page.get_attribute("#weekday", "data-week-dates") == ",".join(d.isoformat() for d in days[1:])
    panel = tmp_path / "dashboard-analytics.png"
    page.set_viewport_size({"width": 1400, "height": 1500})  # both panels, without scrolling the side panel
    top, bottom = page.locator("#heatmap-panel").bounding_box(), page.locator("#weekday").bounding_box()
    page.screenshot(path=str(panel), clip={"x": top["x"] - 8, "y": top["y"] - 8, "width": top["width"] + 16,
                                           "height": bottom["y"] + bottom["height"] - top["y"] + 16})
    print(f"typical {name}: {len(expected_typical)} hours; screenshots in {tmp_path}")
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(panel, REPO / "docs" / "images" / "dashboard-analytics.png")
