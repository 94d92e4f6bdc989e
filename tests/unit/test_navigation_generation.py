"""The navigation graph generated from a site's geometry: doors, the walkable mesh, connectors, regeneration,
and routes over it (checked against a plain networkx Dijkstra)."""
from __future__ import annotations

import random
import re
import time

import networkx as nx
import pytest
from shapely.geometry import LineString, Polygon

from devkit.simulator import BuildingSpec, generate_building
from shared.domain.site import ID_PATTERN, NavigationGraph, SiteModel, parse_site_model, site_problems
from shared.domain.wayfinding import (
    CostModel,
    NavigationIndex,
    NoRoute,
    generate_navigation,
    geometry_hash,
    unreachable_spaces,
    with_navigation,
)


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _bare(site: SiteModel) -> SiteModel:
    return site.model_copy(update={"navigation": NavigationGraph()})


def _generated(site: SiteModel) -> SiteModel:
    out, gen = with_navigation(site)
    assert gen is not None and out.navigation.generated
    assert list(site_problems(out)) == []
    return out


def _plan(spaces: list[tuple[str, str, list[list[float]]]], floors: int = 1, **extra) -> SiteModel:
    """A site from (id, kind, polygon) spaces repeated on every floor (ids prefixed with the floor)."""
    data = {
        "buildingId": "plan", "name": "Plan",
        "floors": [{"id": f"f{f}", "name": f"Level {f}", "ordinal": f, "outline": _rect(-1, -1, 101, 101)}
                   for f in range(floors)],
        "spaces": [{"id": f"f{f}-{sid}" if floors > 1 else sid, "name": sid.title(), "kind": kind, "floor": f"f{f}",
                    "polygon": poly} for f in range(floors) for sid, kind, poly in spaces],
    }
    data.update(extra)
    return parse_site_model(data)


@pytest.fixture(scope="module")
def office() -> tuple[SiteModel, SiteModel]:
    """The simulated office (3 floors) with its hand-written graph, and with a generated one instead."""
    site = generate_building(BuildingSpec(floors=3), seed=4)
    return site, _generated(_bare(site))


def test_every_room_of_the_simulated_office_gets_an_inferred_door_on_its_corridor_wall(office):
    site, gen = office
    rooms = [s for s in site.spaces if s.kind.value != "walkway"]
    assert unreachable_spaces(gen) == [] and unreachable_spaces(site) == []
    doors = {}
    for n in gen.navigation.nodes:
        if n.kind.value == "door":
            doors.setdefault(n.space_id, []).append(n)
    assert set(doors) == {s.id for s in rooms}
    for space in rooms:
        xs = [p[0] for p in space.polygon]
        ys = {p[1] for p in space.polygon}
        (door,) = doors[space.id]  # one shared wall with the corridor: one door in its middle
        assert door.y in ys & {8.0, 11.0}
        assert door.x == pytest.approx((min(xs) + max(xs)) / 2, abs=0.01)


def test_cross_floor_routes_take_the_stairs_and_step_free_ones_the_elevator(office):
    _, gen = office
    index = NavigationIndex.from_site(gen)
    kind = {n.id: n.kind.value for n in gen.navigation.nodes}
    floor_of = {n.id: n.floor for n in gen.navigation.nodes}
    for origin, target in [("L0-R03", "L2-R10"), ("L2-R05", "L0-R01"), ("L1-R08", "L2-R02")]:
        fast = index.route(origin, target)
        assert any(line.startswith("Take the stairs") for line in fast.instructions)
        step_free = index.route(origin, target, accessible=True)
        assert any(line.startswith("Take the elevator") for line in step_free.instructions)
        assert not any("stairs" in line for line in step_free.instructions)
        hops = [(a, b) for a, b in zip(step_free.nodes, step_free.nodes[1:]) if floor_of[a] != floor_of[b]]
        assert hops and all(kind[a] == kind[b] == "elevator" for a, b in hops)  # a ride shows as one hop
        assert {leg.floor for leg in fast.legs} >= {origin[:2], target[:2]}


