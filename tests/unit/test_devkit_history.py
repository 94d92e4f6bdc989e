"""`devkit history`: the office days it lays out (business days only, one place at a time per person, ended by now,
the same day whatever the range) and what it writes: visits through the store, then the real rollups."""
from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devkit.history import office_visits, write_history
from devkit.simulator import BuildingSpec, generate_building
from shared.domain.analytics import Grain
from shared.domain.site import BusinessHours
from shared.settings import load_settings
from shared.wiring import build_in_memory_context
from tests.support.sites import store_site

SITE = generate_building(BuildingSpec(floors=2), seed=7)  # Europe/Amsterdam, Monday to Friday 08:00-18:00
ZONE = ZoneInfo(SITE.time_zone)
THURSDAY_NOON = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)  # 12:00 in Amsterdam


def test_office_days_fall_on_business_days_one_place_at_a_time():
    visits = office_visits(SITE, "t", date(2026, 11, 16), date(2026, 11, 25), 60, 3, THURSDAY_NOON)
    spaces = {s.id: s for s in SITE.spaces}
    days = {v.start.astimezone(ZONE).date() for v in visits}
    assert days == {date(2026, 11, d) for d in (16, 17, 18, 19, 20, 23, 24, 25)}  # no weekend
    per_device = defaultdict(list)
    for v in visits:
        assert v.tenant_id == "t" and v.building_id == SITE.building_id and v.end > v.start
        assert spaces[v.space_id].capacity > 0 and spaces[v.space_id].kind.value not in ("walkway", "stairs")
        local_start, local_end = v.start.astimezone(ZONE), v.end.astimezone(ZONE)
        assert local_start.hour >= 7 and (local_end.hour, local_end.minute) <= (20, 0) and local_start.date() == local_end.date()
        per_device[(v.device_id, local_start.date())].append(v)
    for stays in per_device.values():
        stays.sort(key=lambda v: v.start)
        assert all(a.end <= b.start for a, b in itertools.pairwise(stays))  # never in two rooms at once
    kinds = defaultdict(int)
    for v in visits:
        kinds[spaces[v.space_id].kind.value] += 1
    assert kinds["office"] > kinds["conferenceroom"] > 0 and kinds["kitchen"] > 0 and kinds["phoneroom"] > 0
    tuesdays = sum(1 for d in per_device if d[1] == date(2026, 11, 17))
    fridays = sum(1 for d in per_device if d[1] == date(2026, 11, 20))
    assert tuesdays > fridays  # hybrid work: the middle of the week is busiest


def test_a_day_is_the_same_whatever_the_range_and_today_ends_now():
    whole = office_visits(SITE, "t", date(2026, 11, 16), date(2026, 11, 26), 40, 5, THURSDAY_NOON)
    alone = office_visits(SITE, "t", date(2026, 11, 18), date(2026, 11, 18), 40, 5, THURSDAY_NOON)
    assert alone and [v for v in whole if v.start.astimezone(ZONE).date() == date(2026, 11, 18)] == alone
    assert office_visits(SITE, "t", date(2026, 11, 18), date(2026, 11, 18), 40, 6, THURSDAY_NOON) != alone
    today = [v for v in whole if v.start.astimezone(ZONE).date() == date(2026, 11, 26)]
    assert today and max(v.end for v in today) == THURSDAY_NOON and all(v.start < THURSDAY_NOON for v in today)


def test_open_all_week_means_weekend_days_too():
    site = SITE.model_copy(update={"business_hours": BusinessHours(start="00:00", end="24:00", days=[1, 2, 3, 4, 5, 6, 7])})
    visits = office_visits(site, "t", date(2026, 11, 21), date(2026, 11, 22), 60, 3, THURSDAY_NOON)
    assert {v.start.astimezone(ZONE).date() for v in visits} == {date(2026, 11, 21), date(2026, 11, 22)}


async def test_write_history_stores_visits_then_rolls_up_the_days_and_todays_finished_hours():
    values = json.loads((Path(__file__).resolve().parents[2] / "local.settings.json").read_text())["Values"]
    context = build_in_memory_context(load_settings(values))
    await store_site(context.site_models, "tenant-a", SITE)
    summary = await write_history(context, SITE.building_id, 3, 40, 7, now=THURSDAY_NOON)
    assert (summary["tenant"], summary["from"], summary["to"]) == ("tenant-a", "2026-11-23", "2026-11-26")
    from shared.domain.tenancy import BuildingRef

    stored = await context.live_state.list_visits(BuildingRef("tenant-a", SITE.building_id),
                                                  THURSDAY_NOON - timedelta(days=5), THURSDAY_NOON + timedelta(1))
    assert len(stored) == summary["visits"] > 0
    days = await context.analytics.read("tenant-a", SITE, Grain.day, date(2026, 11, 23), date(2026, 11, 26),
                                        metrics=["utilization"])
    assert [w["localDate"] for w in days.windows] == ["2026-11-23", "2026-11-24", "2026-11-25"]  # not today's day
    assert any(r["value"] for r in days.rows)
    hours = await context.analytics.read("tenant-a", SITE, Grain.hour, date(2026, 11, 26), date(2026, 11, 26),
                                         metrics=["mean_headcount"])
    assert [w["localHour"] for w in hours.windows] == list(range(12))  # 00:00 to 11:00 local, ended by noon
    # the last hour before now counts everyone who was in, those still there at noon (their stays cut at now) too
    start, end = THURSDAY_NOON - timedelta(hours=1), THURSDAY_NOON
    present = {v.device_id for v in stored if v.start < end and v.end > start}
    still_in = {v.device_id for v in stored if v.end == THURSDAY_NOON}
    visitors = await context.analytics.read("tenant-a", SITE, Grain.hour, date(2026, 11, 26), date(2026, 11, 26),
                                            metrics=["unique_visitors"])
    [at_eleven] = [r["value"] for r in visitors.rows if r["scope"] == "building" and r["localHour"] == 11]
    assert still_in and at_eleven == len(present)
    with pytest.raises(ValueError, match="no building"):
        await write_history(context, SITE.building_id, 3, 40, 7, tenant="tenant-b", now=THURSDAY_NOON)
