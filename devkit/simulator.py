"""Device simulator: a synthetic office building as a `site/v1` SiteModel, and the BLE RSSI phones would read in it.

Seeded and deterministic. Building: floors with a stair/elevator core, a corridor, rooms of varied sizes on both
sides (offices, meeting rooms, phone rooms, a kitchen and restrooms), beacons every ~9 m, a navigation graph.
Radio: log-distance path loss, a loss per wall crossed and per floor, static shadowing (a smooth random field per
beacon), fast fading (noise sigma 4-8 dB), per-phone offsets, dropouts, a sensitivity floor, and readings at a
realistic cadence batched like the SDK does. People behaviour (many phones through a day) drives `RadioSimulator`
with `Trajectory` objects; `dwell_study` measures room accuracy and room flapping of the tracker.

    python -m devkit.simulator building [--floors N] [--seed S]        # print the SiteModel JSON
    python -m devkit.simulator dwell-study [--phones N] [--minutes M]   # room accuracy and flaps, JSON
    python -m devkit.simulator walk-study [--phones N] [--walks W]      # door-to-room delay walking, JSON
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.domain.positioning.tracking import TrackingPolicy
from shared.domain.site import SiteModel, parse_site_model

BEACON_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
ROOM_KINDS = ("office", "office", "office", "conferenceroom", "conferenceroom", "phoneroom", "huddleroom")


@dataclass(frozen=True)
class BuildingSpec:
    floors: int = 2
    length_m: float = 60.0
    room_depth_m: float = 8.0
    corridor_width_m: float = 3.0
    core_width_m: float = 6.0
    min_room_width_m: float = 3.0
    max_room_width_m: float = 10.0
    beacon_spacing_m: float = 9.0
    floor_height_m: float = 3.5
    measured_power_dbm: int = -59


def generate_building(spec: BuildingSpec = BuildingSpec(), seed: int = 1, building_id: str = "sim-hq") -> SiteModel:
    """A validated SiteModel of a synthetic office building (same footprint on every floor)."""
    rng = np.random.default_rng(seed)
    depth = 2 * spec.room_depth_m + spec.corridor_width_m
    length = spec.length_m
    c0, c1 = spec.room_depth_m, spec.room_depth_m + spec.corridor_width_m  # corridor y band
    core = spec.core_width_m
    # the site model's parts as JSON documents, validated at the end
    floors: list[dict[str, Any]] = []
    spaces: list[dict[str, Any]] = []
    beacons: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for f in range(spec.floors):
        fid = f"L{f}"
        floors.append({"id": fid, "name": f"Level {f}", "ordinal": f, "elevation": f * spec.floor_height_m,
                       "outline": _rect(0, 0, length, depth)})
        spaces.append({"id": f"{fid}-stairs", "name": f"Stairs L{f}", "kind": "stairs", "floor": fid,
                       "polygon": _rect(0, 0, core, c0)})
        spaces.append({"id": f"{fid}-lift", "name": f"Elevator L{f}", "kind": "elevator", "floor": fid,
                       "polygon": _rect(0, c1, core, depth)})
        spaces.append({"id": f"{fid}-corridor", "name": f"Corridor L{f}", "kind": "walkway", "floor": fid,
                       "polygon": _rect(0, c0, length, c1)})
        corridor_nodes: list[tuple[float, str]] = []
        room_no = 0
        specials = ["kitchen", "restroom"]
        for side, (y0, y1) in enumerate(((0.0, c0), (c1, depth))):
            x = core
            while x < length - 1e-6:
                width = float(rng.uniform(spec.min_room_width_m, spec.max_room_width_m))
                if length - (x + width) < spec.min_room_width_m:
                    width = length - x
                kind = specials.pop() if specials and rng.random() < 0.3 else str(rng.choice(ROOM_KINDS))
                room_no += 1
                sid = f"{fid}-R{room_no:02d}"
                spaces.append({
                    "id": sid, "name": f"{kind.title()} {f}.{room_no:02d}", "kind": kind, "floor": fid,
                    "polygon": _rect(x, y0, x + width, y1),
                    "capacity": int(max(1, width * spec.room_depth_m / 4)),
                    "bookable": kind in ("conferenceroom", "huddleroom", "phoneroom"),
                })
                door_x = round(x + width / 2, 2)
                door_y = c0 if side == 0 else c1
                nodes.append({"id": f"{sid}-door", "x": door_x, "y": door_y, "floor": fid, "kind": "door",
                              "spaceId": sid})
                corridor_nodes.append((door_x, f"{sid}-door"))
                x += width
        mid = (c0 + c1) / 2
        hall: list[tuple[float, str]] = []
        for i, x in enumerate(np.arange(core / 2, length, 6.0)):
            nid = f"{fid}-c{i:02d}"
            nodes.append({"id": nid, "x": round(float(x), 2), "y": mid, "floor": fid, "kind": "corridor"})
            hall.append((float(x), nid))
        for a, b in itertools.pairwise(hall):
            edges.append({"from": a[1], "to": b[1]})
        for door_x, door_id in corridor_nodes:
            nearest = min(hall, key=lambda h: abs(h[0] - door_x))
            edges.append({"from": door_id, "to": nearest[1]})
        nodes.append({"id": f"{fid}-stairs", "x": core / 2, "y": c0 / 2, "floor": fid, "kind": "stairs",
                      "spaceId": f"{fid}-stairs"})
        nodes.append({"id": f"{fid}-lift", "x": core / 2, "y": (c1 + depth) / 2, "floor": fid, "kind": "elevator",
                      "spaceId": f"{fid}-lift"})
        edges.append({"from": f"{fid}-stairs", "to": hall[0][1]})
        edges.append({"from": f"{fid}-lift", "to": hall[0][1]})
        if f > 0:
            edges.append({"from": f"L{f - 1}-stairs", "to": f"{fid}-stairs", "kind": "stairs", "accessible": False})
            edges.append({"from": f"L{f - 1}-lift", "to": f"{fid}-lift", "kind": "elevator"})
        k = 0
        s = spec.beacon_spacing_m
        for bx in np.arange(s / 2, length, s):
            for by in np.arange(min(s / 2, depth / 2), depth, s):
                k += 1
                jitter = rng.uniform(-1.0, 1.0, size=2)
                x = float(np.clip(bx + jitter[0], 0.5, length - 0.5))
                y = float(np.clip(by + jitter[1], 0.5, depth - 0.5))
                beacons.append({"id": f"{BEACON_UUID}:{f + 1}:{k}", "x": round(x, 2), "y": round(y, 2),
                                "floor": fid, "measuredPower": spec.measured_power_dbm})
    return parse_site_model({
        "schema": "site/v1", "buildingId": building_id, "name": "Simulated HQ", "timeZone": "Europe/Amsterdam",
        "floors": floors, "spaces": spaces, "beacons": beacons, "navigation": {"nodes": nodes, "edges": edges},
    })


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[round(x0, 2), round(y0, 2)], [round(x1, 2), round(y0, 2)], [round(x1, 2), round(y1, 2)],
            [round(x0, 2), round(y1, 2)]]


@dataclass(frozen=True)
class RadioSpec:
    path_loss_exponent: float = 2.2
    beacon_height_m: float = 1.5
    wall_loss_db: float = 3.5
    floor_loss_db: float = 18.0
    shadowing_db: float = 3.0
    noise_db: float = 6.0
    dropout: float = 0.2
    sensitivity_dbm: float = -95.0
    readings_per_s: float = 1.0
    batch_every_s: float = 10.0


@dataclass(frozen=True)
class Phone:
    device_id: str
    model: str = "Pixel 7"
    offset_db: float = 0.0


@dataclass(frozen=True)
class Reading:
    beacon: str
    rssi: int
    ts: float
    tx_power: int


class RadioSimulator:
    """Expected and noisy RSSI of every beacon at a true position, deterministic for a seed."""

    def __init__(self, site: SiteModel, spec: RadioSpec = RadioSpec(), seed: int = 7):
        self.site = site
        self.spec = spec
        self.seed = seed
        self.floor_ordinal = {f.id: f.ordinal for f in site.floors}
        self.beacon_ids = [b.id for b in site.beacons]
        self.beacon_xy = np.array([(b.x, b.y) for b in site.beacons])
        self.beacon_ordinal = np.array([self.floor_ordinal[b.floor] for b in site.beacons])
        self.beacon_power = np.array([b.measured_power for b in site.beacons], dtype=float)
        walls: set[tuple[float, float, float, float]] = set()
        for s in site.spaces:
            if s.kind.value in ("walkway",):
                continue
            pts = s.polygon
            for i in range(len(pts)):
                a, b = pts[i], pts[(i + 1) % len(pts)]
                walls.add(tuple(round(v, 2) for v in (min(a, b) + max(a, b))))  # type: ignore[arg-type]
        self.walls = np.array(sorted(walls), dtype=float).reshape(-1, 4)
        rng = np.random.default_rng(seed)
        n = len(site.beacons)
        self._wave_k = rng.uniform(0.15, 0.6, size=(n, 3)) * np.exp(1j * rng.uniform(0, 2 * np.pi, size=(n, 3)))
        self._wave_phase = rng.uniform(0, 2 * np.pi, size=(n, 3))

    def mean_rssi(self, floor: str, x: float, y: float) -> NDArray[np.float64]:
        """Expected RSSI (dBm, before phone offset and fading) of every beacon at a true position."""
        sp = self.spec
        d2 = ((self.beacon_xy - (x, y)) ** 2).sum(axis=1)
        floors_between = np.abs(self.beacon_ordinal - self.floor_ordinal[floor])
        slant = np.sqrt(d2 + sp.beacon_height_m**2 + (floors_between * 3.5) ** 2 + 0.09)
        rssi: NDArray[np.float64] = self.beacon_power - 10 * sp.path_loss_exponent * np.log10(slant)
        rssi -= sp.wall_loss_db * self._walls_crossed(x, y)
        rssi -= sp.floor_loss_db * floors_between
        proj = self._wave_k.real * x + self._wave_k.imag * y
        rssi += sp.shadowing_db * np.sqrt(2 / 3) * np.sin(proj + self._wave_phase).sum(axis=1)
        return rssi

    def _walls_crossed(self, x: float, y: float) -> NDArray[np.int64]:
        if len(self.walls) == 0:
            return np.zeros(len(self.beacon_xy), dtype=np.int64)
        p = np.array([x, y])
        q = self.beacon_xy  # (B, 2)
        a, b = self.walls[:, :2], self.walls[:, 2:]  # (W, 2)

        def orient(o: NDArray[np.float64], u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
            area: NDArray[np.float64] = (
                (u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1]) - (u[..., 1] - o[..., 1]) * (v[..., 0] - o[..., 0])
            )
            return area

        d1 = orient(a[None], b[None], p[None, None, :])
        d2 = orient(a[None], b[None], q[:, None, :])
        d3 = orient(p[None, None, :], q[:, None, :], a[None])
        d4 = orient(p[None, None, :], q[:, None, :], b[None])
        crosses = (d1 * d2 < 0) & (d3 * d4 < 0)
        counts: NDArray[np.int64] = crosses.sum(axis=1)
        return counts

    def scan(
        self, floor: str, x: float, y: float, t0: float, duration_s: float, phone: Phone, rng: np.random.Generator
    ) -> list[Reading]:
        """Readings a phone standing at (floor, x, y) reports during [t0, t0 + duration_s)."""
        sp = self.spec
        mean = self.mean_rssi(floor, x, y) + phone.offset_db
        out: list[Reading] = []
        candidates = np.flatnonzero(mean > sp.sensitivity_dbm - 3 * sp.noise_db)
        for i in candidates:
            count = rng.poisson(sp.readings_per_s * duration_s)
            for _ in range(count):
                if rng.random() < sp.dropout:
                    continue
                value = mean[i] + rng.normal(0.0, sp.noise_db)
                if value < sp.sensitivity_dbm:
                    continue
                ts = t0 + rng.random() * duration_s
                out.append(Reading(self.beacon_ids[i], round(value), round(ts, 3), int(self.beacon_power[i])))
        out.sort(key=lambda r: r.ts)
        return out


@dataclass(frozen=True)
class Leg:
    """A piece of a trajectory: stand still at `points[0]`, or walk along `points` at `speed_mps`."""

    floor: str
    points: tuple[tuple[float, float], ...]
    duration_s: float
    space_id: str | None = None


@dataclass
class Trajectory:
    legs: list[Leg] = field(default_factory=list)

    def dwell(self, floor: str, xy: tuple[float, float], seconds: float, space_id: str | None = None) -> Trajectory:
        self.legs.append(Leg(floor, (xy,), seconds, space_id))
        return self

    def walk(self, floor: str, points: Sequence[tuple[float, float]], speed_mps: float = 1.2) -> Trajectory:
        length = sum(math.dist(a, b) for a, b in itertools.pairwise(points))
        self.legs.append(Leg(floor, tuple(points), max(length / speed_mps, 1e-3)))
        return self

    @property
    def duration_s(self) -> float:
        return sum(leg.duration_s for leg in self.legs)

    def at(self, t: float) -> tuple[str, float, float, str | None]:
        """True (floor, x, y, space when dwelling) at time t since the start."""
        for leg in self.legs:
            if t < leg.duration_s or leg is self.legs[-1]:
                t = min(t, leg.duration_s)
                if len(leg.points) == 1:
                    return leg.floor, leg.points[0][0], leg.points[0][1], leg.space_id
                return (leg.floor, *_along(leg.points, t / leg.duration_s), None)
            t -= leg.duration_s
        raise ValueError("empty trajectory")


def _along(points: Sequence[tuple[float, float]], fraction: float) -> tuple[float, float]:
    lengths = [math.dist(a, b) for a, b in itertools.pairwise(points)]
    target = fraction * sum(lengths)
    for (a, b), length in zip(itertools.pairwise(points), lengths):
        if target <= length or length == 0:
            f = 0 if length == 0 else target / length
            return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])
        target -= length
    return points[-1]


def batches(
    radio: RadioSimulator, trajectory: Trajectory, phone: Phone, *, start: float = 1_700_000_000.0, seed: int = 0,
    step_s: float = 1.0,
) -> Iterator[tuple[float, list[Reading], tuple[str, float, float, str | None]]]:
    """(send time, readings of the batch, true state at send time) every `batch_every_s` along a trajectory."""
    rng = np.random.default_rng(seed)
    every = radio.spec.batch_every_s
    t = 0.0
    pending: list[Reading] = []
    next_send = every
    while t < trajectory.duration_s:
        floor, x, y, _space = trajectory.at(t + step_s / 2)
        pending.extend(radio.scan(floor, x, y, start + t, step_s, phone, rng))
        t += step_s
        if t >= next_send - 1e-9:
            yield start + t, pending, trajectory.at(t)
            pending = []
            next_send += every


def room_points(site: SiteModel, space_id: str, rng: np.random.Generator, n: int,
                inset_m: float = 0.5) -> list[tuple[float, float]]:
    """n random points inside a rectangular-ish space, at least `inset_m` from its walls (bounding box based)."""
    space = next(s for s in site.spaces if s.id == space_id)
    xs = [p[0] for p in space.polygon]
    ys = [p[1] for p in space.polygon]
    return [
        (float(rng.uniform(min(xs) + inset_m, max(xs) - inset_m)), float(rng.uniform(min(ys) + inset_m, max(ys) - inset_m)))
        for _ in range(n)
    ]


def dwell_study(
    *, floors: int = 2, phones: int = 40, minutes: float = 30.0, seed: int = 11, noise_db: float = 6.0,
    batch_every_s: float = 10.0, offset_db: float = 4.0, offsets: str = "normal", warmup_minutes: float = 1.0,
    selfcal: bool = True, drifted_beacons: int = 0, drift_db: float = -8.0, drift_after_minutes: float = 0.0,
    tracking: TrackingPolicy | None = None,
) -> dict[str, Any]:
    """Phones standing still in random rooms, all at the same time: how often the tracker reports the right room
    (after `warmup_minutes`), how many times per hour a still phone's reported room changes, and how many of those
    changes went to a wrong room (mistaken switches). Phone offsets are N(0, offset_db) (`offsets="normal"`) or
    uniform in +-offset_db (`"uniform"`), unknown to the tracker. With `selfcal` the tracker self-calibrates
    (each phone's offset, and every beacon's drift pooled over the phones, folded after every round of batches as
    the pipeline does per trigger call); `drifted_beacons` beacons (those nearest the middle of the first floor)
    start transmitting `drift_db` off
    their site model value after `drift_after_minutes`; the result lists the beacons flagged at the end."""
    from shared.domain.positioning import SiteIndex
    from shared.domain.positioning.selfcal import SelfCalibrationPolicy, SiteCalibration
    from shared.domain.positioning.tracking import Sighting, TrackingState, track

    site = generate_building(BuildingSpec(floors=floors), seed=seed)
    index = SiteIndex.from_site_model(site)
    radio = RadioSimulator(site, RadioSpec(noise_db=noise_db, batch_every_s=batch_every_s), seed=seed + 1)
    middle = (BuildingSpec().length_m / 2, BuildingSpec().room_depth_m)
    first_floor = [b for b in site.beacons if b.floor == site.floors[0].id]
    drifted = [b.id for b in sorted(first_floor, key=lambda b: math.dist((b.x, b.y), middle))[:drifted_beacons]]
    policy = dataclasses.replace(tracking or TrackingPolicy(), selfcal=SelfCalibrationPolicy(enabled=selfcal))
    drift = SiteCalibration(policy.selfcal) if selfcal else None
    rng = np.random.default_rng(seed + 2)
    rooms = [s.id for s in site.spaces if s.kind.value not in ("walkway", "stairs", "elevator")]
    streams = []
    for p in range(phones):
        room = str(rng.choice(rooms))
        floor = next(s.floor for s in site.spaces if s.id == room)
        xy = room_points(site, room, rng, 1)[0]
        offset = rng.uniform(-offset_db, offset_db) if offsets == "uniform" else rng.normal(0, offset_db)
        phone = Phone(f"phone-{p}", offset_db=float(offset))
        trajectory = Trajectory().dwell(floor, xy, minutes * 60, room)
        streams.append((room, batches(radio, trajectory, phone, seed=seed * 1000 + p)))
    states: list[TrackingState | None] = [None] * phones
    previous: list[str | None] = [None] * phones
    hits = total = flaps = mistakes = 0
    start = 1_700_000_000.0
    drift_applied = not drifted
    live = True
    while live:
        live = False
        for p, (room, stream) in enumerate(streams):
            step = next(stream, None)
            if step is None:
                continue
            live = True
            now, readings, _truth = step
            if not drift_applied and now - start >= drift_after_minutes * 60:
                for beacon in drifted:
                    radio.beacon_power[radio.beacon_ids.index(beacon)] += drift_db
                drift_applied = True
            sightings = [Sighting(r.beacon, r.rssi, r.ts, r.tx_power) for r in readings]
            states[p], estimate = track(states[p], sightings, index, now, policy=policy, site_cal=drift)
            if estimate is None:
                continue
            warm = now - start > warmup_minutes * 60
            if warm:
                total += 1
                hits += estimate.space_id == room
                if previous[p] is not None and estimate.space_id != previous[p]:
                    flaps += 1
                    mistakes += estimate.space_id != room
            previous[p] = estimate.space_id if warm else None
        if drift is not None and live:
            drift.fold(now)
    hours = phones * (minutes - warmup_minutes) / 60
    estimates = drift.estimates if drift is not None else {}
    return {
        "phones": phones, "minutes": minutes, "noise_db": noise_db, "batch_every_s": batch_every_s,
        "offsets": f"{offsets} {offset_db:g} dB", "warmup_minutes": warmup_minutes,
        "room_accuracy": round(hits / max(total, 1), 4), "room_changes_per_hour": round(flaps / hours, 3),
        "mistaken_switches_per_hour": round(mistakes / hours, 3),
        "estimates": total,
        "selfcal": selfcal,
        "drifted_beacons": {b: drift_db for b in drifted},
        "drift_after_minutes": drift_after_minutes,
        "flagged_beacons": sorted(b for b in estimates if drift is not None and drift.flagged(b)),
        "drift_estimates_db": {b: round(estimates[b].drift, 1) for b in drifted if b in estimates},
        "largest_drifts_db": dict(sorted(((b, round(e.drift, 1)) for b, e in estimates.items()),
                                         key=lambda kv: -abs(kv[1]))[:5]),
    }


def walk_study(
    *, floors: int = 2, phones: int = 20, walks: int = 8, seed: int = 11, noise_db: float = 6.0,
    batch_every_s: float = 2.0, offset_db: float = 8.0, dwell_s: float = 60.0, speed_mps: float = 1.2,
    selfcal: bool = True, warmup_walks: int = 2, tracking: TrackingPolicy | None = None,
) -> dict[str, Any]:
    """Phones walking room to room through the corridor (dwell `dwell_s` in each room, `walks` walks a phone,
    offsets uniform in +-offset_db): the delay from crossing the new room's door to the tracker reporting that room
    (median, p90, missed = not within a minute), and the reported changes to a room the phone is not in nor walking
    to (mistaken switches per hour of walking and dwelling). The first `warmup_walks` walks of each phone are not
    scored (self-calibration learns from them)."""
    from shared.domain.positioning import SiteIndex
    from shared.domain.positioning.selfcal import SelfCalibrationPolicy, SiteCalibration
    from shared.domain.positioning.tracking import Sighting, track

    site = generate_building(BuildingSpec(floors=floors), seed=seed)
    index = SiteIndex.from_site_model(site)
    radio = RadioSimulator(site, RadioSpec(noise_db=noise_db, batch_every_s=batch_every_s), seed=seed + 1)
    policy = dataclasses.replace(tracking or TrackingPolicy(), selfcal=SelfCalibrationPolicy(enabled=selfcal))
    calibration = SiteCalibration(policy.selfcal) if selfcal else None
    rng = np.random.default_rng(seed + 2)
    doors = {n.space_id: (n.floor, n.x, n.y) for n in site.navigation.nodes if n.kind.value == "door"}
    corridor_y = BuildingSpec().room_depth_m + BuildingSpec().corridor_width_m / 2
    rooms = [s for s in site.spaces if s.id in doors and s.kind.value not in ("walkway", "stairs", "elevator")]
    delays: list[float] = []
    missed = mistakes = 0
    scored_s = 0.0
    for p in range(phones):
        floor = site.floors[p % len(site.floors)].id
        on_floor = [s for s in rooms if s.floor == floor]
        visits = [on_floor[int(i)] for i in rng.choice(len(on_floor), size=walks + 1, replace=False)]
        trajectory = Trajectory()
        arrivals: list[tuple[float, float, str, str]] = []  # (door crossed at, walk start, from room, to room)
        t = 0.0
        here = room_points(site, visits[0].id, rng, 1)[0]
        trajectory.dwell(floor, here, dwell_s, visits[0].id)
        t += dwell_s
        for previous, room in itertools.pairwise(visits):
            there = room_points(site, room.id, rng, 1)[0]
            _f, ax, ay = doors[previous.id]
            _f, bx, by = doors[room.id]
            to_door = [here, (ax, ay), (ax, corridor_y), (bx, corridor_y), (bx, by)]
            door_at = t + sum(math.dist(a, b) for a, b in itertools.pairwise(to_door)) / speed_mps
            trajectory.walk(floor, [*to_door, there], speed_mps)
            walk_end = t + trajectory.legs[-1].duration_s
            arrivals.append((door_at, t, previous.id, room.id))
            trajectory.dwell(floor, there, dwell_s, room.id)
            t = walk_end + dwell_s
            here = there
        offset = float(rng.uniform(-offset_db, offset_db))
        state = None
        reported: list[tuple[float, str | None]] = []
        for now, readings, _truth in batches(radio, trajectory, Phone(f"walker-{p}", offset_db=offset),
                                             seed=seed * 1000 + p, start=1_700_000_000.0):
            sightings = [Sighting(r.beacon, r.rssi, r.ts, r.tx_power) for r in readings]
            state, estimate = track(state, sightings, index, now, policy=policy, site_cal=calibration)
            if calibration is not None:
                calibration.fold(now)
            reported.append((now - 1_700_000_000.0, estimate.space_id if estimate is not None else None))
        for k, (door_at, start, origin, target) in enumerate(arrivals):
            if k < warmup_walks:
                continue
            end = arrivals[k + 1][1] if k + 1 < len(arrivals) else trajectory.duration_s
            seen = [at for at, space in reported if at >= start and space == target and at <= door_at + 60]
            if seen:
                delays.append(max(seen[0] - door_at, 0.0))
            else:
                missed += 1
            # from the start of this walk to the start of the next: a change to neither room is a mistake
            window = [(at, space) for at, space in reported if start <= at < end]
            scored_s += end - start
            for (_a, before), (_b, after) in itertools.pairwise(window):
                if after != before and after not in (origin, target):
                    corridor = after is not None and after.endswith("corridor")
                    mistakes += not corridor
    hours = scored_s / 3600
    d = np.array(delays) if delays else np.array([math.nan])
    return {
        "phones": phones, "walks_scored": len(delays) + missed, "batch_every_s": batch_every_s, "noise_db": noise_db,
        "offsets": f"uniform {offset_db:g} dB", "selfcal": selfcal,
        "median_delay_s": round(float(np.median(d)), 1), "p90_delay_s": round(float(np.percentile(d, 90)), 1),
        "missed": missed, "mistaken_switches_per_hour": round(mistakes / max(hours, 1e-9), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("building", help="print a simulated SiteModel")
    b.add_argument("--floors", type=int, default=2)
    b.add_argument("--seed", type=int, default=1)
    d = sub.add_parser("dwell-study", help="room accuracy and flaps of still phones")
    d.add_argument("--floors", type=int, default=2)
    d.add_argument("--phones", type=int, default=40)
    d.add_argument("--minutes", type=float, default=30.0)
    d.add_argument("--noise-db", type=float, default=6.0)
    d.add_argument("--seed", type=int, default=11)
    d.add_argument("--batch-every-s", type=float, default=10.0)
    d.add_argument("--offset-db", type=float, default=4.0, help="spread of the phones' unknown RSSI offsets")
    d.add_argument("--offsets", choices=("normal", "uniform"), default="normal",
                   help="normal: N(0, offset-db); uniform: +-offset-db")
    d.add_argument("--warmup-minutes", type=float, default=1.0, help="estimates before this are not scored")
    d.add_argument("--no-selfcal", action="store_true", help="the tracker does not self-calibrate")
    d.add_argument("--drifted-beacons", type=int, default=0, help="beacons transmitting --drift-db off")
    d.add_argument("--drift-db", type=float, default=-8.0)
    d.add_argument("--drift-after-minutes", type=float, default=0.0)
    d.add_argument("--json", action="store_true")
    w = sub.add_parser("walk-study", help="delay from crossing a door to the new room, walking room to room")
    w.add_argument("--floors", type=int, default=2)
    w.add_argument("--phones", type=int, default=20)
    w.add_argument("--walks", type=int, default=8)
    w.add_argument("--seed", type=int, default=11)
    w.add_argument("--noise-db", type=float, default=6.0)
    w.add_argument("--batch-every-s", type=float, default=2.0)
    w.add_argument("--offset-db", type=float, default=8.0)
    w.add_argument("--no-selfcal", action="store_true")
    w.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "building":
        site = generate_building(BuildingSpec(floors=args.floors), seed=args.seed)
        print(site.model_dump_json(by_alias=True, indent=1))
    elif args.command == "walk-study":
        result = walk_study(floors=args.floors, phones=args.phones, walks=args.walks, seed=args.seed,
                            noise_db=args.noise_db, batch_every_s=args.batch_every_s, offset_db=args.offset_db,
                            selfcal=not args.no_selfcal)
        print(json.dumps(result, indent=None if args.json else 2))
    else:
        result = dwell_study(floors=args.floors, phones=args.phones, minutes=args.minutes, seed=args.seed,
                             noise_db=args.noise_db, batch_every_s=args.batch_every_s, offset_db=args.offset_db,
                             offsets=args.offsets, warmup_minutes=args.warmup_minutes, selfcal=not args.no_selfcal,
                             drifted_beacons=args.drifted_beacons, drift_db=args.drift_db,
                             drift_after_minutes=args.drift_after_minutes)
        print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
