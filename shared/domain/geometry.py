"""Planar geometry in building metres: polygons for floors and spaces. Pure functions."""
from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, float]


def polygon_area(polygon: Sequence[Point]) -> float:
    """Signed area (shoelace); positive when the vertices run counter-clockwise."""
    total = 0.0
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        total += x1 * y2 - x2 * y1
    return total / 2.0


def polygon_centroid(polygon: Sequence[Point]) -> Point:
    """Area centroid of a simple polygon (vertex mean when the area is degenerate)."""
    area = polygon_area(polygon)
    if abs(area) < 1e-12:
        return (sum(p[0] for p in polygon) / len(polygon), sum(p[1] for p in polygon) / len(polygon))
    cx = cy = 0.0
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        cross = x1 * y2 - x2 * y1
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    return (cx / (6.0 * area), cy / (6.0 * area))


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """True when the point is inside the polygon or on its boundary (even-odd rule)."""
    px, py = point
    n = len(polygon)
    inside = False
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if _point_on_segment(point, (x1, y1), (x2, y2)):
            return True
        if (y1 > py) != (y2 > py):
            x_cross = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
            if px < x_cross:
                inside = not inside
    return inside


def distance_to_polygon(point: Point, polygon: Sequence[Point]) -> float:
    """0 inside the polygon, else the distance to its nearest edge."""
    if point_in_polygon(point, polygon):
        return 0.0
    n = len(polygon)
    return min(_distance_to_segment(point, polygon[i], polygon[(i + 1) % n]) for i in range(n))


def self_intersection(polygon: Sequence[Point]) -> tuple[int, int] | None:
    """Indices (i, j) of two non-adjacent edges that cross or touch, or None for a simple polygon.

    Edge i runs from vertex i to vertex i+1. O(n^2), fine for room outlines.
    """
    n = len(polygon)
    for i in range(n):
        a1, a2 = polygon[i], polygon[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # adjacent edges share a vertex by construction
            b1, b2 = polygon[j], polygon[(j + 1) % n]
            if _segments_intersect(a1, a2, b1, b2):
                return (i, j)
    return None


def has_repeated_vertices(polygon: Sequence[Point]) -> bool:
    return len({(round(x, 9), round(y, 9)) for x, y in polygon}) != len(polygon)


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _point_on_segment(p: Point, a: Point, b: Point, eps: float = 1e-9) -> bool:
    if abs(_orientation(a, b, p)) > eps * max(1.0, math.dist(a, b)):
        return False
    return min(a[0], b[0]) - eps <= p[0] <= max(a[0], b[0]) + eps and min(a[1], b[1]) - eps <= p[1] <= max(
        a[1], b[1]
    ) + eps


def _segments_intersect(a1: Point, a2: Point, b1: Point, b2: Point) -> bool:
    d1 = _orientation(b1, b2, a1)
    d2 = _orientation(b1, b2, a2)
    d3 = _orientation(a1, a2, b1)
    d4 = _orientation(a1, a2, b2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        _point_on_segment(a1, b1, b2)
        or _point_on_segment(a2, b1, b2)
        or _point_on_segment(b1, a1, a2)
        or _point_on_segment(b2, a1, a2)
    )


def _distance_to_segment(p: Point, a: Point, b: Point) -> float:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    length_sq = dx * dx + dy * dy
    if length_sq == 0:
        return math.dist(p, a)
    t = max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length_sq))
    return math.dist(p, (ax + t * dx, ay + t * dy))
