from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import geometry
from shared.domain.errors import ContractViolation
from shared.domain.positioning import BeaconSpec, FloorSpec, SiteIndex
from shared.domain.positioning.site_index import points_in_polygon
from shared.domain.site import parse_site_model

L_SHAPE = ((0, 0), (6, 0), (6, 2), (2, 2), (2, 6), (0, 6))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 7), st.floats(-1, 7)), min_size=1, max_size=30))
def test_vectorised_point_in_polygon_matches_geometry(points):
    pts = np.array(points)
    inside = points_in_polygon(pts, L_SHAPE)
    for p, got in zip(points, inside):
        on_edge = geometry.distance_to_polygon(p, L_SHAPE) == 0 and any(
            geometry._point_on_segment(p, L_SHAPE[i], L_SHAPE[(i + 1) % 6]) for i in range(6)
        )
        if not on_edge:
            assert got == geometry.point_in_polygon(p, L_SHAPE)


def test_grid_points_lie_in_their_spaces(square_site):
    grid = square_site.grids["0"]
    assert len(grid.points) == 400  # 10 m x 10 m at 0.5 m
    for point, owner in zip(grid.points, grid.space_of_point):
        space = square_site.spaces[owner]
        assert geometry.point_in_polygon(tuple(point), space.polygon)


def test_space_containing_and_nearest_within_bound(square_site):
    assert square_site.space_containing("0", (2, 5)) == ("west", 0.0)
    assert square_site.space_containing("0", (7, 5)) == ("east", 0.0)
    space, distance = square_site.space_containing("0", (12, 5), max_distance_m=3)
    assert space == "east" and distance == pytest.approx(2.0)
    assert square_site.space_containing("0", (16, 5), max_distance_m=3)[0] is None


def test_transitions_come_from_stairs_and_elevators(sim_index, sim_site):
    stairs = next(s for s in sim_site.spaces if s.kind.value == "stairs" and s.floor == "L0")
    centre = geometry.polygon_centroid(stairs.polygon)
    assert sim_index.distance_to_transition("L0", centre) == pytest.approx(0.0, abs=1e-9)
    assert sim_index.has_transitions


def test_build_rejects_beacon_on_unknown_floor():
    with pytest.raises(ValueError, match="beacon 'b1' is on unknown floor '9'"):
        SiteIndex.build([FloorSpec("0")], [BeaconSpec("b1", 0, 0, "9")])


def _site(beacons, spaces=()):
    return {
        "buildingId": "b1",
        "name": "B",
        "floors": [{"id": "L0", "ordinal": 0, "outline": [[0, 0], [10, 0], [10, 10], [0, 10]]}],
        "spaces": list(spaces),
        "beacons": beacons,
    }


BEACON = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:1"


def test_site_model_with_beacon_outside_every_floor_is_a_clear_error():
    with pytest.raises(ContractViolation) as err:
        parse_site_model(_site([{"id": BEACON, "x": 50, "y": 5, "floor": "L0", "measuredPower": -59}]))
    assert "outside floor 'L0' and every other floor" in str(err.value)
    assert err.value.errors[0].field == "beacons[0]"


def test_site_model_with_self_intersecting_space_is_a_clear_error():
    bowtie = {"id": "r1", "name": "R", "kind": "office", "floor": "L0", "polygon": [[1, 1], [5, 5], [5, 1], [1, 5]]}
    with pytest.raises(ContractViolation) as err:
        parse_site_model(_site([{"id": BEACON, "x": 5, "y": 5, "floor": "L0", "measuredPower": -59}], [bowtie]))
    assert "self-intersecting" in str(err.value)
    assert err.value.errors[0].field.startswith("spaces[0].polygon")
