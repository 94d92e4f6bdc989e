"""Wayfinding on small hand-built graphs whose answers are worked out by hand, and against a plain Dijkstra."""
from __future__ import annotations

import heapq
import math
import random

import pytest

from devkit.benchmarks.queries import big_building
from devkit.simulator import BuildingSpec, generate_building
from shared.domain.site import parse_site_model
from shared.domain.wayfinding import CostModel, NavigationIndex, NoRoute, UnknownPlace
from tests.support.sites import small_site

WALK = 1.3  # m/s, the default cost model


def _site(floors: list[tuple[str, str, int]], spaces: list[tuple[str, str, str]], nodes: list[dict],
          edges: list[dict]):
    """A site from (id, name, ordinal) floors, (id, name, floor) spaces (a 4 m square near the origin each),
    nodes and edges."""
    outline = [[-50, -50], [50, -50], [50, 50], [-50, 50]]
    return parse_site_model({
        "buildingId": "t", "name": "Test",
        "floors": [{"id": f, "name": name, "ordinal": o, "elevation": 3.5 * o, "outline": outline}
                   for f, name, o in floors],
        "spaces": [{"id": s, "name": name, "kind": "conferenceroom", "floor": f,
                    "polygon": [[0, 0], [4, 0], [4, 4], [0, 4]], "capacity": 4} for s, name, f in spaces],
        "navigation": {"nodes": nodes, "edges": edges},
    })


def _node(nid: str, x: float, y: float, floor: str = "f0", kind: str = "corridor", **extra) -> dict:
    return {"id": nid, "x": x, "y": y, "floor": floor, "kind": kind, **extra}


def _door(nid: str, x: float, y: float, space: str, floor: str = "f0") -> dict:
    return _node(nid, x, y, floor, "door", spaceId=space)


# A diamond: S -(5)- m1 -(9.85)- T and S -(6)- m2 -(6)- T; the lower way is shorter.
def _diamond():
    return _site(
        [("f0", "Ground", 0)], [("S", "Spruce", "f0"), ("T", "Teak", "f0"), ("U", "Umber", "f0")],
        [_door("s", 0, 0, "S"), _node("m1", 3, 4), _node("m2", 6, 0), _door("t", 12, 0, "T")],
        [{"from": "s", "to": "m1"}, {"from": "m1", "to": "t"}, {"from": "s", "to": "m2"}, {"from": "m2", "to": "t"}],
    )


def test_shortest_path_and_its_distance_on_a_tiny_graph():
    route = NavigationIndex.from_site(_diamond()).route("S", "T")
    assert route.nodes == ("s", "m2", "t")
    assert route.distance_m == pytest.approx(12.0)
    assert route.eta_s == pytest.approx(12.0 / WALK)
    assert [(leg.floor, leg.polyline) for leg in route.legs] == [("f0", ((0, 0), (6, 0), (12, 0)))]


def test_a_space_without_a_door_anchors_to_the_node_nearest_its_centroid():
    # Umber (centroid 2, 2) has no door node: m1 at (3, 4) is nearest, so Umber -> Teak is m1 -> t.
    index = NavigationIndex.from_site(_diamond())
    route = index.route("U", "T")
    assert route.nodes == ("m1", "t")
    assert route.distance_m == pytest.approx(math.hypot(9, 4))


def test_a_point_anchors_to_the_nearest_node_on_its_own_floor_plus_the_straight_walk():
    index = NavigationIndex.from_site(_diamond())
    route = index.route((7, 3, "f0"), "T")  # m2 (6, 0) is nearest: sqrt(10) away, then 6 m to t
    assert route.nodes == ("m2", "t")
    assert route.distance_m == pytest.approx(math.sqrt(10) + 6)
    assert route.eta_s == pytest.approx((math.sqrt(10) + 6) / WALK)
    assert route.legs[0].polyline == ((7, 3), (6, 0), (12, 0))
    back = index.route("S", (11, 1, "f0"))  # ends at t, then sqrt(2) to the point
    assert back.nodes == ("s", "m2", "t")
    assert back.legs[-1].polyline[-1] == (11, 1)
    assert back.distance_m == pytest.approx(12 + math.sqrt(2))


