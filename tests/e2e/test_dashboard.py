"""The dashboard (/app/) and /api/docs in a real browser: Debian's chromium driven by Playwright, against `devkit
serve` seeded through the public API and fed real SDK batches. Offline: any request to another host fails the test.

Set SPACEFLOW_SCREENSHOT=1 to copy the dashboard's screenshot to docs/images/dashboard.png."""
from __future__ import annotations

import os
import random
import shutil
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from devkit.local_settings import local_settings
from devkit.seed import seed
from shared.services.stream import STREAM_POLL_SECONDS
from tests.e2e.conftest import REPO
from tests.support.batches import sdk_batch

ADMIN_KEY = local_settings()["ADMIN_API_KEY"]
ROOMS_MEASURED = 20  # rooms a phone walks into, one after the other: the median of their POST-to-colour times
BUILDING_LENGTH_M = 160  # a long office: more than ROOMS_MEASURED rooms with a beacon inside on its ground floor
SCREENSHOT_ENV = "SPACEFLOW_SCREENSHOT"

# Every data-status change of a space, with its wall-clock time (Date.now(), the test's clock too).
RECORD_CHANGES = """
window.__changes = [];
new MutationObserver((records) => {
  for (const r of records) {
    const el = r.target;
    if (el.getAttribute && el.hasAttribute('data-space-id'))
      window.__changes.push({id: el.getAttribute('data-space-id'), status: el.getAttribute('data-status'), t: Date.now()});
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-status']});
"""


@pytest.fixture(scope="module")
def tenant(live_server, devkit_keys) -> dict:
    return seed(live_server, ADMIN_KEY, tenant_id=f"e2e-dash-{uuid.uuid4().hex[:6]}", floors=2,
                keys_path=devkit_keys, length_m=BUILDING_LENGTH_M)


def read(tenant: dict) -> dict[str, str]:
    return {"x-api-key": tenant["keys"]["read"]}


def rooms_with_a_beacon(site: dict, floor: str) -> list[tuple[dict, dict]]:
    """(room, a beacon inside its bounding box) for the meeting rooms and offices of a floor."""
    out = []
    for space in site["spaces"]:
        if space["floor"] != floor or space["kind"] not in ("conferenceroom", "office", "huddleroom"):
            continue
        xs, ys = [p[0] for p in space["polygon"]], [p[1] for p in space["polygon"]]
        inside = [b for b in site["beacons"] if b["floor"] == floor
                  and min(xs) <= b["x"] <= max(xs) and min(ys) <= b["y"] <= max(ys)]
        if inside:
            out.append((space, inside[0]))
    return out


def walk_in(server: str, tenant: dict, device: str, beacon: str, user_id: str | None = None) -> list[float]:
    """A phone's three batches (20 s of strong readings of the room's beacon), from a person who opted in when
    `user_id` is given; returns the wall-clock time each POST was sent."""
    now = datetime.now(UTC)
    person = {"userId": user_id} if user_id else {}
    sent_at = []
    for n in range(3):
        sent = now - timedelta(seconds=10 * (2 - n))
        batch = sdk_batch(sent, device=device, readings=[(beacon, -55 - i % 3) for i in range(8)], **person)
        sent_at.append(time.time())
        response = httpx.post(f"{server}/api/v1/sightings", json=batch,
                              headers={"x-api-key": tenant["keys"]["ingest"]})
        assert response.status_code == 202, response.text
    return sent_at


def open_dashboard(page, server: str, tenant: dict) -> float:
    page.add_init_script(RECORD_CHANGES)
    page.goto(f"{server}/app/#key={tenant['keys']['read']}&building={tenant['buildingId']}")
    page.wait_for_selector("[data-space-id][data-status]", state="attached", timeout=20_000)
    paint = page.evaluate("""() => Object.fromEntries(performance.getEntriesByType('paint')
                               .map(e => [e.name, Math.round(e.startTime)]))""")
    print(f"\ndashboard first paint: {paint.get('first-paint')} ms, first contentful paint: "
          f"{paint.get('first-contentful-paint')} ms")
    return float(paint.get("first-contentful-paint") or paint.get("first-paint") or 0)


