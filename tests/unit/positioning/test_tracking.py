from __future__ import annotations

import json
import math
from itertools import pairwise

import pytest

from devkit.simulator import Phone, RadioSimulator, RadioSpec, Trajectory, batches
from shared.domain import geometry
from shared.domain.positioning import SignalModel, locate
from shared.domain.positioning.estimator import locate_many
from shared.domain.positioning.tracking import Sighting, TrackingState, newest_per_beacon, track

T0 = 1_700_000_000.0


def _run(index, radio, trajectory, seed=1, phone=Phone("p")):
    state, out = None, []
    for now, readings, truth in batches(radio, trajectory, phone, seed=seed):
        state, est = track(state, [Sighting(r.beacon, r.rssi, r.ts, r.tx_power) for r in readings], index, now)
        out.append((now - T0, est, truth, state))
    return out


def _room(site, floor, rank, min_width=4.5):
    def width(s):
        return max(p[0] for p in s.polygon) - min(p[0] for p in s.polygon)

    rooms = [s for s in site.spaces if s.floor == floor and width(s) >= min_width
             and s.kind.value in ("office", "conferenceroom", "phoneroom", "huddleroom", "kitchen")]
    return sorted(rooms, key=lambda s: geometry.polygon_centroid(s.polygon))[rank]


def test_state_is_small_json_and_round_trips(sim_site, sim_index):
    radio = RadioSimulator(sim_site, RadioSpec(batch_every_s=5))
    room = _room(sim_site, "L0", 3)
    runs = _run(sim_index, radio, Trajectory().dwell("L0", geometry.polygon_centroid(room.polygon), 120, room.id))
    state = runs[-1][3]
    text = json.dumps(state.to_json())
    assert len(text.encode()) <= 1100
    assert TrackingState.from_json(json.loads(text)) == state
    assert runs[-1][1].space_id == room.id


def test_late_and_out_of_order_batches_do_not_rewind_or_break(sim_index):
    beacons = [b.id for b in sim_index.beacons if b.floor == "L0"][:3]
    state, first = track(None, [Sighting(b, -65, T0 + 100) for b in beacons], sim_index, T0 + 100)
    state, late = track(state, [Sighting(beacons[0], -90, T0 + 95)], sim_index, T0 + 96)
    assert state.ts == T0 + 100
    assert late is not None and math.hypot(late.x - first.x, late.y - first.y) < 3
    state, none_known = track(state, [Sighting("f7826da6-4fa2-4e98-8024-bc5b71e0893e:9:9", -60, T0 + 101)],
                              sim_index, T0 + 101)
    assert none_known is not None  # recent readings still carry the estimate
    state, gone = track(state, [], sim_index, T0 + 200)
    assert gone is None and state.beacons == {}


def test_still_phone_near_a_wall_does_not_flap(sim_site, sim_index):
    radio = RadioSimulator(sim_site, RadioSpec(noise_db=6.0), seed=2)
    room = _room(sim_site, "L0", 4)
    xs = [p[0] for p in room.polygon]
    ys = [p[1] for p in room.polygon]
    near_wall = (max(xs) - 0.8, (min(ys) + max(ys)) / 2)  # 0.8 m from the wall to the next room
    runs = _run(sim_index, radio, Trajectory().dwell("L0", near_wall, 30 * 60, room.id), seed=5)
    reported = [est.space_id for t, est, _truth, _s in runs if est is not None and t > 60]
    changes = sum(a != b for a, b in pairwise(reported))
    assert changes <= 1
    assert sum(r == room.id for r in reported) / len(reported) > 0.8


def test_walking_phone_changes_room_within_seconds(sim_site, sim_index):
    radio = RadioSimulator(sim_site, RadioSpec(noise_db=6.0, batch_every_s=2.0), seed=3)
    doors = {n.space_id: (n.x, n.y) for n in sim_site.navigation.nodes if n.kind.value == "door"}
    a, b = _room(sim_site, "L0", 2), _room(sim_site, "L0", 7)
    ca, cb = geometry.polygon_centroid(a.polygon), geometry.polygon_centroid(b.polygon)
    corridor_y = 9.5
    path = [ca, doors[a.id], (doors[a.id][0], corridor_y), (doors[b.id][0], corridor_y), doors[b.id], cb]
    trajectory = Trajectory().dwell("L0", ca, 60, a.id).walk("L0", path, 1.2).dwell("L0", cb, 60, b.id)
    door = 60 + sum(math.dist(p, q) for p, q in pairwise(path[:-1])) / 1.2
    arrive = 60 + sum(math.dist(p, q) for p, q in pairwise(path)) / 1.2
    runs = _run(sim_index, radio, trajectory, seed=9)
    assert all(est.space_id == a.id for t, est, *_ in runs if 20 < t < 60)
    in_b = [t for t, est, *_ in runs if t >= door - 5 and est.space_id == b.id]
    assert in_b and in_b[0] - door <= 8  # map-matched: 6.9 s after crossing the door (12-13 s before)
    assert all(est.space_id == b.id for t, est, *_ in runs if t > arrive + 20)
    # the reported position is in the reported room
    for _t, est, *_ in runs:
        space = next(s for s in sim_site.spaces if s.id == est.space_id)
        assert geometry.distance_to_polygon((est.x, est.y), space.polygon) < 0.01


