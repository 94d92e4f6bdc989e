"""Per-building structures precomputed once and cached: beacon arrays, a grid of candidate positions per floor
(inside the floor's spaces, else its outline), which space each grid point lies in, where floors connect, and the
walls between every grid point and every beacon of its floor.

Walls are the boundaries of enclosed spaces (their outer rings, holes and further parts) less the openings in
them (doors): a signal through a doorway crosses no wall.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from shared.domain import geometry, space_kinds

if TYPE_CHECKING:
    from shared.domain.site import SiteModel

Point = tuple[float, float]
LossKey = tuple[float, float, float]  # (path-loss exponent, beacon height, wall loss): what a path loss depends on
_SilenceKey = tuple[LossKey, tuple[float, ...], float, float, float]

WALL_REACH_M = 60.0  # walls are counted between a beacon and the points this close to it
OPENING_BUFFER_M = 0.1  # a door cuts the walls within this distance of its segment
_MIN_WALL_M = 1e-6  # what is left of a wall next to a door, shorter than this, is no wall
_TOUCH_M = 0.3  # spaces this close are linked when nothing else says where people pass
Wall = tuple[float, float, float, float]  # x1, y1, x2, y2 (the lesser end first), rounded to the millimetre
TRANSITION_KINDS = space_kinds.VERTICAL
OPEN_KINDS = space_kinds.OPEN
NOT_OCCUPIABLE = space_kinds.NOT_OCCUPIABLE


@dataclass(frozen=True)
class FloorSpec:
    id: str
    ordinal: int = 0
    outline: tuple[Point, ...] | None = None


@dataclass(frozen=True)
class BeaconSpec:
    id: str
    x: float
    y: float
    floor: str
    measured_power: float | None = None


@dataclass(frozen=True)
class SpaceSpec:
    id: str
    floor: str
    polygon: tuple[Point, ...]
    kind: str = "unspecified"
    # Further rings of the space's boundary, walls as much as `polygon` is: its holes, and the outlines and holes
    # of further parts of a space drawn as several polygons (they place no grid points: `polygon` does).
    rings: tuple[tuple[Point, ...], ...] = ()


@dataclass(frozen=True)
class OpeningSpec:
    """A door: where the boundary of a space is open (a polyline along it)."""

    floor: str
    segment: tuple[Point, ...]


@dataclass
class FloorGrid:
    """Candidate positions of one floor and their geometry against the floor's beacons."""

    floor: str
    points: np.ndarray  # (M, 2)
    beacons: np.ndarray  # (Bf,) site-wide beacon indices on this floor
    dist2: np.ndarray  # (M, Bf) squared horizontal distances, float32
    space_of_point: np.ndarray  # (M,) index into SiteIndex.spaces, -1 when none
    near_points: list[np.ndarray]  # per local beacon: grid rows within reach (single scans)
    near_points_wide: list[np.ndarray]  # per local beacon: grid rows within the tracking reach
    near_beacons: list[np.ndarray]  # per local beacon: local beacons whose silence is informative
    transitions: np.ndarray  # (T, 2) stairs/elevator positions on this floor
    walls: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (W, 4) x1, y1, x2, y2
    beacon_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    _log_dist: dict[float, np.ndarray] = field(default_factory=dict)
    _walls_between: np.ndarray | None = None
    _path_loss: dict[LossKey, np.ndarray] = field(default_factory=dict)
    _silence: dict[_SilenceKey, np.ndarray] = field(default_factory=dict)
    _space_slots: tuple[np.ndarray, np.ndarray] | None = None
    _squared_norms: np.ndarray | None = None
    _wide_mask: np.ndarray | None = None
    _near_beacon_mask: np.ndarray | None = None
    # silence log-likelihood at the site model's own beacon levels, per signal parameters (batch.py)
    site_silence: dict[tuple[float, ...], np.ndarray] = field(default_factory=dict)
    # per path-loss array (by id, the array kept beside): its float64 products and the space memberships (batch.py)
    products: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict)

    def squared_norms(self) -> np.ndarray:
        """|p|^2 of every candidate point (a posterior's spread from its first two moments)."""
        if self._squared_norms is None:
            self._squared_norms = (self.points * self.points).sum(axis=1)
        return self._squared_norms

    def wide_mask(self) -> np.ndarray:
        """(Bf, M) bool: per local beacon, the points within the tracking reach (`near_points_wide`; every point
        where none is): a batch of posteriors picks its devices' candidates by their loudest beacon's row."""
        if self._wide_mask is None:
            mask = np.zeros((len(self.near_points_wide), len(self.points)), dtype=bool)
            for local, rows in enumerate(self.near_points_wide):
                mask[local, rows if len(rows) else slice(None)] = True
            self._wide_mask = mask
        return self._wide_mask

    def near_beacon_mask(self) -> np.ndarray:
        """(Bf, Bf) bool: per local beacon, the local beacons whose silence is informative (`near_beacons`)."""
        if self._near_beacon_mask is None:
            mask = np.zeros((len(self.near_beacons), len(self.beacons)), dtype=bool)
            for local, near in enumerate(self.near_beacons):
                mask[local, near] = True
            self._near_beacon_mask = mask
        return self._near_beacon_mask

    def space_slots(self) -> tuple[np.ndarray, np.ndarray]:
        """(slot of each point: its space's position among the floor's spaces, -1 outside any; the spaces, as
        SiteIndex.spaces positions, in slot order): per-space sums over a floor's points by one bincount."""
        if self._space_slots is None:
            spaces = np.unique(self.space_of_point[self.space_of_point >= 0])
            slots = np.where(self.space_of_point >= 0, np.searchsorted(spaces, self.space_of_point), -1)
            self._space_slots = (slots.astype(np.int64), spaces.astype(np.int64))
        return self._space_slots

    def silence_loglik(self, loss: np.ndarray, loss_key: LossKey, power: np.ndarray, sensitivity_dbm: float,
                       spread_db: float, detect_max: float) -> np.ndarray:
        """(M, Bf) log-probability that each beacon goes unheard at each point: its expected level at the point
        (`power` at 1 m per beacon minus `loss`) against the phone's sensitivity; cached per parameters."""
        key: _SilenceKey = (loss_key, tuple(np.round(power, 1).tolist()), sensitivity_dbm, spread_db, detect_max)
        cached = self._silence.get(key)
        if cached is None:
            z = (power[None, :] - loss - sensitivity_dbm) * (1.702 / spread_db)
            cached = np.log1p(-detect_max / (1.0 + np.exp(-z))).astype(np.float32)
            if len(self._silence) > 64:
                self._silence.clear()
            self._silence[key] = cached
        return cached

    def path_loss(self, exponent: float, height_m: float, wall_loss_db: float) -> np.ndarray:
        """(M, Bf) modelled loss in dB from each beacon's 1 m level to each point, cached per parameters."""
        key = (exponent, height_m, wall_loss_db)
        cached = self._path_loss.get(key)
        if cached is None:
            cached = exponent * self.log_distance(height_m)
            if wall_loss_db > 0 and len(self.walls):
                cached = cached + np.float32(wall_loss_db) * self.walls_between()
            cached = cached.astype(np.float32)
            self._path_loss[key] = cached
        return cached

    def walls_between(self) -> np.ndarray:
        """(M, Bf) number of walls between each candidate point and each beacon: computed once, by
        SiteIndex.build (off the event loop) or else lazily here on first use."""
        if self._walls_between is None:
            counts = np.zeros(self.dist2.shape, dtype=np.float32)
            if len(self.walls):
                a, b = self.walls[:, :2], self.walls[:, 2:]
                for j, q in enumerate(self.beacon_xy):
                    rows = np.flatnonzero(self.dist2[:, j] <= WALL_REACH_M**2)
                    p = self.points[rows]
                    d1 = _orient(a[None], b[None], p[:, None, :])
                    d2 = _orient(a, b, q[None, :])[None, :]
                    d3 = _orient(p[:, None, :], q[None, None, :], a[None])
                    d4 = _orient(p[:, None, :], q[None, None, :], b[None])
                    counts[rows, j] = ((d1 * d2 < 0) & (d3 * d4 < 0)).sum(axis=1)
            self._walls_between = counts
        return self._walls_between

    def log_distance(self, height_m: float) -> np.ndarray:
        """10*log10(slant distance) for every (point, beacon), cached per beacon height."""
        cached = self._log_dist.get(height_m)
        if cached is None:
            cached = (5.0 * np.log10(self.dist2 + np.float32(height_m * height_m + 0.09))).astype(np.float32)
            self._log_dist[height_m] = cached
        return cached


