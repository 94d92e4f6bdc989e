"""Long-term analytics: the metrics of docs/metrics.md computed from stays (visits) over local-time windows.

Pure and deterministic: the same stays, site and windows give the same numbers, whatever order the stays come in.
Time is handled as integer milliseconds from the first window's start, so sums are exact and need no rounding.

Windows are local clock hours and local days of the building's time zone (a day has 23, 24 or 25 hours around a
daylight-saving change); every metric is measured over the part of a window inside the building's business hours.
Cells that count people (headcounts, visitors, visits, dwell, utilization, right-sizing, co-presence) are
suppressed when fewer than `min_group_size` distinct people made them (k-anonymity): the value is None and the
row says `suppressed`.
"""
from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from shared.domain import space_kinds
from shared.domain.site import BusinessHours, SiteModel

ANALYTICS_SCHEMA_VERSION = 2  # 2: the booked-vs-used columns (docs/metrics.md)
LATE_DATA_WINDOW = timedelta(hours=2)  # a window is recomputed until this long after its end, then it is final
MAX_STAY = timedelta(hours=24)  # stays are read by end time up to this long after a window (see docs/metrics.md)
MEETING_ROOM_KINDS = space_kinds.MEETING_ROOMS
DEFAULT_MIN_GROUP_SIZE = 5

_HOUR = timedelta(hours=1)
_SPAN = np.int64(1) << np.int64(36)  # > any time offset we handle (~795 days in ms): composite sort keys


class Grain(str, enum.Enum):
    hour = "hour"
    day = "day"


@dataclass(frozen=True, order=True)
class Window:
    """One local clock hour or local day of a building, as UTC instants [start, end)."""

    start: datetime
    end: datetime
    grain: Grain
    local_date: date
    local_hour: int | None  # the local clock hour at the start (hour grain); None for days
    utc_offset_minutes: int  # the zone's offset at the start

    @property
    def key(self) -> str:
        """Stable name of the window in file names: its UTC start, e.g. `20261126T0800Z`."""
        return self.start.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day starts."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_date_of(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def _offset_minutes(moment: datetime, zone: ZoneInfo) -> int:
    offset = moment.astimezone(zone).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


def day_window(day: date, zone: ZoneInfo) -> Window:
    start = local_midnight(day, zone)
    return Window(start, local_midnight(day + timedelta(days=1), zone), Grain.day, day, None,
                  _offset_minutes(start, zone))


def hour_windows(day: date, zone: ZoneInfo) -> list[Window]:
    """The local clock hours of a day: 24, or 23 / 25 on a daylight-saving change."""
    start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    windows, at = [], start
    while at < end:
        nxt = min(at + _HOUR, end)
        windows.append(Window(at, nxt, Grain.hour, day, at.astimezone(zone).hour, _offset_minutes(at, zone)))
        at = nxt
    return windows