def test_unknown_space_or_floor_is_a_value_error_naming_it():
    index = NavigationIndex.from_site(_diamond())
    with pytest.raises(UnknownPlace, match="unknown space 'nowhere'") as err:
        index.route("S", "nowhere")
    assert isinstance(err.value, ValueError)
    with pytest.raises(UnknownPlace, match="unknown floor 'f9'"):
        index.route((1, 1, "f9"), "T")
    with pytest.raises(UnknownPlace, match="unknown space 'nowhere'"):
        index.distances_from("nowhere")
    with pytest.raises(UnknownPlace, match="unknown floor 'f9'"):
        index.distances_from((0, 0, "f9"))


# Three floors; stairs and an elevator at the same spot, 10 m from each floor's room door.
def _tower(stairs: bool = True, elevator: bool = True):
    floors = [("f0", "Level 0", 0), ("f1", "Level 1", 1), ("f2", "Level 2", 2)]
    spaces = [(f"r{i}", f"Room {i}", f"f{i}") for i in range(3)]
    nodes, edges = [], []
    for i in range(3):
        f = f"f{i}"
        nodes += [_door(f"d{i}", 0, 0, f"r{i}", f), _node(f"c{i}", 10, 0, f),
                  _node(f"st{i}", 10, 2, f, "stairs"), _node(f"el{i}", 10, -2, f, "elevator")]
        edges += [{"from": f"d{i}", "to": f"c{i}"}, {"from": f"c{i}", "to": f"st{i}"}, {"from": f"c{i}", "to": f"el{i}"}]
        if i:
            if stairs:
                edges.append({"from": f"st{i - 1}", "to": f"st{i}", "kind": "stairs", "accessible": False})
            if elevator:
                edges.append({"from": f"el{i - 1}", "to": f"el{i}", "kind": "elevator"})
    if not elevator:  # keep every node connected
        edges += [{"from": f"el{i}", "to": f"st{i}"} for i in range(3)]
    return _site(floors, spaces, nodes, edges)


def test_stairs_are_faster_for_one_floor_and_the_elevator_when_step_free():
    index = NavigationIndex.from_site(_tower())
    walk = 2 * 12 / WALK  # door -> corridor -> core and back on the other floor
    stairs = index.route("r0", "r1")
    assert stairs.nodes == ("d0", "c0", "st0", "st1", "c1", "d1")
    assert stairs.eta_s == pytest.approx(walk + 12)  # 12 s a floor up
    assert stairs.distance_m == pytest.approx(24)  # vertical travel adds no metres
    assert "Take the stairs up 1 floor to Level 1." in stairs.instructions
    lift = index.route("r0", "r1", accessible=True)
    assert lift.nodes == ("d0", "c0", "el0", "el1", "c1", "d1")
    assert lift.eta_s == pytest.approx(walk + 30 + 4)
    assert "Take the elevator to Level 1." in lift.instructions
    assert not any("stairs" in line for line in lift.instructions)


def test_the_elevator_wait_is_paid_once_per_ride_and_stairs_down_are_cheaper_than_up():
    index = NavigationIndex.from_site(_tower())
    walk = 24 / WALK
    ride = index.route("r0", "r2", accessible=True)
    assert ride.eta_s == pytest.approx(walk + 30 + 2 * 4)
    assert [line for line in ride.instructions if "elevator" in line and "Take" in line] == [
        "Take the elevator to Level 2."]
    assert index.route("r0", "r2").eta_s == pytest.approx(walk + 2 * 12)  # 24 s of stairs beats 38 s of lift
    down = index.route("r2", "r0")
    assert down.eta_s == pytest.approx(walk + 2 * 9)
    assert "Take the stairs down 2 floors to Level 0." in down.instructions
    slow_lift = NavigationIndex.from_site(_tower(), CostModel(elevator_wait_s=0.0, elevator_s_per_floor=1.0))
    assert slow_lift.route("r0", "r2").nodes[2:4] == ("el0", "el2")  # cabin nodes never show; the lift wins now


