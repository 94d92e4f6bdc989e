"""A navigation graph generated from a site's geometry, for sites that have none (an imported IMDF venue).

Per floor: the walkable area is the union of the spaces whose kind is walkable (`space_kinds.WALKABLE`:
walkways, lobbies, open areas, ramps, waiting rooms) minus obstacles and non-occupiable spaces (columns,
structure). Every other occupiable space is a *room*: it is entered through doors. A door is an opening of
`site.doors` (a node at its segment's midpoint, `spaceId` the room side; the spaces it joins come from the door, or
from the geometry when it lists none), or, for a room without an opening onto the walkable area, an inferred one
at the middle of the longest piece of its boundary it shares with the walkable area (at least `DOOR_MIN_M`); a room
that only touches rooms gets a door into a neighbour that can be reached. Paths through the walkable area come from
a navigation mesh: the constrained Delaunay triangulation of each walkable polygon (outline cut into pieces of at
most `SEGMENT_M`, door points inserted as vertices), a node at the middle of every interior triangle edge, edges
across each triangle between those and to the doors on it; then chains of corridor nodes of degree 2 are cut down
to the nodes a straight line of sight needs, so a straight corridor is a few nodes along its middle. A room's
doors are joined to each other (walking through the room). Vertical connectors (`site.connectors`, and elevator,
stairs and escalator spaces stacked over each other on consecutive floors) get a node inside each of their spaces,
joined to that space's doors, and stairs or elevator edges between consecutive floors.

Deterministic: the same site gives the same graph, byte for byte. Shapely does the geometry, networkx the graph
bookkeeping (chains, components).
"""
from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import networkx as nx
import numpy as np
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from shared.domain import space_kinds
from shared.domain.site import (
    MAX_NAV_NODES,
    ConnectorKind,
    NavEdge,
    NavEdgeKind,
    NavigationGraph,
    NavNode,
    NavNodeKind,
    SiteModel,
    Space,
)
from shared.domain.tenancy import ID_MAX_LENGTH

GENERATOR_VERSION: Final = "1"  # part of the geometry hash: a new generator regenerates stored graphs
DOOR_MIN_M: Final = 0.8  # the shortest shared wall an inferred door goes into
TOLERANCE_M: Final = 0.3  # drawing gaps: a door or a wall this close to a space belongs to it
SEGMENT_M: Final = 3.0  # walkable outlines are cut into pieces this long before triangulating
MIN_AREA_M2: Final = 0.5  # walkable slivers smaller than this are dropped
LOS_SLACK_M: Final = 0.02  # line-of-sight checks forgive this much (triangle edges lie on the outline)
LOS_WINDOW: Final = 48  # a chain is simplified looking at most this many nodes ahead
ROOM_CLIQUE_MAX: Final = 12  # a room with more doors joins them through a node inside it
STACK_OVERLAP: Final = 0.25  # elevator/stairs spaces on consecutive floors overlapping this much are one shaft
_ROUND: Final = 3  # node coordinates in millimetres


@dataclass(frozen=True)
class GeneratedNavigation:
    graph: NavigationGraph  # generated=True, geometry_hash set
    unreachable_spaces: tuple[str, ...]  # occupiable non-walkway spaces no route reaches from the main part
    warnings: tuple[str, ...]


