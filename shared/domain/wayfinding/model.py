"""The values wayfinding hands out and takes in: places, costs, routes and their legs, and its errors."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shared.domain.errors import DomainError

INF = math.inf
Point = tuple[float, float]
PointPlace = tuple[float, float, str]
Place = str | PointPlace  # a space id, or (x, y, floor id)

ALL, STEP_FREE = 0, 1  # search modes: every edge, or only accessible edges


class UnknownPlace(DomainError, ValueError):
    """The origin or destination names a space or floor the site does not have."""

    def __init__(self, message: str, place: object):
        self.place = place
        super().__init__(message)


class NoRoute(DomainError):
    """No route joins the two places (under the accessibility asked for); `reason` says why, in English."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class CostModel:
    """Seconds per move. Stairs and elevators cost time per floor of ordinal difference, not metres."""

    walk_speed_mps: float = 1.3
    stairs_up_s_per_floor: float = 12.0
    stairs_down_s_per_floor: float = 9.0
    elevator_wait_s: float = 30.0  # once per ride, however many floors
    elevator_s_per_floor: float = 4.0


@dataclass(frozen=True)
class Leg:
    """The part of a route on one floor: where to walk (building metres) and how far."""

    floor: str
    polyline: tuple[Point, ...]
    distance_m: float

    def as_dict(self) -> dict[str, Any]:
        return {"floor": self.floor, "polyline": [[round(x, 2), round(y, 2)] for x, y in self.polyline],
                "distanceM": round(self.distance_m, 1)}


@dataclass(frozen=True)
class Route:
    """The fastest route: metres walked in the plan (stairs and elevators add time, not metres), time, legs split
    at every floor change, and instructions a person can follow."""

    distance_m: float
    eta_s: float
    legs: tuple[Leg, ...]
    instructions: tuple[str, ...]
    accessible: bool
    nodes: tuple[str, ...]  # navigation node ids along the route

    def as_dict(self) -> dict[str, Any]:
        return {"distanceM": round(self.distance_m, 1), "etaS": round(self.eta_s, 1), "accessible": self.accessible,
                "legs": [leg.as_dict() for leg in self.legs], "instructions": list(self.instructions)}


@dataclass(frozen=True)
class Anchor:
    nodes: tuple[int, ...]  # navigation nodes the place starts/ends at (all at offset_m)
    offset_m: float  # straight walk between a point and its node
    point: Point | None  # the point itself, for point places
    floor: int
    space_id: str | None
    label: str