def test_legs_split_at_every_floor_change_but_not_on_floors_passed_through():
    index = NavigationIndex.from_site(_tower())
    route = index.route("r0", "r2")
    assert [leg.floor for leg in route.legs] == ["f0", "f2"]
    assert route.legs[0].polyline == ((0, 0), (10, 0), (10, 2))
    assert route.legs[1].polyline == ((10, 2), (10, 0), (0, 0))
    assert [leg.distance_m for leg in route.legs] == pytest.approx([12, 12])
    small = NavigationIndex.from_site(parse_site_model(small_site())).route("r-oak", "o-1")
    assert [leg.floor for leg in small.legs] == ["f0", "f1"]
    assert small.legs[0].polyline[-1] == small.legs[1].polyline[0] == (38, 18)  # through the stairs
    assert sum(leg.distance_m for leg in small.legs) == pytest.approx(small.distance_m)


def test_a_route_can_cross_a_middle_floor_between_two_stairwells_both_ways():
    # f0 -(west stairs)- f1 -(east stairs)- f2: the way up walks 30 m across f1
    floors = [("f0", "Level 0", 0), ("f1", "Level 1", 1), ("f2", "Level 2", 2)]
    nodes = [_door("d0", 0, 0, "r0", "f0"), _node("w0", 0, 10, "f0", "stairs"),
             _node("w1", 0, 10, "f1", "stairs"), _node("e1", 30, 10, "f1", "stairs"),
             _node("e2", 30, 10, "f2", "stairs"), _door("d2", 30, 0, "r2", "f2")]
    edges = [{"from": "d0", "to": "w0"}, {"from": "w0", "to": "w1", "kind": "stairs", "accessible": False},
             {"from": "w1", "to": "e1"}, {"from": "e1", "to": "e2", "kind": "stairs", "accessible": False},
             {"from": "e2", "to": "d2"}]
    index = NavigationIndex.from_site(_site(floors, [("r0", "Room 0", "f0"), ("r2", "Room 2", "f2")], nodes, edges))
    up, down = index.route("r0", "r2"), index.route("r2", "r0")
    assert up.nodes == ("d0", "w0", "w1", "e1", "e2", "d2")
    assert down.nodes == tuple(reversed(up.nodes))
    assert up.eta_s == pytest.approx(50 / WALK + 24) and down.eta_s == pytest.approx(50 / WALK + 18)
    assert [leg.floor for leg in up.legs] == ["f0", "f1", "f2"]
    assert [leg.distance_m for leg in up.legs] == pytest.approx([10, 30, 10])
    assert index.distances_from("r2")["r0"] == pytest.approx((50, 50 / WALK + 18))


def test_step_free_route_avoids_stairs_and_says_why_there_is_none():
    index = NavigationIndex.from_site(_tower(elevator=False))
    assert index.route("r0", "r1").eta_s == pytest.approx(24 / WALK + 12)
    with pytest.raises(NoRoute) as err:
        index.route("r0", "r1", accessible=True)
    assert err.value.reason == "no step-free route from Room 0 to Room 1: only stairs connect Level 0 and Level 1"
    assert str(err.value) == err.value.reason
    # the same floor still works step-free, and step-free distances leave the other floors out
    assert index.route((5, 1, "f0"), "r0", accessible=True).distance_m == pytest.approx(math.hypot(5, 1))
    assert set(index.distances_from("r0", accessible=True)) == {"r0"}
    assert set(index.distances_from("r0")) == {"r0", "r1", "r2"}


def test_no_route_reasons_name_a_closed_elevator_or_passage():
    site = _tower(stairs=False).model_dump(by_alias=True)
    site["navigation"]["edges"] = [dict(e, accessible=e["kind"] != "elevator") for e in site["navigation"]["edges"]]
    index = NavigationIndex.from_site(parse_site_model(site))
    assert index.route("r0", "r2").eta_s == pytest.approx(24 / WALK + 38)
    with pytest.raises(NoRoute, match="^no step-free route from Room 0 to Room 2: the elevator between Level 0 and "
                                      "Level 2 is marked not accessible$"):
        index.route("r0", "r2", accessible=True)
    kerb = _diamond().model_dump(by_alias=True)
    kerb["navigation"]["edges"] = [dict(e, accessible="t" not in (e["from"], e["to"]))
                                   for e in kerb["navigation"]["edges"]]
    with pytest.raises(NoRoute, match="passage marked not accessible near (the )?m[12]$"):
        NavigationIndex.from_site(parse_site_model(kerb)).route("S", "T", accessible=True)


