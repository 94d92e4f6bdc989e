"""Analytics rollups: visits and live presence in, Parquet per window and a manifest per window in Blob out.

Each window is written data first, manifest last. Data files are named by their content (a hash in the name), so a
run never overwrites a file a committed manifest points at: readers that go through the manifests (the analytics
API) see either the previous complete window or the new complete window, never a mix, and a run that fails half
way leaves the previous manifest in force. After the manifest, files of the window no manifest names are removed.

Watermark (docs/metrics.md): a window computed at `now` counts the visits stored by `now` and the stays still open
at `now` (from the spaces' live occupants). It is computed again by every hourly run until `end + LATE_DATA_WINDOW`
has passed; the run after that marks it final, and computing it again later writes the same bytes unless data
for it arrived even later (a backfill picks that up).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from shared.domain import analytics
from shared.domain.analytics import BookingSpan, Grain, Stay, Window, WindowResult
from shared.domain.errors import ContractViolation, FieldError
from shared.domain.ports import BlobStore, BookingStore, SiteModelStore, TeamDirectory
from shared.domain.presence import DeviceState, SpaceState, Visit
from shared.domain.site import SiteModel
from shared.domain.teams import teams_of_user
from shared.domain.tenancy import BuildingRef
from shared.services.common import Clock, utc_now

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA = "analytics-manifest/v1"
TABLES = ("spaces", "zones", "collaboration")
CATCH_UP_DAYS = 3  # the daily rollup also completes up to this many earlier days a missed run left unfinished


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_prefix(tenant_id: str, building_id: str, grain: Grain, day: date) -> str:
    """Hive-style folder of a local day's windows: `tenant=<t>/building=<b>/grain=<g>/date=<YYYY-MM-DD>`."""
    return f"tenant={tenant_id}/building={building_id}/grain={grain.value}/date={day.isoformat()}"


def manifest_name(tenant_id: str, building_id: str, window: Window) -> str:
    return f"{window_prefix(tenant_id, building_id, window.grain, window.local_date)}/manifest-{window.key}.json"


class StayReader(Protocol):
    """What the rollups read of live state: a LiveStateStore is one."""

    async def list_spaces(self, building: BuildingRef) -> list[SpaceState]: ...

    async def list_devices(self, building: BuildingRef) -> list[DeviceState]: ...

    async def list_visits(self, building: BuildingRef, ended_from: datetime, ended_before: datetime) -> list[Visit]: ...


@dataclass(frozen=True)
class WrittenWindow:
    window: Window
    manifest: str
    files: dict[str, str]
    rows: dict[str, int]
    final: bool


