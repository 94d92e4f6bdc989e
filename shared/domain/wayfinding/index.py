"""The navigation index: a site's navigation graph prepared for routing (built once per site version).

Building it splits the graph per floor (walk arcs as adjacency lists per search mode), gives every node an
elevator edge touches a cabin state (the wait is paid once per ride), and precomputes, per floor and mode, the
in-floor shortest paths from every portal (a node with a stairs or elevator move off its floor). Searching is in
`search`, describing a route in `instructions`.
"""
from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from shared.domain.geometry import polygon_centroid
from shared.domain.site import NavEdgeKind, SiteModel
from shared.domain.wayfinding.instructions import build_route, landmark
from shared.domain.wayfinding.model import (
    ALL,
    INF,
    STEP_FREE,
    Anchor,
    CostModel,
    NoRoute,
    Place,
    PointPlace,
    Route,
    UnknownPlace,
)
from shared.domain.wayfinding.search import Arc, Search, best, dijkstra, path, search


class NavigationIndex:
    """A site's navigation graph prepared for routing. Immutable apart from a small LRU of searches."""

    def __init__(self, site: SiteModel, cost: CostModel = CostModel(), cache_size: int = 128):
        self.cost = cost
        self.building_id = site.building_id
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[tuple[int, ...], int], Search] = OrderedDict()
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
        floor_arcs: list[list[list[list[Arc]]]] = [  # mode -> floor -> local node -> arcs
            [[[] for _ in ids] for ids in floor_nodes] for _mode in (ALL, STEP_FREE)]
        cross_arcs: list[list[tuple[int, int, float, float]]] = [[], []]  # (u, v, t, d) between floors / cabins
        cabin_of: dict[int, int] = {}
        self._blocked: set[tuple[int, int]] = set()  # walk arcs closed to step-free routes (for reasons)

        def cabin(u: int) -> int:
            c = cabin_of.get(u)
            if c is None:
                c = cabin_of[u] = n + len(cabin_of)
                for mode in (ALL, STEP_FREE):
                    cross_arcs[mode].append((u, c, cost.elevator_wait_s, 0.0))
                    cross_arcs[mode].append((c, u, 0.0, 0.0))
            return c

        for edge in site.navigation.edges:
            a, b = node_index[edge.from_node], node_index[edge.to_node]
            fa, fb = self._node_floor[a], self._node_floor[b]
            step_free = edge.accessible and edge.kind is not NavEdgeKind.stairs
            modes = (ALL, STEP_FREE) if step_free else (ALL,)
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
        for mode in (ALL, STEP_FREE):
            adj: list[list[tuple[int, float, float, int, int]]] = [[] for _ in ov_nodes]
            for f in range(nf):
                rows_t: list[list[float]] = []
                rows_d: list[list[float]] = []
                rows_p: list[list[int]] = []
                for r, src in enumerate(self._portal_rows[f]):
                    row_t, row_d, row_pred = dijkstra(floor_arcs[mode][f], (src,))
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

        # Where each space starts and ends: its door nodes, else (in a hand-written graph) the node nearest its
        # centroid on its floor. A generated graph gives every space it reaches a door: one without has none.
        self._generated = site.navigation.generated
        self._space_anchor: dict[str, tuple[int, ...]] = {}
        doors: dict[str, list[int]] = {}
        for i, sid in enumerate(self._node_space):
            if sid is not None:
                doors.setdefault(sid, []).append(i)
        for space in site.spaces:
            anchor = doors.get(space.id)
            if anchor is None and self._generated:
                anchor = []
            elif anchor is None:
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
        mode = STEP_FREE if accessible else ALL
        for end in (a, b):
            if not end.nodes:
                raise NoRoute(self._unanchored(end))
        search = self._search(a.nodes, mode)
        target, t, d = self._best(search, b.nodes)
        if target < 0:
            raise NoRoute(self._why_no_route(a, b, mode))
        path = self._path(search, target)
        offset = a.offset_m + b.offset_m
        return build_route(self, a, b, path, d + offset, t + offset / self.cost.walk_speed_mps, accessible)

    def distances_from(self, origin: Place, accessible: bool = False) -> dict[str, tuple[float, float]]:
        """space id -> (metres walked, seconds) of the fastest route from the origin to the space's nearest door,
        for every reachable space (the origin's own space included, at 0). One search for all spaces."""
        a = self.anchor(origin)
        if not a.nodes or not len(self._entry_node):
            return {}
        search = self._search(a.nodes, STEP_FREE if accessible else ALL)
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

    def anchor(self, place: Place) -> Anchor:
        """Where a place joins the navigation graph. Raises UnknownPlace."""
        if isinstance(place, str):
            space = self._spaces.get(place)
            if space is None:
                raise UnknownPlace(f"unknown space '{place}'", place)
            nodes = self._space_anchor[place]
            f = self._node_floor[nodes[0]] if nodes else self._floor_index.get(space.floor, -1)
            return Anchor(nodes, 0.0, None, f, place, space.name)
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
            return Anchor((), 0.0, (x, y), point_floor, None, label)
        return Anchor((near[0],), near[1], (x, y), point_floor, None, label)

    def space_nodes(self, space_id: str) -> tuple[int, ...]:
        """The navigation nodes (indices into the site's `navigation.nodes`) a space starts and ends at."""
        return self._space_anchor[space_id]

    def _unanchored(self, end: Anchor) -> str:
        if end.space_id is not None and 0 <= end.floor < len(self._floor_nodes) and len(self._floor_nodes[end.floor]):
            return (f"{end.label} has no door in the navigation graph: no opening or shared wall joins it to "
                    "anywhere people walk")
        return f"{end.label} is on a floor without navigation nodes"

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

    def _search(self, sources: tuple[int, ...], mode: int) -> Search:
        return search(self, sources, mode)

    def _best(self, found: Search, targets: tuple[int, ...]) -> tuple[int, float, float]:
        return best(self, found, targets)

    def _path(self, found: Search, target: int) -> list[int]:
        return path(self, found, target)

    def _why_no_route(self, a: Anchor, b: Anchor, mode: int) -> str:
        if mode == STEP_FREE:
            search = self._search(a.nodes, ALL)
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

    def _landmark(self, g: int) -> str | None:
        return landmark(self, g)
