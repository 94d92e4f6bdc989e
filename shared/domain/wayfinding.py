"""Wayfinding: fastest routes, turn-by-turn instructions and walking distances over a site's navigation graph.

Pure domain code (stdlib and numpy). `NavigationIndex.from_site` is built once per site version and then answers
`route(origin, destination, accessible)` and `distances_from(origin, accessible)`. A place is a space id or a point
`(x, y, floor_id)`; a point anchors to the nearest navigation node on its floor.

Routes minimise time under `CostModel` (walking speed on walk edges, a time per floor on stairs, a wait per ride
plus a time per floor in elevators). Searches are two-level: a Dijkstra over the origin's floor, then over a small
overlay of the nodes that change floors (stairs, elevators) whose in-floor shortest paths are precomputed per
floor; the result is exact, not an approximation. Coordinates are building metres with x east and y north, so a
counter-clockwise heading change is a left turn.
"""
from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.domain.errors import DomainError
from shared.domain.geometry import polygon_centroid
from shared.domain.site import NavEdgeKind, NavNodeKind, SiteModel

INF = math.inf
Point = tuple[float, float]
PointPlace = tuple[float, float, str]
Place = str | PointPlace  # a space id, or (x, y, floor id)

STRAIGHT_DEG = 30.0  # heading changes below this are "straight on"
TURN_AROUND_DEG = 150.0  # above this, "turn around"
DOOR_STEP_M = 5.0  # a last hop this short into the destination reads "X is on your left"

_ALL, _STEP_FREE = 0, 1  # search modes: every edge, or only accessible edges

_Arc = tuple[int, float, float]  # (to local node, seconds, metres) within one floor
_FloorSearch = tuple[list[float], list[float], list[int]]  # (seconds, metres, predecessor) per local node
_OverlayPred = tuple[int, int, int] | None  # (previous overlay node, floor or -1 for a cross arc, portal row)


class UnknownPlace(DomainError, ValueError):
    """The origin or destination names a space or floor the site does not have."""

    def __init__(self, message: str, place: object):
        self.place = place
        super().__init__(message)


