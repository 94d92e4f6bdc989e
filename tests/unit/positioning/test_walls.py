"""Walls of the signal model: counted between grid points and beacons while the index is built (not on the first
estimate, on the event loop), taken from every ring of an enclosed space, and opened where a door is."""
from __future__ import annotations

import numpy as np
import pytest

from shared.domain.positioning.site_index import FloorSpec, OpeningSpec, SiteIndex, SpaceSpec
from shared.domain.site import parse_site_model

BEACON = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"


def room_and_corridor(doors: list[dict] | None = None) -> dict:
    """An office (0-4 m) opening onto a corridor (4-12 m) through the wall x = 4; the beacon is in the corridor."""
    return {
        "schema": "site/v1", "buildingId": "walls", "name": "Walls", "timeZone": "UTC",
        "floors": [{"id": "f0", "name": "Ground", "ordinal": 0, "outline": [[0, 0], [12, 0], [12, 4], [0, 4]]}],
        "spaces": [
            {"id": "room", "name": "Room", "kind": "office", "floor": "f0", "polygon": [[0, 0], [4, 0], [4, 4], [0, 4]]},
            {"id": "corridor", "name": "Corridor", "kind": "walkway", "floor": "f0",
             "polygon": [[4, 0], [12, 0], [12, 4], [4, 4]]},
        ],
        "doors": doors or [],
        "beacons": [{"id": BEACON, "x": 8, "y": 2, "floor": "f0", "measuredPower": -59}],
    }


DOOR = {"id": "door-room", "floor": "f0", "segment": [[4, 1.5], [4, 2.5]], "spaces": ["room", "corridor"]}


def walls_at(index: SiteIndex, x: float, y: float) -> float:
    grid = index.grids["f0"]
    row = int(np.argmin(((grid.points - np.array([x, y])) ** 2).sum(axis=1)))
    return float(grid.walls_between()[row, 0])


def test_build_counts_the_walls_so_the_first_estimate_does_not():
    index = SiteIndex.from_site_model(parse_site_model(room_and_corridor()), grid_step_m=0.5)
    grid = index.grids["f0"]
    assert grid._walls_between is not None and grid._walls_between.shape == grid.dist2.shape
    lazy = SiteIndex.from_site_model(parse_site_model(room_and_corridor()), grid_step_m=0.5, precompute_walls=False)
    assert lazy.grids["f0"]._walls_between is None  # the fallback: counted on first use, the same counts
    assert np.array_equal(lazy.grids["f0"].walls_between(), grid._walls_between)


def test_a_door_removes_the_wall_crossing_between_a_room_and_its_corridor():
    closed = SiteIndex.from_site_model(parse_site_model(room_and_corridor()), grid_step_m=0.5)
    opened = SiteIndex.from_site_model(parse_site_model(room_and_corridor([DOOR])), grid_step_m=0.5)
    assert walls_at(closed, 2.25, 2.0) == 1  # through the wall x = 4
    assert walls_at(opened, 2.25, 2.0) == 0  # the same line passes the doorway
    assert walls_at(opened, 2.25, 0.25) == 1  # a line that meets x = 4 beside the door still crosses the wall
    assert walls_at(opened, 8.25, 2.25) == walls_at(closed, 8.25, 2.25) == 0  # in the corridor itself
    # The wall x = 4 is split around the door (cut 0.1 m either side of its line, along its length only).
    walls = {tuple(w) for w in opened.grids["f0"].walls.tolist()}
    assert (4.0, 0.0, 4.0, 1.5) in walls and (4.0, 2.5, 4.0, 4.0) in walls and (4.0, 0.0, 4.0, 4.0) not in walls
    assert len(walls) == len(closed.grids["f0"].walls) + 1


def test_without_doors_the_walls_are_the_enclosed_spaces_edges_as_before():
    index = SiteIndex.from_site_model(parse_site_model(room_and_corridor()), grid_step_m=0.5)
    assert sorted(tuple(w) for w in index.grids["f0"].walls.tolist()) == [
        (0.0, 0.0, 0.0, 4.0), (0.0, 0.0, 4.0, 0.0), (0.0, 4.0, 4.0, 4.0), (4.0, 0.0, 4.0, 4.0)]


def test_holes_and_further_parts_are_walls_too():
    data = room_and_corridor()
    data["floors"][0]["outline"] = [[0, 0], [12, 0], [12, 10], [0, 10]]
    data["spaces"][0]["holes"] = [[[1, 1], [2, 1], [2, 2], [1, 2]]]
    data["spaces"][0]["parts"] = [{"polygon": [[0, 6], [4, 6], [4, 10], [0, 10]]}]
    walls = {tuple(w) for w in SiteIndex.from_site_model(parse_site_model(data), grid_step_m=0.5).grids["f0"].walls.tolist()}
    assert {(1.0, 1.0, 2.0, 1.0), (2.0, 1.0, 2.0, 2.0)} <= walls  # the hole's ring
    assert {(0.0, 6.0, 4.0, 6.0), (4.0, 6.0, 4.0, 10.0)} <= walls  # the second part's outline
    assert len(walls) == 4 + 4 + 4


def test_build_from_specs_takes_openings_and_refuses_one_on_an_unknown_floor():
    from shared.domain.positioning.site_index import BeaconSpec

    floors = [FloorSpec("f0", 0, ((0, 0), (12, 0), (12, 4), (0, 4)))]
    beacons = [BeaconSpec("b", 8, 2, "f0")]
    spaces = [SpaceSpec("room", "f0", ((0, 0), (4, 0), (4, 4), (0, 4)), "office")]
    index = SiteIndex.build(floors, beacons, spaces, openings=[OpeningSpec("f0", ((4, 1.5), (4, 2.5)))],
                            grid_step_m=0.5)
    assert walls_at(index, 2.25, 2.0) == 0
    with pytest.raises(ValueError, match="unknown floor"):
        SiteIndex.build(floors, beacons, spaces, openings=[OpeningSpec("f9", ((4, 1.5), (4, 2.5)))])
