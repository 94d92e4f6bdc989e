"""The metrics of docs/metrics.md on hand-computed scenarios: each expected number is worked out in the comment."""
from __future__ import annotations

import datetime as dt
import random
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.domain.analytics import (
    Stay,
    compute_windows,
    day_to_roll,
    day_window,
    hour_windows,
    hours_to_roll,
    watermark,
)
from tests.support.analytics import at, site

UTC = ZoneInfo("UTC")
THURSDAY = date(2026, 11, 26)


def hour(results, local_hour):
    [found] = [r for r in results if r.window.local_hour == local_hour]
    return found


def space_row(result, space_id):
    i = result.spaces["space_id"].index(space_id)
    return {name: column[i] for name, column in result.spaces.items()}


def zone_row(result, zone_id):
    i = result.zones["zone_id"].index(zone_id)
    return {name: column[i] for name, column in result.zones.items()}


def meeting(n, start, end, space="r-oak", prefix="p"):
    return [Stay(space, f"{prefix}{i}", start, end) for i in range(n)]


def test_space_metrics_of_a_busy_meeting_room_hour():
    # r-oak (capacity 9) from 09:00 to 10:00: 6 people 09:00-09:30, then 1 person 09:30-09:45, empty after.
    stays = meeting(6, at(26, 9), at(26, 9, 30)) + [Stay("r-oak", "late", at(26, 9, 30), at(26, 9, 45))]
    results = compute_windows(site(), hour_windows(THURSDAY, UTC), stays, min_group_size=5)
    row = space_row(hour(results, 9), "r-oak")
    assert row["business_s"] == 3600 and row["occupied_s"] == 45 * 60
    assert row["occupancy_rate"] == pytest.approx(0.75)  # 45 of 60 minutes
    # mean headcount while occupied = (6 x 30 + 1 x 15) / 45 = 4.333; / capacity 9
    assert row["utilization"] == pytest.approx((6 * 30 + 15) / 45 / 9)
    # headcount <= 9 / 3 = 3 only in the 15 minutes with one person: 15 of 45 occupied minutes
    assert row["right_sizing"] == pytest.approx(15 / 45)
    assert row["peak_headcount"] == 6 and row["unique_visitors"] == 7 and row["visits"] == 7
    assert row["mean_dwell_s"] == pytest.approx((6 * 1800 + 900) / 7)
    assert row["suppressed"] is False
    kitchen = space_row(hour(results, 9), "k-0")  # nobody: zeros (nothing to protect), rate 0, ratios undefined
    assert (kitchen["occupancy_rate"], kitchen["peak_headcount"], kitchen["unique_visitors"]) == (0.0, 0, 0)
    assert kitchen["utilization"] is None and kitchen["right_sizing"] is None and kitchen["suppressed"] is False
    assert space_row(hour(results, 9), "k-0")["right_sizing"] is None


def test_right_sizing_is_only_for_meeting_rooms_and_utilization_uses_capacity():
    # o-1 is an office (capacity 30): 10 people for the whole hour -> utilization 1/3, no right-sizing
    results = compute_windows(site(), hour_windows(THURSDAY, UTC), meeting(10, at(26, 14), at(26, 15), "o-1"))
    row = space_row(hour(results, 14), "o-1")
    assert row["utilization"] == pytest.approx(10 / 30) and row["right_sizing"] is None
    assert row["occupancy_rate"] == 1.0