class RollupService:
    """Computes and writes the hourly and daily rollups; the timers, the devkit backfill and the demo call it."""

    def __init__(self, site_models: SiteModelStore, live_state: StayReader, blobs: BlobStore,
                 teams: TeamDirectory, container: str, min_group_size: int = analytics.DEFAULT_MIN_GROUP_SIZE,
                 late: timedelta = analytics.LATE_DATA_WINDOW, clock: Clock = utc_now,
                 bookings: BookingStore | None = None) -> None:
        self._bookings = bookings
        self._sites = site_models
        self._live = live_state
        self._blobs = blobs
        self._teams = teams
        self._container = container
        self._k = min_group_size
        self._late = late
        self._clock = clock

    # ---------------------------------------------------------------------------------------------- timers
    async def hourly(self, now: datetime) -> list[WrittenWindow]:
        """Timer: each building's previous local hour and the hours still inside the late-data window."""
        async def one(tenant_id: str, site: SiteModel) -> list[WrittenWindow]:
            return await self.roll_hours(tenant_id, site, now)

        return await self._each_building(one, "hourly")

    async def daily(self, now: datetime) -> list[WrittenWindow]:
        """Timer (hourly, so each building is served soon after its own local midnight plus the late window): the
        last finished local day, and earlier days a missed run left without a final manifest."""
        async def one(tenant_id: str, site: SiteModel) -> list[WrittenWindow]:
            zone = ZoneInfo(site.time_zone)
            last = analytics.day_to_roll(now, zone, self._late)
            written = []
            for back in range(CATCH_UP_DAYS, -1, -1):
                day = last - timedelta(days=back)
                if not await self._is_final(tenant_id, site.building_id, analytics.day_window(day, zone)):
                    written += await self.roll_day(tenant_id, site, day, now)
            return written

        return await self._each_building(one, "daily")

    async def _each_building(self, work: Callable[[str, SiteModel], Awaitable[list[WrittenWindow]]],
                             what: str) -> list[WrittenWindow]:
        written: list[WrittenWindow] = []
        failed: list[str] = []
        for ref in await self._sites.list_all():
            try:
                versioned = await self._sites.get(ref)
                if versioned is None:
                    continue
                written += await work(ref.tenant_id, versioned.site)
            except Exception:  # one building's failure must not stop the others; the next run retries it
                logger.exception("%s rollup failed for tenant %s building %s", what, ref.tenant_id, ref.building_id)
                failed.append(ref.key)
        if failed:
            raise RuntimeError(f"{what} rollup failed for {len(failed)} building(s): {', '.join(failed[:10])}")
        return written

    async def _is_final(self, tenant_id: str, building_id: str, window: Window) -> bool:
        data = await self._blobs.get(self._container, manifest_name(tenant_id, building_id, window))
        if not data:
            return False
        return bool(json.loads(data).get("final"))

    # ---------------------------------------------------------------------------------------------- rollups
    async def roll_hours(self, tenant_id: str, site: SiteModel, now: datetime) -> list[WrittenWindow]:
        windows = analytics.hours_to_roll(now, ZoneInfo(site.time_zone), self._late)
        return await self._roll(tenant_id, site, windows, now)

    async def roll_day(self, tenant_id: str, site: SiteModel, day: date, now: datetime,
                       hours: bool = True) -> list[WrittenWindow]:
        """A local day, and (with `hours`) each of its local hours, from one read of the day's visits. Only windows
        that have ended by `now` are written, as the timers do: a backfill that reaches today writes today's
        finished hours, not the day nor the hours to come (they would publish zeros for time not yet lived)."""
        zone = ZoneInfo(site.time_zone)
        day_window = analytics.day_window(day, zone)
        hour_windows = [w for w in analytics.hour_windows(day, zone) if w.end <= now] if hours else []
        if day_window.end > now and not hour_windows:
            return []
        building = BuildingRef(tenant_id, site.building_id)
        stays = await self._stays(building, day_window.start, day_window.end, now)
        spans = await self._booking_spans(building, day_window.start, day_window.end)
        written = []
        if day_window.end <= now:
            written += await self._write_all(tenant_id, site, [day_window], stays, now, spans)
        if hour_windows:
            written += await self._write_all(tenant_id, site, hour_windows, stays, now, spans)
        return written

    async def backfill(self, building: BuildingRef, first: date, last: date,
                       now: datetime | None = None) -> list[WrittenWindow]:
        """Recompute every day (and its hours) from `first` to `last`, one day at a time (memory stays flat)."""
        tenant_id = building.tenant_id
        versioned = await self._sites.get(building)
        if versioned is None:
            raise ContractViolation([FieldError("building", f"no building '{building.building_id}' for tenant "
                                                            f"'{tenant_id}'")])
        if last < first:
            raise ContractViolation([FieldError("query.to", "must not be before from")])
        now = now or self._clock()
        written: list[WrittenWindow] = []
        day = first
        while day <= last:
            written += await self.roll_day(tenant_id, versioned.site, day, now)
            day += timedelta(days=1)
        return written

    async def _roll(self, tenant_id: str, site: SiteModel, windows: Sequence[Window],
                    now: datetime) -> list[WrittenWindow]:
        if not windows:
            return []
        building = BuildingRef(tenant_id, site.building_id)
        stays = await self._stays(building, windows[0].start, windows[-1].end, now)
        spans = await self._booking_spans(building, windows[0].start, windows[-1].end)
        return await self._write_all(tenant_id, site, windows, stays, now, spans)

    async def _stays(self, building: BuildingRef, start: datetime, end: datetime, now: datetime) -> list[Stay]:
        """Stays that may overlap [start, end), as they were at `now`: open ones from the spaces' occupants (read
        first, so a stay that closes meanwhile is still found, as a visit) and visits that ended from `start` on.
        A stay open at `now` counts up to `now`, whether it is still open or closed since (a rollup computed for a
        moment that is past, as the demo and a catch-up run do); the next run after it closed counts its real end."""
        spaces = await self._live.list_spaces(building)
        open_stays = [(space.space_id, device, datetime.fromisoformat(since))
                      for space in spaces for device, since in space.occupants.items()]
        open_stays = [(s, d, since) for s, d, since in open_stays if since < end and since < now]
        users: dict[str, str | None] = {}
        if open_stays:
            users = {d.device_id: d.user_id for d in await self._live.list_devices(building)}
        visits = await self._live.list_visits(building, start, end + analytics.MAX_STAY)
        stays = [Stay(v.space_id, v.device_id, v.start, min(v.end, now), v.user_id, v.end <= now)
                 for v in visits if v.start < end and v.start < now]
        closed_since = {(v.space_id, v.device_id, v.start) for v in visits}
        stays += [Stay(s, d, since, now, users.get(d), False) for s, d, since in open_stays
                  if (s, d, since) not in closed_since]
        return stays

    async def _booking_spans(self, building: BuildingRef, start: datetime, end: datetime) -> list[BookingSpan]:
        """The bookings overlapping [start, end) as the rollups count them (none without a booking store)."""
        if self._bookings is None:
            return []
        return [BookingSpan(b.space_id, b.start, b.end, no_show=b.no_show_at is not None, decided=b.decided)
                for b in await self._bookings.list_bookings(building, start, end)]

    async def _write_all(self, tenant_id: str, site: SiteModel, windows: Sequence[Window], stays: list[Stay],
                         now: datetime, bookings: Sequence[BookingSpan] = ()) -> list[WrittenWindow]:
        teams = teams_of_user(await self._teams.list_teams(tenant_id))
        # numpy work off the event loop: a big building's day takes a few seconds
        results = await asyncio.to_thread(analytics.compute_windows, site, windows, stays, teams, self._k, bookings)
        written = []
        for result in results:
            written.append(await self._write_window(tenant_id, site, result, now))
        return written

    async def _write_window(self, tenant_id: str, site: SiteModel, result: WindowResult,
                            now: datetime) -> WrittenWindow:
        from shared.adapters.parquet import encode_table

        window = result.window
        building = site.building_id
        prefix = window_prefix(tenant_id, building, window.grain, window.local_date)
        files: dict[str, dict[str, Any]] = {}
        for table in TABLES:
            columns = getattr(result, table)
            rows = len(columns[next(iter(columns))])
            if rows == 0:
                continue
            data = encode_table(table, tenant_id, building, window, columns)
            digest = hashlib.sha256(data).hexdigest()
            name = f"{prefix}/{table}-{window.key}-{digest[:16]}.parquet"
            await self._blobs.put(self._container, name, data, "application/vnd.apache.parquet")
            files[table] = {"name": name, "rows": rows, "bytes": len(data), "sha256": digest}
        mark, final = analytics.watermark(window, now, self._late)
        row_counts: dict[str, int] = {t: files.get(t, {}).get("rows", 0) for t in TABLES}
        manifest: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA, "schemaVersion": analytics.ANALYTICS_SCHEMA_VERSION,
            "tenantId": tenant_id, "buildingId": building, "grain": window.grain.value,
            "window": {"start": _iso(window.start), "end": _iso(window.end), "localDate": window.local_date.isoformat(),
                       "localHour": window.local_hour, "utcOffsetMinutes": window.utc_offset_minutes,
                       "timeZone": site.time_zone},
            "businessHours": site.business_hours.model_dump(mode="json"), "businessSeconds": result.business_s,
            "watermark": _iso(mark), "final": final, "lateWindowSeconds": int(self._late.total_seconds()),
            "minGroupSize": self._k, "files": files,
            "rowCounts": row_counts,
            "suppressedCells": result.suppressed_cells(),
        }
        name = manifest_name(tenant_id, building, window)
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        await self._blobs.put(self._container, name, body, "application/json")
        keep = {f["name"] for f in files.values()}
        for existing in await self._blobs.list_names(self._container, prefix + "/"):
            leaf = existing.rsplit("/", 1)[-1]
            if existing not in keep and any(leaf.startswith(f"{t}-{window.key}-") for t in TABLES):
                await self._blobs.delete(self._container, existing)  # superseded, or left by a failed run
        logger.info("rollup %s %s/%s %s: %s", window.grain.value, tenant_id, building, window.key,
                    row_counts)
        return WrittenWindow(window, name, {t: f["name"] for t, f in files.items()}, row_counts, final)