def test_floor_changes_on_the_stairs_but_not_by_teleport(sim_site, sim_index):
    radio = RadioSimulator(sim_site, RadioSpec(noise_db=6.0, batch_every_s=2.0), seed=4)
    stairs = next((n.x, n.y) for n in sim_site.navigation.nodes if n.kind.value == "stairs" and n.floor == "L0")
    room0, room1 = _room(sim_site, "L0", 1), _room(sim_site, "L1", 1)
    c0, c1 = geometry.polygon_centroid(room0.polygon), geometry.polygon_centroid(room1.polygon)
    climb = (Trajectory().dwell("L0", c0, 40).walk("L0", [c0, (c0[0], 9.5), (stairs[0], 9.5), stairs])
             .dwell("L1", stairs, 10).walk("L1", [stairs, (stairs[0], 9.5), (c1[0], 9.5), c1]).dwell("L1", c1, 40))
    runs = _run(sim_index, radio, climb, seed=2)
    assert runs[10][1].floor == "L0" and runs[-1][1].floor == "L1"
    far = max((s for s in sim_site.spaces if s.floor == "L1" and s.kind.value == "office"),
              key=lambda s: geometry.polygon_centroid(s.polygon)[0])
    cf = geometry.polygon_centroid(far.polygon)
    teleport = Trajectory().dwell("L0", (cf[0], cf[1]), 40).dwell("L1", cf, 30)
    runs = _run(sim_index, radio, teleport, seed=3)
    assert all(est.floor == "L0" for t, est, *_ in runs if est is not None)


def test_batch_and_single_call_give_the_same_estimates(sim_site, sim_index):
    import numpy as np

    radio = RadioSimulator(sim_site, RadioSpec(), seed=8)
    rng = np.random.default_rng(1)
    scans = []
    for i in range(150):
        readings = radio.scan(("L0", "L1")[i % 2], rng.uniform(1, 59), rng.uniform(1, 18), 0, 2.0, Phone("p"), rng)
        scans.append({r.beacon: float(r.rssi) for r in readings})
    model = SignalModel()
    many = locate_many(sim_index, model, scans)
    for scan, batch in zip(scans, many):
        one = locate(sim_index, model, scan)
        if one is None:
            assert batch is None
            continue
        assert (batch.floor, batch.space_id) == (one.floor, one.space_id)
        assert batch.x == pytest.approx(one.x, abs=1e-3) and batch.y == pytest.approx(one.y, abs=1e-3)
        assert batch.uncertainty_m == pytest.approx(one.uncertainty_m, abs=1e-3)


def test_newest_per_beacon_is_each_beacons_latest_time_in_or_out_of_order():
    beacons = ["a", "b", "a", "c", "b", "a"]
    times = [1.0, 2.0, 3.0, 3.0, 5.0, 6.0]
    assert newest_per_beacon(beacons, times) == {"a": 6.0, "b": 5.0, "c": 3.0}
    shuffled = [5, 0, 3, 1, 4, 2]  # the same readings in another order: the latest still wins
    assert newest_per_beacon([beacons[i] for i in shuffled], [times[i] for i in shuffled]) == {
        "a": 6.0, "b": 5.0, "c": 3.0}
    assert newest_per_beacon([7, 7], [4.0, 4.0]) == {7: 4.0}
    assert newest_per_beacon([], []) == {}


def test_a_beacon_not_heard_keeps_its_stored_filter_and_a_heard_one_is_stored_rounded(sim_index):
    beacons = [b.id for b in sim_index.beacons if b.floor == "L0"][:3]
    readings = [Sighting(b, -60.123456 - 3 * i, T0 + 10.0001 + i, -59) for i, b in enumerate(beacons)]
    state, _ = track(None, readings, sim_index, T0 + 13)
    # the next batch hears only the first beacon, with a new advertised power
    after, _ = track(state, [Sighting(beacons[0], -70.987654, T0 + 14.0004, -55)], sim_index, T0 + 15)
    for beacon in beacons[1:]:
        assert after.beacons[beacon] == state.beacons[beacon]  # not heard: as stored
    heard = after.beacons[beacons[0]]
    assert heard != state.beacons[beacons[0]]
    assert heard == (round(heard[0], 2), round(heard[1], 2), round(heard[2], 3), round(heard[3], 1))
    assert heard[0] < state.beacons[beacons[0]][0] and heard[2] == round(T0 + 14.0004, 3)
    # what the state stores is all the next batch needs: the same answer from its JSON
    again, _ = track(TrackingState.from_json(json.loads(json.dumps(state.to_json()))),
                     [Sighting(beacons[0], -70.987654, T0 + 14.0004, -55)], sim_index, T0 + 15)
    assert again == after
