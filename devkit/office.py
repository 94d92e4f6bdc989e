"""A simulated office day: people arrive, sit at their desks, meet in rooms, have lunch and leave; their phones
produce `sightings/v1` batches from the radio simulator. Seeded and deterministic.

Used by `make demo` (batches posted over HTTP in simulated real time), the pipeline and ingest benchmarks, and
tests. Ground truth (who is in which room when) comes with it, so what the system reports can be scored.
"""
from __future__ import annotations

import heapq
import math
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from devkit.simulator import BuildingSpec, Phone, RadioSimulator, RadioSpec, Trajectory, generate_building, room_points
from shared.domain import space_kinds
from shared.domain.site import SiteModel, Space

PHONE_MODELS = (("iPhone15,2", "ios", 0.0), ("iPhone14,5", "ios", 2.0), ("Pixel 8", "android", -3.0),
                ("SM-S911B", "android", -5.0), ("Pixel 7a", "android", 4.0))
MEETING_KINDS = tuple(sorted(space_kinds.MEETING_ROOMS))
SETTLE_S = 60.0  # a phone that just sat down is not scored until it has been in the room this long
WALKING_MPS = 1.2
FLOOR_CHANGE_S = 12.0


@dataclass(frozen=True)
class Stay:
    space_id: str
    floor: str
    xy: tuple[float, float]
    start_s: float
    end_s: float


@dataclass
class Person:
    index: int
    device_id: str
    phone: Phone
    platform: str
    arrive_s: float
    leave_s: float
    stays: list[Stay] = field(default_factory=list)
    trajectory: Trajectory = field(default_factory=Trajectory)
    user_id: str | None = None

    def present(self, t: float) -> bool:
        return self.arrive_s <= t < self.leave_s

    def truth(self, t: float) -> tuple[str, float, float, str | None] | None:
        """(floor, x, y, space while sitting in one) at simulated second t; None when not in the building."""
        if not self.present(t):
            return None
        return self.trajectory.at(t - self.arrive_s)

    def settled_space(self, t: float) -> str | None:
        """The room the person has been sitting in for at least SETTLE_S at t (the scoring rule)."""
        for stay in self.stays:
            if stay.start_s + SETTLE_S <= t < stay.end_s:
                return stay.space_id
        return None


@dataclass(frozen=True)
class Batch:
    """One phone's batch, ready to post: the JSON body and the simulated second it is sent."""

    sent_s: float
    person: int
    body: dict[str, Any]  # the sightings/v1 JSON body