def test_a_straight_corridor_reads_as_one_walk_not_a_zigzag(office):
    site, gen = office
    index = NavigationIndex.from_site(gen)
    south = sorted((s for s in site.spaces if s.floor == "L1" and s.id.startswith("L1-R") and s.polygon[0][1] == 0),
                   key=lambda s: s.polygon[0][0])
    route = index.route(south[0].id, south[-1].id)
    assert len(route.instructions) == 3, route.instructions
    leave, walk, arrive = route.instructions
    assert leave == f"Leave {south[0].name} through its door."
    assert re.fullmatch(r"Turn (left|right) and walk \d+ m along the corridor\.", walk)
    assert arrive == f"{south[-1].name} is on your {'right' if 'right' in walk else 'left'}."
    # the walk is the corridor's middle, straight: a few metres more than the door-to-door distance
    (leg,) = route.legs
    assert all(y == pytest.approx(9.5) for _x, y in leg.polyline[1:-1])
    assert route.distance_m == pytest.approx(abs(leg.polyline[-1][0] - leg.polyline[0][0]), abs=4.0)
    corridor_nodes = [n for n in gen.navigation.nodes if n.floor == "L1" and n.kind.value == "corridor"]
    assert len(corridor_nodes) <= 45  # a 60 m corridor: nodes near doors, chains between them cut down (49 uncut)


def test_a_room_without_a_shared_wall_is_unreachable_and_a_room_behind_a_room_gets_a_door_through_it():
    site = _plan([("hall", "walkway", _rect(0, 0, 40, 3)),
                  ("front", "office", _rect(0, 3, 10, 10)),
                  ("back", "office", _rect(0, 10, 10, 16)),  # touches only "front"
                  ("island", "office", _rect(20, 20, 30, 30)),  # touches nothing
                  ("kitchen", "kitchen", _rect(30, 3, 40, 10))])
    gen = generate_navigation(site)
    assert gen.unreachable_spaces == ("island",)
    assert any("island" in w for w in gen.warnings)
    out = site.model_copy(update={"navigation": gen.graph})
    assert unreachable_spaces(out) == ["island"]
    index = NavigationIndex.from_site(out)
    route = index.route("kitchen", "back")
    spaces_passed = [n.space_id for n in out.navigation.nodes if n.id in route.nodes]
    assert "front" in spaces_passed  # through the front room
    back_doors = [n for n in out.navigation.nodes if n.space_id == "back"]
    assert back_doors and all(n.y == pytest.approx(10) and 0 < n.x < 10 for n in back_doors)
    with pytest.raises(NoRoute, match="Island has no door"):
        index.route("kitchen", "island")
    assert "island" not in index.distances_from("kitchen")


def test_given_doors_are_used_and_rooms_with_an_opening_get_no_inferred_door():
    uuid = "0b3c3e9e-4bb6-4f5b-9d2e-0f5c9a8d7e61"
    site = _plan([("hall", "walkway", _rect(0, 0, 40, 3)), ("a", "office", _rect(0, 3, 10, 10)),
                  ("b", "office", _rect(10, 3, 20, 10))],
                 doors=[{"id": uuid, "floor": "f0", "segment": [[1, 3], [2, 3]], "spaces": []},
                        {"id": "ab", "floor": "f0", "segment": [[10, 8], [10, 9]], "spaces": ["a", "b"],
                         "accessible": False}])
    out = _generated(site)
    nodes = {n.id: n for n in out.navigation.nodes}
    assert nodes[f"d-{uuid}"].space_id == "a" and (nodes[f"d-{uuid}"].x, nodes[f"d-{uuid}"].y) == (1.5, 3)
    assert [n.space_id for n in out.navigation.nodes if n.space_id == "a"].count("a") == 2  # its door and a->b
    assert {nodes["d-ab"].space_id, nodes["d-ab.1"].space_id} == {"a", "b"}
    b_doors = [n for n in out.navigation.nodes if n.space_id == "b"]
    assert len(b_doors) == 2  # the room-room door and one inferred onto the hall (a's opening is a's, not b's)
    index = NavigationIndex.from_site(out)
    assert "d-ab" in index.route("a", "b").nodes or "d-ab.1" in index.route("a", "b").nodes
    # the a-b door is not accessible: step-free goes round through the hall
    assert not {"d-ab", "d-ab.1"} & set(index.route("a", "b", accessible=True).nodes)
    for n in out.navigation.nodes:
        assert re.fullmatch(ID_PATTERN, n.id) and len(n.id) <= 64


