"""Map-matched room tracking: the room HMM moves only through doors, rooms are stayed in and passages passed."""
from __future__ import annotations

import pytest

from shared.domain.positioning import BeaconSpec, FloorSpec, SiteIndex, SpaceSpec
from shared.domain.positioning.mapmatch import MapMatchPolicy, arrive, step
from shared.domain.positioning.site_index import site_links

POLICY = MapMatchPolicy()


def _rect(x0, y0, x1, y1):
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


@pytest.fixture(scope="module")
def rooms_on_a_corridor() -> SiteIndex:
    """Rooms A | B side by side (a shared wall at x = 5) above a corridor; each opens onto the corridor only,
    A's door at x = 1, B's at x = 9. Stairs at the corridor's east end lead to the same stairs upstairs."""
    floors = [FloorSpec("0", 0), FloorSpec("1", 1)]
    beacons = [BeaconSpec(f"b{f}{i}", x, y, f, -59) for f in "01" for i, (x, y) in
               enumerate([(0, 0), (10, 0), (0, 10), (10, 10)])]
    spaces = [SpaceSpec("A", "0", _rect(0, 4, 5, 10), "office"), SpaceSpec("B", "0", _rect(5, 4, 10, 10), "office"),
              SpaceSpec("hall", "0", _rect(0, 0, 10, 4), "walkway"),
              SpaceSpec("stairs0", "0", _rect(10, 0, 12, 4), "stairs"),
              SpaceSpec("stairs1", "1", _rect(10, 0, 12, 4), "stairs"),
              SpaceSpec("C", "1", _rect(0, 0, 10, 10), "office")]
    links = [("A", "hall", 1.0, 4.0), ("B", "hall", 9.0, 4.0), ("hall", "stairs0", 10.0, 2.0),
             ("stairs0", "stairs1", 11.0, 2.0), ("stairs1", "C", 10.0, 2.0)]
    return SiteIndex.build(floors, beacons, spaces, links=links, grid_step_m=0.5)


def _ids(index, probabilities):
    return {index.spaces[i].id: p for i, p in probabilities.items()}


def _pos(index, *ids):
    return [index.space_position[i] for i in ids]


def test_rooms_open_onto_the_corridor_and_not_onto_each_other(rooms_on_a_corridor):
    index = rooms_on_a_corridor
    a, b, hall, stairs0, stairs1 = _pos(index, "A", "B", "hall", "stairs0", "stairs1")
    assert {j for j, _x, _y in index.space_links[a]} == {hall}
    assert {j for j, _x, _y in index.space_links[b]} == {hall}
    assert index.vertical_links[stairs0] == (stairs1,)


def test_spaces_without_doors_are_linked_where_they_touch(square_site):
    west, east = _pos(square_site, "west", "east")
    assert [j for j, _x, _y in square_site.space_links[west]] == [east]
    (_j, x, _y), = square_site.space_links[west]
    assert x == pytest.approx(5.0)


def test_a_still_phone_near_the_wall_does_not_hop_into_the_room_behind_it(rooms_on_a_corridor):
    """Readings that now and then favour B (the room behind A's wall) do not move a phone sitting in A: B is only
    reachable through the corridor."""
    index = rooms_on_a_corridor
    a, b, hall = _pos(index, "A", "B", "hall")
    state = {a: 1.0}
    for k in range(60):
        favour_b = k % 3 == 0  # every third update B looks 4x likelier
        loglik = {a: 0.0, b: 1.4 if favour_b else -0.5, hall: -4.0}
        state = step(index, state, loglik, xy=(4.5, 7.0), uncertainty_m=1.5, dt_s=10.0, policy=POLICY)
        assert state[a] > 0.5
    assert state[a] > 0.9


def test_the_room_entered_is_the_one_whose_door_the_phone_is_at(rooms_on_a_corridor):
    index = rooms_on_a_corridor
    a, b, hall = _pos(index, "A", "B", "hall")
    ambiguous = {a: 0.0, b: 0.0, hall: 0.0}
    at_a = step(index, {hall: 1.0}, ambiguous, xy=(1.0, 3.5), uncertainty_m=1.0, dt_s=2.0, policy=POLICY)
    at_b = step(index, {hall: 1.0}, ambiguous, xy=(9.0, 3.5), uncertainty_m=1.0, dt_s=2.0, policy=POLICY)
    assert at_a[a] > 3 * at_b.get(a, 0.0) and at_b[b] > 3 * at_a.get(b, 0.0)


def test_people_pass_corridors_and_stay_in_rooms(rooms_on_a_corridor):
    """Readings that cannot tell a still phone's room from the corridor next to its door: it ends up in the room."""
    index = rooms_on_a_corridor
    a, b, hall = _pos(index, "A", "B", "hall")
    state = {hall: 0.5, a: 0.5}
    for _ in range(6):
        state = step(index, state, {a: 0.0, hall: 0.0, b: -5.0}, xy=(1.0, 4.0), uncertainty_m=1.5, dt_s=10.0,
                     policy=POLICY)
    assert state[a] > 0.9


def test_clear_readings_win_over_a_wrong_state(rooms_on_a_corridor):
    index = rooms_on_a_corridor
    a, b, hall = _pos(index, "A", "B", "hall")
    state = {a: 1.0}
    for _ in range(3):
        state = step(index, state, {a: -12.0, b: 0.0, hall: -12.0}, xy=(4.5, 7.0), uncertainty_m=1.5, dt_s=10.0,
                     policy=POLICY)
    assert state[b] > 0.9


def test_a_new_floor_starts_where_the_stairs_arrive(rooms_on_a_corridor):
    index = rooms_on_a_corridor
    stairs0, stairs1, c = _pos(index, "stairs0", "stairs1", "C")
    arrived = arrive(index, {stairs0: 1.0}, {stairs1: 0.0, c: 0.0}, POLICY)
    assert arrived[stairs1] > arrived[c]


def test_links_come_from_doors_navigation_and_connectors(sim_site, sim_index):
    links = site_links(sim_site)
    office = next(s for s in sim_site.spaces if s.kind.value == "office" and s.floor == "L0")
    mine = {b if a == office.id else a for a, b, _x, _y in links if office.id in (a, b)}
    assert mine == {"L0-corridor"}  # an office opens onto the corridor only
    i = sim_index.space_position["L0-stairs"]
    assert [sim_index.spaces[j].id for j in sim_index.vertical_links[i]] == ["L1-stairs"]