def test_a_walk_edge_marked_not_accessible_is_avoided_when_step_free():
    # the short way S-m2-T has a kerb; step-free goes over m1
    site = _site([("f0", "Ground", 0)], [("S", "Spruce", "f0"), ("T", "Teak", "f0")],
                 [_door("s", 0, 0, "S"), _node("m1", 3, 4), _node("m2", 6, 0, name="Kerb"), _door("t", 12, 0, "T")],
                 [{"from": "s", "to": "m1"}, {"from": "m1", "to": "t"}, {"from": "s", "to": "m2"},
                  {"from": "m2", "to": "t", "accessible": False}])
    index = NavigationIndex.from_site(site)
    assert index.route("S", "T").nodes == ("s", "m2", "t")
    assert index.route("S", "T", accessible=True).nodes == ("s", "m1", "t")


def test_a_space_on_a_floor_without_navigation_is_unreachable_not_unknown():
    data = small_site()
    data["floors"].append({"id": "f2", "name": "Roof", "ordinal": 2, "elevation": 7,
                           "outline": data["floors"][0]["outline"]})
    data["spaces"].append({"id": "roof", "name": "Roof terrace", "kind": "terrace", "floor": "f2",
                           "polygon": [[0, 0], [10, 0], [10, 8], [0, 8]]})
    index = NavigationIndex.from_site(parse_site_model(data))
    with pytest.raises(NoRoute, match="Roof terrace"):
        index.route("r-oak", "roof")
    assert "roof" not in index.distances_from("r-oak")


# An L: west-east corridor, a corner named Kitchen, then north; Birch's door is just east of the north end.
def _l_corridor():
    return _site(
        [("f0", "Ground", 0)], [("A", "Ash", "f0"), ("B", "Birch", "f0")],
        [_door("da", 0, 5, "A"), _node("cw", 10, 5), _node("corner", 20, 5, name="Kitchen"), _node("cn", 20, 25),
         _door("db", 22, 25, "B")],
        [{"from": "da", "to": "cw"}, {"from": "cw", "to": "corner"}, {"from": "corner", "to": "cn"},
         {"from": "cn", "to": "db"}],
    )


def test_instructions_turn_left_one_way_and_right_the_other_on_an_l_shaped_corridor():
    index = NavigationIndex.from_site(_l_corridor())
    assert index.route("A", "B").instructions == (
        "Leave Ash through its door and walk 20 m along the corridor.",  # two straight segments, one step
        "Turn left at Kitchen and walk 20 m along the corridor.",  # east, then north: counter-clockwise
        "Birch is on your right.",
    )
    assert index.route("B", "A").instructions == (
        "Leave Birch through its door.",
        "Turn left and walk 20 m along the corridor.",  # west, then south
        "Turn right at Kitchen and walk 20 m along the corridor.",  # south, then west
        "Ash is ahead.",
    )


def test_a_nearly_straight_bend_is_not_a_turn_and_a_u_turn_is_turn_around():
    site = _site([("f0", "Ground", 0)], [("A", "Ash", "f0")],
                 [_door("da", 0, 0, "A"), _node("p", 10, 0), _node("q", 20, 5), _node("r", 12, 4)],
                 [{"from": "da", "to": "p"}, {"from": "p", "to": "q"}, {"from": "q", "to": "r"}])
    # da->p->q bends by 26.6 degrees (straight on); at q the heading swings by ~160 degrees
    lines = NavigationIndex.from_site(site).route("A", (12, 4, "f0")).instructions
    assert lines[0] == f"Leave Ash through its door and walk {round(10 + math.hypot(10, 5))} m along the corridor."
    assert lines[1] == "Turn around and walk 8 m along the corridor."
    assert lines[-1] == "You have arrived."


def test_same_place_is_a_zero_route():
    route = NavigationIndex.from_site(_diamond()).route("T", "T")
    assert (route.distance_m, route.eta_s) == (0, 0)
    assert route.instructions == ("You are already at Teak.",)