def test_hand_written_graphs_win_and_a_stale_generated_graph_is_regenerated(office):
    site, gen = office
    same, report = with_navigation(site)
    assert same is site and report is None
    again, report = with_navigation(gen)
    assert again is gen and report is None
    assert gen.navigation.geometry_hash == geometry_hash(gen) and len(geometry_hash(gen)) == 32
    renamed = gen.model_copy(update={"name": "Renamed HQ"})  # not geometry: kept
    assert with_navigation(renamed)[1] is None
    data = gen.model_dump(by_alias=True)
    data["obstacles"] = [{"id": "desk", "floor": "L0", "polygon": _rect(20, 8, 22, 11)}]
    moved = parse_site_model(data)
    assert geometry_hash(moved) != geometry_hash(gen)
    fresh, report = with_navigation(moved)
    assert report is not None and fresh.navigation.geometry_hash == geometry_hash(moved)
    assert fresh.navigation.model_dump() != gen.navigation.model_dump()


def test_generation_is_deterministic(office):
    site, gen = office
    one = generate_navigation(_bare(site)).graph.model_dump_json(by_alias=True)
    reparsed = parse_site_model(_bare(site).model_dump(by_alias=True, mode="json"))
    two = generate_navigation(reparsed).graph.model_dump_json(by_alias=True)
    assert one == two == gen.navigation.model_dump_json(by_alias=True)


def test_a_corridor_around_a_courtyard_is_walked_around_and_a_two_part_room_is_reached_by_either_part():
    ring = {"id": "ring", "name": "Ring", "kind": "walkway", "floor": "f0", "polygon": _rect(0, 0, 30, 30),
            "holes": [_rect(3, 3, 27, 27)]}
    west = {"id": "west", "name": "West", "kind": "office", "floor": "f0", "polygon": _rect(4, 10, 8, 20)}
    split = {"id": "split", "name": "Split", "kind": "office", "floor": "f0", "polygon": _rect(40, 0, 50, 10),
             "parts": [{"polygon": _rect(22, 10, 27, 20)}]}  # the part inside the courtyard touches the ring
    site = parse_site_model({"buildingId": "c", "name": "Court", "floors": [
        {"id": "f0", "name": "G", "ordinal": 0, "outline": _rect(-1, -1, 60, 60)}], "spaces": [ring, west, split]})
    gen = generate_navigation(site)
    assert gen.unreachable_spaces == ("west",)  # inside the courtyard, away from the ring's inner wall
    out = site.model_copy(update={"navigation": gen.graph})
    (door,) = [n for n in out.navigation.nodes if n.space_id == "split"]
    assert door.x == pytest.approx(27)
    court = Polygon(_rect(3, 3, 27, 27)).buffer(-0.05)
    index = NavigationIndex.from_site(out)
    for n in out.navigation.nodes:
        assert not court.contains(LineString([(n.x, n.y), (n.x, n.y + 1e-3)]))
    route = index.route((1.5, 15, "f0"), "split")  # from the west side of the ring to the east wall
    assert route.distance_m > 40  # round the courtyard, not across it (25.5 m)
    assert not LineString(route.legs[0].polyline).intersects(court)


def test_an_obstacle_across_a_corridor_cuts_it_and_one_leaving_a_gap_is_walked_round():
    rooms = [("hall", "walkway", _rect(0, 0, 40, 3)), ("west", "office", _rect(0, 3, 5, 10)),
             ("east", "office", _rect(35, 3, 40, 10))]
    wall = _plan(rooms, obstacles=[{"id": "wall", "floor": "f0", "polygon": _rect(19, -0.5, 21, 3.5)}])
    index = NavigationIndex.from_site(_generated(wall))
    with pytest.raises(NoRoute):
        index.route("west", "east")
    assert len(generate_navigation(wall).unreachable_spaces) == 1
    counter = _plan(rooms, obstacles=[{"id": "desk", "floor": "f0", "polygon": _rect(19, 0.8, 21, 3.5)}])
    index = NavigationIndex.from_site(_generated(counter))
    route = index.route("west", "east")
    desk = Polygon(_rect(19, 0.8, 21, 3.5)).buffer(-0.05)
    assert not LineString(route.legs[0].polyline).intersects(desk)
    assert all(y < 0.85 for x, y in route.legs[0].polyline if 19 <= x <= 21)


