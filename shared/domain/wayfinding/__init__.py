"""Wayfinding: fastest routes, turn-by-turn instructions and walking distances over a site's navigation graph,
and a navigation graph generated from the geometry when the site has none.

Pure domain code (stdlib and numpy; shapely and networkx for the generator). `NavigationIndex.from_site` is built
once per site version and then answers `route(origin, destination, accessible)` and
`distances_from(origin, accessible)`. A place is a space id or a point `(x, y, floor_id)`; a point anchors to the
nearest navigation node on its floor.

Routes minimise time under `CostModel` (walking speed on walk edges, a time per floor on stairs, a wait per ride
plus a time per floor in elevators). Searches are two-level: a Dijkstra over the origin's floor, then over a small
overlay of the nodes that change floors (stairs, elevators) whose in-floor shortest paths are precomputed per
floor; the result is exact, not an approximation. Coordinates are building metres with x east and y north, so a
counter-clockwise heading change is a left turn.

Modules: `model` (places, costs, routes, errors), `index` (building the index), `search` (the two-level
Dijkstra), `instructions` (legs and turn-by-turn), `generate` (a navigation graph from floors, spaces, doors,
obstacles and vertical connectors).
"""
from __future__ import annotations

from shared.domain.wayfinding.generate import (
    GeneratedNavigation,
    generate_navigation,
    geometry_hash,
    unreachable_spaces,
    with_navigation,
)
from shared.domain.wayfinding.index import NavigationIndex
from shared.domain.wayfinding.model import CostModel, Leg, NoRoute, Place, Point, PointPlace, Route, UnknownPlace

__all__ = ["CostModel", "GeneratedNavigation", "Leg", "NavigationIndex", "NoRoute", "Place", "Point", "PointPlace",
           "Route", "UnknownPlace", "generate_navigation", "geometry_hash", "unreachable_spaces", "with_navigation"]