def geometry_hash(site: SiteModel) -> str:
    """sha256 (hex, first 32 characters) of what the generator reads: floors (id, ordinal, outline), spaces (id,
    kind, floor, outline, holes, parts), doors, obstacles and connectors, and the generator's version."""
    payload = {
        "generator": GENERATOR_VERSION,
        "floors": [f.model_dump(mode="json", by_alias=True, include={"id", "ordinal", "outline"}) for f in site.floors],
        "spaces": [s.model_dump(mode="json", by_alias=True, include={"id", "kind", "floor", "polygon", "holes", "parts"})
                   for s in site.spaces],
        "doors": [d.model_dump(mode="json", by_alias=True) for d in site.doors],
        "obstacles": [o.model_dump(mode="json", by_alias=True, include={"id", "floor", "polygon", "holes"})
                      for o in site.obstacles],
        "connectors": [c.model_dump(mode="json", by_alias=True) for c in site.connectors],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def with_navigation(site: SiteModel) -> tuple[SiteModel, GeneratedNavigation | None]:
    """The site with a navigation graph: unchanged (and None) when it has a hand-written graph or a generated one
    made from its current geometry, else a copy with a freshly generated graph (and the generation's report)."""
    nav = site.navigation
    if nav.nodes and not nav.generated:
        return site, None
    if nav.generated and nav.geometry_hash == geometry_hash(site):
        return site, None
    generated = generate_navigation(site)
    return site.model_copy(update={"navigation": generated.graph}), generated


def unreachable_spaces(site: SiteModel) -> list[str]:
    """Occupiable non-walkway spaces no route reaches from the main part of the site's navigation graph (the
    connected part that reaches the most spaces), in site order; for hand-written graphs too. A space anchors
    where the navigation index anchors it (its doors; in a hand-written graph else the node nearest its centroid)."""
    from shared.domain.wayfinding.index import NavigationIndex

    index = NavigationIndex.from_site(site, cache_size=0)
    node_index = {nid: i for i, nid in enumerate(index._node_ids)}
    graph: nx.Graph[int] = nx.Graph()
    graph.add_nodes_from(range(len(node_index)))
    graph.add_edges_from((node_index[e.from_node], node_index[e.to_node]) for e in site.navigation.edges)
    rooms = [s.id for s in site.spaces if _is_room(s)]
    return _unreachable(graph, {sid: index.space_nodes(sid) for sid in rooms}, rooms)


def generate_navigation(site: SiteModel) -> GeneratedNavigation:
    """A navigation graph for the site from its geometry (see the module's doc). Raises ValueError when the
    graph would exceed MAX_NAV_NODES."""
    gen = _Generator(site)
    graph = gen.run()
    return GeneratedNavigation(graph, tuple(gen.unreachable), tuple(gen.warnings))


# -- internals --------------------------------------------------------------------------------------------------


def _is_room(space: Space) -> bool:
    kind = space.kind.value
    return kind not in space_kinds.NOT_OCCUPIABLE and kind not in space_kinds.WALKABLE


def _unreachable(graph: nx.Graph[int], anchors: Mapping[str, Sequence[int]], rooms: list[str]) -> list[str]:
    part: dict[int, int] = {}
    for k, component in enumerate(sorted(nx.connected_components(graph), key=min)):
        part.update(dict.fromkeys(component, k))
    reaches: dict[int, int] = defaultdict(int)  # component -> rooms it reaches
    for sid in rooms:
        for k in {part[g] for g in anchors[sid]}:
            reaches[k] += 1
    if not reaches:
        return list(rooms)
    main = max(sorted(reaches), key=lambda k: reaches[k])
    return [sid for sid in rooms if not any(part[g] == main for g in anchors[sid])]


def _shape(polygon: Sequence[tuple[float, float]], holes: Iterable[Sequence[tuple[float, float]]]) -> BaseGeometry:
    geom: BaseGeometry = Polygon(polygon, list(holes))
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    return geom


def _space_shape(space: Space) -> BaseGeometry:
    parts = [_shape(space.polygon, space.holes)] + [_shape(p.polygon, p.holes) for p in space.parts]
    return parts[0] if len(parts) == 1 else shapely.unary_union(parts)


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    return [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and p.area >= MIN_AREA_M2]


def _longest_line(geom: BaseGeometry) -> LineString | None:
    lines = [g for g in shapely.get_parts(geom) if isinstance(g, LineString) and not g.is_empty]
    if not lines:
        return None
    merged = shapely.line_merge(shapely.MultiLineString(lines)) if len(lines) > 1 else lines[0]
    pieces = [g for g in shapely.get_parts(merged) if isinstance(g, LineString)]
    return max(pieces, key=lambda g: g.length) if pieces else None


@dataclass
class _Node:
    id: str
    x: float
    y: float
    kind: NavNodeKind
    space_id: str | None = None
    name: str | None = None
    accessible: bool = True
    dropped: bool = False  # cut out of a corridor chain


@dataclass
class _Floor:
    index: int
    id: str
    nodes: list[_Node] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)  # local node indices


