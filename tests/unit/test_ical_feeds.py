"""iCalendar feeds: recurrences, exceptions (EXDATE, a moved occurrence), a daylight-saving change, cancelled
occurrences and events, all-day and floating times; the feed fetched over HTTP under the SSRF rules."""
from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

from shared.adapters.ical import CalendarUnreadable, ICalendarFeeds, parse_calendar
from shared.domain.bookings import BookingSourceKind, CalendarSource
from shared.domain.ports import DependencyUnavailable

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
WINDOW = (datetime(2026, 10, 18, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))

FEED = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//spaceflow tests//room feed//EN\r
BEGIN:VEVENT\r
UID:weekly-sync@example.com\r
DTSTAMP:20261001T120000Z\r
SUMMARY:Weekly sync (secret project)\r
ORGANIZER;CN=Ann:mailto:ann@example.com\r
ATTENDEE;CN=Bob:mailto:bob@example.com\r
DTSTART;TZID=Europe/Amsterdam:20261019T090000\r
DTEND;TZID=Europe/Amsterdam:20261019T093000\r
RRULE:FREQ=WEEKLY;COUNT=4\r
EXDATE;TZID=Europe/Amsterdam:20261102T090000\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:weekly-sync@example.com\r
DTSTAMP:20261001T120000Z\r
RECURRENCE-ID;TZID=Europe/Amsterdam:20261109T090000\r
DTSTART;TZID=Europe/Amsterdam:20261109T110000\r
DTEND;TZID=Europe/Amsterdam:20261109T113000\r
SUMMARY:Weekly sync (moved)\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:standup@example.com\r
DTSTAMP:20261001T120000Z\r
DTSTART;TZID=Europe/Amsterdam:20261110T093000\r
DTEND;TZID=Europe/Amsterdam:20261110T094500\r
RRULE:FREQ=DAILY;COUNT=3\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:standup@example.com\r
DTSTAMP:20261001T120000Z\r
RECURRENCE-ID;TZID=Europe/Amsterdam:20261111T093000\r
DTSTART;TZID=Europe/Amsterdam:20261111T093000\r
DTEND;TZID=Europe/Amsterdam:20261111T094500\r
STATUS:CANCELLED\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:cancelled-review@example.com\r
DTSTAMP:20261001T120000Z\r
DTSTART:20261021T130000Z\r
DTEND:20261021T140000Z\r
STATUS:CANCELLED\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:offsite@example.com\r
DTSTAMP:20261001T120000Z\r
DTSTART;VALUE=DATE:20261022\r
DTEND;VALUE=DATE:20261023\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:floating@example.com\r
DTSTAMP:20261001T120000Z\r
DTSTART:20261020T140000\r
DURATION:PT45M\r
END:VEVENT\r
END:VCALENDAR\r
"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_recurrences_exceptions_dst_cancellations_all_day_and_floating_times():
    events = parse_calendar(FEED, *WINDOW, AMSTERDAM)
    got = [(e.source_event_id.split("@")[0], e.start, e.end) for e in events]
    assert got == [
        ("weekly-sync", utc(2026, 10, 19, 7), utc(2026, 10, 19, 7, 30)),  # 09:00 CEST (+02:00)
        ("floating", utc(2026, 10, 20, 12), utc(2026, 10, 20, 12, 45)),  # the building's local time, CEST
        ("weekly-sync", utc(2026, 10, 26, 8), utc(2026, 10, 26, 8, 30)),  # 09:00 CET (+01:00) after the change
        # 2 November is an EXDATE; 9 November was moved to 11:00 local
        ("weekly-sync", utc(2026, 11, 9, 10), utc(2026, 11, 9, 10, 30)),
        ("standup", utc(2026, 11, 10, 8, 30), utc(2026, 11, 10, 8, 45)),
        # 11 November's standup is cancelled
        ("standup", utc(2026, 11, 12, 8, 30), utc(2026, 11, 12, 8, 45)),
    ]
    ids = [e.source_event_id for e in events]
    assert len(set(ids)) == len(ids)
    # the moved occurrence keeps the id of its original time: its booking moves instead of being replaced
    assert "weekly-sync@example.com|2026-11-09T08:00:00+00:00" in ids
    assert "floating@example.com" in ids  # a single event is its UID