class OfficeDay:
    def __init__(self, people: int = 60, minutes: float = 60.0, seed: int = 7, floors: int = 3,
                 batch_every_s: float = 10.0, site: SiteModel | None = None, start: datetime | None = None) -> None:
        if people < 1 or minutes <= 0:
            raise ValueError("need at least one person and a positive duration")
        self.site = site or generate_building(BuildingSpec(floors=floors), seed=seed)
        self.minutes = minutes
        self.window_s = minutes * 60.0
        self.seed = seed
        self.batch_every_s = batch_every_s
        self.start = start or datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
        self.radio = RadioSimulator(self.site, RadioSpec(batch_every_s=batch_every_s), seed=seed + 1)
        self._rng = np.random.default_rng(seed)
        self._graph = _NavGraph(self.site)
        # Meetings planned (room, start, end in simulated seconds): whom they are for shows in each person's stays;
        # the demo books the rooms for them (devkit/demo_calendars.py). Recorded without drawing from the rng.
        self.meetings: list[tuple[str, float, float]] = []
        self.people = self._plan(people)

    # ---- the day's plan -------------------------------------------------------------------------------------
    def _plan(self, count: int) -> list[Person]:
        rng, w = self._rng, self.window_s
        spaces = {s.id: s for s in self.site.spaces}
        desks = [s.id for s in self.site.spaces if s.kind.value == "office"]
        meeting_rooms = [s.id for s in self.site.spaces if s.kind.value in MEETING_KINDS]
        kitchens = [s.id for s in self.site.spaces if s.kind.value == "kitchen"] or desks
        people = []
        for i in range(count):
            model, platform, offset = PHONE_MODELS[int(rng.integers(len(PHONE_MODELS)))]
            phone = Phone(f"sim-{self.seed}-{i:05d}", model=model, offset_db=offset + float(rng.normal(0, 2)))
            spread = min(0.12 * w, 1200.0)
            arrive = float(rng.uniform(0, spread))
            leave = w - float(rng.uniform(0, spread))
            people.append(Person(i, phone.device_id, phone, platform, arrive, leave,
                                 user_id=f"user{i:05d}@example.com" if rng.random() < 0.3 else None))
        # Meetings: groups of 2-6 in one room at one time; each person joins at most one.
        agenda: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
        order = list(rng.permutation(count))
        full_day = w >= 2700  # a short window (a benchmark's) is a slice of the morning: everyone at their desk
        while order and meeting_rooms and full_day:
            size = min(len(order), int(rng.integers(2, 7)))
            group, order = order[:size], order[size:]
            if rng.random() < 0.3:
                continue  # not everyone meets
            start = float(rng.uniform(0.15 * w, 0.75 * w))
            length = min(float(rng.uniform(480, 1500)), 0.25 * w)
            room = str(rng.choice(meeting_rooms))
            self.meetings.append((room, start, start + length))
            for p in group:
                agenda[int(p)].append((start, start + length, room))
        for person in people:
            lunch_start = float(rng.uniform(0.45 * w, 0.55 * w))
            if full_day and rng.random() < 0.6:
                lunch = min(float(rng.uniform(600, 1500)), 0.15 * w)
                agenda[person.index].append((lunch_start, lunch_start + lunch, str(rng.choice(kitchens))))
            self._build_trajectory(person, str(rng.choice(desks)), sorted(agenda[person.index]), spaces)
        return people

    def _build_trajectory(self, person: Person, desk: str, agenda: list[tuple[float, float, str]],
                          spaces: dict[str, Space]) -> None:
        rng = self._rng
        entrance = self._graph.entrance
        plan: list[tuple[str, float]] = []  # (room, until)
        t = person.arrive_s
        for start, end, room in agenda:
            if start <= t + 120 or end >= person.leave_s - 120:
                continue  # does not fit into this person's day
            plan.append((desk, start))
            plan.append((room, end))
            t = end
        plan.append((desk, person.leave_s - 90))
        position = (entrance.floor, (entrance.x, entrance.y))
        now = person.arrive_s
        trajectory = Trajectory()
        for room, until in plan:
            space = spaces[room]
            xy = room_points(self.site, room, rng, 1, inset_m=0.8)[0]
            now += self._walk(trajectory, position, (space.floor, xy), room)
            if until - now > 5:
                trajectory.dwell(space.floor, xy, until - now, room)
                person.stays.append(Stay(room, space.floor, xy, now, until))
                now = until
            position = (space.floor, xy)
        now += self._walk(trajectory, position, (entrance.floor, (entrance.x, entrance.y)), None)
        person.leave_s = max(now, person.arrive_s + 1)
        person.trajectory = trajectory

    def _walk(self, trajectory: Trajectory, start: tuple[str, tuple[float, float]],
              end: tuple[str, tuple[float, float]], target_room: str | None) -> float:
        """Append the walk from start to end along the navigation graph; return its duration."""
        before = trajectory.duration_s
        legs = self._graph.route(start, end, target_room)
        for i, (floor, points) in enumerate(legs):
            if i > 0:
                trajectory.dwell(floor, points[0], FLOOR_CHANGE_S)  # in the stairwell or the lift
            if len(points) > 1:
                trajectory.walk(floor, points, WALKING_MPS)
        return trajectory.duration_s - before

    # ---- what the phones send -------------------------------------------------------------------------------
    def batches(self, step_s: float = 2.0) -> Iterator[Batch]:
        """Every phone's batches in the order they are sent (each covers the `batch_every_s` before sending)."""
        queue: list[tuple[float, int]] = []
        for person in self.people:
            first = person.arrive_s + self.batch_every_s
            if first <= person.leave_s:
                heapq.heappush(queue, (first, person.index))
        while queue:
            sent, index = heapq.heappop(queue)
            person = self.people[index]
            batch = self._batch(person, sent, step_s)
            if batch is not None:
                yield batch
            following = sent + self.batch_every_s
            if following <= person.leave_s:
                heapq.heappush(queue, (following, index))

    def _batch(self, person: Person, sent: float, step_s: float) -> Batch | None:
        rng = np.random.default_rng((self.seed, person.index, int(sent * 10)))
        readings = []
        t = sent - self.batch_every_s
        while t < sent - 1e-9:
            truth = person.truth(t + step_s / 2)
            if truth is not None:
                floor, x, y, _space = truth
                readings.extend(self.radio.scan(floor, x, y, t, step_s, person.phone, rng))
            t += step_s
        if not readings:
            return None
        seen: set[tuple[str, float]] = set()
        sightings = []
        for r in readings:
            key = (r.beacon, round(r.ts, 3))
            if key in seen:
                continue
            seen.add(key)
            sightings.append({"beacon": r.beacon, "rssi": r.rssi, "ts": self.iso(r.ts), "txPower": r.tx_power})
        body = {
            "schema": "sightings/v1", "batchId": str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            "deviceId": person.device_id, "sentAt": self.iso(sent), "platform": person.platform,
            "model": person.phone.model, "sdkVersion": "2.3.1", "sightings": sightings,
        }
        if person.user_id:
            body["userId"] = person.user_id
        if rng.random() < 0.05:
            beacon = sightings[0]["beacon"]
            body["beaconTelemetry"] = [{"beacon": beacon, "ts": self.iso(sent - 1), "batteryMv": int(rng.integers(2500, 3100)),
                                        "solarLux": float(rng.integers(0, 800)), "temperatureC": 21.5}]
        return Batch(sent, person.index, body)

    def iso(self, second: float) -> str:
        return (self.start + timedelta(seconds=second)).isoformat()

    def at(self, second: float) -> datetime:
        return self.start + timedelta(seconds=second)

    # ---- ground truth ---------------------------------------------------------------------------------------
    def occupancy(self, t: float) -> dict[str, int]:
        """How many people sit in each room at simulated second t (ground truth)."""
        counts: dict[str, int] = defaultdict(int)
        for person in self.people:
            truth = person.truth(t)
            if truth is not None and truth[3] is not None:
                counts[truth[3]] += 1
        return dict(counts)

    def settled(self, t: float) -> dict[str, str]:
        """device id -> the room it has sat in for at least SETTLE_S at t (what room accuracy is scored on)."""
        out = {}
        for person in self.people:
            space = person.settled_space(t)
            if space is not None:
                out[person.device_id] = space
        return out