class _Generator:
    def __init__(self, site: SiteModel):
        self.site = site
        self.warnings: list[str] = []
        self.unreachable: list[str] = []
        self._used_ids: set[str] = set()
        self.floor_order = {f.id: i for i, f in enumerate(site.floors)}
        self.ordinal = {f.id: f.ordinal for f in site.floors}
        self.spaces = {s.id: s for s in site.spaces}
        self.space_order = {s.id: i for i, s in enumerate(site.spaces)}
        self.shapes = {s.id: _space_shape(s) for s in site.spaces}
        self.floors = [_Floor(i, f.id) for i, f in enumerate(site.floors)]
        # per floor: the room's door nodes (local indices) by space id, walkable pieces
        self.room_doors: list[dict[str, list[int]]] = [defaultdict(list) for _ in site.floors]
        self.pieces: list[list[Polygon]] = [[] for _ in site.floors]

    # -- ids ---------------------------------------------------------------------------------------------------

    def _id(self, preferred: str) -> str:
        ident = preferred
        if len(ident) > ID_MAX_LENGTH or ident in self._used_ids:
            digest = hashlib.sha256(preferred.encode()).hexdigest()
            ident = f"h-{digest[:16]}"
            k = 16
            while ident in self._used_ids:
                k += 1
                ident = f"h-{digest[:k]}"
        self._used_ids.add(ident)
        return ident

    def _add(self, fl: _Floor, node: _Node) -> int:
        fl.nodes.append(node)
        return len(fl.nodes) - 1

    # -- the whole site ----------------------------------------------------------------------------------------

    def run(self) -> NavigationGraph:
        site = self.site
        by_floor: dict[str, list[Space]] = defaultdict(list)
        for s in site.spaces:
            by_floor[s.floor].append(s)
        doors_by_floor = defaultdict(list)
        for d in site.doors:
            doors_by_floor[d.floor].append(d)
        obstacles_by_floor: dict[str, list[BaseGeometry]] = defaultdict(list)
        for o in site.obstacles:
            obstacles_by_floor[o.floor].append(_shape(o.polygon, o.holes))
        connectors = self._connectors()
        attach: list[list[tuple[int, Point]]] = [[] for _ in site.floors]  # connector nodes in walkable spaces
        planned = self._plan_connector_nodes(connectors, attach)
        for fl in self.floors:
            self._floor(fl, by_floor.get(fl.id, []), doors_by_floor.get(fl.id, []),
                        obstacles_by_floor.get(fl.id, []), attach[fl.index])
        cross = self._join_connectors(connectors, planned)
        return self._assemble(cross)

    def _connectors(self) -> list[tuple[str, ConnectorKind, bool, list[str]]]:
        """(name, kind, step free, spaces by ordinal) of every connector: the site's, then stacked shafts."""
        out: list[tuple[str, ConnectorKind, bool, list[str]]] = []
        covered: set[str] = set()
        for c in self.site.connectors:
            refs = [r for r in c.spaces if r in self.spaces and self.spaces[r].floor in self.ordinal]
            refs.sort(key=lambda r: self.ordinal[self.spaces[r].floor])
            covered.update(refs)
            if len(refs) >= 2:
                out.append((c.id, c.kind, c.step_free, refs))
            else:
                self.warnings.append(f"connector '{c.id}' joins fewer than two known spaces")
        kinds = {"elevator": ConnectorKind.elevator, "stairs": ConnectorKind.stairs,
                 "escalator": ConnectorKind.escalator}
        shafts: nx.Graph[str] = nx.Graph()
        floors = sorted(self.site.floors, key=lambda f: f.ordinal)
        candidates: dict[str, list[Space]] = defaultdict(list)
        for s in self.site.spaces:
            if s.kind.value in space_kinds.FLOOR_CHANGERS and s.id not in covered:
                candidates[s.floor].append(s)
                shafts.add_node(s.id)
        for lower, upper in itertools.pairwise(floors):
            ups = candidates.get(upper.id, [])
            if not ups:
                continue
            tree = shapely.STRtree([self.shapes[u.id] for u in ups])
            taken: set[int] = set()
            for s in candidates.get(lower.id, []):
                shape = self.shapes[s.id]
                best, best_share = -1, STACK_OVERLAP
                for k in sorted(int(k) for k in tree.query(shape, predicate="intersects")):
                    u = ups[k]
                    if k in taken or u.kind != s.kind:
                        continue
                    other = self.shapes[u.id]
                    share = shape.intersection(other).area / max(1e-9, min(shape.area, other.area))
                    if share > best_share:
                        best, best_share = k, share
                if best >= 0:
                    taken.add(best)
                    shafts.add_edge(s.id, ups[best].id)
        order = {s.id: i for i, s in enumerate(self.site.spaces)}
        for comp in sorted((c for c in nx.connected_components(shafts) if len(c) > 1),
                           key=lambda c: min(order[s] for s in c)):
            refs = sorted(comp, key=lambda r: self.ordinal[self.spaces[r].floor])
            kind = kinds[self.spaces[refs[0]].kind.value]
            out.append((refs[0], kind, kind is ConnectorKind.elevator, refs))
        return out

    def _plan_connector_nodes(self, connectors: list[tuple[str, ConnectorKind, bool, list[str]]],
                              attach: list[list[tuple[int, Point]]]) -> list[list[tuple[int, int]]]:
        """Create a node inside each connector space; (floor, local node) per connector and space."""
        planned: list[list[tuple[int, int]]] = []
        count = [0] * len(self.floors)
        for _name, kind, step_free, refs in connectors:
            edge_kind = _edge_kind(kind, step_free)
            node_kind = NavNodeKind.elevator if edge_kind is NavEdgeKind.elevator else NavNodeKind.stairs
            here: list[tuple[int, int]] = []
            for ref in refs:
                space = self.spaces[ref]
                fl = self.floors[self.floor_order[space.floor]]
                shape = self.shapes[ref]
                pt = shape.centroid if shape.contains(shape.centroid) else shape.representative_point()
                count[fl.index] += 1
                local = self._add(fl, _Node(self._id(f"v-{fl.index}-{count[fl.index]}"), pt.x, pt.y, node_kind, ref))
                if _is_room(space):
                    self.room_doors[fl.index][ref].append(local)
                else:  # a walkable space (a ramp): the node joins the mesh
                    attach[fl.index].append((local, pt))
                here.append((fl.index, local))
            planned.append(here)
        return planned

    def _join_connectors(self, connectors: list[tuple[str, ConnectorKind, bool, list[str]]],
                         planned: list[list[tuple[int, int]]]) -> list[tuple[tuple[int, int], tuple[int, int],
                                                                               NavEdgeKind, bool]]:
        cross = []
        for (_name, kind, step_free, _refs), here in zip(connectors, planned):
            edge_kind = _edge_kind(kind, step_free)
            for a, b in itertools.pairwise(here):
                cross.append((a, b, edge_kind, step_free))
        return cross

    # -- one floor ---------------------------------------------------------------------------------------------

    def _floor(self, fl: _Floor, spaces: list[Space], doors: list[Any], obstacles: list[BaseGeometry],
               attach: list[tuple[int, Point]]) -> None:
        walk = [self.shapes[s.id] for s in spaces if s.kind.value in space_kinds.WALKABLE]
        blocked = [self.shapes[s.id] for s in spaces if s.kind.value in space_kinds.NOT_OCCUPIABLE] + obstacles
        rooms = [s for s in spaces if _is_room(s)]
        area: BaseGeometry = shapely.unary_union(walk) if walk else Polygon()
        if blocked and not area.is_empty:
            area = area.difference(shapely.unary_union(blocked))
        pieces = _polygons(area)
        self.pieces[fl.index] = pieces
        if not pieces and rooms:
            self.warnings.append(f"floor '{fl.id}' has no walkable area")
        piece_tree = shapely.STRtree(pieces)
        on_piece: list[list[tuple[int, Point]]] = [[] for _ in pieces]  # (local node, point) to attach per piece
        for local, pt in attach:
            hits = piece_tree.query(pt, predicate="dwithin", distance=TOLERANCE_M)
            for k in sorted(int(k) for k in hits):
                on_piece[k].append((local, pt))
        room_ids = {s.id for s in rooms}
        opened: set[str] = set()  # rooms with an opening onto the walkable area
        room_links: list[tuple[str, str]] = []  # room-room doors
        space_list = [s for s in spaces]
        space_tree = shapely.STRtree([self.shapes[s.id] for s in space_list])
        # the site's doors
        for door in doors:
            line = LineString(door.segment)
            mid = line.interpolate(0.5, normalized=True)
            if door.spaces:
                sides = [r for r in door.spaces if r in self.spaces and self.spaces[r].floor == fl.id]
            else:
                hits = space_tree.query(mid, predicate="dwithin", distance=TOLERANCE_M)
                sides = [space_list[k].id for k in sorted(int(k) for k in hits)]
            room_sides = [r for r in sides if r in room_ids]
            touching = sorted(int(k) for k in piece_tree.query(mid, predicate="dwithin", distance=TOLERANCE_M))
            if not room_sides and len(touching) < 2:
                if not touching:
                    self.warnings.append(f"door '{door.id}' is on no room and no walkable area")
                continue
            locals_ = self._door_nodes(fl, f"d-{door.id}", mid, room_sides, door.accessible, door.name)
            for k in touching:
                on_piece[k].append((locals_[0], mid))
            if touching:
                opened.update(room_sides)
            for a, b in itertools.combinations(room_sides, 2):
                room_links.append((a, b))
        # inferred doors onto the walkable area
        generated = itertools.count(1)
        if pieces:
            grown = area.buffer(TOLERANCE_M)
            shapely.prepare(grown)
            todo = [s for s in rooms if s.id not in opened]
            near = [s for s in todo if piece_tree.query(self.shapes[s.id], predicate="dwithin",
                                                        distance=TOLERANCE_M).size]
            bounds = [self.shapes[s.id].boundary for s in near]
            shared = shapely.intersection(np.array(bounds, dtype=object), grown) if bounds else []
            for s, geom in zip(near, shared):
                line = _longest_line(geom)
                if line is None or line.length < DOOR_MIN_M:
                    continue
                mid = line.interpolate(0.5, normalized=True)
                locals_ = self._door_nodes(fl, f"d-g{fl.index}-{next(generated)}", mid, [s.id], True, None)
                touching = sorted(int(k) for k in piece_tree.query(mid, predicate="dwithin", distance=TOLERANCE_M))
                if not touching:  # the shared wall is there, its middle just a bit further: take the nearest
                    touching = [int(piece_tree.query_nearest(mid))]
                for k in touching:
                    on_piece[k].append((locals_[0], mid))
                opened.add(s.id)
        # rooms that only touch rooms: a door into a neighbour that can be reached
        self._room_to_room(fl, rooms, opened, room_links, generated)
        # the mesh through each walkable piece
        for piece, points in zip(pieces, on_piece):
            self._mesh(fl, piece, points)
        # through each room: its doors joined
        for sid in sorted(self.room_doors[fl.index], key=lambda r: self._order(r)):
            members = self.room_doors[fl.index][sid]
            if len(members) <= ROOM_CLIQUE_MAX:
                fl.edges.extend(itertools.combinations(members, 2))
            else:
                pt = self.shapes[sid].representative_point()
                hub = self._add(fl, _Node(self._id(f"n-{fl.index}-r{self._order(sid)}"), pt.x, pt.y,
                                          NavNodeKind.corridor))
                fl.edges.extend((hub, m) for m in members)

    def _order(self, sid: str) -> int:
        return self.space_order[sid]

    def _door_nodes(self, fl: _Floor, preferred: str, mid: Point, room_sides: list[str], accessible: bool,
                    name: str | None) -> list[int]:
        """A door node per room side (the first at `preferred`), joined to each other; at least one node."""
        out: list[int] = []
        for j, sid in enumerate(room_sides or [None]):
            ident = self._id(preferred if j == 0 else f"{preferred}.{j}")
            local = self._add(fl, _Node(ident, mid.x, mid.y, NavNodeKind.door, sid, name, accessible))
            if sid is not None:
                self.room_doors[fl.index][sid].append(local)
            out.append(local)
        fl.edges.extend(itertools.combinations(out, 2))
        return out

    def _room_to_room(self, fl: _Floor, rooms: list[Space], opened: set[str], links: list[tuple[str, str]],
                      generated: Iterable[int]) -> None:
        counter = iter(generated)
        linked: nx.Graph[str] = nx.Graph()
        linked.add_nodes_from(s.id for s in rooms)
        linked.add_edges_from(links)
        reached = set().union(*(nx.node_connected_component(linked, r) for r in opened)) if opened else set()
        todo = [s for s in rooms if s.id not in reached]
        if not todo or not reached:
            return
        tree = shapely.STRtree([self.shapes[s.id] for s in rooms])
        while todo:
            grew: list[str] = []
            for s in todo:
                shape = self.shapes[s.id]
                best: tuple[float, int, LineString] | None = None
                for k in sorted(int(k) for k in tree.query(shape, predicate="dwithin", distance=TOLERANCE_M)):
                    other = rooms[k]
                    if other.id == s.id or other.id not in reached:
                        continue
                    line = _longest_line(shape.boundary.intersection(self.shapes[other.id].buffer(TOLERANCE_M)))
                    if line is not None and line.length >= DOOR_MIN_M and (best is None or line.length > best[0]):
                        best = (line.length, k, line)
                if best is None:
                    continue
                mid = best[2].interpolate(0.5, normalized=True)
                self._door_nodes(fl, f"d-g{fl.index}-{next(counter)}", mid, [s.id, rooms[best[1]].id], True, None)
                grew.append(s.id)
            if not grew:
                return
            reached.update(grew)
            todo = [s for s in todo if s.id not in reached]

    def _mesh(self, fl: _Floor, piece: Polygon, points: list[tuple[int, Point]]) -> None:
        """Portal nodes through one walkable polygon, joined across its triangles, the points attached."""
        poly: BaseGeometry = piece
        if points:
            boundary = piece.boundary
            snapped = [boundary.interpolate(boundary.project(pt)) for _, pt in points]
            candidate = shapely.snap(piece, MultiPoint(snapped), 0.01)
            if candidate.is_valid and isinstance(candidate, Polygon):
                poly = candidate
        poly = shapely.segmentize(poly, SEGMENT_M)
        triangles = shapely.get_parts(shapely.constrained_delaunay_triangles(poly))
        triangles = np.array([t for t in triangles if isinstance(t, Polygon) and t.area > 1e-9], dtype=object)
        if not len(triangles):
            return
        corners = shapely.get_coordinates(triangles).reshape(-1, 4, 2)[:, :3]
        flat = np.round(corners.reshape(-1, 2), 6)
        _, vertex = np.unique(flat, axis=0, return_inverse=True)
        vertex = vertex.reshape(-1, 3)
        a = vertex[:, [0, 1, 2]]
        b = vertex[:, [1, 2, 0]]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keys = (lo.astype(np.int64) << 32) | hi.astype(np.int64)
        uniq, inverse, counts = np.unique(keys.ravel(), return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1, 3)
        interior = counts == 2
        # a portal per interior edge, in the order of first appearance
        mids = (corners + corners[:, [1, 2, 0]]) / 2
        first_seen = np.full(len(uniq), -1, dtype=np.int64)
        order = np.argsort(inverse.ravel(), kind="stable")
        first_pos = order[np.searchsorted(inverse.ravel()[order], np.arange(len(uniq)))]
        first_seen[:] = first_pos
        portal_edges = np.flatnonzero(interior)
        portal_edges = portal_edges[np.argsort(first_seen[portal_edges], kind="stable")]
        local_of_edge = np.full(len(uniq), -1, dtype=np.int64)
        mids_flat = mids.reshape(-1, 2)
        base = len(fl.nodes)
        for j, e in enumerate(portal_edges.tolist()):
            x, y = mids_flat[first_seen[e]]
            fl.nodes.append(_Node("", float(x), float(y), NavNodeKind.corridor))
            local_of_edge[e] = base + j
        tri_portals = local_of_edge[inverse]  # (triangles, 3), -1 where the side is the outline
        for t in range(len(triangles)):
            ps = [int(p) for p in tri_portals[t] if p >= 0]
            if not ps:  # a lone triangle: one node in its middle
                c = corners[t].mean(axis=0)
                fl.nodes.append(_Node("", float(c[0]), float(c[1]), NavNodeKind.corridor))
                tri_portals[t, 0] = len(fl.nodes) - 1
                continue
            fl.edges.extend(itertools.combinations(ps, 2))
        if points:
            tree = shapely.STRtree(triangles)
            in_triangle: dict[int, list[int]] = defaultdict(list)
            for local, pt in points:
                hits = sorted(int(k) for k in tree.query(pt, predicate="dwithin", distance=TOLERANCE_M))
                if not hits:
                    hits = [int(tree.query_nearest(pt)[0])]
                for t in hits:
                    in_triangle[t].append(local)
                    fl.edges.extend((local, int(p)) for p in tri_portals[t] if p >= 0)
            for t in sorted(in_triangle):
                fl.edges.extend(itertools.combinations(sorted(set(in_triangle[t])), 2))
        inside = piece.buffer(LOS_SLACK_M)
        shapely.prepare(inside)
        self._simplify(fl, base, inside)

    def _simplify(self, fl: _Floor, base: int, inside: BaseGeometry) -> None:
        """Cut chains of degree-2 corridor nodes (from `base` on) down to what line of sight needs."""
        graph: nx.Graph[int] = nx.Graph()
        graph.add_edges_from((u, v) for u, v in fl.edges if u != v and (u >= base or v >= base))
        chain_nodes = [g for g in graph if g >= base and graph.degree(g) == 2 and fl.nodes[g].kind is NavNodeKind.corridor]
        if not chain_nodes:
            return
        sub = graph.subgraph(chain_nodes)
        drop: set[int] = set()
        add: list[tuple[int, int]] = []
        for comp in sorted(nx.connected_components(sub), key=min):
            ends = [g for g in comp if sub.degree(g) < 2]
            if not ends:  # a ring of corridor nodes: leave it
                continue
            start = min(ends)
            seq = [start]
            prev = -1
            while True:
                nxt = [g for g in sub.neighbors(seq[-1]) if g != prev]
                if not nxt:
                    break
                prev = seq[-1]
                seq.append(nxt[0])
            outer_a = [g for g in graph.neighbors(seq[0]) if g not in comp]
            outer_b = [g for g in graph.neighbors(seq[-1]) if g not in comp]
            if len(seq) == 1:
                if len(outer_a) != 2:
                    continue
                full = [outer_a[0], seq[0], outer_a[1]]
            else:
                if not outer_a or not outer_b:
                    continue
                full = [outer_a[0], *seq, outer_b[0]]
            if full[0] == full[-1]:
                continue
            xy = np.array([(fl.nodes[g].x, fl.nodes[g].y) for g in full])
            kept = [0]
            i = 0
            while i < len(full) - 1:
                ahead = np.arange(i + 1, min(len(full), i + 1 + LOS_WINDOW))
                lines = shapely.linestrings(np.stack([np.repeat(xy[i:i + 1], len(ahead), axis=0), xy[ahead]], axis=1))
                seen = np.flatnonzero(shapely.covers(inside, lines))
                j = int(ahead[seen[-1]]) if len(seen) else i + 1
                kept.append(j)
                i = j
            if len(kept) == len(full):
                continue
            keep = {full[k] for k in kept}
            drop.update(g for g in seq if g not in keep)
            add.extend((full[p], full[q]) for p, q in itertools.pairwise(kept))
        if drop:
            fl.edges[:] = [(u, v) for u, v in fl.edges if u not in drop and v not in drop] + add
            for g in drop:
                fl.nodes[g].dropped = True

    # -- the graph -----------------------------------------------------------------------------------------------

    def _assemble(self, cross: list[tuple[tuple[int, int], tuple[int, int], NavEdgeKind, bool]]) -> NavigationGraph:
        nodes: list[NavNode] = []
        edges: list[NavEdge] = []
        ids: list[list[str]] = []
        for fl in self.floors:
            names: list[str] = []
            k = 0
            for node in fl.nodes:
                if node.dropped:
                    names.append("")
                    continue
                if not node.id:
                    k += 1
                    node.id = self._id(f"n-{fl.index}-{k}")
                names.append(node.id)
                nodes.append(NavNode(id=node.id, x=round(node.x, _ROUND), y=round(node.y, _ROUND), floor=fl.id,
                                     kind=node.kind, space_id=node.space_id, name=node.name))
            ids.append(names)
            seen: set[tuple[int, int]] = set()
            for u, v in fl.edges:
                if u == v:
                    continue
                key = (u, v) if u < v else (v, u)
                if key in seen:
                    continue
                seen.add(key)
                ok = fl.nodes[u].accessible and fl.nodes[v].accessible
                edges.append(NavEdge(from_node=names[key[0]], to_node=names[key[1]], kind=NavEdgeKind.walk,
                                     accessible=ok))
        for (fa, a), (fb, b), kind, step_free in cross:
            edges.append(NavEdge(from_node=ids[fa][a], to_node=ids[fb][b], kind=kind, accessible=step_free))
        if len(nodes) > MAX_NAV_NODES or len(edges) > 4 * MAX_NAV_NODES:
            raise ValueError(f"the generated navigation graph has {len(nodes)} nodes and {len(edges)} edges: "
                             f"more than the {MAX_NAV_NODES} nodes a site may have")
        graph = NavigationGraph(nodes=nodes, edges=edges, generated=True, geometry_hash=geometry_hash(self.site))
        self._report(graph)
        return graph

    def _report(self, graph: NavigationGraph) -> None:
        index = {n.id: i for i, n in enumerate(graph.nodes)}
        g: nx.Graph[int] = nx.Graph()
        g.add_nodes_from(range(len(index)))
        g.add_edges_from((index[e.from_node], index[e.to_node]) for e in graph.edges)
        anchors: dict[str, list[int]] = defaultdict(list)
        for i, n in enumerate(graph.nodes):
            if n.space_id is not None:
                anchors[n.space_id].append(i)
        rooms = [s.id for s in self.site.spaces if _is_room(s)]
        self.unreachable = _unreachable(g, anchors, rooms)
        if self.unreachable:
            shown = ", ".join(self.unreachable[:5]) + (f" and {len(self.unreachable) - 5} more"
                                                       if len(self.unreachable) > 5 else "")
            self.warnings.append(f"{len(self.unreachable)} spaces cannot be reached: {shown}")


def _edge_kind(kind: ConnectorKind, step_free: bool) -> NavEdgeKind:
    """Elevators ride; stairs and escalators climb; a step-free connector that is no elevator (a ramp, stairs
    marked accessible) is an elevator edge, since site/v1 has no ramp edge and stairs edges are never accessible."""
    if kind is ConnectorKind.elevator or step_free:
        return NavEdgeKind.elevator
    return NavEdgeKind.stairs
