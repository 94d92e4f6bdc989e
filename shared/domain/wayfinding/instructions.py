"""Turn-by-turn: a route's node path cut into legs (one per floor) and instructions a person can follow."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.domain.site import NavNodeKind
from shared.domain.wayfinding.model import Anchor, Leg, Point, Route

if TYPE_CHECKING:
    from shared.domain.wayfinding.index import NavigationIndex

STRAIGHT_DEG = 30.0  # heading changes below this are "straight on"
TURN_AROUND_DEG = 150.0  # above this, "turn around"
DOOR_STEP_M = 5.0  # a last hop this short into the destination reads "X is on your left"


@dataclass
class Stretch:
    """Nearly straight segments of a leg, between two turns."""

    turn: str | None  # the turn into the stretch: 'left', 'right', 'around', or None (straight on, or the start)
    vertex: int | None  # the node it turns at (None for a point place)
    metres: float
    corridor: bool  # some segment runs along a corridor
    segments: int


def build_route(ix: NavigationIndex, a: Anchor, b: Anchor, path: list[int], distance: float, eta: float,
                accessible: bool) -> Route:
    n = ix._n
    # Split into per-floor node runs joined by transfers ("stairs"/"elevator", from node, to node).
    runs: list[list[int]] = [[path[0]]]
    transfers: list[tuple[str, int, int]] = []
    boarded_at = -1
    for u, v in itertools.pairwise(path):
        if v >= n:  # boarding or riding
            if u < n:
                boarded_at = u
            continue
        if u >= n:  # alighting
            kind, start = "elevator", boarded_at
        elif ix._node_floor[u] != ix._node_floor[v]:
            kind, start = "stairs", u
        else:
            runs[-1].append(v)
            continue
        if transfers and transfers[-1][0] == kind and len(runs[-1]) == 1 and transfers[-1][2] == start:
            transfers[-1] = (kind, transfers[-1][1], v)  # keep climbing: one instruction for several floors
            runs[-1] = [v]
        else:
            transfers.append((kind, start, v))
            runs.append([v])
    legs: list[Leg] = []
    instructions: list[str] = []
    for k, run in enumerate(runs):
        pts: list[tuple[Point, int | None]] = [((ix._x[g], ix._y[g]), g) for g in run]
        if k == 0 and a.point is not None and a.offset_m > 1e-9:
            pts.insert(0, (a.point, None))
        if k == len(runs) - 1 and b.point is not None and b.offset_m > 1e-9:
            pts.append((b.point, None))
        polyline = tuple(p for p, _ in pts)
        length = sum(math.dist(p, q) for p, q in itertools.pairwise(polyline))
        legs.append(Leg(ix._floor_ids[ix._node_floor[run[0]]], polyline, length))
        leg_start = "origin" if k == 0 else transfers[k - 1][0]
        leg_end = transfers[k][0] if k < len(transfers) else "destination"
        instructions += describe_leg(ix, pts, leg_start, leg_end, a, b)
        if k < len(transfers):
            instructions.append(describe_transfer(ix, *transfers[k]))
    if distance < 1e-9 and not transfers:
        instructions = [f"You are already at {b.label if b.space_id else 'your destination'}."]
    return Route(distance, eta, tuple(legs), tuple(instructions), accessible,
                 tuple(ix._node_ids[g] for g in path if g < n))


def describe_transfer(ix: NavigationIndex, kind: str, u: int, v: int) -> str:
    fu, fv = ix._node_floor[u], ix._node_floor[v]
    to = ix._floor_label[fv]
    if kind == "elevator":
        return f"Take the elevator to {to}."
    floors = abs(ix._ordinals[fv] - ix._ordinals[fu])
    way = "up" if ix._ordinals[fv] > ix._ordinals[fu] else "down"
    return f"Take the stairs {way} {floors} floor{'s' if floors != 1 else ''} to {to}."



def describe_leg(ix: NavigationIndex, pts: list[tuple[Point, int | None]], start: str, end: str, a: Anchor,
                 b: Anchor) -> list[str]:
    # drop repeated points (a point placed exactly on its node, stacked nodes)
    clean = [pts[0]]
    for p in pts[1:]:
        if math.dist(p[0], clean[-1][0]) > 1e-6:
            clean.append(p)
        elif p[1] is not None:
            clean[-1] = p
    out: list[str] = []
    # runs of nearly straight segments, split at turns
    runs: list[Stretch] = []
    for i in range(1, len(clean)):
        seg = math.dist(clean[i - 1][0], clean[i][0])
        corridor = all(is_corridor(ix, p[1]) for p in clean[i - 1:i + 1])
        turn = turn_at(clean[i - 2][0], clean[i - 1][0], clean[i][0]) if i >= 2 else None
        if runs and turn is None:
            runs[-1].metres += seg
            runs[-1].corridor = runs[-1].corridor or corridor
            runs[-1].segments += 1
        else:
            runs.append(Stretch(turn, clean[i - 1][1], seg, corridor, 1))
    first_node = pts[0][1]
    leaving_door = (start == "origin" and a.space_id is not None and first_node is not None
                    and ix._node_space[first_node] == a.space_id
                    and ix._node_kind[first_node] is NavNodeKind.door)
    if leaving_door:
        out.append(f"Leave {a.label} through its door.")
    elif start == "origin" and a.space_id is not None:
        out.append(f"Leave {a.label}.")
    arrival = None
    if end == "destination" and runs:
        last = runs[-1]
        side = last.turn
        dest_node = pts[-1][1]
        at_dest = b.point is not None or (dest_node is not None and ix._node_space[dest_node] == b.space_id)
        name = b.label if b.space_id else "Your destination"
        if at_dest and side is not None and last.segments == 1 and last.metres <= DOOR_STEP_M and len(runs) > 1:
            runs.pop()
            if side == "around":  # the door is just behind: say on which hand
                (ax, ay), (bx, by), (cx, cy) = (p for p, _ in clean[-3:])
                hand = "left" if (bx - ax) * (cy - by) - (by - ay) * (cx - bx) > 0 else "right"
                arrival = f"{name} is just behind you on your {hand}."
            else:
                arrival = f"{name} is on your {side}."
        else:
            arrival = f"{name} is ahead." if b.space_id else "You have arrived."
    elif end == "destination":
        arrival = f"You have arrived at {b.label}." if b.space_id else "You have arrived."
    for k, stretch in enumerate(runs):
        turn, vertex, metres, corridor = stretch.turn, stretch.vertex, stretch.metres, stretch.corridor
        walk = f"walk {max(1, round(metres))} m" + (" along the corridor" if corridor else "")
        if k == len(runs) - 1 and end in ("stairs", "elevator"):
            walk += f" to the {end}"
        if k == 0 and turn is None:
            if leaving_door:
                if metres >= DOOR_STEP_M or len(runs) == 1:
                    out[-1] = f"Leave {a.label} through its door and {walk}."
                continue
            if start in ("stairs", "elevator"):
                out.append(f"Leave the {start} and {walk}.")
            else:
                out.append(walk[0].upper() + walk[1:] + ".")
            continue
        at = landmark(ix, vertex) if vertex is not None else None
        turn_text = "Turn around" if turn == "around" else f"Turn {turn}"
        if at:
            turn_text += f" at {at}"
        out.append(f"{turn_text} and {walk}.")
    if arrival:
        out.append(arrival)
    return out


def is_corridor(ix: NavigationIndex, g: int | None) -> bool:
    return g is not None and ix._node_kind[g] is NavNodeKind.corridor


def landmark(ix: NavigationIndex, g: int) -> str | None:
    if ix._node_name[g]:
        return ix._node_name[g]
    sid = ix._node_space[g]
    if sid is not None and sid in ix._spaces:
        return ix._spaces[sid].name
    kind = ix._node_kind[g]
    if kind in (NavNodeKind.stairs, NavNodeKind.elevator):
        return f"the {kind.value}"
    return None


def turn_at(p0: Point, p1: Point, p2: Point) -> str | None:
    """'left', 'right', 'around' or None (straight on) for the heading change at p1."""
    ax, ay = p1[0] - p0[0], p1[1] - p0[1]
    bx, by = p2[0] - p1[0], p2[1] - p1[1]
    cross, dot = ax * by - ay * bx, ax * bx + ay * by
    angle = math.degrees(math.atan2(cross, dot))
    if abs(angle) < STRAIGHT_DEG:
        return None
    if abs(angle) > TURN_AROUND_DEG:
        return "around"
    return "left" if cross > 0 else "right"
