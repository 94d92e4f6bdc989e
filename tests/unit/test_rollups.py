"""The rollup service over the in-memory adapters: what the timers write where, late data, open stays, re-runs,
failures half way and the reader that only ever sees complete windows."""
from __future__ import annotations

import json
from datetime import date

import pytest

from shared.adapters.memory import (
    InMemoryBlobStore,
    InMemoryLiveStateStore,
    InMemorySiteModelStore,
    InMemoryTeamDirectory,
)
from shared.adapters.parquet import decode_table
from shared.domain.analytics import Grain
from shared.domain.presence import SpaceState, Visit
from shared.domain.teams import Team
from shared.domain.tenancy import BuildingRef
from shared.services.rollups import AnalyticsReader, RollupService
from tests.support.analytics import at, site
from tests.support.sites import store_site

C = "analytics"
THURSDAY = date(2026, 11, 26)


class FailingBlobStore(InMemoryBlobStore):
    """Fails the n-th put from now on (a blob write that dies half way through a window)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_at: int | None = None
        self.puts = 0

    async def put(self, container, name, data, content_type="application/octet-stream"):
        self.puts += 1
        if self.fail_at is not None and self.puts == self.fail_at:
            raise OSError("connection reset")
        await super().put(container, name, data, content_type)


@pytest.fixture
async def world():
    sites, live, blobs, teams = InMemorySiteModelStore(), InMemoryLiveStateStore(), FailingBlobStore(), InMemoryTeamDirectory()
    await store_site(sites, "tenant-a", site())
    await store_site(sites, "tenant-b", site(building_id="annex", time_zone="Asia/Tokyo", start="00:00", end="24:00",
                                     days=range(1, 8)))
    service = RollupService(sites, live, blobs, teams, C, min_group_size=2)
    return sites, live, blobs, teams, service


async def visit(live, space, device, start, end, user=None, building="hq", tenant="tenant-a"):
    await live.save_visit(Visit(tenant, building, space, device, start, end, user))


async def space_rows(blobs, name_part):
    [name] = [n for n in await blobs.list_names(C, "tenant=tenant-a/") if name_part in n and "/spaces-" in n]
    return {r["space_id"]: r for r in decode_table(await blobs.get(C, name))}


async def manifest(blobs, tenant, building, grain, day, key):
    raw = await blobs.get(C, f"tenant={tenant}/building={building}/grain={grain}/date={day}/manifest-{key}.json")
    return json.loads(raw) if raw else None


async def test_hourly_job_writes_each_buildings_recent_hours_as_hive_paths(world):
    _, live, blobs, _, service = world
    for i in range(3):
        await visit(live, "r-oak", f"d{i}", at(26, 9), at(26, 9, 30))
    written = await service.hourly(at(26, 10, 5))
    # hq (UTC, 08-18): hours 07, 08, 09 (07 outside business hours: a manifest, no data); annex (Tokyo): its
    # local 17:00, 18:00 and 19:00 of the same date
    assert sorted(w.window.key for w in written if "building=hq/" in w.manifest) == [
        "20261126T0700Z", "20261126T0800Z", "20261126T0900Z"]
    assert sorted(w.window.local_hour for w in written if "building=annex/" in w.manifest) == [16, 17, 18]
    names = await blobs.list_names(C, "tenant=tenant-a/building=hq/grain=hour/date=2026-11-26/")
    leaves = sorted(n.rsplit("/", 1)[1].rsplit("-", 1)[0] if n.endswith(".parquet") else n.rsplit("/", 1)[1]
                    for n in names)
    assert leaves == ["manifest-20261126T0700Z.json", "manifest-20261126T0800Z.json", "manifest-20261126T0900Z.json",
                      "spaces-20261126T0800Z", "spaces-20261126T0900Z", "zones-20261126T0800Z", "zones-20261126T0900Z"]
    assert await blobs.list_names(C, "tenant=tenant-b/building=annex/grain=hour/date=2026-11-26/")  # Tokyo's hours
    oak = (await space_rows(blobs, "T0900Z"))["r-oak"]
    assert oak["occupancy_rate"] == 0.5 and oak["peak_headcount"] == 3 and oak["tenant_id"] == "tenant-a"
    m = await manifest(blobs, "tenant-a", "hq", "hour", "2026-11-26", "20261126T0900Z")
    assert m["rowCounts"] == {"spaces": 3, "zones": 3, "collaboration": 0}
    assert m["watermark"] == "2026-11-26T10:05:00Z" and m["final"] is False and m["schemaVersion"] == 2
    assert m["window"] == {"start": "2026-11-26T09:00:00Z", "end": "2026-11-26T10:00:00Z", "localDate": "2026-11-26",
                           "localHour": 9, "utcOffsetMinutes": 0, "timeZone": "UTC"}
    assert m["files"]["spaces"]["name"].startswith("tenant=tenant-a/building=hq/grain=hour/date=2026-11-26/spaces-")


async def test_late_data_inside_the_window_is_picked_up_and_after_it_only_by_a_backfill(world):
    _, live, blobs, _, service = world
    await visit(live, "k-0", "a", at(26, 9), at(26, 9, 30))
    await service.hourly(at(26, 10, 5))
    assert (await space_rows(blobs, "T0900Z"))["k-0"]["occupied_s"] == 1800
    await visit(live, "k-0", "b", at(26, 9, 10), at(26, 9, 50))  # written at 10:30 (the sweep closed it late)
    await service.hourly(at(26, 11, 5))
    assert (await space_rows(blobs, "T0900Z"))["k-0"]["occupied_s"] == 3000  # 09:00-09:50
    await service.hourly(at(26, 12, 5))
    assert (await manifest(blobs, "tenant-a", "hq", "hour", "2026-11-26", "20261126T0900Z"))["final"] is True
    await visit(live, "k-0", "c", at(26, 9, 40), at(26, 9, 55))  # after the late window: the timers leave it
    await service.hourly(at(26, 13, 5))
    assert (await space_rows(blobs, "T0900Z"))["k-0"]["occupied_s"] == 3000
    await service.backfill(BuildingRef("tenant-a", "hq"), THURSDAY, THURSDAY, now=at(27, 9))
    assert (await space_rows(blobs, "T0900Z"))["k-0"]["occupied_s"] == 3300
    assert len([n for n in await blobs.list_names(C, "tenant=tenant-a/") if "spaces-20261126T0900Z" in n]) == 1


async def test_stays_still_open_count_from_the_spaces_live_occupants(world):
    _, live, blobs, teams, service = world
    # two phones sit in r-oak since 09:10 and are still there at 10:05 (no visit closed yet); one opted in
    await live.save_space(SpaceState("tenant-a", "hq", "r-oak", occupants={"d1": at(26, 9, 10).isoformat(),
                                                               "d2": at(26, 9, 10).isoformat()}))
    from shared.domain.presence import DeviceState

    await live.save_device(DeviceState("tenant-a", "hq", "d1", at(26, 10), space_id="r-oak", user_id="ann"))
    await visit(live, "r-oak", "d3", at(26, 9, 0), at(26, 9, 20), user="bob")
    await teams.put_team(Team("tenant-a", "design", ("ann",)))
    await teams.put_team(Team("tenant-a", "sales", ("bob",)))
    await service.hourly(at(26, 10, 5))
    oak = (await space_rows(blobs, "T0900Z"))["r-oak"]
    assert oak["occupied_s"] == 3600 and oak["unique_visitors"] == 3 and oak["peak_headcount"] == 3
    [name] = [n for n in await blobs.list_names(C, "tenant=tenant-a/") if "collaboration-20261126T0900Z" in n]
    assert decode_table(await blobs.get(C, name))[0]["copresence_minutes"] == 10.0  # ann (open) with bob 09:10-09:20


async def test_a_backfill_reaching_today_writes_only_the_windows_that_have_ended(world):
    _, live, blobs, _, service = world
    for i in range(3):
        await visit(live, "k-0", f"d{i}", at(26, 9), at(26, 9, 30))
    written = await service.backfill(BuildingRef("tenant-a", "hq"), date(2026, 11, 25), THURSDAY, now=at(26, 11, 30))
    today = [w.window for w in written if w.window.local_date == THURSDAY]
    assert [w.local_hour for w in today] == list(range(11))  # 00:00 to 10:00: ended by 11:30; no day window
    assert {w.window.grain for w in written if w.window.local_date == date(2026, 11, 25)} == {Grain.day, Grain.hour}
    assert await manifest(blobs, "tenant-a", "hq", "day", "2026-11-26", "20261126T0000Z") is None
    assert (await space_rows(blobs, "20261126T0900Z"))["k-0"]["occupied_s"] == 1800
    assert await service.roll_day("tenant-a", site(), date(2026, 11, 27), at(26, 11, 30)) == []  # all of it to come


async def test_a_window_run_again_writes_the_same_bytes(world):
    _, live, blobs, _, service = world
    for i in range(4):
        await visit(live, "o-1", f"d{i}", at(26, 8, 10 * i), at(26, 12, 5 * i), user=f"u{i}")
    await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6))
    first = {n: await blobs.get(C, n) for n in await blobs.list_names(C)}
    await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6))
    assert {n: await blobs.get(C, n) for n in await blobs.list_names(C)} == first
    await service.backfill(BuildingRef("tenant-a", "hq"), THURSDAY, THURSDAY, now=at(30, 6))  # final windows: same bytes later
    assert {n: await blobs.get(C, n) for n in await blobs.list_names(C)} == first


async def test_a_write_failing_half_way_shows_nothing_partial_and_the_next_run_completes(world):
    _, live, blobs, _, service = world
    reader = AnalyticsReader(blobs, C, 2)
    for i in range(3):
        await visit(live, "k-0", f"d{i}", at(26, 9), at(26, 9, 30))
    blobs.fail_at = blobs.puts + 2  # the hour's spaces file is written, its zones file fails
    with pytest.raises(OSError):
        await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6), hours=False)
    assert [n for n in await blobs.list_names(C) if "manifest" in n] == []
    answer = await reader.read("tenant-a", site(), Grain.day, THURSDAY, THURSDAY)
    assert answer.rows == [] and answer.windows == []
    blobs.fail_at = None
    await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6), hours=False)
    answer = await reader.read("tenant-a", site(), Grain.day, THURSDAY, THURSDAY, metrics=["unique_visitors"])
    assert {(r["scopeId"], r["value"]) for r in answer.rows if r["scope"] == "space"} == {
        ("k-0", 3), ("r-oak", 0), ("o-1", 0)}
    # new data, and the re-run fails half way: readers keep seeing the previous complete window
    await visit(live, "k-0", "d9", at(26, 10), at(26, 10, 30))
    blobs.fail_at = blobs.puts + 2
    with pytest.raises(OSError):
        await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6), hours=False)
    answer = await reader.read("tenant-a", site(), Grain.day, THURSDAY, THURSDAY, "k-0", ["unique_visitors"])
    assert [r["value"] for r in answer.rows] == [3]
    blobs.fail_at = None
    await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6), hours=False)
    answer = await reader.read("tenant-a", site(), Grain.day, THURSDAY, THURSDAY, "k-0", ["unique_visitors"])
    assert [r["value"] for r in answer.rows] == [4]
    day_files = [n for n in await blobs.list_names(C, "tenant=tenant-a/building=hq/grain=day/") if n.endswith(".parquet")]
    assert len(day_files) == 2  # spaces + zones of the last run; the failed run's leftovers are gone


async def test_daily_job_rolls_each_building_after_its_own_midnight_once(world):
    _, live, blobs, _, service = world
    await visit(live, "k-0", "d1", at(25, 9), at(25, 10))
    # 02:20 UTC on the 27th: hq's (UTC) 26th is over + 2 h late window; Tokyo's 26th too (11:20 local on the 27th)
    written = await service.daily(at(27, 2, 20))
    days = {(w.window.local_date, w.window.grain) for w in written}
    assert (THURSDAY, Grain.day) in days and (date(2026, 11, 25), Grain.day) in days  # catch-up of missed days
    assert (await manifest(blobs, "tenant-a", "hq", "day", "2026-11-25", "20261125T0000Z"))["final"] is True
    assert await manifest(blobs, "tenant-b", "annex", "day", "2026-11-26", "20261125T1500Z") is not None
    puts = blobs.puts
    assert await service.daily(at(27, 3, 20)) == [] and blobs.puts == puts  # final days are not rolled again


async def test_the_reader_answers_in_long_form_with_spaces_zones_and_teams(world):
    _, live, blobs, teams, service = world
    await teams.put_team(Team("tenant-a", "design", ("u1", "u2")))
    await teams.put_team(Team("tenant-a", "sales", ("u3",)))
    for i, user in enumerate(("u1", "u2", "u3")):
        await visit(live, "r-oak", f"d{i}", at(26, 14), at(26, 14, 30), user=user)
    await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6))
    reader = AnalyticsReader(blobs, C, 2)
    answer = await reader.read("tenant-a", site(), Grain.hour, THURSDAY, THURSDAY,
                               metrics=["peak_headcount", "collaboration_minutes"])
    at14 = [r for r in answer.rows if r["localHour"] == 14]
    assert {(r["scope"], r["scopeId"], r["value"]) for r in at14 if r["value"]} == {
        ("space", "r-oak", 3), ("floor", "f0", 3), ("building", "hq", 3), ("teams", "design+sales", 60.0)}
    assert len(answer.windows) == 24 and all(w["final"] for w in answer.windows)  # closed hours too, no rows
    other = await reader.read("tenant-b", site(), Grain.hour, THURSDAY, THURSDAY)
    assert other.rows == []  # another tenant's path: nothing


async def test_the_backfill_command_finds_the_tenant_and_rolls_each_day():
    import json as json_
    from pathlib import Path

    from devkit.rollup import backfill
    from shared.settings import load_settings
    from shared.wiring import build_in_memory_context

    values = json_.loads((Path(__file__).resolve().parents[2] / "local.settings.json").read_text())["Values"]
    context = build_in_memory_context(load_settings(values))
    await store_site(context.site_models, "tenant-a", site())
    await visit(context.live_state, "k-0", "d1", at(25, 9), at(25, 10))
    summary = await backfill(context, "hq", date(2026, 11, 25), THURSDAY)
    assert (summary["tenant"], summary["windows"], summary["prefix"]) == ("tenant-a", 50, "tenant=tenant-a/building=hq/")
    assert summary["rows"]["spaces"] == 2 * (10 + 1) * 3  # 2 days x (10 business hours + the day) x 3 spaces
    raw = await context.blobs.get("analytics", "tenant=tenant-a/building=hq/grain=day/date=2026-11-25/"
                                               "manifest-20261125T0000Z.json")
    assert json_.loads(raw)["rowCounts"]["spaces"] == 3
    await store_site(context.site_models, "tenant-b", site())
    with pytest.raises(ValueError, match="2 tenants"):
        await backfill(context, "hq", THURSDAY, THURSDAY)