def test_connectors_join_floors_with_the_right_edges_and_accessibility():
    spaces = [("hall", "walkway", _rect(0, 0, 40, 3)), ("room", "office", _rect(0, 3, 10, 10)),
              ("esc", "escalator", _rect(10, 3, 20, 10)), ("lift", "elevator", _rect(20, 3, 25, 10)),
              ("steps", "stairs", _rect(25, 3, 30, 10))]
    connectors = [{"id": "esc", "kind": "escalator", "spaces": ["f0-esc", "f1-esc", "f2-esc"]},
                  {"id": "stair", "kind": "stairs", "spaces": ["f2-steps", "f1-steps", "f0-steps"],
                   "accessible": True}]
    site = _generated(_plan(spaces, floors=3, connectors=connectors))
    cross = {}
    nodes = {n.id: n for n in site.navigation.nodes}
    for e in site.navigation.edges:
        a, b = nodes[e.from_node], nodes[e.to_node]
        if a.floor != b.floor:
            cross.setdefault(a.space_id[3:], []).append((e.kind.value, e.accessible, {a.floor, b.floor}))
    assert cross["esc"] == [("stairs", False, {"f0", "f1"}), ("stairs", False, {"f1", "f2"})]
    assert cross["steps"] == [("elevator", True, {"f0", "f1"}), ("elevator", True, {"f1", "f2"})]  # marked step-free
    assert cross["lift"] == [("elevator", True, {"f0", "f1"}), ("elevator", True, {"f1", "f2"})]  # a stacked shaft
    index = NavigationIndex.from_site(site)
    assert index.route("f0-room", "f2-room", accessible=True).eta_s > index.route("f0-room", "f2-room").eta_s


