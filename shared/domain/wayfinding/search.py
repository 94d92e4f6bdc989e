"""Searching: Dijkstra over one floor's arcs, and the two-level search (origin floor, then the overlay of the
nodes that change floors, then the destination floor through precomputed portal rows), and path rebuilding."""
from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from shared.domain.wayfinding.model import INF

if TYPE_CHECKING:
    from shared.domain.wayfinding.index import NavigationIndex

Arc = tuple[int, float, float]  # (to local node, seconds, metres) within one floor
FloorSearch = tuple[list[float], list[float], list[int]]  # (seconds, metres, predecessor) per local node
OverlayPred = tuple[int, int, int] | None  # (previous overlay node, floor or -1 for a cross arc, portal row)


class Search:
    """One single-source search (sources at time 0) in one mode; floors are combined lazily."""

    __slots__ = ("_floors", "_global", "index", "mode", "ov_d", "ov_pred", "ov_t", "source_floors")

    def __init__(self, index: NavigationIndex, mode: int, source_floors: dict[int, FloorSearch], ov_t: list[float],
                 ov_d: list[float], ov_pred: list[OverlayPred]):
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



def search(ix: NavigationIndex, sources: tuple[int, ...], mode: int) -> Search:
    """The search from the sources in a mode (from the index's LRU, or run and cached)."""
    key = (sources, mode)
    if ix._cache_size:
        with ix._lock:
            hit = ix._cache.get(key)
            if hit is not None:
                ix._cache.move_to_end(key)
                return hit
    by_floor: dict[int, list[int]] = {}
    for g in sources:
        by_floor.setdefault(ix._node_floor[g], []).append(ix._local[g])
    source_floors = {f: dijkstra(ix._floor_arcs[mode][f], locs) for f, locs in by_floor.items()}
    k = len(ix._ov_nodes)
    ov_t, ov_d = [INF] * k, [0.0] * k
    ov_pred: list[OverlayPred] = [None] * k
    heap: list[tuple[float, int]] = []
    for f, (t, d, _pred) in source_floors.items():
        for row, o in zip(ix._portal_rows[f], ix._portal_ov_lists[f]):
            if t[row] < ov_t[o]:
                ov_t[o], ov_d[o] = t[row], d[row]
                heap.append((t[row], o))
    heapq.heapify(heap)
    adj = ix._ov_adj[mode]
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
    found = Search(ix, mode, source_floors, ov_t, ov_d, ov_pred)
    if ix._cache_size:
        with ix._lock:
            ix._cache[key] = found
            while len(ix._cache) > ix._cache_size:
                ix._cache.popitem(last=False)
    return found


def best(ix: NavigationIndex, found: Search, targets: tuple[int, ...]) -> tuple[int, float, float]:
    """(target, seconds, metres) of the best reached target, target -1 when none is reached."""
    top = (-1, INF, 0.0)
    for g in targets:
        t, d, _via = found.floor(ix._node_floor[g])
        loc = ix._local[g]
        if t[loc] < top[1]:
            top = (g, float(t[loc]), float(d[loc]))
    return top


def path(ix: NavigationIndex, found: Search, target: int) -> list[int]:
    """Expanded node indices (cabins included) from a source to the target."""
    f = ix._node_floor[target]
    _t, _d, via = found.floor(f)
    loc = ix._local[target]
    nodes = ix._floor_nodes[f]
    if via[loc] < 0:
        return [int(nodes[i]) for i in chain(found.source_floors[f][2], loc)]
    row = int(via[loc])
    tail = [int(nodes[i]) for i in chain(ix._portal_pred[found.mode][f][row], loc)]
    ov = int(ix._portal_ov[f][row])
    middle: list[int] = []
    while (step := found.ov_pred[ov]) is not None:
        prev, pf, pr = step
        if pf < 0:
            hop = [ix._ov_nodes[prev], ix._ov_nodes[ov]]
        else:
            fn = ix._floor_nodes[pf]
            hop = [int(fn[i]) for i in chain(ix._portal_pred[found.mode][pf][pr], ix._local[ix._ov_nodes[ov]])]
        middle[:0] = hop[:-1]
        ov = prev
    first = ix._ov_nodes[ov]  # a portal on a source floor, reached by the in-floor search
    ff = ix._node_floor[first]
    head = [int(ix._floor_nodes[ff][i]) for i in chain(found.source_floors[ff][2], ix._local[first])]
    return head[:-1] + middle + tail


def dijkstra(adj: list[list[Arc]], sources: Iterable[int]) -> FloorSearch:
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


def chain(pred: list[int], node: int) -> list[int]:
    """Nodes from the root of a predecessor tree to `node`."""
    out = [node]
    while pred[out[-1]] >= 0:
        out.append(pred[out[-1]])
    out.reverse()
    return out
