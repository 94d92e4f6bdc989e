"""Beacon planning: where to mount beacons in a building that has none, and how well beacons cover its rooms.

    plan = plan_beacons(site)                       # wall-mounted positions, fewest that give 3 beacons per room
    plan.beacons                                    # PlannedBeacon(floor, x, y, space_id of the wall's room)
    plan.planned.rooms_meeting_target, plan.planned.predicted_room_accuracy
    plan.existing                                   # the same report for site.beacons (None when it has none)
    report = coverage(site, beacons)                # any beacons: site Beacons or PlannedBeacons

Method (docs/positioning.md, "Planning"):

* **Candidates**: points every ~2.5 m along the boundary rings (outer and holes) of occupiable spaces (rooms and
  walkways; not elevators or moving walkways), 0.1 m inside the space, inside the floor outline, not inside an
  obstacle, a non-occupiable space or a smaller space drawn over the host (a room drawn over a walkway).
* **Sample points of a room**: its representative point plus a lattice of up to 8 points at least 0.5 m from its
  walls (where a phone stands). A beacon *covers* a sample point when the engine's own signal model expects it
  above `min_rssi_dbm` there: `FloorGrid.path_loss` (path-loss exponent, beacon height, wall loss per wall of the
  site's enclosed spaces crossed: the engine's walls and wall counting). Beacons serve their own floor only.
* **A room's coverage** is the fewest beacons heard at any of its sample points; it meets the target when that is
  at least `min_beacons_per_room`.
* **Choice**: greedy set multicover over the sample points (every sample point needs `min_beacons_per_room`
  covering beacons, or as many as can reach it), vectorised with numpy, deterministic (ties go to the earlier
  candidate), then redundant picks are dropped in reverse order. Floors are independent; with `max_beacons` the
  floors' greedy sequences are merged by gain, which is the greedy over the whole building under that budget.
* **Predicted room accuracy**: a Monte-Carlo run of the engine itself (`locate_many`) on readings drawn from the
  engine's signal model plus noise; see `predict_room_accuracy`.

Work is capped: at most `MAX_CANDIDATES_PER_FLOOR` candidates (the spacing grows beyond it), coverage is counted
within `WALL_REACH_M` of a beacon (where the engine counts walls), prediction draws at most
`MAX_PREDICTION_SAMPLES` phones.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import Polygon as ShapelyPolygon

from shared.domain import space_kinds
from shared.domain.positioning.estimator import locate_many
from shared.domain.positioning.signal import SignalModel, signal_for_site
from shared.domain.positioning.site_index import (
    WALL_REACH_M,
    BeaconSpec,
    FloorGrid,
    FloorSpec,
    SiteIndex,
    SpaceSpec,
)

if TYPE_CHECKING:
    from shared.domain.site import Beacon, SiteModel, Space

CANDIDATE_SPACING_M = 2.5
MOUNT_INSET_M = 0.1  # a wall-mounted beacon sits this far inside its room
PHONE_INSET_M = 0.5  # sample points (phones) keep this far from walls
MAX_SAMPLES_PER_ROOM = 9
MIN_SAMPLE_SPACING_M = 2.0
MAX_CANDIDATES_PER_FLOOR = 20_000
MAX_PREDICTION_SAMPLES = 4_000
# Prediction on a floor bigger than this runs on one seeded window of it (phones inside, beacons and walls a margin
# beyond it): the engine's per-floor wall counts grow with floor area x beacons.
PREDICTION_FLOOR_AREA_M2 = 3_000.0
PREDICTION_WINDOW_M = 30.0
PREDICTION_MARGIN_M = 16.0
TILE_M = 20.0  # coverage is computed per square tile of sample points, against the beacons and walls near it
# Beacons are not mounted on what moves (an elevator unit is its lobby or shaft in most plans: allowed).
NO_MOUNT_KINDS = space_kinds.NOT_OCCUPIABLE | frozenset({"escalator", "movingwalkway"})

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class PlannedBeacon:
    """Where to mount a beacon: floor, building metres, the room whose wall it is mounted on."""

    floor: str
    x: float
    y: float
    space_id: str | None


@dataclass(frozen=True)
class RoomCoverage:
    """Beacons expected above the RSSI threshold everywhere in the room (the fewest at any of its sample points)."""

    space_id: str
    beacons_heard: int
    meets_target: bool


@dataclass(frozen=True)
class CoverageReport:
    rooms: tuple[RoomCoverage, ...]
    rooms_meeting_target: int
    predicted_room_accuracy: float | None  # share of phones in rooms placed in the right room; None: not predicted


@dataclass(frozen=True)
class BeaconPlan:
    beacons: tuple[PlannedBeacon, ...]
    planned: CoverageReport
    existing: CoverageReport | None  # the site's own beacons, None when it has none


# --- geometry -----------------------------------------------------------------------------------------------


@dataclass
class _FloorGeometry:
    id: str
    walls: FloatArray  # (W, 4): the engine's walls of this floor
    samples: FloatArray  # (M, 2) sample points of the floor's target rooms
    sample_room: IntArray  # (M,) index into _Site.rooms


@dataclass
class _Site:
    rooms: list[str]  # target rooms (occupiable spaces), site order
    floors: list[_FloorGeometry]  # site floor order


def _space_geometry(space: Space) -> Any:
    polygons = [ShapelyPolygon(space.polygon, space.holes)]
    polygons += [ShapelyPolygon(part.polygon, part.holes) for part in space.parts]
    geometry = polygons[0] if len(polygons) == 1 else shapely.union_all(polygons)
    return geometry if geometry.is_valid else shapely.make_valid(geometry)


def _polygons(geometry: Any) -> list[Any]:
    if geometry.geom_type == "Polygon":
        return [geometry] if not geometry.is_empty else []
    return [g for g in getattr(geometry, "geoms", []) if g.geom_type == "Polygon" and not g.is_empty]


def _engine_walls(site: SiteModel) -> dict[str, FloatArray]:
    """The walls the engine itself uses, per floor: a probe SiteIndex (one beacon per floor, a coarse grid) so the
    planner counts walls exactly as positioning will."""
    floors = [FloorSpec(f.id, f.ordinal, tuple(f.outline)) for f in site.floors]
    probes = []
    for f in site.floors:
        p = ShapelyPolygon(f.outline).representative_point()
        probes.append(BeaconSpec(f"probe-{f.id}", float(p.x), float(p.y), f.id, -59.0))
    spaces = [SpaceSpec(s.id, s.floor, tuple(s.polygon), s.kind.value) for s in site.spaces]
    index = SiteIndex.build(floors, probes, spaces, grid_step_m=1e4)
    return {fid: np.asarray(g.walls, dtype=np.float64).reshape(-1, 4) for fid, g in index.grids.items()}


def _room_samples(geometry: Any) -> FloatArray:
    """The room's representative point plus up to MAX_SAMPLES_PER_ROOM - 1 lattice points >= PHONE_INSET_M from
    its walls."""
    rep = geometry.representative_point()
    points = [(float(rep.x), float(rep.y))]
    inset = geometry.buffer(-PHONE_INSET_M, join_style="mitre")
    if not inset.is_empty and inset.area > 0:
        want = MAX_SAMPLES_PER_ROOM - 1
        step = max(MIN_SAMPLE_SPACING_M, math.sqrt(inset.area / want))
        x0, y0, x1, y1 = inset.bounds
        xs = np.arange(x0 + ((x1 - x0) % step) / 2, x1 + 1e-9, step)
        ys = np.arange(y0 + ((y1 - y0) % step) / 2, y1 + 1e-9, step)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        lattice = np.column_stack([gx.ravel(), gy.ravel()])
        lattice = lattice[shapely.contains_xy(inset, lattice[:, 0], lattice[:, 1])]
        if len(lattice) > want:
            lattice = lattice[np.linspace(0, len(lattice) - 1, want).round().astype(np.int64)]
        points += [(float(x), float(y)) for x, y in lattice]
    return np.array(points, dtype=np.float64)


def _site_geometry(site: SiteModel) -> _Site:
    walls = _engine_walls(site)
    rooms: list[str] = []
    per_floor: dict[str, tuple[list[FloatArray], list[IntArray]]] = {f.id: ([], []) for f in site.floors}
    for space in site.spaces:
        if space.kind.value in space_kinds.NOT_OCCUPIABLE:
            continue
        samples = _room_samples(_space_geometry(space))
        pts, owners = per_floor[space.floor]
        pts.append(samples)
        owners.append(np.full(len(samples), len(rooms), dtype=np.int64))
        rooms.append(space.id)
    floors = []
    for f in site.floors:
        pts, owners = per_floor[f.id]
        floors.append(_FloorGeometry(
            f.id,
            walls.get(f.id, np.zeros((0, 4))),
            np.concatenate(pts) if pts else np.zeros((0, 2)),
            np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64),
        ))
    return _Site(rooms, floors)


def _candidates(site: SiteModel, floor_id: str, spacing_m: float) -> tuple[FloatArray, list[str]]:
    """Wall-mounted candidate positions on a floor, (N, 2), and the space each is mounted in."""
    floor = next(f for f in site.floors if f.id == floor_id)
    outline = ShapelyPolygon(floor.outline)
    on_floor = [s for s in site.spaces if s.floor == floor_id]
    hosts = [s for s in on_floor if s.kind.value not in NO_MOUNT_KINDS]
    occupiable = [s for s in on_floor if s.kind.value not in space_kinds.NOT_OCCUPIABLE]
    geometry = {s.id: _space_geometry(s) for s in occupiable}
    blocked = [_space_geometry(s) for s in on_floor if s.kind.value in space_kinds.NOT_OCCUPIABLE]
    blocked += [ShapelyPolygon(o.polygon, o.holes) for o in site.obstacles if o.floor == floor_id]
    xy: list[FloatArray] = []
    host_of: list[IntArray] = []
    for h, space in enumerate(hosts):
        inset = geometry[space.id].buffer(-MOUNT_INSET_M, join_style="mitre")
        for polygon in _polygons(inset):
            for ring in [polygon.exterior, *polygon.interiors]:
                count = max(1, round(ring.length / spacing_m))
                along = (np.arange(count) + 0.5) * (ring.length / count)
                pts = shapely.get_coordinates(shapely.line_interpolate_point(ring, along))
                xy.append(np.asarray(pts, dtype=np.float64).reshape(-1, 2))
                host_of.append(np.full(len(pts), h, dtype=np.int64))
    if not xy:
        return np.zeros((0, 2)), []
    points = np.concatenate(xy)
    host = np.concatenate(host_of)
    keep = np.asarray(shapely.contains_xy(outline, points[:, 0], points[:, 1]), dtype=bool)
    shapes = shapely.points(points)
    if blocked:
        hit = shapely.STRtree(blocked).query(shapes, predicate="intersects")
        keep[hit[0]] = False
    # a point of a big space's boundary that lies inside a smaller space drawn over it is not on a wall
    covers = shapely.STRtree([geometry[s.id] for s in occupiable]).query(shapes, predicate="within")
    area = np.array([geometry[s.id].area for s in occupiable])
    position = {s.id: i for i, s in enumerate(occupiable)}
    host_pos = np.array([position[s.id] for s in hosts], dtype=np.int64)[host[covers[0]]]
    inner = (covers[1] != host_pos) & (area[covers[1]] < area[host_pos])
    keep[covers[0][inner]] = False
    return points[keep], [hosts[h].id for h in host[keep]]


# --- radio --------------------------------------------------------------------------------------------------


def _reach_m(signal: SignalModel, max_power: float, threshold_dbm: float) -> float:
    return min(signal.distance_for(threshold_dbm, max_power) + 0.5, WALL_REACH_M)


def _expected_pairs(
    floor: _FloorGeometry, beacon_xy: FloatArray, power: FloatArray, signal: SignalModel, threshold_dbm: float,
) -> tuple[IntArray, IntArray, FloatArray]:
    """(sample, beacon, expected rssi) of every pair of the floor where the engine's model expects the beacon at
    `threshold_dbm` or louder, computed per tile with `FloorGrid.path_loss` (log-distance + walls crossed)."""
    samples = floor.samples
    out_s: list[IntArray] = []
    out_b: list[IntArray] = []
    out_r: list[FloatArray] = []
    if len(samples) == 0 or len(beacon_xy) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    reach = _reach_m(signal, float(power.max()), threshold_dbm)
    tiles = np.floor((samples - samples.min(axis=0)) / TILE_M).astype(np.int64)
    keys = tiles[:, 0] * (int(tiles[:, 1].max()) + 1) + tiles[:, 1]
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    walls = floor.walls
    for rows in np.split(order, bounds):
        pts = samples[rows]
        lo, hi = pts.min(axis=0) - reach, pts.max(axis=0) + reach
        near = np.flatnonzero(((beacon_xy >= lo) & (beacon_xy <= hi)).all(axis=1))
        if len(near) == 0:
            continue
        wall_lo = np.minimum(walls[:, :2], walls[:, 2:])
        wall_hi = np.maximum(walls[:, :2], walls[:, 2:])
        local_walls = walls[((wall_hi >= lo) & (wall_lo <= hi)).all(axis=1)]
        bxy = beacon_xy[near]
        dist2 = ((pts[:, None, :] - bxy[None, :, :]) ** 2).sum(axis=2).astype(np.float32)
        grid = FloorGrid(
            floor=floor.id, points=pts, beacons=np.arange(len(near)), dist2=dist2,
            space_of_point=np.full(len(pts), -1, dtype=np.int64), near_points=[], near_points_wide=[],
            near_beacons=[], transitions=np.zeros((0, 2)), walls=local_walls, beacon_xy=bxy,
        )
        loss = grid.path_loss(signal.path_loss_exponent, signal.height_m, signal.wall_loss_db)
        rssi = power[near][None, :] - loss.astype(np.float64)
        s, b = np.nonzero((rssi >= threshold_dbm) & (dist2 <= reach * reach))
        out_s.append(rows[s])
        out_b.append(near[b])
        out_r.append(rssi[s, b])
    if not out_s:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(out_s), np.concatenate(out_b), np.concatenate(out_r)


# --- choice -------------------------------------------------------------------------------------------------


def _gather(ptr: IntArray, values: IntArray, keys: IntArray) -> IntArray:
    """Concatenation of values[ptr[k]:ptr[k + 1]] over keys (CSR rows), vectorised."""
    starts = ptr[keys]
    lengths = ptr[keys + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    out: IntArray = values[np.arange(total) + offsets]
    return out


def _csr(rows: IntArray, cols: IntArray, n_rows: int) -> tuple[IntArray, IntArray]:
    order = np.argsort(rows, kind="stable")
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=ptr[1:])
    return ptr, cols[order].astype(np.int64)


def _greedy_multicover(pair_s: IntArray, pair_c: IntArray, n_samples: int, n_candidates: int,
                       k: int) -> list[tuple[int, int]]:
    """Greedy set multicover: (gain, candidate) picks in order until every sample point has k covering picks, or
    all that can reach it; then picks that became redundant are dropped (latest first)."""
    degree = np.bincount(pair_s, minlength=n_samples)
    need = np.minimum(degree, k).astype(np.int64)
    s_ptr, s_cands = _csr(pair_s, pair_c, n_samples)  # sample -> candidates
    c_ptr, c_samples = _csr(pair_c, pair_s, n_candidates)  # candidate -> samples
    gains = np.bincount(pair_c, weights=(need[pair_s] > 0).astype(np.float64), minlength=n_candidates).astype(
        np.int64)
    used = np.iinfo(np.int64).min // 2
    picks: list[tuple[int, int]] = []
    while n_candidates:
        c = int(np.argmax(gains))
        gain = int(gains[c])
        if gain <= 0:
            break
        picks.append((gain, c))
        gains[c] = used
        covered = c_samples[c_ptr[c]:c_ptr[c + 1]]
        active = covered[need[covered] > 0]
        need[active] -= 1
        done = active[need[active] == 0]
        if len(done):
            np.subtract.at(gains, _gather(s_ptr, s_cands, done), 1)
    # reverse delete: a pick whose every sample point keeps its target without it is dropped
    target = np.minimum(degree, k)
    count = np.zeros(n_samples, dtype=np.int64)
    for _gain, c in picks:
        count[c_samples[c_ptr[c]:c_ptr[c + 1]]] += 1
    kept: list[tuple[int, int]] = []
    for gain, c in reversed(picks):
        covered = c_samples[c_ptr[c]:c_ptr[c + 1]]
        if len(covered) == 0 or bool((count[covered] > target[covered]).all()):
            count[covered] -= 1
        else:
            kept.append((gain, c))
    kept.reverse()
    return kept


# --- reports ------------------------------------------------------------------------------------------------


def _report(geo: _Site, counts: dict[str, IntArray], k: int, accuracy: float | None) -> CoverageReport:
    heard = np.full(len(geo.rooms), np.iinfo(np.int64).max, dtype=np.int64)
    for floor in geo.floors:
        if len(floor.samples):
            np.minimum.at(heard, floor.sample_room, counts[floor.id])
    heard[heard == np.iinfo(np.int64).max] = 0
    rooms = tuple(RoomCoverage(rid, int(h), bool(h >= k)) for rid, h in zip(geo.rooms, heard))
    return CoverageReport(rooms, sum(r.meets_target for r in rooms), accuracy)


def _beacon_arrays(site: SiteModel, beacons: Sequence[Beacon | PlannedBeacon], signal: SignalModel,
                   measured_power_dbm: float) -> list[BeaconSpec]:
    specs = []
    for i, b in enumerate(beacons):
        power = getattr(b, "measured_power", None)
        beacon_id = getattr(b, "id", None) or f"planned-{i}"
        if beacon_id in signal.beacon_measured_power_dbm:
            power = signal.beacon_measured_power_dbm[beacon_id]
        specs.append(BeaconSpec(beacon_id, float(b.x), float(b.y), b.floor,
                                float(measured_power_dbm if power is None else power)))
    return specs


def _coverage_counts(geo: _Site, specs: Sequence[BeaconSpec], signal: SignalModel,
                     min_rssi_dbm: float) -> dict[str, IntArray]:
    counts: dict[str, IntArray] = {}
    for floor in geo.floors:
        mine = [b for b in specs if b.floor == floor.id]
        xy = np.array([(b.x, b.y) for b in mine], dtype=np.float64).reshape(-1, 2)
        power = np.array([b.measured_power for b in mine], dtype=np.float64)
        s, _b, _r = _expected_pairs(floor, xy, power, signal, min_rssi_dbm)
        counts[floor.id] = np.bincount(s, minlength=len(floor.samples)).astype(np.int64)
    return counts


def coverage(
    site: SiteModel,
    beacons: Sequence[Beacon | PlannedBeacon],
    *,
    min_beacons_per_room: int = 3,
    min_rssi_dbm: float = -85.0,
    measured_power_dbm: int = -59,
    signal: SignalModel | None = None,
    predict: bool = True,
    seed: int = 0,
) -> CoverageReport:
    """How well `beacons` cover the site's occupiable spaces: per room the fewest beacons expected above
    `min_rssi_dbm` at any of its sample points (beacons of its own floor), whether that meets
    `min_beacons_per_room`, and (with `predict`) the predicted room accuracy. A PlannedBeacon transmits
    `measured_power_dbm` at 1 m; a site Beacon its own measuredPower (or the signal model's calibrated value)."""
    signal = signal if signal is not None else signal_for_site(site)
    geo = _site_geometry(site)
    specs = _beacon_arrays(site, beacons, signal, measured_power_dbm)
    counts = _coverage_counts(geo, specs, signal, min_rssi_dbm)
    accuracy = _predict(site, specs, signal=signal, seed=seed) if predict and specs else None
    return _report(geo, counts, min_beacons_per_room, accuracy)


def plan_beacons(
    site: SiteModel,
    *,
    min_beacons_per_room: int = 3,
    min_rssi_dbm: float = -85.0,
    measured_power_dbm: int = -59,
    signal: SignalModel | None = None,
    seed: int = 0,
    max_beacons: int | None = None,
    predict: bool = True,
) -> BeaconPlan:
    """The fewest wall-mounted beacons (greedy) so that every occupiable space hears `min_beacons_per_room`
    beacons of its floor above `min_rssi_dbm` at each of its sample points, at most `max_beacons` in all. Rooms
    that cannot meet the target (budget, out of reach of any wall) are reported in `planned.rooms`, not raised.
    `existing` reports the site's own beacons the same way (None when it has none). Deterministic for a seed
    (the seed only drives the accuracy prediction)."""
    if min_beacons_per_room < 1:
        raise ValueError("min_beacons_per_room must be at least 1")
    if max_beacons is not None and max_beacons < 0:
        raise ValueError("max_beacons must not be negative")
    signal = signal if signal is not None else signal_for_site(site)
    geo = _site_geometry(site)
    power = float(measured_power_dbm)
    picks: list[tuple[int, int, int, PlannedBeacon]] = []  # (-gain, floor, order, beacon)
    for f, floor in enumerate(geo.floors):
        if len(floor.samples) == 0:
            continue
        perimeter = sum(_space_geometry(s).length for s in site.spaces
                        if s.floor == floor.id and s.kind.value not in NO_MOUNT_KINDS)
        spacing = max(CANDIDATE_SPACING_M, perimeter / MAX_CANDIDATES_PER_FLOOR)
        xy, hosts = _candidates(site, floor.id, spacing)
        s, c, _r = _expected_pairs(floor, xy, np.full(len(xy), power), signal, min_rssi_dbm)
        chosen = _greedy_multicover(s, c, len(floor.samples), len(xy), min_beacons_per_room)
        for order, (gain, cand) in enumerate(chosen):
            beacon = PlannedBeacon(floor.id, round(float(xy[cand, 0]), 3), round(float(xy[cand, 1]), 3), hosts[cand])
            picks.append((-gain, f, order, beacon))
    picks.sort(key=lambda p: p[:3])
    if max_beacons is not None:
        picks = picks[:max_beacons]
    floor_rank = {f.id: i for i, f in enumerate(geo.floors)}
    planned = tuple(sorted((p[3] for p in picks), key=lambda b: (floor_rank[b.floor], b.x, b.y)))
    specs = _beacon_arrays(site, planned, signal, power)
    counts = _coverage_counts(geo, specs, signal, min_rssi_dbm)
    accuracy = _predict(site, specs, signal=signal, seed=seed) if predict and specs else None
    report = _report(geo, counts, min_beacons_per_room, accuracy)
    existing = None
    if site.beacons:
        existing = coverage(site, site.beacons, min_beacons_per_room=min_beacons_per_room,
                            min_rssi_dbm=min_rssi_dbm, signal=signal, predict=predict, seed=seed)
    return BeaconPlan(planned, report, existing)


# --- prediction ---------------------------------------------------------------------------------------------


def predict_room_accuracy(
    site: SiteModel,
    beacons: Sequence[Beacon | PlannedBeacon],
    *,
    signal: SignalModel | None = None,
    samples_per_room: int = 30,
    noise_db: float = 6.0,
    measured_power_dbm: int = -59,
    readings_averaged: int = 8,
    seed: int = 0,
) -> float:
    """Monte-Carlo room accuracy of the engine with these beacons: the share of phones placed in the right space.

    Phones stand at uniform random points of the rooms people stay in (occupiable spaces that are not passages,
    >= 0.5 m from the walls), `samples_per_room` each. Each beacon of the phone's floor reads the engine's expected
    RSSI (path loss, walls crossed) plus a N(0, offset_prior_db) offset per phone plus fading N(0, noise_db) per
    reading averaged over `readings_averaged` readings (what a still phone's 10 s batch and RSSI filter hold:
    ~8 readings at 1 Hz less dropouts); below the model's sensitivity it is unheard. `locate_many` places each
    phone. Not modelled: beacons of other floors (the model has no floor loss, so floor mistakes are not
    predicted), static shadowing, the tracker's hysteresis (measured against the simulator's tracker this runs a
    few points pessimistic, docs/positioning.md). Seeded and deterministic.

    Bounded in time (~0.5 s for a 2-floor office, ~2-3 s for a 3-level 2,000-room one): at most
    MAX_PREDICTION_SAMPLES phones in all (fewer per room, then a seeded subset of rooms); a floor larger than
    PREDICTION_FLOOR_AREA_M2 is predicted on one seeded PREDICTION_WINDOW_M square around one of its rooms (with
    the beacons and walls PREDICTION_MARGIN_M beyond it), not the whole floor."""
    signal = signal if signal is not None else signal_for_site(site)
    specs = _beacon_arrays(site, beacons, signal, float(measured_power_dbm))
    if not specs:
        return 0.0
    return _predict(site, specs, signal=signal, samples_per_room=samples_per_room, noise_db=noise_db,
                    readings_averaged=readings_averaged, seed=seed)


def _window(site: SiteModel, floor_id: str, rng: np.random.Generator, rooms: list[Space]) -> Any | None:
    """None when the floor is small enough to predict whole; else the inner square (phones) of a seeded window
    around one of its rooms."""
    floor = next(f for f in site.floors if f.id == floor_id)
    outline = ShapelyPolygon(floor.outline)
    if outline.area <= PREDICTION_FLOOR_AREA_M2 or not rooms:
        return None
    centre = _space_geometry(rooms[int(rng.integers(len(rooms)))]).representative_point()
    half = PREDICTION_WINDOW_M / 2
    return shapely.box(centre.x - half, centre.y - half, centre.x + half, centre.y + half)


def _floor_index(site: SiteModel, floor_id: str, specs: Sequence[BeaconSpec], outer: Any | None) -> SiteIndex | None:
    """SiteIndex.build of one floor with these beacons (what `from_site_model` would build for it), cropped to
    `outer` when given (spaces and outline clipped, beacons outside dropped)."""
    floor = next(f for f in site.floors if f.id == floor_id)
    beacons = [b for b in specs if b.floor == floor_id]
    spaces = [s for s in site.spaces if s.floor == floor_id]
    outline: tuple[tuple[float, float], ...] = tuple(floor.outline)
    space_specs = [SpaceSpec(s.id, s.floor, tuple(s.polygon), s.kind.value) for s in spaces]
    if outer is not None:
        beacons = [b for b in beacons if bool(shapely.contains_xy(outer, b.x, b.y))]
        clipped = _largest_ring(ShapelyPolygon(floor.outline).intersection(outer))
        if clipped is None:
            return None
        outline = clipped
        space_specs = []
        for s in spaces:
            ring = _largest_ring(ShapelyPolygon(s.polygon).intersection(outer))
            if ring is not None:
                space_specs.append(SpaceSpec(s.id, s.floor, ring, s.kind.value))
    if not beacons:
        return None
    return SiteIndex.build([FloorSpec(floor.id, floor.ordinal, outline)], beacons, space_specs)


def _largest_ring(geometry: Any) -> tuple[tuple[float, float], ...] | None:
    parts = [g for g in _polygons(geometry) if g.area > 1e-6]
    if not parts:
        return None
    ring = max(parts, key=lambda g: g.area).exterior.coords[:-1]
    return tuple((float(x), float(y)) for x, y in ring)


def _phones(room: Space, rng: np.random.Generator, n: int) -> FloatArray:
    """n uniform points of the room at least PHONE_INSET_M from its walls (its representative point if none)."""
    geometry = _space_geometry(room)
    inset = geometry.buffer(-PHONE_INSET_M, join_style="mitre")
    area = inset if not inset.is_empty and inset.area > 0 else geometry
    x0, y0, x1, y1 = area.bounds
    got = np.zeros((0, 2))
    for _ in range(8):
        draw = rng.uniform((x0, y0), (x1, y1), size=(4 * n, 2))
        got = np.concatenate([got, draw[shapely.contains_xy(area, draw[:, 0], draw[:, 1])]])
        if len(got) >= n:
            break
    if len(got) < n:
        rep = geometry.representative_point()
        got = np.concatenate([got, np.tile([rep.x, rep.y], (n - len(got), 1))])
    out: FloatArray = got[:n]
    return out


def _predict(site: SiteModel, specs: Sequence[BeaconSpec], *, signal: SignalModel, samples_per_room: int = 30,
             noise_db: float = 6.0, readings_averaged: int = 8, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    occupiable = [s for s in site.spaces if s.kind.value not in space_kinds.NOT_OCCUPIABLE]
    stay = [s for s in occupiable if s.kind.value not in space_kinds.PASSAGES] or occupiable
    per_floor: dict[str, list[Space]] = {f.id: [] for f in site.floors}
    for room in stay:
        per_floor[room.floor].append(room)
    plan: list[tuple[str, Any | None, list[Space]]] = []
    for floor in site.floors:
        rooms = per_floor[floor.id]
        inner = _window(site, floor.id, rng, rooms)
        if inner is not None:
            rooms = [r for r in rooms if bool(shapely.contains(inner, _space_geometry(r).representative_point()))]
        if rooms:
            plan.append((floor.id, inner, rooms))
    total_rooms = sum(len(rooms) for _f, _w, rooms in plan)
    if not total_rooms:
        return 0.0
    per_room = max(1, min(samples_per_room, MAX_PREDICTION_SAMPLES // total_rooms))
    share = min(1.0, MAX_PREDICTION_SAMPLES / (total_rooms * per_room))
    threshold = signal.sensitivity_dbm - 3 * noise_db
    hits = total = 0
    for floor_id, inner, rooms in plan:
        if share < 1.0:
            keep = max(1, int(len(rooms) * share))
            rooms = [rooms[i] for i in sorted(rng.choice(len(rooms), size=keep, replace=False).tolist())]
        outer = None if inner is None else inner.buffer(PREDICTION_MARGIN_M, join_style="mitre")
        index = _floor_index(site, floor_id, specs, outer)
        total += per_room * len(rooms)
        if index is None or floor_id not in index.grids:
            continue  # no beacon on the floor: every phone there is missed
        phones = np.concatenate([_phones(room, rng, per_room) for room in rooms])
        truth = [room.id for room in rooms for _ in range(per_room)]
        geo = _FloorGeometry(floor_id, index.grids[floor_id].walls, phones, np.zeros(len(phones), dtype=np.int64))
        beacons = index.beacons
        xy = np.array([(b.x, b.y) for b in beacons], dtype=np.float64).reshape(-1, 2)
        power = np.array([b.measured_power for b in beacons], dtype=np.float64)
        s, b, expected = _expected_pairs(geo, xy, power, signal, threshold)
        offset = rng.normal(0.0, signal.offset_prior_db, size=len(phones))
        reading = expected + offset[s] + rng.normal(0.0, noise_db / math.sqrt(readings_averaged), size=len(expected))
        heard = reading >= signal.sensitivity_dbm
        scans: list[dict[str, float]] = [{} for _ in range(len(phones))]
        for si, bi, value in zip(s[heard].tolist(), b[heard].tolist(), reading[heard].tolist()):
            scans[si][beacons[bi].id] = round(value)
        estimates = locate_many(index, signal, scans)
        hits += sum(e is not None and e.space_id == t for e, t in zip(estimates, truth))
    return hits / max(total, 1)