def _venue(units: int, slots: int, levels: int = 3) -> dict:
    """A synthetic venue: per level `units` corridors with a band of 4 m x 8 m rooms on each side (`slots` a
    side), two halls joining the corridors' ends, elevator and stairs rooms stacked on every level."""
    band, corridor = 8.0, 2.4
    depth = 2 * band + corridor
    length, height = 8 + 4 * slots, units * depth
    cores = {(0, 1, 0): "elevator", (units - 1, slots - 2, 1): "elevator", (units // 2, slots // 2, 0): "stairs",
             (0, slots - 1, 1): "stairs"}
    floors, spaces = [], []
    for f in range(levels):
        fid = f"V{f}"
        floors.append({"id": fid, "name": f"Level {f}", "ordinal": f, "outline": _rect(0, 0, length, height)})
        spaces.append({"id": f"{fid}-w", "name": "West hall", "kind": "walkway", "floor": fid,
                       "polygon": _rect(0, 0, 4, height)})
        spaces.append({"id": f"{fid}-e", "name": "East hall", "kind": "lobby", "floor": fid,
                       "polygon": _rect(length - 4, 0, length, height)})
        for u in range(units):
            y0 = u * depth
            spaces.append({"id": f"{fid}-c{u}", "name": f"Corridor {u}", "kind": "walkway", "floor": fid,
                           "polygon": _rect(0, y0 + band, length, y0 + band + corridor)})
            for side, (ya, yb) in enumerate(((y0, y0 + band), (y0 + band + corridor, y0 + depth))):
                for k in range(slots):
                    kind = cores.get((u, k, side), "office")
                    spaces.append({"id": f"{fid}-{u}.{side}.{k}", "name": f"{kind} {f}.{u}.{side}.{k}", "kind": kind,
                                   "floor": fid, "polygon": _rect(4 + 4 * k, ya, 8 + 4 * k, yb)})
    return {"buildingId": "venue", "name": "Venue", "floors": floors, "spaces": spaces}


def _reference_graph(site: SiteModel, accessible: bool, cost: CostModel = CostModel()) -> nx.DiGraph:
    """The time-weighted graph the index searches, written out for networkx (elevator cabins as extra nodes)."""
    g = nx.DiGraph()
    nodes = {n.id: n for n in site.navigation.nodes}
    ordinal = {f.id: f.ordinal for f in site.floors}
    g.add_nodes_from(nodes)
    for e in site.navigation.edges:
        if accessible and (not e.accessible or e.kind.value == "stairs"):
            continue
        a, b = nodes[e.from_node], nodes[e.to_node]
        rise = ordinal[b.floor] - ordinal[a.floor]
        if e.kind.value == "elevator":
            for n in (a.id, b.id):
                g.add_edge(n, ("cab", n), weight=cost.elevator_wait_s)
                g.add_edge(("cab", n), n, weight=0.0)
            g.add_edge(("cab", a.id), ("cab", b.id), weight=cost.elevator_s_per_floor * abs(rise))
            g.add_edge(("cab", b.id), ("cab", a.id), weight=cost.elevator_s_per_floor * abs(rise))
        elif rise:
            up, down = cost.stairs_up_s_per_floor, cost.stairs_down_s_per_floor
            g.add_edge(a.id, b.id, weight=up * rise if rise > 0 else -down * rise)
            g.add_edge(b.id, a.id, weight=down * rise if rise > 0 else -up * rise)
        else:
            w = ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5 / cost.walk_speed_mps
            g.add_edge(a.id, b.id, weight=w)
            g.add_edge(b.id, a.id, weight=w)
    return g


@pytest.fixture(scope="module")
def venue() -> SiteModel:
    return _generated(parse_site_model(_venue(units=2, slots=14)))


def test_routes_on_a_generated_graph_equal_a_plain_networkx_dijkstra(venue):
    index = NavigationIndex.from_site(venue)
    doors: dict[str, list[str]] = {}
    for n in venue.navigation.nodes:
        if n.space_id:
            doors.setdefault(n.space_id, []).append(n.id)
    rng = random.Random(5)
    spaces = sorted(doors)
    for accessible in (False, True):
        graph = _reference_graph(venue, accessible)
        for _ in range(40):
            origin, target = rng.sample(spaces, 2)
            times = nx.multi_source_dijkstra_path_length(graph, set(doors[origin]))
            expected = min(times.get(d, float("inf")) for d in doors[target])
            route = index.route(origin, target, accessible)
            assert route.eta_s == pytest.approx(expected)
            assert index.distances_from(origin, accessible)[target][1] == pytest.approx(expected)
            assert sum(leg.distance_m for leg in route.legs) == pytest.approx(route.distance_m)


def test_every_room_of_a_multi_level_venue_is_reached_across_levels(venue):
    index = NavigationIndex.from_site(venue)
    rooms = [s.id for s in venue.spaces if s.kind.value == "office"]
    for accessible in (False, True):
        reach = index.distances_from(rooms[0], accessible)
        share = sum(r in reach for r in rooms) / len(rooms)
        assert share == 1.0
        assert {sid[:2] for sid in reach} == {"V0", "V1", "V2"}


def test_a_2000_room_venue_generates_and_indexes_in_a_few_seconds():
    site = parse_site_model(_venue(units=6, slots=56))
    rooms = [s for s in site.spaces if s.kind.value not in ("walkway", "lobby")]
    assert len(rooms) == 3 * 6 * 2 * 56 >= 2000
    start = time.perf_counter()
    gen = generate_navigation(site)
    generated_s = time.perf_counter() - start
    out = site.model_copy(update={"navigation": gen.graph})
    start = time.perf_counter()
    index = NavigationIndex.from_site(out)
    index_s = time.perf_counter() - start
    print(f"generate {generated_s:.2f} s, index {index_s:.2f} s, {len(gen.graph.nodes)} nodes, "
          f"{len(gen.graph.edges)} edges")
    assert gen.unreachable_spaces == () and list(site_problems(out)) == []
    assert generated_s < 10 and index_s < 5  # a few seconds, with room for a loaded CI machine
    reach = index.distances_from(rooms[0].id)
    assert all(r.id in reach for r in rooms)