def business_intervals(days: Iterable[date], hours: BusinessHours, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The business hours of the given local days as UTC intervals (none on days the building is closed)."""
    intervals = []
    for day in sorted(set(days)):
        if day.isoweekday() not in hours.days:
            continue
        start = datetime.combine(day, time.fromisoformat(hours.start), tzinfo=zone)
        if hours.end == "24:00":
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
        else:
            end = datetime.combine(day, time.fromisoformat(hours.end), tzinfo=zone)
        intervals.append((start.astimezone(UTC), end.astimezone(UTC)))
    return intervals


@dataclass(frozen=True)
class Stay:
    """A device in a space from `start` to `end`; `closed` False for a stay still open (its end is the read time)."""

    space_id: str
    device_id: str
    start: datetime
    end: datetime
    user_id: str | None = None
    closed: bool = True


@dataclass(frozen=True)
class BookingSpan:
    """A room booking as the rollups see it: when, and what came of it (a no-show, or decided at all)."""

    space_id: str
    start: datetime
    end: datetime
    no_show: bool = False
    decided: bool = False  # checked in or a no-show: counts towards the no-show rate


@dataclass
class WindowResult:
    """One window's tables as columns (lists), in the order and with the names of the Parquet files."""

    window: Window
    business_s: float
    spaces: dict[str, list[Any]]
    zones: dict[str, list[Any]]
    collaboration: dict[str, list[Any]]

    def suppressed_cells(self) -> dict[str, int]:
        return {name: int(sum(table["suppressed"])) for name, table in
                (("spaces", self.spaces), ("zones", self.zones), ("collaboration", self.collaboration))}


SPACE_COLUMNS = ("space_id", "floor_id", "kind", "capacity", "business_s", "occupied_s", "occupancy_rate",
                 "utilization", "right_sizing", "peak_headcount", "unique_visitors", "visits", "mean_dwell_s",
                 "booked_s", "booked_empty_s", "unbooked_use_s", "bookings", "no_shows", "suppressed")
ZONE_COLUMNS = ("level", "zone_id", "business_s", "peak_headcount", "mean_headcount", "unique_visitors",
                "bookings", "no_shows", "no_show_rate", "suppressed")
COLLABORATION_COLUMNS = ("team_a", "team_b", "copresence_minutes", "suppressed")


# ---------------------------------------------------------------------------------------------- time slicing
@dataclass
class _Timeline:
    """Elementary intervals between every window and business-hours boundary, in ms from `origin`."""

    origin: datetime
    cuts: np.ndarray  # int64, sorted, unique
    window_of: np.ndarray  # per elementary interval: window index or -1
    measured: np.ndarray  # per elementary interval: inside a window and inside business hours
    n_windows: int

    def ms(self, moments: Sequence[datetime]) -> np.ndarray:
        return np.array([round((m - self.origin).total_seconds() * 1000) for m in moments], dtype=np.int64)

    def pieces(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Split intervals at the cuts; keep the measured pieces: (owner index, window index, length ms)."""
        lo_bound, hi_bound = self.cuts[0], self.cuts[-1]
        s = np.clip(starts, lo_bound, hi_bound)
        e = np.clip(ends, lo_bound, hi_bound)
        keep = np.flatnonzero(e > s)
        s, e = s[keep], e[keep]
        first = np.searchsorted(self.cuts, s, side="right") - 1
        last = np.searchsorted(self.cuts, e, side="left") - 1
        counts = last - first + 1
        owner = np.repeat(keep, counts)
        offsets = np.repeat(np.cumsum(counts) - counts, counts)
        elem = np.repeat(first, counts) + (np.arange(int(counts.sum()), dtype=np.int64) - offsets)
        p_start = np.maximum(np.repeat(s, counts), self.cuts[elem])
        p_end = np.minimum(np.repeat(e, counts), self.cuts[elem + 1])
        ok = self.measured[elem] & (p_end > p_start)
        return owner[ok], self.window_of[elem[ok]], (p_end - p_start)[ok]


def _timeline(windows: Sequence[Window], business: Sequence[tuple[datetime, datetime]]) -> _Timeline:
    origin = windows[0].start
    bounds = {w.start for w in windows} | {w.end for w in windows}
    lo, hi = windows[0].start, windows[-1].end
    for start, end in business:
        bounds.update(min(max(b, lo), hi) for b in (start, end))
    cuts = np.array(sorted({round((b - origin).total_seconds() * 1000) for b in bounds}), dtype=np.int64)
    mids = (cuts[:-1] + cuts[1:]) // 2
    w_start = np.array([round((w.start - origin).total_seconds() * 1000) for w in windows], dtype=np.int64)
    w_end = np.array([round((w.end - origin).total_seconds() * 1000) for w in windows], dtype=np.int64)
    idx = np.searchsorted(w_start, mids, side="right") - 1
    window_of = np.where((idx >= 0) & (mids < w_end[np.clip(idx, 0, None)]), idx, -1)
    in_business = np.zeros(len(mids), dtype=bool)
    for start, end in business:
        s = round((start - origin).total_seconds() * 1000)
        e = round((end - origin).total_seconds() * 1000)
        in_business |= (mids >= s) & (mids < e)
    return _Timeline(origin, cuts, window_of, (window_of >= 0) & in_business, len(windows))


# ---------------------------------------------------------------------------------------------- interval algebra
def _merge(group: NDArray[np.int64], member: NDArray[np.int64], start: NDArray[np.int64], end: NDArray[np.int64],
           ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Union of each (group, member)'s intervals: overlapping or touching intervals become one."""
    if len(start) == 0:
        return group, member, start, end
    order = np.lexsort((end, start, member, group))
    group, member, start, end = group[order], member[order], start[order], end[order]
    key = group.astype(np.int64) * (np.int64(1) << 31) + member.astype(np.int64)
    new_key = np.r_[True, key[1:] != key[:-1]]
    # running max of end within each key: offset each key's ends so one global accumulate cannot cross keys
    key_rank = np.cumsum(new_key) - 1
    shifted = end + key_rank * _SPAN
    running = np.maximum.accumulate(shifted) - key_rank * _SPAN
    starts_run = new_key | (start > np.r_[np.int64(-1), running[:-1]])
    run_id = np.cumsum(starts_run) - 1
    first = np.flatnonzero(starts_run)
    last_end = np.full(len(first), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_end, run_id, end)
    return group[first], member[first], start[first], last_end


@dataclass
class _Occupancy:
    """Per (group, window): measured ms occupied, person-ms, peak headcount, ms at a small headcount, people."""

    occupied: np.ndarray
    person: np.ndarray
    peak: np.ndarray
    small: np.ndarray
    people: np.ndarray


def _occupancy(timeline: _Timeline, group: np.ndarray, member: np.ndarray, start: np.ndarray, end: np.ndarray,
               n_groups: int, small_limit: np.ndarray | None = None) -> _Occupancy:
    """Headcount over time per group from the members' intervals (each member counted once at a time)."""
    n_cells = n_groups * timeline.n_windows
    group, member, start, end = _merge(group, member, start, end)
    # step function of the headcount: +1 at each start, -1 at each end, per group in time order
    g = np.r_[group, group]
    t = np.r_[start, end]
    delta = np.r_[np.ones(len(start), np.int64), -np.ones(len(end), np.int64)]
    order = np.lexsort((delta, t, g))
    g, t, delta = g[order], t[order], delta[order]
    level = np.cumsum(delta)  # every group's steps sum to zero, so a global running sum is per group
    seg = np.flatnonzero((g[:-1] == g[1:]) & (level[:-1] > 0) & (t[1:] > t[:-1])) if len(g) > 1 else np.array([], int)
    seg_group, seg_level = g[seg], level[seg]
    owner, window, length = timeline.pieces(t[seg], t[seg + 1])
    cell = seg_group[owner] * timeline.n_windows + window
    heads = seg_level[owner]
    occupied = np.bincount(cell, weights=length, minlength=n_cells)
    person = np.bincount(cell, weights=length * heads, minlength=n_cells)
    peak = np.zeros(n_cells, dtype=np.int64)
    np.maximum.at(peak, cell, heads)
    small: NDArray[np.float64] = np.zeros(n_cells)
    if small_limit is not None:
        is_small = heads * 3 <= small_limit[seg_group[owner]]
        # numpy's stubs type bincount as intp even with float weights (it returns float64 then)
        small = np.bincount(cell[is_small], weights=length[is_small], minlength=n_cells)  # type: ignore[assignment]
    # distinct members per cell: members with a measured piece in it
    m_owner, m_window, _ = timeline.pieces(start, end)
    m_cell = group[m_owner] * timeline.n_windows + m_window
    pairs = np.unique(m_cell.astype(np.int64) * (np.int64(1) << 31) + member[m_owner])
    people = np.bincount((pairs >> 31).astype(np.int64), minlength=n_cells)
    return _Occupancy(occupied, person, peak, small, people)


# ---------------------------------------------------------------------------------------------- the rollup
@dataclass
class _Index:
    values: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)

    def __call__(self, value: str) -> int:
        found = self.positions.get(value)
        if found is None:
            found = self.positions[value] = len(self.values)
            self.values.append(value)
        return found


def compute_windows(site: SiteModel, windows: Sequence[Window], stays: Iterable[Stay],
                    teams_of_user: Mapping[str, Sequence[str]] | None = None,
                    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
                    bookings: Iterable[BookingSpan] = ()) -> list[WindowResult]:
    """Every metric of every window (all of one grain, in time order, not overlapping) from the stays.

    `teams_of_user` maps an opted-in user id to the teams (ids) the tenant's admins put that user in; stays of
    devices without a user id never count towards collaboration."""
    if not windows:
        return []
    windows = sorted(windows)
    if len({w.grain for w in windows}) != 1 or any(a.end > b.start for a, b in itertools.pairwise(windows)):
        raise ValueError("windows must share one grain and must not overlap")
    zone = ZoneInfo(site.time_zone)
    days = {w.local_date for w in windows} | {local_date_of(w.end - timedelta(microseconds=1), zone) for w in windows}
    business = business_intervals(days, site.business_hours, zone)
    timeline = _timeline(windows, business)
    n_w = timeline.n_windows

    spaces = sorted(site.spaces, key=lambda s: s.id)
    space_pos = {s.id: i for i, s in enumerate(spaces)}
    floors = sorted({s.floor for s in spaces} | {f.id for f in site.floors})
    floor_pos = {f: i for i, f in enumerate(floors)}
    space_floor = np.array([floor_pos[s.floor] for s in spaces], dtype=np.int64)
    capacity = np.array([s.capacity for s in spaces], dtype=np.int64)

    devices, users = _Index(), _Index()
    rows = []
    for stay in stays:
        position = space_pos.get(stay.space_id)
        if position is None or stay.end <= stay.start:
            continue  # a space no longer in the site model, or an empty stay
        rows.append((position, devices(stay.device_id), users(stay.user_id) if stay.user_id else -1,
                     stay.start, stay.end, stay.closed))
    # canonical order: results must not depend on the order the store returned the stays in
    rows.sort(key=lambda r: (r[0], devices.values[r[1]], r[3], r[4], r[5]))
    space_i = np.array([r[0] for r in rows], dtype=np.int64)
    device_i = np.array([r[1] for r in rows], dtype=np.int64)
    user_i = np.array([r[2] for r in rows], dtype=np.int64)
    # only the measured span matters for time; clipping keeps composite sort keys in range for very long stays
    horizon = timeline.cuts[-1] + 1
    start = np.clip(timeline.ms([r[3] for r in rows]), -1, horizon)
    end = np.clip(timeline.ms([r[4] for r in rows]), -1, horizon)
    closed = np.array([r[5] for r in rows], dtype=bool)
    duration_s = np.array([(r[4] - r[3]).total_seconds() for r in rows], dtype=np.float64)

    business_ms = np.zeros(n_w)
    lengths = np.diff(timeline.cuts)
    np.add.at(business_ms, timeline.window_of[timeline.measured], lengths[timeline.measured])

    per_space = _occupancy(timeline, space_i, device_i, start, end, len(spaces), small_limit=capacity)
    per_floor = _occupancy(timeline, space_floor[space_i] if len(space_i) else space_i, device_i, start, end,
                           len(floors))
    per_building = _occupancy(timeline, np.zeros_like(space_i), device_i, start, end, 1)
    visits, dwell_sum, dwell_n = _visits(timeline, space_i, start, end, closed, duration_s, len(spaces))
    collaboration = _collaboration(timeline, space_i, user_i, start, end, users.values, teams_of_user or {},
                                   min_group_size)
    booked = _booked(timeline, bookings, space_pos, space_i, start, end, per_space.occupied, len(spaces))
    floor_bookings = np.zeros((len(floors), 3, n_w), dtype=np.int64)  # bookings, no-shows, decided
    if len(spaces):
        np.add.at(floor_bookings, space_floor, booked.counts)

    k = min_group_size
    results = []
    for w, window in enumerate(windows):
        b_ms = float(business_ms[w])
        if b_ms <= 0:
            results.append(WindowResult(window, 0.0, _empty(SPACE_COLUMNS), _empty(ZONE_COLUMNS),
                                        _empty(COLLABORATION_COLUMNS)))
            continue
        table = _empty(SPACE_COLUMNS)
        for i, space in enumerate(spaces):
            c = i * n_w + w
            occupied, people = float(per_space.occupied[c]), int(per_space.people[c])
            hidden = 0 < people < k
            meeting = space.kind.value in MEETING_ROOM_KINDS and space.capacity > 0
            table["space_id"].append(space.id)
            table["floor_id"].append(space.floor)
            table["kind"].append(space.kind.value)
            table["capacity"].append(space.capacity)
            table["business_s"].append(b_ms / 1000)
            table["occupied_s"].append(occupied / 1000)
            table["occupancy_rate"].append(occupied / b_ms)
            table["utilization"].append(None if hidden or occupied == 0 or space.capacity == 0
                                        else float(per_space.person[c]) / occupied / space.capacity)
            table["right_sizing"].append(None if hidden or occupied == 0 or not meeting
                                         else float(per_space.small[c]) / occupied)
            table["peak_headcount"].append(None if hidden else int(per_space.peak[c]))
            table["unique_visitors"].append(None if hidden else people)
            table["visits"].append(None if hidden else int(visits[c]))
            table["mean_dwell_s"].append(None if hidden or dwell_n[c] == 0 else float(dwell_sum[c] / dwell_n[c]))
            # booked vs used: time and counts of calendars, never of how many people (published as occupied_s is)
            bookable = space.bookable
            table["booked_s"].append(float(booked.booked[c]) / 1000 if bookable else None)
            table["booked_empty_s"].append(float(booked.booked_empty[c]) / 1000 if bookable else None)
            table["unbooked_use_s"].append(float(booked.unbooked_use[c]) / 1000 if bookable else None)
            table["bookings"].append(int(booked.counts[i, 0, w]) if bookable else None)
            table["no_shows"].append(int(booked.counts[i, 1, w]) if bookable else None)
            table["suppressed"].append(hidden)
        zones = _empty(ZONE_COLUMNS)
        _zone_row(zones, "building", site.building_id, per_building, 0, n_w, w, b_ms, k,
                  floor_bookings[:, :, w].sum(axis=0))
        for f, floor in enumerate(floors):
            _zone_row(zones, "floor", floor, per_floor, f, n_w, w, b_ms, k, floor_bookings[f, :, w])
        results.append(WindowResult(window, b_ms / 1000, table, zones, collaboration.get(w, _empty(COLLABORATION_COLUMNS))))
    return results


def _empty(columns: Sequence[str]) -> dict[str, list[Any]]:
    return {c: [] for c in columns}


def _zone_row(zones: dict[str, list[Any]], level: str, zone_id: str, occ: _Occupancy, g: int, n_w: int, w: int,
              b_ms: float, k: int, booking_counts: NDArray[np.int64]) -> None:
    c = g * n_w + w
    people = int(occ.people[c])
    hidden = 0 < people < k
    zones["level"].append(level)
    zones["zone_id"].append(zone_id)
    zones["business_s"].append(b_ms / 1000)
    zones["peak_headcount"].append(None if hidden else int(occ.peak[c]))
    zones["mean_headcount"].append(None if hidden else float(occ.person[c]) / b_ms)
    zones["unique_visitors"].append(None if hidden else people)
    total, no_shows, decided = (int(x) for x in booking_counts)
    zones["bookings"].append(total)
    zones["no_shows"].append(no_shows)
    zones["no_show_rate"].append(no_shows / decided if decided else None)
    zones["suppressed"].append(hidden)


@dataclass
class _Booked:
    booked: NDArray[np.float64]  # per (space, window) cell, ms: time some booking covered
    booked_empty: NDArray[np.float64]  # ... booked and nobody in
    unbooked_use: NDArray[np.float64]  # ... somebody in and no booking
    counts: NDArray[np.int64]  # (space, [bookings, no-shows, decided], window)


def _booked(timeline: _Timeline, bookings: Iterable[BookingSpan], space_pos: Mapping[str, int],
            space_i: NDArray[np.int64], start: NDArray[np.int64], end: NDArray[np.int64],
            occupied: NDArray[np.float64], n_spaces: int) -> _Booked:
    """Booked time against occupied time per (space, window), by inclusion-exclusion over the unions: with A the
    occupied time and K the booked time of a cell, |A ∩ K| = |A| + |K| - |A ∪ K|."""
    n_w = timeline.n_windows
    rows = sorted((space_pos[b.space_id], b.start, b.end, b.no_show, b.decided) for b in bookings
                  if b.space_id in space_pos and b.end > b.start)
    counts = np.zeros((n_spaces, 3, n_w), dtype=np.int64)
    if not rows:
        zero = np.zeros(n_spaces * n_w)
        return _Booked(zero, zero, occupied.copy(), counts)
    horizon = timeline.cuts[-1] + 1
    b_space = np.array([r[0] for r in rows], dtype=np.int64)
    b_start = np.clip(timeline.ms([r[1] for r in rows]), -1, horizon)
    b_end = np.clip(timeline.ms([r[2] for r in rows]), -1, horizon)
    none = np.zeros(len(b_space), dtype=np.int64)
    booked = _occupancy(timeline, b_space, none, b_start, b_end, n_spaces).occupied
    both = _occupancy(timeline, np.r_[space_i, b_space], np.r_[np.zeros(len(space_i), np.int64), none + 1],
                      np.r_[start, b_start], np.r_[end, b_end], n_spaces).occupied
    overlap = occupied + booked - both
    # each booking counts once in every window whose measured time it overlaps (as visits do)
    owner, window, _ = timeline.pieces(b_start, b_end)
    pairs = np.unique(owner.astype(np.int64) * n_w + window)
    which, win = pairs // n_w, pairs % n_w
    flags = np.array([[1, int(r[3]), int(r[4])] for r in rows], dtype=np.int64)
    for column in range(3):
        np.add.at(counts[:, column, :], (b_space[which], win), flags[which, column])
    return _Booked(booked, booked - overlap, occupied - overlap, counts)


def _visits(timeline: _Timeline, space_i: NDArray[np.int64], start: NDArray[np.int64], end: NDArray[np.int64],
            closed: NDArray[np.bool_], duration_s: NDArray[np.float64],
            n_spaces: int) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.intp]]:
    """Per (space, window): stays overlapping its measured time; the sum and number of closed stays' durations."""
    n_cells = n_spaces * timeline.n_windows
    owner, window, _ = timeline.pieces(start, end)
    pairs = np.unique(owner.astype(np.int64) * timeline.n_windows + window)  # each stay once per window
    stay, win = pairs // timeline.n_windows, pairs % timeline.n_windows
    cell = space_i[stay] * timeline.n_windows + win
    visits = np.bincount(cell, minlength=n_cells)
    is_closed = closed[stay]
    dwell_sum: NDArray[np.float64] = np.bincount(  # type: ignore[assignment]  # float64 with weights; stubs say intp
        cell[is_closed], weights=duration_s[stay[is_closed]], minlength=n_cells)
    dwell_n = np.bincount(cell[is_closed], minlength=n_cells)
    return visits, dwell_sum, dwell_n