# ---------------------------------------------------------------------------------------------- reading
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # API metric -> (unit, column, tables it appears in)
    "occupancy_rate": ("ratio", "occupancy_rate", ("spaces",)),
    "occupied_time": ("s", "occupied_s", ("spaces",)),
    "utilization": ("ratio", "utilization", ("spaces",)),
    "right_sizing": ("ratio", "right_sizing", ("spaces",)),
    "peak_headcount": ("people", "peak_headcount", ("spaces", "zones")),
    "mean_headcount": ("people", "mean_headcount", ("zones",)),
    "unique_visitors": ("people", "unique_visitors", ("spaces", "zones")),
    "visits": ("visits", "visits", ("spaces",)),
    "mean_dwell": ("s", "mean_dwell_s", ("spaces",)),
    "collaboration_minutes": ("min", "copresence_minutes", ("collaboration",)),
    # booked vs used (docs/metrics.md): bookable rooms; counts of bookings per floor and building too
    "booked_time": ("s", "booked_s", ("spaces",)),
    "booked_empty_time": ("s", "booked_empty_s", ("spaces",)),
    "unbooked_use_time": ("s", "unbooked_use_s", ("spaces",)),
    "bookings": ("bookings", "bookings", ("spaces", "zones")),
    "no_shows": ("bookings", "no_shows", ("spaces", "zones")),
    "no_show_rate": ("ratio", "no_show_rate", ("zones",)),
}
# Whether a space was used or booked, not by how many: published whatever the headcount (docs/metrics.md).
NEVER_SUPPRESSED = frozenset({"occupancy_rate", "occupied_time", "booked_time", "booked_empty_time",
                              "unbooked_use_time", "bookings", "no_shows", "no_show_rate"})