class SiteIndex:
    """Everything the positioning engine needs about one building, as numpy arrays. Build once, cache per site."""

    def __init__(self, floors: list[FloorSpec], beacons: list[BeaconSpec], spaces: list[SpaceSpec],
                 grids: dict[str, FloorGrid], beacon_index: dict[str, int], step_m: float, reach_m: float):
        self.floors: list[FloorSpec] = floors
        self.beacons: list[BeaconSpec] = beacons
        self.spaces: list[SpaceSpec] = spaces
        self.grids: dict[str, FloorGrid] = grids
        self.beacon_index: dict[str, int] = beacon_index
        self.step_m = step_m
        self.reach_m = reach_m
        self.floor_ids = [f.id for f in floors]
        self.floor_of_beacon = np.array([self.floor_ids.index(b.floor) for b in beacons], dtype=np.int64)
        self.floor_of_beacon_list: list[int] = self.floor_of_beacon.tolist()  # (the tracker's few readings)
        self.beacon_xy = np.array([(b.x, b.y) for b in beacons], dtype=np.float64).reshape(-1, 2)
        self.beacon_measured_power = np.array(
            [np.nan if b.measured_power is None else b.measured_power for b in beacons], dtype=np.float64
        )
        # the same per beacon id, for the tracker's per-reading loop: ids by position, the site's 1 m levels
        self.beacon_ids: list[str] = [b.id for b in beacons]
        self.site_measured_power: dict[str, float] = {
            b.id: float(p) for b, p in zip(beacons, self.beacon_measured_power) if not math.isnan(p)}
        self.local_of_beacon = np.zeros(len(beacons), dtype=np.int64)
        for grid in grids.values():
            self.local_of_beacon[grid.beacons] = np.arange(len(grid.beacons))
        self.space_ids = [s.id for s in spaces]
        self.space_position = {s.id: i for i, s in enumerate(spaces)}
        self._space_centroids = np.array([geometry.polygon_centroid(s.polygon) for s in spaces]).reshape(-1, 2)

    @classmethod
    def build(
        cls,
        floors: Sequence[FloorSpec],
        beacons: Sequence[BeaconSpec],
        spaces: Sequence[SpaceSpec] = (),
        transitions: Iterable[tuple[str, float, float]] = (),
        *,
        grid_step_m: float | None = None,
        reach_m: float = 16.0,  # candidate points: within this of the loudest beacon heard
        silence_reach_m: float = 40.0,
        tracking_reach_m: float = 30.0,  # the tracker looks wider: its smoothed readings are worth the time  # silent beacons this close to the loudest one count as evidence
        margin_m: float = 1.0,
        openings: Iterable[OpeningSpec] = (),
        opening_buffer_m: float = OPENING_BUFFER_M,
        precompute_walls: bool = True,
        links: Iterable[tuple[str, str, float, float]] = (),
    ) -> SiteIndex:
        """Precompute a site from plain specs. `transitions` are (floor, x, y) of stairs and elevators besides
        the spaces of those kinds; `openings` (doors) cut the walls within `opening_buffer_m` of them. With
        `precompute_walls` the wall counts between grid points and beacons are computed here (seconds on a large
        floor: callers build indexes off the event loop), else on the first estimate that needs them. `links` are
        (space, space, x, y): where people pass from one space to the other (a door; stairs or an elevator when
        the spaces are on different floors); a space with no link on its floor is linked to the spaces it touches.
        Raises ValueError for a beacon, space or opening on an unknown floor."""
        floors = sorted(floors, key=lambda f: f.ordinal)
        floor_ids = {f.id for f in floors}
        if not floors:
            raise ValueError("a site needs at least one floor")
        if not beacons:
            raise ValueError("a site needs at least one beacon to position phones")
        for b in beacons:
            if b.floor not in floor_ids:
                raise ValueError(f"beacon '{b.id}' is on unknown floor '{b.floor}'")
        for s in spaces:
            if s.floor not in floor_ids:
                raise ValueError(f"space '{s.id}' is on unknown floor '{s.floor}'")
        openings = list(openings)
        for o in openings:
            if o.floor not in floor_ids:
                raise ValueError(f"an opening is on unknown floor '{o.floor}'")
        beacons = list(beacons)
        spaces = list(spaces)
        beacon_index = {b.id: i for i, b in enumerate(beacons)}
        if len(beacon_index) != len(beacons):
            raise ValueError("beacon ids must be unique")
        transitions = list(transitions)
        grids: dict[str, FloorGrid] = {}
        steps: list[float] = []
        for floor in floors:
            floor_beacons = np.array([i for i, b in enumerate(beacons) if b.floor == floor.id], dtype=np.int64)
            floor_spaces = [(i, s) for i, s in enumerate(spaces) if s.floor == floor.id]
            occupiable = [(i, s) for i, s in floor_spaces if s.kind not in NOT_OCCUPIABLE]
            outline = floor.outline or _bounding_outline(
                [(beacons[i].x, beacons[i].y) for i in floor_beacons]
                + [p for _i, s in floor_spaces for p in s.polygon],
                margin_m,
            )
            if outline is None:
                continue  # a floor with neither beacons nor spaces: nothing to position on
            area = abs(geometry.polygon_area(outline))
            step = grid_step_m or min(1.5, max(0.5, math.sqrt(area / 1000.0)))
            steps.append(step)
            points, space_of = _grid_points(outline, occupiable, step)
            bxy = np.array([(beacons[i].x, beacons[i].y) for i in floor_beacons]).reshape(-1, 2)
            dist2 = ((points[:, None, :] - bxy[None, :, :]) ** 2).sum(axis=2).astype(np.float32)
            near_points = [np.flatnonzero(dist2[:, j] <= reach_m * reach_m) for j in range(len(floor_beacons))]
            wide = max(reach_m, tracking_reach_m) ** 2
            near_wide = [np.flatnonzero(dist2[:, j] <= wide) for j in range(len(floor_beacons))]
            bb = ((bxy[:, None, :] - bxy[None, :, :]) ** 2).sum(axis=2)
            near_beacons = [np.flatnonzero(bb[j] <= silence_reach_m**2) for j in range(len(floor_beacons))]
            gates = [geometry.polygon_centroid(s.polygon) for _i, s in floor_spaces if s.kind in TRANSITION_KINDS]
            gates += [(x, y) for f, x, y in transitions if f == floor.id]
            walls = _floor_walls([sp for _i, sp in floor_spaces],
                                 [o.segment for o in openings if o.floor == floor.id], opening_buffer_m)
            grid = FloorGrid(
                floor=floor.id,
                points=points,
                beacons=floor_beacons,
                dist2=dist2,
                space_of_point=space_of,
                near_points=near_points,
                near_points_wide=near_wide,
                near_beacons=near_beacons,
                transitions=np.array(gates, dtype=np.float64).reshape(-1, 2),
                walls=np.array(walls, dtype=np.float64).reshape(-1, 4),
                beacon_xy=bxy,
            )
            if precompute_walls and len(grid.walls):
                grid.walls_between()
            grids[floor.id] = grid
        index = cls(list(floors), beacons, spaces, grids, beacon_index, min(steps) if steps else 1.0, reach_m)
        index._link_spaces(links)
        return index

    def _link_spaces(self, links: Iterable[tuple[str, str, float, float]]) -> None:
        """Fill `space_links` (same floor: neighbour, door x, y) and `vertical_links` (spaces on other floors)."""
        n = len(self.spaces)
        same: list[dict[int, tuple[float, float]]] = [{} for _ in range(n)]
        vertical: list[set[int]] = [set() for _ in range(n)]
        for a, b, x, y in links:
            i, j = self.space_position.get(a), self.space_position.get(b)
            if i is None or j is None or i == j:
                continue
            if self.spaces[i].floor == self.spaces[j].floor:
                same[i].setdefault(j, (x, y))
                same[j].setdefault(i, (x, y))
            else:
                vertical[i].add(j)
                vertical[j].add(i)
        lonely = [i for i in range(n) if not same[i] and self.spaces[i].kind not in NOT_OCCUPIABLE]
        if lonely:
            import shapely

            shapes = [shapely.Polygon(s.polygon) if len(s.polygon) >= 3 else shapely.Point(s.polygon[0])
                      for s in self.spaces]
            tree = shapely.STRtree(shapes)
            for i in lonely:
                for j in tree.query(shapes[i], predicate="dwithin", distance=_TOUCH_M).tolist():
                    if j == i or self.spaces[j].floor != self.spaces[i].floor \
                            or self.spaces[j].kind in NOT_OCCUPIABLE:
                        continue
                    line = shapely.shortest_line(shapes[i], shapes[j])
                    mid = line.interpolate(0.5, normalized=True)
                    same[i].setdefault(j, (mid.x, mid.y))
                    same[j].setdefault(i, (mid.x, mid.y))
        self.space_links: list[tuple[tuple[int, float, float], ...]] = [
            tuple((j, xy[0], xy[1]) for j, xy in sorted(same[i].items())) for i in range(n)]
        self.vertical_links: list[tuple[int, ...]] = [tuple(sorted(v)) for v in vertical]

    @classmethod
    def from_site_model(cls, site: SiteModel, *, grid_step_m: float | None = None, **options: Any) -> SiteIndex:
        """Precompute a validated `shared.domain.site.SiteModel` (its doors are the openings); `options` are
        those of `build`."""
        floors = [FloorSpec(f.id, f.ordinal, tuple(f.outline)) for f in site.floors]
        beacons = [BeaconSpec(b.id, b.x, b.y, b.floor, float(b.measured_power)) for b in site.beacons]
        spaces = [
            SpaceSpec(s.id, s.floor, tuple(s.polygon), s.kind.value,
                      rings=tuple(tuple(ring) for ring in [*s.holes, *(r for part in s.parts
                                                                        for r in (part.polygon, *part.holes))]))
            for s in site.spaces
        ]
        transitions = [
            (n.floor, n.x, n.y) for n in site.navigation.nodes if n.kind.value in ("stairs", "elevator")
        ]
        openings = [OpeningSpec(d.floor, tuple(d.segment)) for d in site.doors]
        return cls.build(floors, beacons, spaces, transitions, grid_step_m=grid_step_m, openings=openings,
                         links=site_links(site), **options)

    def space_containing(self, floor: str, point: Point, max_distance_m: float = 0.0) -> tuple[str | None, float]:
        """The space of `floor` containing `point`, else the nearest within `max_distance_m`; (id, distance)."""
        best: tuple[str | None, float] = (None, math.inf)
        for space in self.spaces:
            if space.floor != floor or space.kind in NOT_OCCUPIABLE:
                continue
            d = geometry.distance_to_polygon(point, space.polygon)
            if d < best[1]:
                best = (space.id, d)
                if d == 0.0:
                    break
        if best[1] <= max_distance_m:
            return best
        return (None, best[1])

    def distance_to_transition(self, floor: str, point: Point) -> float:
        """Distance to the nearest stairs/elevator on `floor`; inf when the floor has none."""
        grid = self.grids.get(floor)
        if grid is None or len(grid.transitions) == 0:
            return math.inf
        return float(np.sqrt(((grid.transitions - np.asarray(point)) ** 2).sum(axis=1)).min())

    @property
    def has_transitions(self) -> bool:
        return any(len(g.transitions) for g in self.grids.values())