class NoRoute(DomainError):
    """No route joins the two places (under the accessibility asked for); `reason` says why, in English."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class CostModel:
    """Seconds per move. Stairs and elevators cost time per floor of ordinal difference, not metres."""

    walk_speed_mps: float = 1.3
    stairs_up_s_per_floor: float = 12.0
    stairs_down_s_per_floor: float = 9.0
    elevator_wait_s: float = 30.0  # once per ride, however many floors
    elevator_s_per_floor: float = 4.0


@dataclass(frozen=True)
class Leg:
    """The part of a route on one floor: where to walk (building metres) and how far."""

    floor: str
    polyline: tuple[Point, ...]
    distance_m: float

    def as_dict(self) -> dict[str, Any]:
        return {"floor": self.floor, "polyline": [[round(x, 2), round(y, 2)] for x, y in self.polyline],
                "distanceM": round(self.distance_m, 1)}


@dataclass(frozen=True)
class Route:
    """The fastest route: metres walked in the plan (stairs and elevators add time, not metres), time, legs split
    at every floor change, and instructions a person can follow."""

    distance_m: float
    eta_s: float
    legs: tuple[Leg, ...]
    instructions: tuple[str, ...]
    accessible: bool
    nodes: tuple[str, ...]  # navigation node ids along the route

    def as_dict(self) -> dict[str, Any]:
        return {"distanceM": round(self.distance_m, 1), "etaS": round(self.eta_s, 1), "accessible": self.accessible,
                "legs": [leg.as_dict() for leg in self.legs], "instructions": list(self.instructions)}


@dataclass(frozen=True)
class _Anchor:
    nodes: tuple[int, ...]  # navigation nodes the place starts/ends at (all at offset_m)
    offset_m: float  # straight walk between a point and its node
    point: Point | None  # the point itself, for point places
    floor: int
    space_id: str | None
    label: str


@dataclass
class _Stretch:
    """Nearly straight segments of a leg, between two turns."""

    turn: str | None  # the turn into the stretch: 'left', 'right', 'around', or None (straight on, or the start)
    vertex: int | None  # the node it turns at (None for a point place)
    metres: float
    corridor: bool  # some segment runs along a corridor
    segments: int


class _Search:
    """One single-source search (sources at time 0) in one mode; floors are combined lazily."""

    __slots__ = ("_floors", "_global", "index", "mode", "ov_d", "ov_pred", "ov_t", "source_floors")

    def __init__(self, index: NavigationIndex, mode: int, source_floors: dict[int, _FloorSearch], ov_t: list[float],
                 ov_d: list[float], ov_pred: list[_OverlayPred]):
        self.index = index
        self.mode = mode
        self.source_floors = source_floors  # floor -> (t list, d list, pred list) of the in-floor search
        self.ov_t, self.ov_d, self.ov_pred = ov_t, ov_d, ov_pred
        self._floors: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._global: tuple[np.ndarray, np.ndarray] | None = None

    def floor(self, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(time, metres, via) per local node of floor f; via -1 = direct from the source floor search,
        else the row of the floor's portal the best path enters through."""
        got = self._floors.get(f)
        if got is not None:
            return got
        ix = self.index
        n = len(ix._floor_nodes[f])
        portals = ix._portal_ov[f]
        if len(portals):
            mt, md = ix._portal_t[self.mode][f], ix._portal_d[self.mode][f]
            start_t = np.array([self.ov_t[o] for o in portals])
            start_d = np.array([self.ov_d[o] for o in portals])
            cand = start_t[:, None] + mt
            via = cand.argmin(axis=0)
            cols = np.arange(n)
            best_t = cand[via, cols]
            best_d = start_d[via] + md[via, cols]
        else:
            via = np.full(n, -1)
            best_t = np.full(n, INF)
            best_d = np.zeros(n)
        direct = self.source_floors.get(f)
        if direct is not None:
            dt = np.array(direct[0])
            use = dt <= best_t
            best_t = np.where(use, dt, best_t)
            best_d = np.where(use, np.array(direct[1]), best_d)
            via = np.where(use, -1, via)
        got = (best_t, best_d, via)
        self._floors[f] = got
        return got

    def everywhere(self) -> tuple[np.ndarray, np.ndarray]:
        """(time, metres) per navigation node."""
        if self._global is None:
            ix = self.index
            t = np.full(ix._n, INF)
            d = np.zeros(ix._n)
            for f, nodes in enumerate(ix._floor_nodes):
                if len(nodes):
                    ft, fd, _ = self.floor(f)
                    t[nodes] = ft
                    d[nodes] = fd
            self._global = (t, d)
        return self._global