BOOKING_METRICS = frozenset({"booked_time", "booked_empty_time", "unbooked_use_time", "bookings", "no_shows"})
MAX_RANGE_DAYS = {Grain.day: 366, Grain.hour: 31}
_ReadWindow = tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]  # a manifest and its tables' rows
ANSWER_COLUMNS = ("windowStart", "windowEnd", "localDate", "localHour", "scope", "scopeId", "metric", "value",
                  "unit", "suppressed")


@dataclass
class AnalyticsAnswer:
    building_id: str
    time_zone: str
    grain: Grain
    first: date
    last: date
    min_group_size: int
    windows: list[dict[str, Any]]
    rows: list[dict[str, Any]]


class AnalyticsReader:
    """Reads committed windows (through their manifests) and answers in long form: one row per metric value."""

    def __init__(self, blobs: BlobStore, container: str, min_group_size: int = analytics.DEFAULT_MIN_GROUP_SIZE,
                 concurrency: int = 16) -> None:
        self._blobs = blobs
        self._container = container
        self._k = min_group_size
        self._limit = asyncio.Semaphore(concurrency)

    async def read(self, tenant_id: str, site: SiteModel, grain: Grain, first: date, last: date,
                   space_id: str | None = None, metrics: Sequence[str] | None = None) -> AnalyticsAnswer:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        per_day = await asyncio.gather(*(self._day(tenant_id, site.building_id, grain, d) for d in days))
        wanted = list(metrics) if metrics else list(METRICS)
        windows, rows = [], []
        for manifests in per_day:
            for manifest, tables in manifests:
                windows.append({"start": manifest["window"]["start"], "end": manifest["window"]["end"],
                                "localDate": manifest["window"]["localDate"],
                                "localHour": manifest["window"]["localHour"], "watermark": manifest["watermark"],
                                "final": manifest["final"], "suppressedCells": manifest["suppressedCells"]})
                rows += _long_rows(manifest, tables, space_id, wanted)
        return AnalyticsAnswer(site.building_id, site.time_zone, grain, first, last, self._k, windows, rows)

    async def _day(self, tenant_id: str, building_id: str, grain: Grain, day: date) -> list[_ReadWindow]:
        prefix = window_prefix(tenant_id, building_id, grain, day) + "/"
        async with self._limit:
            names = await self._blobs.list_names(self._container, prefix)
        manifests = sorted(n for n in names if n.rsplit("/", 1)[-1].startswith("manifest-"))
        return [m for m in await asyncio.gather(*(self._window(name) for name in manifests)) if m is not None]

    async def _window(self, manifest_blob: str, attempts: int = 3) -> _ReadWindow | None:
        for _ in range(attempts):
            async with self._limit:
                raw = await self._blobs.get(self._container, manifest_blob)
            if raw is None:
                return None
            manifest = json.loads(raw)
            tables: dict[str, list[dict[str, Any]]] = {}
            complete = True
            for table, entry in manifest["files"].items():
                async with self._limit:
                    data = await self._blobs.get(self._container, entry["name"])
                if data is None:  # a newer run replaced the window meanwhile: read its manifest again
                    complete = False
                    break
                from shared.adapters.parquet import decode_table

                tables[table] = decode_table(data)
            if complete:
                return manifest, tables
        raise RuntimeError(f"analytics window {manifest_blob} kept changing while it was read")