def site_links(site: SiteModel) -> list[tuple[str, str, float, float]]:
    """Where people pass between spaces: doors (their spaces, at the middle of the opening), navigation edges
    from a door node to a node of another space (at the door node), navigation edges of kind stairs / elevator
    and vertical connectors (spaces on different floors)."""
    links: list[tuple[str, str, float, float]] = []
    for door in site.doors:
        mid = np.mean(np.asarray(door.segment, dtype=np.float64), axis=0)
        for a, b in itertools.combinations(door.spaces, 2):
            links.append((a, b, float(mid[0]), float(mid[1])))
    nodes = {n.id: n for n in site.navigation.nodes}
    polygons = [(s.id, s.floor, s.polygon) for s in site.spaces if s.kind.value not in NOT_OCCUPIABLE]

    def space_of(node_id: str) -> str | None:
        node = nodes.get(node_id)
        if node is None:
            return None
        if node.space_id is not None:
            return node.space_id
        xy = np.array([[node.x, node.y]])
        inside = [sid for sid, floor, poly in polygons if floor == node.floor and points_in_polygon(xy, poly)[0]]
        return inside[0] if inside else None

    for edge in site.navigation.edges:
        u, v = nodes.get(edge.from_node), nodes.get(edge.to_node)
        if u is None or v is None:
            continue
        su, sv = space_of(u.id), space_of(v.id)
        if su is None or sv is None or su == sv:
            continue
        at = u if u.kind.value == "door" else v
        links.append((su, sv, at.x, at.y))
    for connector in site.connectors:
        for first, second in itertools.combinations(connector.spaces, 2):
            links.append((first, second, math.nan, math.nan))
    return links


