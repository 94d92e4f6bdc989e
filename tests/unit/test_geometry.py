from __future__ import annotations

import math

import pytest

from shared.domain import geometry

SQUARE = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
L_SHAPE = [(0, 0), (6, 0), (6, 2), (2, 2), (2, 6), (0, 6)]


def test_area_and_centroid_by_hand():
    assert geometry.polygon_area(SQUARE) == 16.0
    assert geometry.polygon_area(list(reversed(SQUARE))) == -16.0
    assert geometry.polygon_centroid(SQUARE) == (2.0, 2.0)
    # L of two rectangles: 6x2 (centroid 3,1) and 2x4 (centroid 1,4): (12*3 + 8*1)/20, (12*1 + 8*4)/20
    cx, cy = geometry.polygon_centroid(L_SHAPE)
    assert math.isclose(cx, 2.2) and math.isclose(cy, 2.2)


@pytest.mark.parametrize(("point", "inside"), [((1, 1), True), ((4, 2), True), ((5, 5), False), ((3, 3), False)])
def test_point_in_l_shape(point, inside):
    # (3,3) is in the notch of the L; (4,2) lies on its boundary, which counts as inside
    assert geometry.point_in_polygon(point, L_SHAPE) is inside


def test_distance_to_polygon():
    assert geometry.distance_to_polygon((2, 2), SQUARE) == 0.0
    assert geometry.distance_to_polygon((7, 4), SQUARE) == 3.0
    assert math.isclose(geometry.distance_to_polygon((7, 8), SQUARE), 5.0)


def test_self_intersection():
    assert geometry.self_intersection(SQUARE) is None
    assert geometry.self_intersection(L_SHAPE) is None
    assert geometry.self_intersection([(0, 0), (4, 4), (4, 0), (0, 4)]) == (0, 2)
    # a vertex touching a non-adjacent edge counts as an intersection
    assert geometry.self_intersection([(0, 0), (4, 0), (2, 0), (2, 3)]) is not None
