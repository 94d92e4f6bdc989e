"""The demo's room calendars: honoured bookings are the meetings people hold, no-shows are bookings of rooms nobody
is planned in, and each room's feed reads back (through the app's own iCalendar parser) as those bookings."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from devkit.demo_calendars import EARLIEST_S, calendar_ics, demo_bookings
from devkit.office import OfficeDay
from shared.adapters.ical import parse_calendar

START = datetime(2026, 11, 26, 9, tzinfo=UTC)


def test_honoured_bookings_are_attended_and_no_shows_are_not():
    day = OfficeDay(people=60, minutes=60, seed=7, start=START)
    bookings = demo_bookings(day, 7)
    stays = [(s.space_id, s.start_s, s.end_s) for p in day.people for s in p.stays]
    honoured = [b for b in bookings if b.honoured]
    no_shows = [b for b in bookings if not b.honoured]
    assert len(honoured) >= 5 and len(no_shows) >= 3
    for b in honoured:
        assert any(r == b.room and s < b.end_s and b.start_s < e for r, s, e in stays), b
    for b in no_shows:
        assert not any(r == b.room and s < b.end_s + 300 and b.start_s - 300 < e for r, s, e in stays), b
        assert b.start_s + 600 <= day.window_s  # decided within the day
    assert min(b.start_s for b in no_shows) == EARLIEST_S  # one no-show comes within the first minute


def test_each_rooms_feed_reads_back_as_its_bookings():
    day = OfficeDay(people=60, minutes=60, seed=7, start=START)
    bookings = demo_bookings(day, 7)
    for room in {b.room for b in bookings}:
        feed = calendar_ics(room, bookings, START)
        assert b"SUMMARY:" in feed and b"ORGANIZER" in feed  # as real calendars have: the app keeps neither
        events = parse_calendar(feed, START - timedelta(days=1), START + timedelta(days=1), ZoneInfo("UTC"))
        expected = sorted((START + timedelta(seconds=b.start_s), START + timedelta(seconds=b.end_s))
                          for b in bookings if b.room == room)
        assert sorted((e.start, e.end) for e in events) == [(s.replace(microsecond=0), e.replace(microsecond=0))
                                                           for s, e in expected]


def test_a_short_day_still_has_a_no_show_from_before_it_starts():
    bookings = demo_bookings(OfficeDay(people=12, minutes=8, seed=7, start=START), 7)
    assert any(not b.honoured and b.start_s == EARLIEST_S for b in bookings)