def test_day_metrics_count_only_business_hours():
    # 5 people in the kitchen 07:00-09:00 (business hours start at 08:00) and 17:30-19:00 (end at 18:00)
    stays = meeting(5, at(26, 7), at(26, 9), "k-0") + meeting(5, at(26, 17, 30), at(26, 19), "k-0", "q")
    [day] = compute_windows(site(), [day_window(THURSDAY, UTC)], stays)
    row = space_row(day, "k-0")
    assert day.business_s == 10 * 3600
    assert row["occupied_s"] == 90 * 60  # 08:00-09:00 and 17:30-18:00
    assert row["occupancy_rate"] == pytest.approx(1.5 / 10)
    assert row["unique_visitors"] == 10 and row["visits"] == 10 and row["peak_headcount"] == 5
    assert row["mean_dwell_s"] == pytest.approx((5 * 7200 + 5 * 5400) / 10)  # whole stays, not the clipped part
    hours = compute_windows(site(), hour_windows(THURSDAY, UTC), stays)
    assert hour(hours, 7).business_s == 0 and hour(hours, 7).spaces["space_id"] == []  # closed: no rows
    assert hour(hours, 18).spaces["space_id"] == []


def test_a_weekend_day_has_no_business_time():
    [saturday] = compute_windows(site(), [day_window(date(2026, 11, 28), UTC)], meeting(6, at(28, 9), at(28, 10)))
    assert saturday.business_s == 0 and saturday.spaces["space_id"] == []


def test_floor_and_building_headcount_per_hour():
    # 10:00-11:00: 6 people in r-oak (f0) 10:00-10:30; 5 in o-1 (f1) the whole hour; one of them moves from
    # o-1 to r-oak at 10:15 (so f0 gets 7 people for 15 minutes and the building never has more than 11).
    stays = meeting(6, at(26, 10), at(26, 10, 30)) + meeting(4, at(26, 10), at(26, 11), "o-1", "f")
    stays += [Stay("o-1", "mover", at(26, 10), at(26, 10, 15)), Stay("r-oak", "mover", at(26, 10, 15), at(26, 11))]
    result = hour(compute_windows(site(), hour_windows(THURSDAY, UTC), stays), 10)
    f0, f1, building = zone_row(result, "f0"), zone_row(result, "f1"), zone_row(result, "hq")
    assert building["level"] == "building" and f0["level"] == "floor"
    assert f0["peak_headcount"] == 7 and f1["peak_headcount"] == 5 and building["peak_headcount"] == 11
    # f0: 6 x 30 min + mover 45 min = 225 person-minutes / 60; f1: 4 x 60 + 15 = 255 / 60
    assert f0["mean_headcount"] == pytest.approx(225 / 60) and f1["mean_headcount"] == pytest.approx(255 / 60)
    assert building["mean_headcount"] == pytest.approx(480 / 60)
    assert (f0["unique_visitors"], f1["unique_visitors"], building["unique_visitors"]) == (7, 5, 11)


def test_a_visit_over_hour_edges_and_midnight_counts_in_each_window_for_its_time_there():
    always = site(start="00:00", end="24:00", days=range(1, 8))
    # one of 5 people stays 23:30 Thursday -> 00:45 Friday in the kitchen; the others 23:40-00:10
    stays = [Stay("k-0", "long", at(26, 23, 30), at(27, 0, 45))] + [
        Stay("k-0", f"p{i}", at(26, 23, 40), at(27, 0, 10)) for i in range(4)]
    thursday = compute_windows(always, hour_windows(THURSDAY, UTC) + [], stays)
    friday = compute_windows(always, hour_windows(date(2026, 11, 27), UTC), stays)
    late, early = space_row(hour(thursday, 23), "k-0"), space_row(hour(friday, 0), "k-0")
    assert late["occupied_s"] == 30 * 60 and early["occupied_s"] == 45 * 60
    assert late["visits"] == early["visits"] == 5  # each stay counts in every window it overlaps
    assert late["peak_headcount"] == early["peak_headcount"] == 5
    [day1] = compute_windows(always, [day_window(THURSDAY, UTC)], stays)
    [day2] = compute_windows(always, [day_window(date(2026, 11, 27), UTC)], stays)
    assert space_row(day1, "k-0")["occupied_s"] == 1800 and space_row(day2, "k-0")["occupied_s"] == 2700
    assert space_row(day1, "k-0")["mean_dwell_s"] == pytest.approx((4500 + 4 * 1800) / 5)


