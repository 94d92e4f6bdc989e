"""iCalendar calendars through the API (in-memory adapters, an injected clock): a feed URL served on loopback
(CALENDAR_ALLOW_LOOPBACK, as local.settings.json has it) synced at once and by the timer, an occurrence moved and
one cancelled at the source, uploads, and what is refused."""
from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from shared.domain.bookings import BookingSourceKind
from shared.domain.tenancy import BuildingRef
from shared.services import ScheduledJobs
from shared.settings import load_settings
from shared.wiring import build_in_memory_context, set_context
from tests.functions.conftest import LOCAL_VALUES
from tests.support.sites import small_site
from tests.unit.test_ical_feeds import FEED

ADMIN = {"x-api-key": LOCAL_VALUES["ADMIN_API_KEY"]}
HQ = BuildingRef("acme", "hq")
T0 = datetime(2026, 10, 19, 6, 0, tzinfo=UTC)


class Feed:
    def __init__(self) -> None:
        self.body = FEED
        self.fetched = 0
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.fetched += 1
                self.send_response(200)
                self.send_header("content-type", "text/calendar")
                self.send_header("content-length", str(len(feed.body)))
                self.end_headers()
                self.wfile.write(feed.body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/room.ics"


@pytest.fixture
async def env():
    feed = Feed()
    now = [T0]
    context = build_in_memory_context(load_settings(LOCAL_VALUES), clock=lambda: now[0])
    set_context(context)
    from functions.http_api import create_api

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api()), base_url="http://test") as api:
        assert (await api.post("/api/v1/tenants", json={"tenantId": "acme", "name": "Acme"},
                               headers=ADMIN)).status_code == 201
        keys = {}
        for scope in ("admin", "bookings", "read"):
            keys[scope] = {"x-api-key": (await api.post("/api/v1/tenants/acme/keys", json={"scopes": [scope]},
                                                        headers=ADMIN)).json()["key"]}
        assert (await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=keys["admin"])).status_code == 201
        yield api, keys, context, feed
    set_context(None)
    feed.server.shutdown()
    feed.server.server_close()
    await context.close()


async def starts(context) -> list[str]:
    found = await context.booking_store.list_bookings(HQ, datetime(2026, 10, 1, tzinfo=UTC),
                                                      datetime(2026, 12, 1, tzinfo=UTC), "r-oak")
    assert all(b.source is BookingSourceKind.ical for b in found)
    return [b.start.strftime("%m-%dT%H:%M") for b in found]


async def test_a_feed_url_is_synced_at_once_then_by_the_timer_following_moves_and_cancellations(env):
    api, keys, context, feed = env
    answer = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar", json={"ical": {"url": feed.url}},
                           headers=keys["admin"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["lastSync"] == {"created": 3, "moved": 0, "removed": 0, "error": None}
    assert await starts(context) == ["10-19T07:00", "10-20T12:00", "10-26T08:00"]
    # at the source: the 26 October occurrence moves to 10:00 local, the floating event is cancelled
    feed.body = FEED.replace(b"END:VCALENDAR\r\n", b"""BEGIN:VEVENT\r
UID:weekly-sync@example.com\r
DTSTAMP:20261002T120000Z\r
RECURRENCE-ID;TZID=Europe/Amsterdam:20261026T090000\r
DTSTART;TZID=Europe/Amsterdam:20261026T100000\r
DTEND;TZID=Europe/Amsterdam:20261026T103000\r
END:VEVENT\r
END:VCALENDAR\r
""").replace(b"DURATION:PT45M\r\n", b"DURATION:PT45M\r\nSTATUS:CANCELLED\r\n")
    before = await context.booking_store.list_bookings(HQ, T0, datetime(2026, 12, 1, tzinfo=UTC), "r-oak")
    await context.scheduled.run(ScheduledJobs.BOOKING_SYNC, T0)
    assert feed.fetched == 2
    assert await starts(context) == ["10-19T07:00", "10-26T09:00"]
    after = await context.booking_store.list_bookings(HQ, T0, datetime(2026, 12, 1, tzinfo=UTC), "r-oak")
    moved_before = next(b for b in before if b.start.day == 26)
    assert next(b for b in after if b.start.day == 26).booking_id == moved_before.booking_id  # moved, not replaced
    shown = (await api.get("/api/v1/buildings/hq/spaces/r-oak/calendar", headers=keys["admin"])).json()
    assert shown["url"] == feed.url and shown["lastError"] is None and shown["lastSyncAt"] is not None
    # a feed gone bad is recorded, not fatal, and leaves the bookings as they were
    feed.body = b"<html>maintenance</html>"
    synced = (await api.post("/api/v1/buildings/hq/spaces/r-oak/calendar/sync", headers=keys["admin"])).json()
    assert "not an iCalendar file" in synced["lastSync"]["error"] and synced["lastError"] == synced["lastSync"]["error"]
    assert await starts(context) == ["10-19T07:00", "10-26T09:00"]


async def test_uploads_replace_the_calendar_and_are_refused_when_a_feed_is_connected(env):
    api, keys, context, feed = env
    upload = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar.ics", content=FEED,
                           headers={**keys["bookings"], "content-type": "text/calendar"})
    assert upload.status_code == 200, upload.text
    assert upload.json() == {"created": 3, "moved": 0, "removed": 0, "error": None}
    again = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar.ics", content=FEED,
                          headers={**keys["bookings"], "content-type": "text/calendar; charset=utf-8"})
    assert again.json() == {"created": 0, "moved": 0, "removed": 0, "error": None}  # idempotent
    # the API's own bookings of the room are left alone by uploads
    assert (await api.put("/api/v1/buildings/hq/spaces/r-oak/bookings/api-1", headers=keys["bookings"],
                          json={"start": "2026-10-19T12:00:00Z", "end": "2026-10-19T13:00:00Z"})).status_code == 201
    emptied = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar.ics",
                            content=b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
                            headers={**keys["bookings"], "content-type": "text/calendar"})
    assert emptied.json()["removed"] == 3
    found = await context.booking_store.list_bookings(HQ, T0, datetime(2026, 12, 1, tzinfo=UTC), "r-oak")
    assert [b.booking_id for b in found] == ["api-1"]
    assert (await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar", json={"ical": {"url": feed.url}},
                          headers=keys["admin"])).status_code == 200
    refused = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar.ics", content=FEED,
                            headers={**keys["bookings"], "content-type": "text/calendar"})
    assert refused.status_code == 409


@pytest.mark.parametrize(("content", "content_type", "status"), [
    (b"not a calendar", "text/calendar", 400),
    (FEED, "application/json", 415),
    (b"x" * (2 * 1024 * 1024 + 1), "text/calendar", 413),
])
async def test_bad_uploads(env, content, content_type, status):
    api, keys, _context, _feed = env
    answer = await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar.ics", content=content,
                           headers={**keys["bookings"], "content-type": content_type})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


async def test_who_may_do_what(env):
    api, keys, _context, feed = env
    assert (await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar", json={"ical": {"url": feed.url}},
                          headers=keys["bookings"])).status_code == 403
    assert (await api.put("/api/v1/buildings/hq/spaces/r-oak/calendar.ics", content=FEED,
                          headers={**keys["read"], "content-type": "text/calendar"})).status_code == 403
    assert (await api.put("/api/v1/buildings/hq/spaces/k-0/calendar", json={"ical": {"url": feed.url}},
                          headers=keys["admin"])).status_code == 409  # the kitchen is not bookable
