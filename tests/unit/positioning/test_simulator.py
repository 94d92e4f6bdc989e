from __future__ import annotations

import math

import numpy as np

from devkit.simulator import BuildingSpec, Phone, RadioSimulator, RadioSpec, Trajectory, batches, generate_building
from shared.domain import geometry


def test_building_is_deterministic_for_a_seed():
    a = generate_building(BuildingSpec(floors=2), seed=5).model_dump_json(by_alias=True)
    b = generate_building(BuildingSpec(floors=2), seed=5).model_dump_json(by_alias=True)
    c = generate_building(BuildingSpec(floors=2), seed=6).model_dump_json(by_alias=True)
    assert a == b and a != c


def test_building_has_rooms_of_varied_sizes_stairs_elevators_and_dense_beacons(sim_site):
    kinds = {s.kind.value for s in sim_site.spaces}
    assert {"stairs", "elevator", "walkway", "kitchen", "restroom"} <= kinds
    areas = [abs(geometry.polygon_area(s.polygon)) for s in sim_site.spaces if s.kind.value == "office"]
    assert max(areas) > 1.8 * min(areas)
    for floor in sim_site.floors:
        xy = np.array([(b.x, b.y) for b in sim_site.beacons if b.floor == floor.id])
        nearest = [np.sort(np.hypot(*(xy - p).T))[1] for p in xy]
        assert 6.0 <= float(np.median(nearest)) <= 11.0
    assert any(e.kind.value == "stairs" for e in sim_site.navigation.edges)


def test_rssi_falls_with_distance_walls_and_floors(sim_site):
    radio = RadioSimulator(sim_site, RadioSpec(shadowing_db=0.0))
    b = sim_site.beacons[0]
    near = radio.mean_rssi(b.floor, b.x + 1, b.y)[0]
    far = radio.mean_rssi(b.floor, b.x + 8, b.y)[0]
    assert near > far
    upstairs = radio.mean_rssi("L1", b.x + 1, b.y)[0]
    assert near - upstairs > 15


def test_readings_are_seeded_noisy_and_have_dropouts(sim_site):
    radio = RadioSimulator(sim_site, RadioSpec(noise_db=6.0, dropout=0.3, batch_every_s=5))
    traj = Trajectory().dwell("L0", (20.0, 5.0), 60)
    phone = Phone("p1", offset_db=-3)
    run1 = [[(r.beacon, r.rssi, r.ts) for r in readings] for _t, readings, _ in batches(radio, traj, phone, seed=4)]
    run2 = [[(r.beacon, r.rssi, r.ts) for r in readings] for _t, readings, _ in batches(radio, traj, phone, seed=4)]
    assert run1 == run2 and len(run1) == 12
    loudest = max(sim_site.beacons, key=lambda b: radio.mean_rssi("L0", 20, 5)[sim_site.beacons.index(b)])
    values = [r for batch in run1 for (bid, r, _ts) in batch if bid == loudest.id]
    assert 20 <= len(values) <= 55  # ~60 s x 1 reading/s x 0.7 kept
    assert np.std(values) > 3


def test_walk_moves_at_the_given_speed():
    traj = Trajectory().walk("L0", [(0, 0), (10, 0), (10, 10)], speed_mps=2.0)
    assert traj.duration_s == 10.0
    floor, x, y, _ = traj.at(7.5)
    assert floor == "L0" and math.isclose(x, 10) and math.isclose(y, 5)


def test_walk_study_measures_the_door_to_room_delay():
    from devkit.simulator import walk_study

    r = walk_study(phones=6, walks=4, seed=3)
    assert r["walks_scored"] == 6 * 2  # the first two walks of each phone are warm-up
    assert 0 < r["median_delay_s"] <= 8.0 and r["missed"] <= 1