def test_the_window_bounds_the_occurrences():
    events = parse_calendar(FEED, utc(2026, 11, 9), utc(2026, 11, 11), AMSTERDAM)
    assert [e.start for e in events] == [utc(2026, 11, 9, 10), utc(2026, 11, 10, 8, 30)]


@pytest.mark.parametrize("data", [b"", b"not a calendar", (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n"
                                  b"END:VEVENT\r\nEND:VCALENDAR\r\n"), b"BEGIN:VCARD\r\nEND:VCARD\r\n",
                                  b"x" * (2 * 1024 * 1024 + 1)])
def test_what_is_no_calendar_is_refused_with_a_reason(data):
    with pytest.raises(CalendarUnreadable):
        parse_calendar(data, *WINDOW, AMSTERDAM)


def test_a_rule_without_end_is_bounded_by_the_window():
    endless = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:forever\r\nDTSTAMP:20261001T000000Z\r\n"
               b"DTSTART:20261019T080000Z\r\nDTEND:20261019T083000Z\r\nRRULE:FREQ=HOURLY\r\nEND:VEVENT\r\n"
               b"END:VCALENDAR\r\n")
    assert len(parse_calendar(endless, utc(2026, 10, 19), utc(2026, 10, 20), AMSTERDAM)) == 16  # 08:00 to 23:00
    with pytest.raises(CalendarUnreadable, match="occurrences"):
        parse_calendar(endless.replace(b"FREQ=HOURLY", b"FREQ=MINUTELY"), *WINDOW, AMSTERDAM)


class _Feed(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("location", "http://127.0.0.1:1/elsewhere.ics")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        status = 200 if self.path == "/room.ics" else 503
        self.send_response(status)
        self.send_header("content-type", "text/calendar")
        self.send_header("content-length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def feed_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def source(url: str) -> CalendarSource:
    return CalendarSource("acme", "hq", "r-oak", BookingSourceKind.ical, url=url)


async def test_a_feed_is_fetched_and_read_over_its_window(feed_server):
    feeds = ICalendarFeeds(allow_loopback=True)
    try:
        changes = await feeds.changes(source(f"{feed_server}/room.ics"), utc(2026, 10, 19, 6), AMSTERDAM)
    finally:
        await feeds.close()
    assert changes.complete and changes.window_start == utc(2026, 10, 18, 6)
    assert changes.window_end == utc(2026, 11, 2, 6)
    assert [e.start for e in changes.events] == [utc(2026, 10, 19, 7), utc(2026, 10, 20, 12), utc(2026, 10, 26, 8)]


async def test_feeds_follow_the_webhook_targets_ssrf_rules(feed_server):
    strict = ICalendarFeeds(allow_loopback=False)
    loose = ICalendarFeeds(allow_loopback=True)
    try:
        for url in (f"{feed_server}/room.ics", "https://127.0.0.1/room.ics", "https://169.254.169.254/latest",
                    "https://10.1.2.3/room.ics", "https://[::1]/room.ics", "file:///etc/passwd",
                    "https://user:pw@example.com/room.ics", "https://intranet/room.ics"):
            with pytest.raises(CalendarUnreadable, match="refused"):
                await strict.fetch(url)
        # a redirect is not followed (it could lead inside), and a server error is retried later
        with pytest.raises(DependencyUnavailable):
            await loose.fetch(f"{feed_server}/moved")
        with pytest.raises(DependencyUnavailable):
            await loose.fetch(f"{feed_server}/broken.ics")
    finally:
        await strict.close()
        await loose.close()