def test_dashboard_floors_live_colours_and_route(page, live_server, tenant, tmp_path):
    server, building = live_server, tenant["buildingId"]
    site = httpx.get(f"{server}/api/v1/buildings/{building}", headers=read(tenant)).json()
    assert open_dashboard(page, server, tenant) > 0
    assert "key=" not in page.url  # the key left the address bar for sessionStorage
    assert page.evaluate("sessionStorage.getItem('spaceflow.apiKey')") == tenant["keys"]["read"]

    # floor tabs switch the plan
    tabs = page.locator("[data-floor]")
    floors = [tabs.nth(i).get_attribute("data-floor") for i in range(tabs.count())]
    assert floors == [f["id"] for f in sorted(site["floors"], key=lambda f: f["ordinal"])]
    second = floors[1]
    tabs.nth(1).click()
    page.wait_for_function("f => document.body.dataset.currentFloor === f", arg=second)
    ids_on_second = set(page.eval_on_selector_all("#map [data-space-id]", "els => els.map(e => e.dataset.spaceId)"))
    assert ids_on_second and ids_on_second <= {s["id"] for s in site["spaces"] if s["floor"] == second}
    tabs.nth(0).click()
    page.wait_for_function("f => document.body.dataset.currentFloor === f", arg=floors[0])
    statuses = page.eval_on_selector_all("#map [data-space-id]", "els => els.map(e => e.dataset.status)")
    assert statuses and set(statuses) <= {"free", "occupied", "none"} and "free" in statuses
    assert page.locator("body").get_attribute("data-live") in ("polling", "stream")
    page.wait_for_selector("[data-beacon]", state="attached")
    page.screenshot(path=str(tmp_path / "dashboard-floor.png"))

    # phones walk into rooms: each room turns occupied on the map without a reload
    candidates = rooms_with_a_beacon(site, floors[0])
    assert len(candidates) >= ROOMS_MEASURED
    latencies, seen, occupied_room = [], set(), None
    phase = random.Random(7)
    for n, (room, beacon) in enumerate(candidates[:ROOMS_MEASURED]):
        # Each walk-in starts at a random point of the stream's poll cycle: started right after the last change
        # was seen, every POST would land at the same phase and the median would measure the phase, not the lag.
        time.sleep(phase.uniform(0, STREAM_POLL_SECONDS))
        posts = walk_in(server, tenant, f"e2e-dash-phone-{n}", beacon["id"])
        change = page.wait_for_function(
            """([since, seen]) => window.__changes.find(c => c.status === 'occupied' && c.t >= since
                                                        && !seen.includes(c.id))""",
            arg=[int(posts[0] * 1000), sorted(seen)], timeout=20_000).json_value()
        seen.add(change["id"])
        # From the POST that made the room occupied: the last one sent before the colour changed (the tracker may
        # be sure of the room after two batches; the third then only confirms it).
        latencies.append(change["t"] / 1000 - max(t for t in posts if t <= change["t"] / 1000))
        occupied_room = change["id"]
        api_status = httpx.get(f"{server}/api/v1/buildings/{building}/spaces/{change['id']}",
                               headers=read(tenant)).json()["status"]
        assert api_status == "occupied"
        assert page.get_attribute(f"#map [data-space-id='{change['id']}']", "data-status") == "occupied"
        assert change["id"] == room["id"] or change["id"] in {s["id"] for s in site["spaces"]}
    print(f"POST to occupied colour: median {statistics.median(latencies):.2f} s over {len(latencies)} rooms "
          f"({', '.join(f'{x:.2f}' for x in latencies)} s)")

    # click the occupied room: its state, the nearest free rooms, the route drawn with its instructions
    page.locator(f"#map [data-space-id='{occupied_room}']").first.dispatch_event("click")
    page.wait_for_selector("#space-state .status-occupied")
    page.wait_for_selector("#free-rooms li")
    page.wait_for_selector("#route-steps li")
    steps = page.locator("#route-steps li").all_inner_texts()
    assert steps and all(step.strip() for step in steps)
    assert page.locator("[data-route]").count() >= 1
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot))
    print(f"screenshots in {tmp_path}")
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, REPO / "docs" / "images" / "dashboard.png")


def test_dashboard_asks_for_a_key_and_keeps_it_out_of_urls(page, live_server, tenant):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{live_server}/app/")
    page.wait_for_selector("#key-form:not([hidden])")
    page.fill("#key-input", tenant["keys"]["read"])
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("[data-space-id][data-status]", state="attached", timeout=20_000)
    assert requests and not [url for url in requests if tenant["keys"]["read"] in url]
    assert page.locator("#building option").count() == 1