def _wall(p: Point, q: Point) -> Wall:
    a, b = min(p, q), max(p, q)
    return (round(a[0], 3), round(a[1], 3), round(b[0], 3), round(b[1], 3))


def _floor_walls(spaces: Sequence[SpaceSpec], openings: Sequence[Sequence[Point]], buffer_m: float) -> list[Wall]:
    """The floor's wall segments, sorted and without duplicates (two rooms drawing their shared edge alike): every
    edge of every ring of the enclosed spaces, less the parts within `buffer_m` of an opening."""
    walls = sorted({
        _wall(p, q)
        for sp in spaces
        if sp.kind not in OPEN_KINDS
        for ring in (sp.polygon, *sp.rings)
        for p, q in zip(ring, ring[1:] + ring[:1])
    })
    if not walls or not openings:
        return walls
    import shapely

    gaps = shapely.union_all([shapely.buffer(shapely.linestrings(list(o)), buffer_m, cap_style="flat")
                              for o in openings if len(o) >= 2])
    lines = shapely.linestrings(np.asarray(walls, dtype=np.float64).reshape(-1, 2, 2))
    hit = shapely.intersects(lines, gaps)
    kept = {w for w, h in zip(walls, hit) if not h}
    for line in lines[hit]:
        for part in shapely.get_parts(shapely.difference(line, gaps)):
            if shapely.get_type_id(part) != 1:  # LineString; a touching point is no wall
                continue
            coords = shapely.get_coordinates(part)
            for p, q in itertools.pairwise(coords):
                if math.dist(p, q) > _MIN_WALL_M:
                    kept.add(_wall((float(p[0]), float(p[1])), (float(q[0]), float(q[1]))))
    return sorted(kept)