class NavigationIndex:
    """A site's navigation graph prepared for routing. Immutable apart from a small LRU of searches."""

    def __init__(self, site: SiteModel, cost: CostModel = CostModel(), cache_size: int = 128):
        self.cost = cost
        self.building_id = site.building_id
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[tuple[int, ...], int], _Search] = OrderedDict()
        self._lock = threading.Lock()

        floors = list(site.floors)
        self._floor_ids = [f.id for f in floors]
        self._floor_index = {f.id: i for i, f in enumerate(floors)}
        self._floor_label = [f.name or f.id for f in floors]
        ordinal = self._ordinals = [f.ordinal for f in floors]
        self._spaces = {s.id: s for s in site.spaces}

        nodes = site.navigation.nodes
        n = self._n = len(nodes)
        self._node_ids = [nd.id for nd in nodes]
        node_index = {nd.id: i for i, nd in enumerate(nodes)}
        self._x = [float(nd.x) for nd in nodes]
        self._y = [float(nd.y) for nd in nodes]
        self._node_floor = [self._floor_index[nd.floor] for nd in nodes]
        self._node_kind = [nd.kind for nd in nodes]
        self._node_space = [nd.space_id for nd in nodes]
        self._node_name = [nd.name for nd in nodes]

        nf = len(floors)
        floor_nodes: list[list[int]] = [[] for _ in range(nf)]
        local = [0] * n
        for i, f in enumerate(self._node_floor):
            local[i] = len(floor_nodes[f])
            floor_nodes[f].append(i)
        self._local = local
        self._floor_nodes = [np.array(ids, dtype=np.int64) for ids in floor_nodes]
        self._floor_xy = [np.array([(self._x[i], self._y[i]) for i in ids], dtype=float).reshape(-1, 2)
                          for ids in floor_nodes]

        # Expanded graph: base nodes 0..n-1, then one elevator cabin per node an elevator edge touches, so the
        # wait is paid once per ride (boarding) and each floor ridden costs its own time.
        speed = cost.walk_speed_mps
        floor_arcs: list[list[list[list[_Arc]]]] = [  # mode -> floor -> local node -> arcs
            [[[] for _ in ids] for ids in floor_nodes] for _mode in (_ALL, _STEP_FREE)]
        cross_arcs: list[list[tuple[int, int, float, float]]] = [[], []]  # (u, v, t, d) between floors / cabins
        cabin_of: dict[int, int] = {}
        self._blocked: set[tuple[int, int]] = set()  # walk arcs closed to step-free routes (for reasons)

        def cabin(u: int) -> int:
            c = cabin_of.get(u)
            if c is None:
                c = cabin_of[u] = n + len(cabin_of)
                for mode in (_ALL, _STEP_FREE):
                    cross_arcs[mode].append((u, c, cost.elevator_wait_s, 0.0))
                    cross_arcs[mode].append((c, u, 0.0, 0.0))
            return c

        for edge in site.navigation.edges:
            a, b = node_index[edge.from_node], node_index[edge.to_node]
            fa, fb = self._node_floor[a], self._node_floor[b]
            step_free = edge.accessible and edge.kind is not NavEdgeKind.stairs
            modes = (_ALL, _STEP_FREE) if step_free else (_ALL,)
            if edge.kind is NavEdgeKind.elevator:
                ca, cb = cabin(a), cabin(b)
                ride = cost.elevator_s_per_floor * abs(ordinal[fb] - ordinal[fa])
                for mode in modes:
                    cross_arcs[mode].append((ca, cb, ride, 0.0))
                    cross_arcs[mode].append((cb, ca, ride, 0.0))
            elif fa != fb:  # stairs between floors (validated sites have no walk edges between floors)
                up = ordinal[fb] - ordinal[fa]
                t_ab = cost.stairs_up_s_per_floor * up if up > 0 else cost.stairs_down_s_per_floor * -up
                t_ba = cost.stairs_up_s_per_floor * -up if up < 0 else cost.stairs_down_s_per_floor * up
                for mode in modes:
                    cross_arcs[mode].append((a, b, t_ab, 0.0))
                    cross_arcs[mode].append((b, a, t_ba, 0.0))
            else:  # a walk edge, or stairs within one floor: planar metres at walking speed
                d = math.hypot(self._x[b] - self._x[a], self._y[b] - self._y[a])
                for mode in modes:
                    floor_arcs[mode][fa][local[a]].append((local[b], d / speed, d))
                    floor_arcs[mode][fa][local[b]].append((local[a], d / speed, d))
                if not step_free:
                    self._blocked.update({(a, b), (b, a)})
        self._n_expanded = n + len(cabin_of)
        self._cabin_node = sorted(cabin_of, key=cabin_of.__getitem__)  # cabin index - n -> its node
        self._floor_arcs = floor_arcs

        # Overlay: portals (base nodes with a move off their floor) and cabins.
        portal_set = sorted({g for arcs in cross_arcs for arc in arcs for g in arc[:2] if g < n})
        ov_nodes = portal_set + sorted(cabin_of.values())
        ov_of = {g: k for k, g in enumerate(ov_nodes)}
        self._ov_nodes = ov_nodes
        self._portal_rows: list[list[int]] = [[] for _ in range(nf)]  # per floor: local index of each portal
        portal_ov: list[list[int]] = [[] for _ in range(nf)]
        for g in portal_set:
            f = self._node_floor[g]
            self._portal_rows[f].append(local[g])
            portal_ov[f].append(ov_of[g])
        self._portal_ov = [np.array(p, dtype=np.int64) for p in portal_ov]
        self._portal_ov_lists = portal_ov

        # Per mode and floor: in-floor shortest paths from every portal (time, metres, predecessor).
        self._portal_t: list[list[np.ndarray]] = [[], []]
        self._portal_d: list[list[np.ndarray]] = [[], []]
        self._portal_pred: list[list[list[list[int]]]] = [[], []]
        self._ov_adj: list[list[list[tuple[int, float, float, int, int]]]] = []
        for mode in (_ALL, _STEP_FREE):
            adj: list[list[tuple[int, float, float, int, int]]] = [[] for _ in ov_nodes]
            for f in range(nf):
                rows_t: list[list[float]] = []
                rows_d: list[list[float]] = []
                rows_p: list[list[int]] = []
                for r, src in enumerate(self._portal_rows[f]):
                    row_t, row_d, row_pred = _dijkstra(floor_arcs[mode][f], (src,))
                    rows_t.append(row_t)
                    rows_d.append(row_d)
                    rows_p.append(row_pred)
                    for r2, dst in enumerate(self._portal_rows[f]):
                        if r2 != r and row_t[dst] < INF:
                            adj[portal_ov[f][r]].append((portal_ov[f][r2], row_t[dst], row_d[dst], f, r))
                shape = (len(rows_t), len(floor_nodes[f]))
                self._portal_t[mode].append(np.array(rows_t, dtype=float).reshape(shape))
                self._portal_d[mode].append(np.array(rows_d, dtype=float).reshape(shape))
                self._portal_pred[mode].append(rows_p)
            for u, v, t, d in cross_arcs[mode]:
                adj[ov_of[u]].append((ov_of[v], t, d, -1, -1))
            self._ov_adj.append(adj)

        # Where each space starts and ends: its door nodes, else the node nearest its centroid on its floor.
        self._space_anchor: dict[str, tuple[int, ...]] = {}
        doors: dict[str, list[int]] = {}
        for i, sid in enumerate(self._node_space):
            if sid is not None:
                doors.setdefault(sid, []).append(i)
        for space in site.spaces:
            anchor = doors.get(space.id)
            if anchor is None:
                space_floor = self._floor_index.get(space.floor)
                cx, cy = polygon_centroid(space.polygon)
                near = self._nearest(space_floor, cx, cy) if space_floor is not None else None
                anchor = [near[0]] if near is not None else []
            self._space_anchor[space.id] = tuple(anchor)
        entries = [(k, node) for k, s in enumerate(site.spaces) for node in self._space_anchor[s.id]]
        self._space_ids = np.array([s.id for s in site.spaces], dtype=object)
        self._entry_space = np.array([k for k, _ in entries], dtype=np.int64)
        self._entry_node = np.array([node for _, node in entries], dtype=np.int64)
        anchored = np.unique(self._entry_space)
        self._anchored_spaces = anchored
        self._group_start = np.searchsorted(self._entry_space, anchored) if len(entries) else np.zeros(0, np.int64)

    @classmethod
    def from_site(cls, site: SiteModel, cost: CostModel = CostModel(), cache_size: int = 128) -> NavigationIndex:
        """Prepare a (validated) site's navigation graph for routing; build once per site version."""
        return cls(site, cost, cache_size)

    # -- public queries ------------------------------------------------------------------------------------------

    def route(self, origin: Place, destination: Place, accessible: bool = False) -> Route:
        """The fastest route between two places; step-free (no stairs, no edge marked not accessible) if asked.

        Raises UnknownPlace for an unknown space or floor and NoRoute (with a reason) when none exists.
        """
        a, b = self.anchor(origin), self.anchor(destination)
        mode = _STEP_FREE if accessible else _ALL
        if not a.nodes:
            raise NoRoute(f"{a.label} is on a floor without navigation nodes")
        if not b.nodes:
            raise NoRoute(f"{b.label} is on a floor without navigation nodes")
        search = self._search(a.nodes, mode)
        target, t, d = self._best(search, b.nodes)
        if target < 0:
            raise NoRoute(self._why_no_route(a, b, mode))
        path = self._path(search, target)
        offset = a.offset_m + b.offset_m
        return self._build_route(a, b, path, d + offset, t + offset / self.cost.walk_speed_mps, accessible)

    def distances_from(self, origin: Place, accessible: bool = False) -> dict[str, tuple[float, float]]:
        """space id -> (metres walked, seconds) of the fastest route from the origin to the space's nearest door,
        for every reachable space (the origin's own space included, at 0). One search for all spaces."""
        a = self.anchor(origin)
        if not a.nodes or not len(self._entry_node):
            return {}
        search = self._search(a.nodes, _STEP_FREE if accessible else _ALL)
        t_all, d_all = search.everywhere()
        t = t_all[self._entry_node]
        order = np.lexsort((t, self._entry_space))
        pick = order[self._group_start]
        best_t = t[pick]
        reachable = best_t < INF
        pick = pick[reachable]
        spaces = self._space_ids[self._anchored_spaces[reachable]]
        metres = d_all[self._entry_node[pick]] + a.offset_m
        seconds = best_t[reachable] + a.offset_m / self.cost.walk_speed_mps
        return dict(zip(spaces.tolist(), zip(metres.tolist(), seconds.tolist())))

    def anchor(self, place: Place) -> _Anchor:
        """Where a place joins the navigation graph. Raises UnknownPlace."""
        if isinstance(place, str):
            space = self._spaces.get(place)
            if space is None:
                raise UnknownPlace(f"unknown space '{place}'", place)
            nodes = self._space_anchor[place]
            f = self._node_floor[nodes[0]] if nodes else self._floor_index.get(space.floor, -1)
            return _Anchor(nodes, 0.0, None, f, place, space.name)
        point: PointPlace = place  # callers pass what the request held: check it really is (x, y, floor id)
        if not isinstance(point, Sequence) or len(point) != 3:
            raise UnknownPlace("a place is a space id or a point (x, y, floor id)", place)
        x, y, floor_id = point
        point_floor = self._floor_index.get(floor_id) if isinstance(floor_id, str) else None
        if point_floor is None:
            raise UnknownPlace(f"unknown floor '{floor_id}'", place)
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            raise UnknownPlace(f"point coordinates must be numbers, not {x!r}, {y!r}", place) from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise UnknownPlace("point coordinates must be finite", place)
        label = f"({x:g}, {y:g}) on {self._floor_label[point_floor]}"
        near = self._nearest(point_floor, x, y)
        if near is None:
            return _Anchor((), 0.0, (x, y), point_floor, None, label)
        return _Anchor((near[0],), near[1], (x, y), point_floor, None, label)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- searching ----------------------------------------------------------------------------------------------

    def _nearest(self, f: int, x: float, y: float) -> tuple[int, float] | None:
        xy = self._floor_xy[f]
        if not len(xy):
            return None
        d2 = (xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2
        k = int(d2.argmin())
        return int(self._floor_nodes[f][k]), math.sqrt(float(d2[k]))

    def _search(self, sources: tuple[int, ...], mode: int) -> _Search:
        key = (sources, mode)
        if self._cache_size:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        by_floor: dict[int, list[int]] = {}
        for g in sources:
            by_floor.setdefault(self._node_floor[g], []).append(self._local[g])
        source_floors = {f: _dijkstra(self._floor_arcs[mode][f], locs) for f, locs in by_floor.items()}
        k = len(self._ov_nodes)
        ov_t, ov_d = [INF] * k, [0.0] * k
        ov_pred: list[_OverlayPred] = [None] * k
        heap: list[tuple[float, int]] = []
        for f, (t, d, _pred) in source_floors.items():
            for row, o in zip(self._portal_rows[f], self._portal_ov_lists[f]):
                if t[row] < ov_t[o]:
                    ov_t[o], ov_d[o] = t[row], d[row]
                    heap.append((t[row], o))
        heapq.heapify(heap)
        adj = self._ov_adj[mode]
        while heap:
            tu, u = heapq.heappop(heap)
            if tu > ov_t[u]:
                continue
            du = ov_d[u]
            for v, w, length, f, r in adj[u]:
                tv = tu + w
                if tv < ov_t[v]:
                    ov_t[v], ov_d[v], ov_pred[v] = tv, du + length, (u, f, r)
                    heapq.heappush(heap, (tv, v))
        search = _Search(self, mode, source_floors, ov_t, ov_d, ov_pred)
        if self._cache_size:
            with self._lock:
                self._cache[key] = search
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return search

    def _best(self, search: _Search, targets: tuple[int, ...]) -> tuple[int, float, float]:
        best = (-1, INF, 0.0)
        for g in targets:
            t, d, _via = search.floor(self._node_floor[g])
            loc = self._local[g]
            if t[loc] < best[1]:
                best = (g, float(t[loc]), float(d[loc]))
        return best

    def _path(self, search: _Search, target: int) -> list[int]:
        """Expanded node indices (cabins included) from a source to the target."""
        f = self._node_floor[target]
        _t, _d, via = search.floor(f)
        loc = self._local[target]
        nodes = self._floor_nodes[f]
        if via[loc] < 0:
            return [int(nodes[i]) for i in _chain(search.source_floors[f][2], loc)]
        row = int(via[loc])
        tail = [int(nodes[i]) for i in _chain(self._portal_pred[search.mode][f][row], loc)]
        ov = int(self._portal_ov[f][row])
        middle: list[int] = []
        while (step := search.ov_pred[ov]) is not None:
            prev, pf, pr = step
            if pf < 0:
                hop = [self._ov_nodes[prev], self._ov_nodes[ov]]
            else:
                fn = self._floor_nodes[pf]
                hop = [int(fn[i]) for i in _chain(self._portal_pred[search.mode][pf][pr], self._local[self._ov_nodes[ov]])]
            middle[:0] = hop[:-1]
            ov = prev
        first = self._ov_nodes[ov]  # a portal on a source floor, reached by the in-floor search
        ff = self._node_floor[first]
        head = [int(self._floor_nodes[ff][i]) for i in _chain(search.source_floors[ff][2], self._local[first])]
        return head[:-1] + middle + tail

    def _why_no_route(self, a: _Anchor, b: _Anchor, mode: int) -> str:
        if mode == _STEP_FREE:
            search = self._search(a.nodes, _ALL)
            target, _t, _d = self._best(search, b.nodes)
            if target >= 0:
                path = self._path(search, target)
                stairs, lifts, other = [], [], []
                for u, v in itertools.pairwise(path):
                    if u < self._n and v < self._n and self._node_floor[u] != self._node_floor[v]:
                        stairs.append((u, v))
                    elif u >= self._n and v >= self._n:
                        lifts.append((self._cabin_node[u - self._n], self._cabin_node[v - self._n]))
                    elif (u, v) in self._blocked:
                        other.append(u)
                head = f"no step-free route from {a.label} to {b.label}"
                if other:
                    near = self._landmark(other[0]) or self._node_ids[other[0]]
                    return f"{head}: the only way passes a passage marked not accessible near {near}"
                if stairs and not lifts:
                    lo = self._floor_label[self._node_floor[stairs[0][0]]]
                    hi = self._floor_label[self._node_floor[stairs[-1][1]]]
                    return f"{head}: only stairs connect {lo} and {hi}"
                if lifts:
                    lo = self._floor_label[self._node_floor[lifts[0][0]]]
                    hi = self._floor_label[self._node_floor[lifts[-1][1]]]
                    return f"{head}: the elevator between {lo} and {hi} is marked not accessible"
        return f"{b.label} cannot be reached from {a.label}: the navigation graph does not connect them"

    # -- describing a route ---------------------------------------------------------------------------------------

    def _build_route(self, a: _Anchor, b: _Anchor, path: list[int], distance: float, eta: float,
                     accessible: bool) -> Route:
        n = self._n
        # Split into per-floor node runs joined by transfers ("stairs"/"elevator", from node, to node).
        runs: list[list[int]] = [[path[0]]]
        transfers: list[tuple[str, int, int]] = []
        boarded_at = -1
        for u, v in itertools.pairwise(path):
            if v >= n:  # boarding or riding
                if u < n:
                    boarded_at = u
                continue
            if u >= n:  # alighting
                kind, start = "elevator", boarded_at
            elif self._node_floor[u] != self._node_floor[v]:
                kind, start = "stairs", u
            else:
                runs[-1].append(v)
                continue
            if transfers and transfers[-1][0] == kind and len(runs[-1]) == 1 and transfers[-1][2] == start:
                transfers[-1] = (kind, transfers[-1][1], v)  # keep climbing: one instruction for several floors
                runs[-1] = [v]
            else:
                transfers.append((kind, start, v))
                runs.append([v])
        legs: list[Leg] = []
        instructions: list[str] = []
        for k, run in enumerate(runs):
            pts: list[tuple[Point, int | None]] = [((self._x[g], self._y[g]), g) for g in run]
            if k == 0 and a.point is not None and a.offset_m > 1e-9:
                pts.insert(0, (a.point, None))
            if k == len(runs) - 1 and b.point is not None and b.offset_m > 1e-9:
                pts.append((b.point, None))
            polyline = tuple(p for p, _ in pts)
            length = sum(math.dist(p, q) for p, q in itertools.pairwise(polyline))
            legs.append(Leg(self._floor_ids[self._node_floor[run[0]]], polyline, length))
            leg_start = "origin" if k == 0 else transfers[k - 1][0]
            leg_end = transfers[k][0] if k < len(transfers) else "destination"
            instructions += self._describe_leg(pts, leg_start, leg_end, a, b)
            if k < len(transfers):
                instructions.append(self._describe_transfer(*transfers[k]))
        if distance < 1e-9 and not transfers:
            instructions = [f"You are already at {b.label if b.space_id else 'your destination'}."]
        return Route(distance, eta, tuple(legs), tuple(instructions), accessible,
                     tuple(self._node_ids[g] for g in path if g < n))

    def _describe_transfer(self, kind: str, u: int, v: int) -> str:
        fu, fv = self._node_floor[u], self._node_floor[v]
        to = self._floor_label[fv]
        if kind == "elevator":
            return f"Take the elevator to {to}."
        floors = abs(self._ordinal(fv) - self._ordinal(fu))
        way = "up" if self._ordinal(fv) > self._ordinal(fu) else "down"
        return f"Take the stairs {way} {floors} floor{'s' if floors != 1 else ''} to {to}."

    def _ordinal(self, f: int) -> int:
        return self._ordinals[f]

    def _describe_leg(self, pts: list[tuple[Point, int | None]], start: str, end: str, a: _Anchor,
                      b: _Anchor) -> list[str]:
        # drop repeated points (a point placed exactly on its node, stacked nodes)
        clean = [pts[0]]
        for p in pts[1:]:
            if math.dist(p[0], clean[-1][0]) > 1e-6:
                clean.append(p)
            elif p[1] is not None:
                clean[-1] = p
        out: list[str] = []
        # runs of nearly straight segments, split at turns
        runs: list[_Stretch] = []
        for i in range(1, len(clean)):
            seg = math.dist(clean[i - 1][0], clean[i][0])
            corridor = all(self._is_corridor(p[1]) for p in clean[i - 1:i + 1])
            turn = _turn(clean[i - 2][0], clean[i - 1][0], clean[i][0]) if i >= 2 else None
            if runs and turn is None:
                runs[-1].metres += seg
                runs[-1].corridor = runs[-1].corridor or corridor
                runs[-1].segments += 1
            else:
                runs.append(_Stretch(turn, clean[i - 1][1], seg, corridor, 1))
        first_node = pts[0][1]
        leaving_door = (start == "origin" and a.space_id is not None and first_node is not None
                        and self._node_space[first_node] == a.space_id
                        and self._node_kind[first_node] is NavNodeKind.door)
        if leaving_door:
            out.append(f"Leave {a.label} through its door.")
        elif start == "origin" and a.space_id is not None:
            out.append(f"Leave {a.label}.")
        arrival = None
        if end == "destination" and runs:
            last = runs[-1]
            side = last.turn
            dest_node = pts[-1][1]
            at_dest = b.point is not None or (dest_node is not None and self._node_space[dest_node] == b.space_id)
            name = b.label if b.space_id else "Your destination"
            if at_dest and side is not None and last.segments == 1 and last.metres <= DOOR_STEP_M and len(runs) > 1:
                runs.pop()
                if side == "around":  # the door is just behind: say on which hand
                    (ax, ay), (bx, by), (cx, cy) = (p for p, _ in clean[-3:])
                    hand = "left" if (bx - ax) * (cy - by) - (by - ay) * (cx - bx) > 0 else "right"
                    arrival = f"{name} is just behind you on your {hand}."
                else:
                    arrival = f"{name} is on your {side}."
            else:
                arrival = f"{name} is ahead." if b.space_id else "You have arrived."
        elif end == "destination":
            arrival = f"You have arrived at {b.label}." if b.space_id else "You have arrived."
        for k, stretch in enumerate(runs):
            turn, vertex, metres, corridor = stretch.turn, stretch.vertex, stretch.metres, stretch.corridor
            walk = f"walk {max(1, round(metres))} m" + (" along the corridor" if corridor else "")
            if k == len(runs) - 1 and end in ("stairs", "elevator"):
                walk += f" to the {end}"
            if k == 0 and turn is None:
                if leaving_door:
                    if metres >= DOOR_STEP_M or len(runs) == 1:
                        out[-1] = f"Leave {a.label} through its door and {walk}."
                    continue
                if start in ("stairs", "elevator"):
                    out.append(f"Leave the {start} and {walk}.")
                else:
                    out.append(walk[0].upper() + walk[1:] + ".")
                continue
            at = self._landmark(vertex) if vertex is not None else None
            turn_text = "Turn around" if turn == "around" else f"Turn {turn}"
            if at:
                turn_text += f" at {at}"
            out.append(f"{turn_text} and {walk}.")
        if arrival:
            out.append(arrival)
        return out

    def _is_corridor(self, g: int | None) -> bool:
        return g is not None and self._node_kind[g] is NavNodeKind.corridor

    def _landmark(self, g: int) -> str | None:
        if self._node_name[g]:
            return self._node_name[g]
        sid = self._node_space[g]
        if sid is not None and sid in self._spaces:
            return self._spaces[sid].name
        kind = self._node_kind[g]
        if kind in (NavNodeKind.stairs, NavNodeKind.elevator):
            return f"the {kind.value}"
        return None


def _turn(p0: Point, p1: Point, p2: Point) -> str | None:
    """'left', 'right', 'around' or None (straight on) for the heading change at p1."""
    ax, ay = p1[0] - p0[0], p1[1] - p0[1]
    bx, by = p2[0] - p1[0], p2[1] - p1[1]
    cross, dot = ax * by - ay * bx, ax * bx + ay * by
    angle = math.degrees(math.atan2(cross, dot))
    if abs(angle) < STRAIGHT_DEG:
        return None
    if abs(angle) > TURN_AROUND_DEG:
        return "around"
    return "left" if cross > 0 else "right"


def _dijkstra(adj: list[list[_Arc]], sources: Iterable[int]) -> _FloorSearch:
    """Times, metres and predecessors from the sources (at time 0) over one floor's arcs."""
    n = len(adj)
    t = [INF] * n
    d = [0.0] * n
    pred = [-1] * n
    heap: list[tuple[float, int]] = []
    for s in sources:
        t[s] = 0.0
        heap.append((0.0, s))
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        tu, u = pop(heap)
        if tu > t[u]:
            continue
        du = d[u]
        for v, w, length in adj[u]:
            tv = tu + w
            if tv < t[v]:
                t[v] = tv
                d[v] = du + length
                pred[v] = u
                push(heap, (tv, v))
    return t, d, pred


def _chain(pred: list[int], node: int) -> list[int]:
    """Nodes from the root of a predecessor tree to `node`."""
    out = [node]
    while pred[out[-1]] >= 0:
        out.append(pred[out[-1]])
    out.reverse()
    return out
