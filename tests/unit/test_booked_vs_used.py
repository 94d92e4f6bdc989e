"""Booked against used, on a small day worked out by hand (docs/metrics.md, "Booked vs used").

r-oak (bookable), Thursday 26 November 2026, business hours 08:00-18:00 UTC:

| booking | time | what happened |
|---|---|---|
| A | 09:00-10:00 | 3 people 09:05-09:50: checked in |
| B | 11:00-12:00 | nobody: a no-show |
| C | 14:00-15:00 | one person 14:45-15:15 (C and D overlap: the calendar double-booked the room) |
| D | 14:30-15:30 | the same person: checked in |
| E | 17:30-18:30 | undecided yet; only 17:30-18:00 is inside business hours |
| - | 16:00-16:30 | 2 people, no booking |
"""
from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from shared.domain.analytics import BookingSpan, Stay, compute_windows, day_window, hour_windows
from shared.services.rollups import _long_rows
from tests.support.analytics import at, site

THURSDAY = date(2026, 11, 26)
UTC = ZoneInfo("UTC")
MIN = 60.0

STAYS = ([Stay("r-oak", f"a{i}", at(26, 9, 5), at(26, 9, 50)) for i in range(3)]
         + [Stay("r-oak", "c0", at(26, 14, 45), at(26, 15, 15))]
         + [Stay("r-oak", f"u{i}", at(26, 16), at(26, 16, 30)) for i in range(2)]
         + [Stay("k-0", "c0", at(26, 12), at(26, 12, 30))])
BOOKINGS = [BookingSpan("r-oak", at(26, 9), at(26, 10), no_show=False, decided=True),
            BookingSpan("r-oak", at(26, 11), at(26, 12), no_show=True, decided=True),
            BookingSpan("r-oak", at(26, 14), at(26, 15), no_show=False, decided=True),
            BookingSpan("r-oak", at(26, 14, 30), at(26, 15, 30), no_show=False, decided=True),
            BookingSpan("r-oak", at(26, 17, 30), at(26, 18, 30), no_show=False, decided=False),
            BookingSpan("r-gone", at(26, 9), at(26, 10), no_show=True, decided=True)]  # a room no longer mapped


def row(table: dict, key: str, value: str) -> dict:
    i = table[key].index(value)
    return {name: column[i] for name, column in table.items()}


def test_the_day():
    [day] = compute_windows(site(), [day_window(THURSDAY, UTC)], STAYS, min_group_size=5, bookings=BOOKINGS)
    oak = row(day.spaces, "space_id", "r-oak")
    # booked: 9-10 (60) + 11-12 (60) + 14:00-15:30, C and D together (90) + 17:30-18:00 (30) = 240 min
    assert oak["booked_s"] == 240 * MIN
    # occupied: 09:05-09:50 (45) + 14:45-15:15 (30) + 16:00-16:30 (30) = 105 min
    assert oak["occupied_s"] == 105 * MIN
    # booked and empty: 240 - the 45 + 30 booked minutes someone was in = 165 min (B's whole hour among them)
    assert oak["booked_empty_s"] == 165 * MIN
    # used without a booking: 105 - 75 = the 30 minutes of 16:00-16:30
    assert oak["unbooked_use_s"] == 30 * MIN
    assert (oak["bookings"], oak["no_shows"]) == (5, 1)
    assert oak["suppressed"] is False  # 6 people that day (k = 5)
    kitchen = row(day.spaces, "space_id", "k-0")  # not bookable: no booked-vs-used numbers at all
    assert (kitchen["booked_s"], kitchen["unbooked_use_s"], kitchen["bookings"]) == (None, None, None)
    building = row(day.zones, "zone_id", "hq")
    # 5 bookings, 1 no-show, 4 decided (E is not yet): a no-show rate of 1 / 4
    assert (building["bookings"], building["no_shows"], building["no_show_rate"]) == (5, 1, 0.25)
    ground = row(day.zones, "zone_id", "f0")
    assert (ground["bookings"], ground["no_shows"]) == (5, 1)
    assert row(day.zones, "zone_id", "f1")["no_show_rate"] is None  # no bookings, no rate