def _long_rows(manifest: dict[str, Any], tables: dict[str, list[dict[str, Any]]], space_id: str | None,
               metrics: Sequence[str]) -> list[dict[str, Any]]:
    window = manifest["window"]
    base = {"windowStart": window["start"], "windowEnd": window["end"], "localDate": window["localDate"],
            "localHour": window["localHour"]}
    rows = []
    for row in tables.get("spaces", []):
        if space_id is not None and row["space_id"] != space_id:
            continue
        meeting = row["kind"] in analytics.MEETING_ROOM_KINDS
        for metric in metrics:
            unit, column, where = METRICS[metric]
            if "spaces" not in where or (metric == "right_sizing" and not meeting):
                continue
            if metric in BOOKING_METRICS and row.get(column) is None:
                continue  # not a bookable room (or a window rolled up before bookings were)
            rows.append({**base, "scope": "space", "scopeId": row["space_id"], "metric": metric,
                         "value": row[column], "unit": unit,
                         "suppressed": row["suppressed"] and metric not in NEVER_SUPPRESSED})
    if space_id is None:
        for row in tables.get("zones", []):
            for metric in metrics:
                unit, column, where = METRICS[metric]
                if "zones" in where and column in row:
                    rows.append({**base, "scope": row["level"], "scopeId": row["zone_id"], "metric": metric,
                                 "value": row[column], "unit": unit,
                                 "suppressed": row["suppressed"] and metric not in NEVER_SUPPRESSED})
        if "collaboration_minutes" in metrics:
            for row in tables.get("collaboration", []):
                rows.append({**base, "scope": "teams", "scopeId": f"{row['team_a']}+{row['team_b']}",
                             "metric": "collaboration_minutes", "value": row["copresence_minutes"], "unit": "min",
                             "suppressed": row["suppressed"]})
    return rows