def test_api_docs_render_offline(page, live_server, tmp_path):
    page.goto(f"{live_server}/api/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    operations = page.locator(".opblock").count()
    print(f"\n/api/docs: {operations} operations rendered")
    assert operations >= 20
    assert page.locator(".opblock-summary-path", has_text="/api/v1/buildings/{buildingId}/spaces").count() >= 1
    page.screenshot(path=str(tmp_path / "api-docs.png"))


def test_static_files_need_no_key_and_data_still_does(live_server, tenant):
    for path in ("/app/", "/app/app.js", "/api/docs", "/api/static/vendor/leaflet/leaflet.js",
                 "/api/static/vendor/chart.js/chart.umd.js", "/api/static/vendor/swagger-ui/swagger-ui-bundle.js"):
        response = httpx.get(f"{live_server}{path}")
        assert response.status_code == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert httpx.get(f"{live_server}/api/v1/buildings").status_code == 401
    assert httpx.get(f"{live_server}/app/nothing-here.js").status_code == 404
    assert httpx.get(f"{live_server}/elsewhere/").status_code == 401


def test_people_layer_shows_each_person_only_as_they_allow(page, live_server, tenant):
    server, building = live_server, tenant["buildingId"]
    site = httpx.get(f"{server}/api/v1/buildings/{building}", headers=read(tenant)).json()
    floor = min(site["floors"], key=lambda f: f["ordinal"])["id"]
    sharing = {p["sharing"]: p["userId"] for p in tenant["people"]}  # seeded: one at `space`, one at `floor`
    rooms = rooms_with_a_beacon(site, floor)[-2:]  # rooms the latency test leaves alone
    for (room, beacon), level in zip(rooms, ("space", "floor"), strict=True):
        walk_in(server, tenant, f"e2e-people-{level}", beacon["id"], user_id=sharing[level])
    deadline, expected = time.monotonic() + 20, {}
    while set(expected) != set(sharing.values()) and time.monotonic() < deadline:  # the batches are processed
        time.sleep(0.2)
        expected = {p["userId"]: p for p in httpx.get(f"{server}/api/v1/buildings/{building}/people",
                                                      headers={"x-api-key": tenant["keys"]["people"]}).json()["items"]}
    assert set(expected) == set(sharing.values())
    space_person = expected[sharing["space"]]

    # A read key may not look people up: the layer says why and stays off.
    page.goto(f"{server}/app/#key={tenant['keys']['read']}&building={building}&floor={floor}")
    page.wait_for_selector("[data-space-id][data-status]", state="attached", timeout=20_000)
    page.check("#show-people")
    page.wait_for_function("() => document.getElementById('people-note').textContent.includes('people scope')")
    assert not page.is_checked("#show-people") and page.locator("[data-person]").count() == 0

    # The tenant's admin key may: the person sharing their room is drawn in it, the one sharing only the floor
    # is listed without a room and drawn nowhere.
    page.evaluate("sessionStorage.clear()")
    page.goto("about:blank")  # a new document: the same page with another fragment would not load again
    page.goto(f"{server}/app/#key={tenant['keys']['admin']}&building={building}&floor={floor}")
    page.wait_for_selector("[data-space-id][data-status]", state="attached", timeout=20_000)
    page.check("#show-people")
    page.wait_for_selector("#people-list li", timeout=20_000)
    listed = {li.get_attribute("data-person"): li for li in page.locator("#people-list li").all()}
    assert set(listed) == set(sharing.values())
    assert listed[sharing["floor"]].get_attribute("data-level") == "floor"
    assert "room not shared" in listed[sharing["floor"]].inner_text()
    room_name = next(s["name"] for s in site["spaces"] if s["id"] == space_person["spaceId"])
    assert room_name in listed[sharing["space"]].inner_text()
    markers = page.locator("#map [data-person]")
    assert markers.count() == 1 and markers.first.get_attribute("data-person") == sharing["space"]
    assert markers.first.get_attribute("data-in-space") == space_person["spaceId"]
    # The marker sits inside the person's room as drawn on the map.
    marker_box = markers.first.bounding_box()
    room_box = page.locator(f"#map [data-space-id='{space_person['spaceId']}']").first.bounding_box()
    assert marker_box and room_box
    centre = (marker_box["x"] + marker_box["width"] / 2, marker_box["y"] + marker_box["height"] / 2)
    assert room_box["x"] <= centre[0] <= room_box["x"] + room_box["width"], (centre, room_box, marker_box)
    assert room_box["y"] <= centre[1] <= room_box["y"] + room_box["height"]
    page.uncheck("#show-people")
    assert page.locator("#map [data-person]").count() == 0 and page.locator("#people-list").count() == 0