@pytest.mark.parametrize(("local_hour", "booked", "occupied", "empty", "unbooked", "bookings", "no_shows"), [
    (9, 60, 45, 15, 0, 1, 0),
    (11, 60, 0, 60, 0, 1, 1),
    (14, 60, 15, 45, 0, 2, 0),  # C and D
    (15, 30, 15, 15, 0, 1, 0),  # D until 15:30; C ended at 15:00
    (16, 0, 30, 0, 30, 0, 0),
    (17, 30, 0, 30, 0, 1, 0),  # E's half hour inside business hours
    (8, 0, 0, 0, 0, 0, 0),
])
def test_the_hours(local_hour, booked, occupied, empty, unbooked, bookings, no_shows):
    results = compute_windows(site(), hour_windows(THURSDAY, UTC), STAYS, min_group_size=5, bookings=BOOKINGS)
    [hour] = [r for r in results if r.window.local_hour == local_hour]
    oak = row(hour.spaces, "space_id", "r-oak")
    assert (oak["booked_s"], oak["occupied_s"], oak["booked_empty_s"], oak["unbooked_use_s"]) == (
        booked * MIN, occupied * MIN, empty * MIN, unbooked * MIN)
    assert (oak["bookings"], oak["no_shows"]) == (bookings, no_shows)


def test_booked_vs_used_is_published_where_people_counts_are_suppressed():
    results = compute_windows(site(), hour_windows(THURSDAY, UTC), STAYS, min_group_size=5, bookings=BOOKINGS)
    [sixteen] = [r for r in results if r.window.local_hour == 16]
    oak = row(sixteen.spaces, "space_id", "r-oak")
    assert oak["suppressed"] is True and oak["peak_headcount"] is None  # 2 people < k
    assert oak["unbooked_use_s"] == 30 * MIN and oak["occupied_s"] == 30 * MIN  # whether, not how many
    manifest = {"window": {"start": "s", "end": "e", "localDate": "2026-11-26", "localHour": 16}}
    rows = _long_rows(manifest, {"spaces": [oak]}, "r-oak", ["unbooked_use_time", "peak_headcount"])
    assert [(r["metric"], r["value"], r["suppressed"]) for r in rows] == [
        ("unbooked_use_time", 1800.0, False), ("peak_headcount", None, True)]


def test_without_bookings_a_bookable_room_is_all_unbooked_use():
    [day] = compute_windows(site(), [day_window(THURSDAY, UTC)], STAYS, min_group_size=5)
    oak = row(day.spaces, "space_id", "r-oak")
    assert (oak["booked_s"], oak["booked_empty_s"], oak["unbooked_use_s"]) == (0.0, 0.0, 105 * MIN)
    assert row(day.zones, "zone_id", "hq")["no_show_rate"] is None


async def test_the_rollup_reads_the_bookings_and_the_api_answers_them():
    from datetime import datetime

    from shared.adapters.memory import (
        InMemoryBlobStore,
        InMemoryBookingStore,
        InMemoryLiveStateStore,
        InMemorySiteModelStore,
        InMemoryTeamDirectory,
    )
    from shared.domain.analytics import Grain
    from shared.domain.bookings import Booking
    from shared.domain.presence import Visit
    from shared.services.rollups import AnalyticsReader, RollupService
    from tests.support.sites import store_site

    sites, live, blobs = InMemorySiteModelStore(), InMemoryLiveStateStore(), InMemoryBlobStore()
    bookings = InMemoryBookingStore(live)
    await store_site(sites, "tenant-a", site())
    for i in range(5):
        await live.save_visit(Visit("tenant-a", "hq", "r-oak", f"p{i}", at(26, 9, 5), at(26, 9, 50)))
    await bookings.save(Booking("tenant-a", "hq", "r-oak", "a", at(26, 9), at(26, 10), checked_in_at=at(26, 9, 5)))
    await bookings.save(Booking("tenant-a", "hq", "r-oak", "b", at(26, 11), at(26, 12), no_show_at=at(26, 11, 10)))
    service = RollupService(sites, live, blobs, InMemoryTeamDirectory(), "analytics", min_group_size=5,
                            bookings=bookings)
    await service.roll_day("tenant-a", site(), THURSDAY, datetime(2026, 11, 28, tzinfo=UTC))
    reader = AnalyticsReader(blobs, "analytics", 5)
    answer = await reader.read("tenant-a", site(), Grain.day, THURSDAY, THURSDAY,
                               metrics=["booked_time", "booked_empty_time", "unbooked_use_time", "no_show_rate"])
    got = {(r["scopeId"], r["metric"]): r["value"] for r in answer.rows}
    assert got[("r-oak", "booked_time")] == 120 * MIN and got[("r-oak", "booked_empty_time")] == 75 * MIN
    assert got[("r-oak", "unbooked_use_time")] == 0.0 and got[("hq", "no_show_rate")] == 0.5
    assert ("k-0", "booked_time") not in got  # not bookable