def test_fewer_than_k_people_suppresses_people_cells_but_not_occupancy():
    stays = meeting(4, at(26, 9), at(26, 10))
    row = space_row(hour(compute_windows(site(), hour_windows(THURSDAY, UTC), stays, min_group_size=5), 9), "r-oak")
    assert row["suppressed"] is True and row["occupancy_rate"] == 1.0 and row["occupied_s"] == 3600
    assert all(row[c] is None for c in ("utilization", "right_sizing", "peak_headcount", "unique_visitors",
                                        "visits", "mean_dwell_s"))
    zone = zone_row(hour(compute_windows(site(), hour_windows(THURSDAY, UTC), stays), 9), "f0")
    assert zone["suppressed"] is True and zone["peak_headcount"] is None and zone["mean_headcount"] is None
    # k is a setting: with k = 4 the same cells are published
    row = space_row(hour(compute_windows(site(), hour_windows(THURSDAY, UTC), stays, min_group_size=4), 9), "r-oak")
    assert row["suppressed"] is False and row["unique_visitors"] == 4


def test_one_device_counts_once_even_with_overlapping_records():
    stays = [Stay("r-oak", "d1", at(26, 9), at(26, 9, 40)), Stay("r-oak", "d1", at(26, 9, 20), at(26, 10))]
    stays += meeting(4, at(26, 9), at(26, 10))
    row = space_row(hour(compute_windows(site(), hour_windows(THURSDAY, UTC), stays), 9), "r-oak")
    assert row["peak_headcount"] == 5 and row["unique_visitors"] == 5
    assert row["utilization"] == pytest.approx(5 / 9)


def test_collaboration_minutes_between_teams_with_suppression():
    teams = {"a1": ["design"], "a2": ["design"], "a3": ["design"], "b1": ["sales"], "b2": ["sales"],
             "c1": ["design", "sales"]}
    # r-oak 09:00-09:30: a1, a2, a3, b1, b2 -> design-sales pairs 3 x 2 = 6 pairs x 30 min = 180 minutes.
    stays = [Stay("r-oak", f"dev-{u}", at(26, 9), at(26, 9, 30), user_id=u) for u in ("a1", "a2", "a3", "b1", "b2")]
    # a device without a user id (not opted in) adds nothing
    stays.append(Stay("r-oak", "anon", at(26, 9), at(26, 9, 30)))
    result = hour(compute_windows(site(), hour_windows(THURSDAY, UTC), stays, teams, min_group_size=5), 9)
    assert result.collaboration == {"team_a": ["design"], "team_b": ["sales"], "copresence_minutes": [180.0],
                                    "suppressed": [False]}
    # c1 (in both teams) with b1 in the kitchen 11:00-11:20: the pair counts once, 20 minutes, but 2 people < 5
    stays = [Stay("k-0", "dev-c1", at(26, 11), at(26, 11, 20), user_id="c1"),
             Stay("k-0", "dev-b1", at(26, 11, 10), at(26, 11, 40), user_id="b1")]
    result = hour(compute_windows(site(), hour_windows(THURSDAY, UTC), stays, teams, min_group_size=2), 11)
    assert result.collaboration["copresence_minutes"] == [10.0]
    result = hour(compute_windows(site(), hour_windows(THURSDAY, UTC), stays, teams, min_group_size=5), 11)
    assert result.collaboration == {"team_a": ["design"], "team_b": ["sales"], "copresence_minutes": [None],
                                    "suppressed": [True]}


def test_results_do_not_depend_on_the_order_of_the_stays():
    rng = random.Random(4)
    stays = []
    for i in range(300):
        start = at(26, 8) + timedelta(minutes=rng.randrange(0, 600))
        stays.append(Stay(rng.choice(["r-oak", "k-0", "o-1"]), f"d{rng.randrange(40)}", start,
                          start + timedelta(minutes=rng.randrange(1, 120)), user_id=f"u{i % 12}"))
    teams = {f"u{i}": [f"t{i % 3}"] for i in range(12)}
    first = compute_windows(site(), hour_windows(THURSDAY, UTC), stays, teams)
    rng.shuffle(stays)
    second = compute_windows(site(), hour_windows(THURSDAY, UTC), stays, teams)
    assert [(r.spaces, r.zones, r.collaboration) for r in first] == [(r.spaces, r.zones, r.collaboration)
                                                                     for r in second]


