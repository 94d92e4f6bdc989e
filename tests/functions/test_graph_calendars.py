"""A Microsoft 365 room mailbox as a space's booking source, against recorded Graph answers shaped as Graph
documents them (calendarView delta pages with @odata.nextLink / @odata.deltaLink, a removed occurrence, a
subscription, a change notification and its validation request), replayed by a local server on 127.0.0.1
(tests/support/graph_replay.py), through the msgraph-sdk client and the app's API."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.adapters.graph_calendars import GraphRoomCalendars
from shared.domain.bookings import BookingSettings, BookingSourceKind, ReleaseState, derived_booking_id
from shared.domain.tenancy import BuildingRef
from shared.settings import load_settings
from shared.wiring import build_in_memory_context, set_context
from tests.functions.conftest import LOCAL_VALUES
from tests.support.graph_replay import GraphReplay, Request, recorded
from tests.support.sites import small_site

ADMIN = {"x-api-key": LOCAL_VALUES["ADMIN_API_KEY"]}
NOTIFY = "https://spaceflow.example/api/v1/graph/notifications"
T0 = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
HQ = BuildingRef("acme", "hq")
MAILBOX = "room-oak@contoso.com"
FIRST_DELTA, SECOND_DELTA = "R0usmci39OQxqJrxK4", "R0usmci39OQxqJrxK5"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class GraphScript:
    """What the replayed Graph answers, switchable per test."""

    def __init__(self) -> None:
        self.delta_gone = False  # the first delta link has expired (410 Gone)
        self.subscription_gone = False  # PATCH of the subscription: 404

    def __call__(self, request: Request):
        if request.method == "GET" and request.path.endswith(("calendarView/delta", "calendarView/delta()")):
            if "$skiptoken" in request.query:
                return 200, recorded("calendarview_delta_page2.json")
            token = request.query.get("$deltatoken", [None])[0]
            if token == FIRST_DELTA:
                if self.delta_gone:
                    return 410, recorded("error_sync_state_not_found.json")
                return 200, recorded("calendarview_delta_incremental.json")
            if token == SECOND_DELTA:
                return 200, {"@odata.context": "x", "@odata.deltaLink": f"https://graph.microsoft.com/v1.0/users/"
                                                                         f"{MAILBOX}/calendarView/delta?$deltatoken="
                                                                         f"{SECOND_DELTA}", "value": []}
            return 200, recorded("calendarview_delta_page1.json")
        if request.method == "POST" and request.path.endswith("/subscriptions"):
            answer = recorded("subscription_created.json")
            return 201, {**answer, "expirationDateTime": request.body["expirationDateTime"]}
        if request.method == "PATCH" and "/subscriptions/" in request.path:
            if self.subscription_gone:
                return 404, {"error": {"code": "ResourceNotFound", "message": "subscription not found"}}
            return 200, {**recorded("subscription_renewed.json"),
                         "expirationDateTime": request.body["expirationDateTime"]}
        if request.method == "POST" and request.path.endswith("/decline"):
            return 202, None
        if request.method == "DELETE" and "/subscriptions/" in request.path:
            return 204, None
        return None


@pytest.fixture
async def env():
    graph, script = GraphReplay(), GraphScript()
    graph.routes.append(script)
    graph.start()
    clock = Clock()
    context = build_in_memory_context(load_settings({**LOCAL_VALUES, "GRAPH_NOTIFICATION_URL": NOTIFY}), clock=clock)
    context.calendars.use_source(BookingSourceKind.graph, GraphRoomCalendars.at(graph.base_url))
    set_context(context)
    from functions.http_api import create_api

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api()), base_url="http://test") as api:
        assert (await api.post("/api/v1/tenants", json={"tenantId": "acme", "name": "Acme"},
                               headers=ADMIN)).status_code == 201
        admin = {"x-api-key": (await api.post("/api/v1/tenants/acme/keys", json={"scopes": ["admin"]},
                                              headers=ADMIN)).json()["key"]}
        assert (await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=admin)).status_code == 201
        yield api, admin, context, clock, graph, script
    set_context(None)
    graph.stop()


def booking_id(event_id: str) -> str:
    return derived_booking_id(BookingSourceKind.graph, event_id)


async def connect(api, admin) -> dict:
    answer = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar", json={"graph": {"mailbox": MAILBOX}},
                           headers=admin)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def bookings(context) -> dict[str, tuple[datetime, datetime]]:
    found = await context.booking_store.list_bookings(HQ, T0 - timedelta(days=2), T0 + timedelta(days=30), "r-oak")
    return {b.source_event_id: (b.start, b.end) for b in found}


async def test_a_full_delta_round_follows_next_links_to_the_delta_link_and_keeps_no_meeting_details(env):
    api, admin, context, _clock, graph, _script = env
    out = await connect(api, admin)
    assert out["kind"] == "graph" and out["mailbox"] == MAILBOX and out["lastError"] is None
    assert out["lastSync"] == {"created": 3, "moved": 0, "removed": 0, "error": None}
    assert await bookings(context) == {
        "AAMkADNkNmAA=": (datetime(2026, 11, 26, 9, tzinfo=UTC), datetime(2026, 11, 26, 10, tzinfo=UTC)),
        "AAMkADNkNmBB=": (datetime(2026, 11, 26, 13, tzinfo=UTC), datetime(2026, 11, 26, 13, 30, tzinfo=UTC)),
        "AAMkADNkNmCC=": (datetime(2026, 11, 27, 15, tzinfo=UTC), datetime(2026, 11, 27, 16, tzinfo=UTC))}
    [first, second] = graph.of("GET", "calendarView/delta")
    assert first.query["startDateTime"] == ["2026-11-25T08:30:00Z"] and first.query["endDateTime"] == [
        "2026-12-10T08:30:00Z"]
    assert "$skiptoken" in second.query
    assert 'outlook.timezone="UTC"' in first.headers.get("prefer", "")
    source = await context.booking_store.get_source(HQ, "r-oak")
    assert source.cursor.endswith(f"$deltatoken={FIRST_DELTA}")
    # nothing of the meetings but their times and ids: no subject, organizer, attendee or body anywhere
    stored = json.dumps(list(context.live_state._docs["spaces"].values()), default=str)
    for secret in ("Quarterly", "Adele", "adelev", "Agenda", "Megan", "Interview", "alexw"):
        assert secret not in stored


async def test_the_subscription_handshake_and_notifications_with_and_without_client_state(env):
    api, admin, context, _clock, graph, _script = env
    await connect(api, admin)
    [created] = graph.of("POST", "/subscriptions")
    assert created.body["resource"] == f"/users/{MAILBOX}/events"
    assert created.body["changeType"] == "created,updated,deleted"
    assert created.body["notificationUrl"] == f"{NOTIFY}/acme/hq/r-oak"
    assert len(created.body["clientState"]) >= 32
    source = await context.booking_store.get_source(HQ, "r-oak")
    assert source.subscription_id == "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
    assert source.client_state == created.body["clientState"]
    # the key-less validation handshake: the token back, decoded, as plain text
    handshake = await api.post("/api/v1/graph/notifications/acme/hq/r-oak?validationToken=Validation%3A%20Testing"
                               "%20client%20application%20reachability%20for%20subscription%20Request-Id%3A%201",
                               content=b"", headers={"content-type": "text/plain"})
    assert handshake.status_code == 200 and handshake.headers["content-type"].startswith("text/plain")
    assert handshake.text == "Validation: Testing client application reachability for subscription Request-Id: 1"
    # the client state shows in no answer
    shown = await api.get("/api/v1/buildings/hq/spaces/r-oak/calendar", headers=admin)
    assert created.body["clientState"] not in shown.text
    # a notification without the subscription's clientState is ignored
    forged = recorded("change_notification.json")
    forged["value"][0]["clientState"] = "guessed"
    answer = await api.post("/api/v1/graph/notifications/acme/hq/r-oak", json=forged)
    assert answer.status_code == 202
    await context.calendars.settle()
    assert len(graph.of("GET", "calendarView/delta")) == 2 and not (
        await context.booking_store.get_source(HQ, "r-oak")).sync_requested
    # ... and so is one for another space (its subscription id is not this one's)
    assert (await api.post("/api/v1/graph/notifications/acme/hq/k-0", json=forged)).status_code == 202
    # the real one: the delta round from the cursor moves one occurrence and removes another
    real = recorded("change_notification.json")
    real["value"][0]["clientState"] = created.body["clientState"]
    assert (await api.post("/api/v1/graph/notifications/acme/hq/r-oak", json=real)).status_code == 202
    await context.calendars.settle()
    assert await bookings(context) == {
        "AAMkADNkNmAA=": (datetime(2026, 11, 26, 9, tzinfo=UTC), datetime(2026, 11, 26, 10, tzinfo=UTC)),
        "AAMkADNkNmBB=": (datetime(2026, 11, 26, 14, tzinfo=UTC), datetime(2026, 11, 26, 14, 30, tzinfo=UTC))}
    source = await context.booking_store.get_source(HQ, "r-oak")
    assert source.cursor.endswith(SECOND_DELTA) and not source.sync_requested
    # malformed notifications are a 400 naming the field, never a 500
    bad = await api.post("/api/v1/graph/notifications/acme/hq/r-oak", json={"value": [{"clientState": "x"}]})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "value[0].subscriptionId"
    bad_path = await api.post("/api/v1/graph/notifications/acme/hq/%2E%2E", json=real)
    assert bad_path.status_code == 400


async def test_renewal_by_timer_and_a_new_subscription_when_graph_lost_it(env):
    api, admin, context, clock, graph, script = env
    await connect(api, admin)
    first = await context.booking_store.get_source(HQ, "r-oak")
    assert await context.calendars.renew_subscriptions(clock.now + timedelta(hours=1)) == 0  # not due
    clock.now = first.subscription_expires_at - timedelta(hours=12)
    assert await context.calendars.renew_subscriptions(clock.now) == 1
    [patch] = graph.of("PATCH", "/subscriptions/7f105c7d")
    renewed = await context.booking_store.get_source(HQ, "r-oak")
    assert renewed.subscription_expires_at > first.subscription_expires_at
    assert datetime.fromisoformat(patch.body["expirationDateTime"]) == renewed.subscription_expires_at
    script.subscription_gone = True
    clock.now = renewed.subscription_expires_at - timedelta(hours=1)
    assert await context.calendars.renew_subscriptions(clock.now) == 1
    assert len(graph.of("POST", "/subscriptions")) == 2
    again = await context.booking_store.get_source(HQ, "r-oak")
    assert again.client_state != first.client_state  # a new subscription has a new secret


async def test_an_expired_delta_link_starts_a_full_round(env):
    api, admin, context, _clock, graph, script = env
    await connect(api, admin)
    script.delta_gone = True
    result, source = await context.calendars.sync(await context.booking_store.get_source(HQ, "r-oak"))
    assert result.error is None and source.cursor.endswith(FIRST_DELTA)
    assert len(graph.of("GET", "calendarView/delta")) == 5  # 2, then the 410, then 2 again
    assert len(await bookings(context)) == 3


async def test_a_no_show_is_declined_by_the_room_mailbox_once(env):
    api, admin, context, clock, graph, _script = env
    await connect(api, admin)
    await context.booking_store.put_settings(BookingSettings("acme", "hq", release_no_shows=True))
    clock.now = datetime(2026, 11, 26, 9, 10, tzinfo=UTC)
    for _ in range(3):
        await context.no_shows.sweep(clock.now)
    [decline] = graph.of("POST", "/decline")
    assert decline.path.endswith(f"/users/{MAILBOX}/events/AAMkADNkNmAA=/decline")
    assert {k.lower(): v for k, v in decline.body.items()}["sendresponse"] is True
    stored = await context.booking_store.get(HQ, "r-oak", booking_id("AAMkADNkNmAA="))
    assert stored.release_state is ReleaseState.done and stored.released
    released = await api.get(f"/api/v1/buildings/hq/spaces/r-oak/bookings/{booking_id('AAMkADNkNmAA=')}",
                             headers=admin)
    assert released.json()["released"] is True and released.json()["source"] == "graph"


async def test_graph_bookings_are_changed_in_the_mailbox_not_the_api(env):
    api, admin, _context, _clock, _graph, _script = env
    await connect(api, admin)
    answer = await api.delete(f"/api/v1/buildings/hq/spaces/r-oak/bookings/{booking_id('AAMkADNkNmAA=')}",
                              headers=admin)
    assert answer.status_code == 409


async def test_disconnecting_deletes_the_subscription_and_the_bookings_to_come(env):
    api, admin, context, clock, graph, _script = env
    await connect(api, admin)
    clock.now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert (await api.delete("/api/v1/buildings/hq/spaces/r-oak/calendar", headers=admin)).status_code == 204
    assert graph.of("DELETE", "/subscriptions/7f105c7d")
    assert set(await bookings(context)) == {"AAMkADNkNmAA="}  # the one that is over stays (analytics)
    assert (await api.get("/api/v1/buildings/hq/spaces/r-oak/calendar", headers=admin)).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"graph": {"mailbox": "../users/ceo@contoso.com"}}, "graph.mailbox"),
    ({"graph": {"mailbox": "room?x=1@contoso.com"}}, "graph.mailbox"),
    ({"graph": {}}, "graph.mailbox"),
    ({"graph": {"mailbox": MAILBOX}, "ical": {}}, "$"),
    ({}, "$"),
    ({"ical": {"url": "http://169.254.169.254/latest"}}, "ical.url"),
    ({"ical": {"url": "https://10.0.0.5/room.ics"}}, "ical.url"),
])
async def test_bad_calendars_are_400_naming_the_field(env, body, field):
    api, admin, _context, _clock, _graph, _script = env
    answer = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar", json=body, headers=admin)
    assert answer.status_code == 400, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field]


async def test_without_graph_in_the_deployment_a_mailbox_is_refused(env):
    api, admin, context, _clock, _graph, _script = env
    context.calendars.sources.pop(BookingSourceKind.graph)
    answer = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar", json={"graph": {"mailbox": MAILBOX}},
                           headers=admin)
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "graph"


async def test_a_cursor_is_kept_when_the_same_mailbox_is_put_again(env):
    api, admin, context, _clock, graph, _script = env
    await connect(api, admin)
    await connect(api, admin)
    source = await context.booking_store.get_source(HQ, "r-oak")
    assert len(graph.of("POST", "/subscriptions")) == 1
    gets = graph.of("GET", "calendarView/delta")
    assert "$deltatoken" in gets[-1].query and source.cursor.endswith(SECOND_DELTA)
    assert replace(source, etag=None).mailbox == MAILBOX