def test_distances_from_agrees_with_route_for_every_space_of_the_small_site():
    index = NavigationIndex.from_site(parse_site_model(small_site()))
    spaces = ["r-oak", "k-0", "o-1"]
    for accessible in (False, True):
        for origin in spaces + [(20, 15, "f1"), (1, 1, "f0")]:
            reach = index.distances_from(origin, accessible)
            assert set(reach) == set(spaces)
            for space in spaces:
                route = index.route(origin, space, accessible)
                assert reach[space] == pytest.approx((route.distance_m, route.eta_s))
    # by hand: Oak's door (5, 8) -> c0 (20, 12) -> stairs (38, 18) | up 12 s | (38, 18) -> c1 (20, 12)
    walk = math.hypot(15, 4) + math.hypot(18, 6) + math.hypot(18, 6)
    assert index.distances_from("r-oak")["o-1"] == pytest.approx((walk, walk / WALK + 12))
    assert index.distances_from("r-oak", accessible=True)["o-1"] == pytest.approx(
        (math.hypot(15, 4) + 2 * math.hypot(18, 6), (math.hypot(15, 4) + 2 * math.hypot(18, 6)) / WALK + 34))


def _reference_times(site, sources: list[str], accessible: bool) -> dict[str, float]:
    """Plain Dijkstra over every node (an elevator ride is board (30 s) + 4 s a floor + alight)."""
    nodes = {n.id: n for n in site.navigation.nodes}
    ordinal = {f.id: f.ordinal for f in site.floors}
    arcs: dict[str, list[tuple[str, float]]] = {}
    for e in site.navigation.edges:
        a, b = nodes[e.from_node], nodes[e.to_node]
        if accessible and not e.accessible:
            continue
        rise = ordinal[b.floor] - ordinal[a.floor]
        if e.kind.value == "elevator":
            for n in (a, b):
                arcs.setdefault(n.id, []).append(("lift:" + n.id, 30.0))
                arcs.setdefault("lift:" + n.id, []).append((n.id, 0.0))
            arcs["lift:" + a.id].append(("lift:" + b.id, 4.0 * abs(rise)))
            arcs["lift:" + b.id].append(("lift:" + a.id, 4.0 * abs(rise)))
        elif rise:
            arcs.setdefault(a.id, []).append((b.id, 12.0 * rise if rise > 0 else -9.0 * rise))
            arcs.setdefault(b.id, []).append((a.id, 9.0 * rise if rise > 0 else -12.0 * rise))
        else:
            w = math.hypot(a.x - b.x, a.y - b.y) / WALK
            arcs.setdefault(a.id, []).append((b.id, w))
            arcs.setdefault(b.id, []).append((a.id, w))
    best = {s: 0.0 for s in sources}
    heap = [(0.0, s) for s in sources]
    while heap:
        t, u = heapq.heappop(heap)
        if t > best[u]:
            continue
        for v, w in arcs.get(u, []):
            if t + w < best.get(v, math.inf):
                best[v] = t + w
                heapq.heappush(heap, (t + w, v))
    return best


@pytest.mark.parametrize("site", [
    generate_building(BuildingSpec(floors=3), seed=4),
    parse_site_model(big_building(floors=3, units=2, seed=3)),
], ids=["simulator", "bench-tower"])
def test_two_level_search_matches_a_plain_dijkstra_on_generated_buildings(site):
    index = NavigationIndex.from_site(site)
    doors: dict[str, list[str]] = {}
    for n in site.navigation.nodes:
        if n.space_id:
            doors.setdefault(n.space_id, []).append(n.id)
    rng = random.Random(1)
    for origin in rng.sample(sorted(doors), 8):
        for accessible in (False, True):
            reference = _reference_times(site, doors[origin], accessible)
            got = index.distances_from(origin, accessible)
            expected = {s: min(reference[d] for d in ds) for s, ds in doors.items()}
            assert {s: got[s][1] for s in got if s in doors} == pytest.approx(expected)
            assert set(got) == {s.id for s in site.spaces}  # spaces without doors anchor to a node
            target = rng.choice(sorted(doors))
            route = index.route(origin, target, accessible)
            assert route.eta_s == pytest.approx(expected[target])
            assert route.distance_m == pytest.approx(got[target][0])
            assert sum(leg.distance_m for leg in route.legs) == pytest.approx(route.distance_m)


def test_searches_are_cached_per_origin_and_mode_and_the_cache_is_bounded():
    index = NavigationIndex.from_site(parse_site_model(small_site()), cache_size=2)
    first = index.distances_from("r-oak")
    assert index.distances_from("r-oak") == first
    index.distances_from("k-0")
    index.distances_from("k-0", accessible=True)
    assert len(index._cache) == 2
    assert index.distances_from("r-oak") == first