def test_daylight_saving_days_have_23_and_25_local_hours():
    amsterdam = ZoneInfo("Europe/Amsterdam")
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)  # Sundays: clocks forward, then back
    assert len(hour_windows(spring, amsterdam)) == 23 and len(hour_windows(autumn, amsterdam)) == 25
    assert [w.local_hour for w in hour_windows(spring, amsterdam)][:4] == [0, 1, 3, 4]
    assert [(w.local_hour, w.utc_offset_minutes) for w in hour_windows(autumn, amsterdam)][2:4] == [(2, 120), (2, 60)]
    always = site("Europe/Amsterdam", "00:00", "24:00", range(1, 8))
    # 01:30 CET -> 03:30 CEST is one real hour (00:30 -> 01:30 UTC): occupancy counts real time
    stays = meeting(5, at(29, 0, 30, month=3), at(29, 1, 30, month=3), "k-0")
    [day] = compute_windows(always, [day_window(spring, amsterdam)], stays)
    assert day.business_s == 23 * 3600 and space_row(day, "k-0")["occupied_s"] == 3600
    hours = compute_windows(always, hour_windows(spring, amsterdam), stays)
    assert space_row(hour(hours, 1), "k-0")["occupied_s"] == 1800 and space_row(hour(hours, 3), "k-0")["occupied_s"] == 1800
    # autumn: 02:30 CEST -> 02:30 CET (00:30 -> 01:30 UTC), half in each of the two 02:00 hours
    stays = meeting(5, at(25, 0, 30, month=10), at(25, 1, 30, month=10), "k-0")
    [day] = compute_windows(always, [day_window(autumn, amsterdam)], stays)
    assert day.business_s == 25 * 3600 and day.window.start == at(24, 22, month=10)
    twos = [r for r in compute_windows(always, hour_windows(autumn, amsterdam), stays) if r.window.local_hour == 2]
    assert [space_row(r, "k-0")["occupied_s"] for r in twos] == [1800, 1800]
    # business hours 08:00-18:00 are 10 hours on either day
    [sunday] = compute_windows(site("Europe/Amsterdam", days=[7]), [day_window(spring, amsterdam)], [])
    assert sunday.business_s == 10 * 3600


def test_which_windows_the_timers_roll_and_when_they_are_final():
    amsterdam = ZoneInfo("Europe/Amsterdam")
    now = at(26, 10, 5)  # 11:05 in Amsterdam
    assert [w.local_hour for w in hours_to_roll(now, amsterdam)] == [8, 9, 10]  # previous hour + 2 h late window
    assert [w.local_hour for w in hours_to_roll(at(26, 23, 5), amsterdam)] == [21, 22, 23]
    assert [w.local_date for w in hours_to_roll(at(26, 0, 5), UTC)] == [THURSDAY - timedelta(days=1)] * 3
    # the day is rolled once its local midnight plus the late window passed
    assert day_to_roll(at(26, 0, 59), amsterdam) == date(2026, 11, 24)  # 01:59 local: 25th not final yet
    assert day_to_roll(at(26, 1, 0), amsterdam) == date(2026, 11, 25)
    tokyo = ZoneInfo("Asia/Tokyo")
    assert day_to_roll(at(26, 17, 20), tokyo) == date(2026, 11, 26)  # 02:20 on the 27th in Tokyo
    window = hour_windows(THURSDAY, UTC)[9]
    assert watermark(window, at(26, 10, 5)) == (at(26, 10, 5), False)
    assert watermark(window, at(26, 12, 5)) == (at(26, 12), True)
    assert window.key == "20261126T0900Z" and window.start.tzinfo == dt.UTC  # datetime's own, not the ZoneInfo UTC above