def _orient(o: NDArray[np.float64], u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Twice the signed area of (o, u, v) over the last axis (broadcast): > 0 when v is left of o -> u."""
    area: NDArray[np.float64] = (
        (u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1]) - (u[..., 1] - o[..., 1]) * (v[..., 0] - o[..., 0])
    )
    return area


def _bounding_outline(points: list[Point], margin: float) -> tuple[Point, ...] | None:
    if not points:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1, y0, y1 = min(xs) - margin, max(xs) + margin, min(ys) - margin, max(ys) + margin
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def points_in_polygon(points: np.ndarray, polygon: Sequence[Point]) -> np.ndarray:
    """Vectorised even-odd test of many points against one polygon (boundary points may go either way)."""
    poly = np.asarray(polygon, dtype=np.float64)
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), dtype=bool)
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    for i in range(len(poly)):
        crosses = (y1[i] > y) != (y2[i] > y)
        if not crosses.any():
            continue
        x_cross = x1[i] + (y - y1[i]) * (x2[i] - x1[i]) / (y2[i] - y1[i] + (y2[i] == y1[i]))
        inside ^= crosses & (x < x_cross)
    return inside


def _grid_points(outline: Sequence[Point], spaces: list[tuple[int, SpaceSpec]], step: float) -> tuple[np.ndarray, np.ndarray]:
    poly = np.asarray(outline)
    if spaces:
        allpts = np.concatenate([np.asarray(s.polygon) for _i, s in spaces])
        lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    else:
        lo, hi = poly.min(axis=0), poly.max(axis=0)
    xs = np.arange(lo[0] + step / 2, hi[0], step)
    ys = np.arange(lo[1] + step / 2, hi[1], step)
    lattice = np.array([(x, y) for x in xs for y in ys], dtype=np.float64).reshape(-1, 2)
    if not spaces:
        keep = points_in_polygon(lattice, outline)
        pts = lattice[keep] if keep.any() else np.array([geometry.polygon_centroid(outline)])
        return pts, np.full(len(pts), -1, dtype=np.int64)
    space_of = np.full(len(lattice), -1, dtype=np.int64)
    extra_pts: list[Point] = []
    extra_space: list[int] = []
    # smaller spaces claim their points first, so a room drawn over a walkway wins
    for i, s in sorted(spaces, key=lambda item: abs(geometry.polygon_area(item[1].polygon))):
        inside = points_in_polygon(lattice, s.polygon) & (space_of == -1)
        if inside.any():
            space_of[inside] = i
        else:
            extra_pts.append(geometry.polygon_centroid(s.polygon))
            extra_space.append(i)
    keep = space_of >= 0
    pts = np.concatenate([lattice[keep], np.array(extra_pts).reshape(-1, 2)])
    owner = np.concatenate([space_of[keep], np.array(extra_space, dtype=np.int64)])
    return pts, owner