@dataclass(frozen=True)
class _Node:
    id: str
    floor: str
    x: float
    y: float


class _NavGraph:
    """Shortest walking routes over the site's navigation graph (Dijkstra; stairs and lifts cost extra)."""

    def __init__(self, site: SiteModel) -> None:
        self.nodes = {n.id: _Node(n.id, n.floor, n.x, n.y) for n in site.navigation.nodes}
        self.adjacent: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for e in site.navigation.edges:
            a, b = self.nodes[e.from_node], self.nodes[e.to_node]
            cost = math.dist((a.x, a.y), (b.x, b.y)) if a.floor == b.floor else 15.0
            self.adjacent[a.id].append((b.id, cost))
            self.adjacent[b.id].append((a.id, cost))
        self.door_of = {n.space_id: n.id for n in site.navigation.nodes if n.space_id and n.kind.value == "door"}
        ground = min(site.floors, key=lambda f: f.ordinal).id
        lifts = [n for n in self.nodes.values() if n.floor == ground and n.id.endswith("lift")]
        self.entrance = lifts[0] if lifts else next(n for n in self.nodes.values() if n.floor == ground)

    def nearest(self, floor: str, xy: tuple[float, float]) -> str:
        return min((n for n in self.nodes.values() if n.floor == floor), key=lambda n: math.dist((n.x, n.y), xy)).id

    def route(self, start: tuple[str, tuple[float, float]], end: tuple[str, tuple[float, float]],
              target_room: str | None) -> list[tuple[str, list[tuple[float, float]]]]:
        """Per floor, the points to walk through from start to end."""
        source = self.nearest(*start)
        target = self.door_of.get(target_room) if target_room else None
        target = target or self.nearest(*end)
        path = self._dijkstra(source, target)
        legs: list[tuple[str, list[tuple[float, float]]]] = [(start[0], [start[1]])]
        for node_id in path:
            node = self.nodes[node_id]
            if node.floor != legs[-1][0]:
                legs.append((node.floor, []))
            legs[-1][1].append((node.x, node.y))
        if legs[-1][0] != end[0]:
            legs.append((end[0], []))
        legs[-1][1].append(end[1])
        return legs

    def _dijkstra(self, source: str, target: str) -> list[str]:
        best = {source: 0.0}
        previous: dict[str, str] = {}
        queue = [(0.0, source)]
        while queue:
            cost, node = heapq.heappop(queue)
            if node == target:
                break
            if cost > best.get(node, math.inf):
                continue
            for neighbour, step in self.adjacent[node]:
                candidate = cost + step
                if candidate < best.get(neighbour, math.inf):
                    best[neighbour] = candidate
                    previous[neighbour] = node
                    heapq.heappush(queue, (candidate, neighbour))
        path = [target]
        while path[-1] != source:
            if path[-1] not in previous:
                return [source, target]
            path.append(previous[path[-1]])
        return path[::-1]