def _collaboration(timeline: _Timeline, space_i: NDArray[np.int64], user_i: NDArray[np.int64],
                   start: NDArray[np.int64], end: NDArray[np.int64], user_ids: list[str],
                   teams_of_user: Mapping[str, Sequence[str]], k: int) -> dict[int, dict[str, list[Any]]]:
    """Per window: co-presence minutes of every pair of teams (people of the two teams in one space at once)."""
    team_ids = sorted({t for u in user_ids for t in teams_of_user.get(u, ())})
    if not team_ids:
        return {}
    team_pos = {t: i for i, t in enumerate(team_ids)}
    user_teams = [sorted({team_pos[t] for t in teams_of_user.get(u, ())}) for u in user_ids]
    member = np.flatnonzero(user_i >= 0)
    member = member[np.array([bool(user_teams[user_i[m]]) for m in member], dtype=bool)]
    if len(member) < 2:
        return {}
    sp, us, s, e = _merge(space_i[member], user_i[member], start[member], end[member])
    order = np.lexsort((s, sp))
    sp, us, s, e = sp[order], us[order], s[order], e[order]
    # every later-starting interval of the same space that starts before this one ends overlaps it
    key = sp * _SPAN + s
    hi = np.searchsorted(key, sp * _SPAN + e, side="left")
    idx = np.arange(len(s))
    counts = np.maximum(hi - idx - 1, 0)
    a = np.repeat(idx, counts)
    b = a + 1 + (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts))
    owner, window, length = timeline.pieces(s[b], np.minimum(e[a], e[b]))
    if len(owner) == 0:
        return {}
    ua, ub = us[a[owner]], us[b[owner]]
    lo, hi_u = np.minimum(ua, ub), np.maximum(ua, ub)
    # the team pairs each pair of people counts towards: one from each team, each pair of people once
    n_users = np.int64(len(user_ids))
    person_pair = lo * n_users + hi_u
    unique_pairs, inverse = np.unique(person_pair, return_inverse=True)
    team_pairs_of: list[list[int]] = []
    n_teams = len(team_ids)
    for code in unique_pairs:
        p, q = divmod(int(code), int(n_users))
        found = {min(x, y) * n_teams + max(x, y) for x in user_teams[p] for y in user_teams[q] if x != y}
        team_pairs_of.append(sorted(found))
    n_tp = np.array([len(x) for x in team_pairs_of], dtype=np.int64)
    flat = np.array([tp for x in team_pairs_of for tp in x], dtype=np.int64)
    starts_of = np.cumsum(n_tp) - n_tp
    reps = n_tp[inverse]
    row = np.repeat(np.arange(len(owner)), reps)
    tp = flat[np.repeat(starts_of[inverse], reps) + (np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps))]
    n_pairs = n_teams * n_teams
    cell = window[row].astype(np.int64) * n_pairs + tp
    cells, cell_inv = np.unique(cell, return_inverse=True)
    seconds = np.bincount(cell_inv, weights=length[row], minlength=len(cells)) / 1000
    contributors = np.unique(np.r_[cell_inv.astype(np.int64) * n_users + lo[row],
                                   cell_inv.astype(np.int64) * n_users + hi_u[row]])
    people = np.bincount((contributors // n_users).astype(np.int64), minlength=len(cells))
    out: dict[int, dict[str, list[Any]]] = {}
    for c, code in enumerate(cells):
        w, pair = divmod(int(code), n_pairs)
        x, y = divmod(pair, n_teams)
        table = out.setdefault(w, _empty(COLLABORATION_COLUMNS))
        hidden = int(people[c]) < k
        table["team_a"].append(team_ids[x])
        table["team_b"].append(team_ids[y])
        table["copresence_minutes"].append(None if hidden else float(seconds[c]) / 60)
        table["suppressed"].append(hidden)
    return out


# ---------------------------------------------------------------------------------------------- which windows
def hours_to_roll(now: datetime, zone: ZoneInfo, late: timedelta = LATE_DATA_WINDOW) -> list[Window]:
    """The local hours the hourly rollup computes at `now`: the previous hour and those that ended within the
    late-data window before it (so each hour is computed again until it is final)."""
    today = local_date_of(now, zone)
    candidates = [w for d in (today - timedelta(days=1), today) for w in hour_windows(d, zone)]
    return [w for w in candidates if now - late - _HOUR < w.end <= now]


def day_to_roll(now: datetime, zone: ZoneInfo, late: timedelta = LATE_DATA_WINDOW) -> date:
    """The latest local day that is over, late-data window included, at `now`."""
    day = local_date_of(now, zone)
    while local_midnight(day + timedelta(days=1), zone) + late > now:
        day -= timedelta(days=1)
    return day


def watermark(window: Window, now: datetime, late: timedelta = LATE_DATA_WINDOW) -> tuple[datetime, bool]:
    """What a window computed at `now` has seen: stays known by the watermark; final once the late window passed."""
    final_at = window.end + late
    return min(now, final_at), now >= final_at
