"""Self-calibration: a device's RSSI offset and a beacon's measured-power drift, learnt from confident positions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from devkit.simulator import Phone, RadioSimulator, RadioSpec, Trajectory, batches, dwell_study, room_points
from shared.domain.positioning.selfcal import (
    DeviceOffset,
    DriftEstimate,
    SelfCalibrationPolicy,
    SiteCalibration,
    measured_offset,
    update_device_offset,
)
from shared.domain.positioning.tracking import Sighting, TrackingState, track

POLICY = SelfCalibrationPolicy()


def test_device_offset_moves_towards_what_the_readings_say_and_stays_bounded():
    offset = DeviceOffset(0.0, 25.0)
    for _ in range(60):
        common, var = measured_offset(np.full(8, 7.0 - offset.mean), np.full(8, 16.0))
        assert var == pytest.approx(2.0)
        offset = update_device_offset(offset, offset.mean + common, var, 10.0, POLICY)
    assert offset.mean == pytest.approx(7.0, abs=0.3) and offset.variance < 2.0
    # one wild update is shrunk (an update is at best model-error good) and the estimate is bounded
    jumped = update_device_offset(offset, 60.0, 2.0, 10.0, POLICY)
    assert 7.0 < jumped.mean < 7.0 + 53.0 / 2
    assert update_device_offset(DeviceOffset(0.0, 1e6), 60.0, 0.0, 0.0, POLICY).mean == POLICY.device_bound_db


def test_device_offsets_are_taken_relative_to_the_buildings_level():
    """What the model gets wrong for every phone in a building is not one phone's offset."""
    cal = SiteCalibration(SelfCalibrationPolicy(device_level_after=20))
    assert cal.device_reference() is None
    rng = np.random.default_rng(0)
    for t in range(10):
        for _ in range(5):
            cal.observe_device(6.0 + rng.normal(0, 4.0))  # phones' offsets around +6 dB
        cal.fold(60.0 * t)
    reference = cal.device_reference()
    assert reference is not None and reference == pytest.approx(6.0, abs=1.5)


def test_beacon_drift_is_the_change_from_the_settled_level_not_the_level():
    cal = SiteCalibration(SelfCalibrationPolicy(baseline_after=50))
    t = 0.0
    for _ in range(20):  # a beacon the model gets 5 dB wrong for good: no drift, never flagged
        for _ in range(10):
            cal.observe("b1", 5.0 + np.random.default_rng(int(t)).normal(0, 3))
        t += 60
        cal.fold(t)
    est = cal.estimates["b1"]
    assert est.baseline is not None and abs(est.level - 5.0) < 1.5 and abs(cal.offset("b1")) < 1.0
    assert not cal.flagged("b1")
    rng = np.random.default_rng(1)
    for _ in range(90):  # then it drops 8 dB (battery, turned): an hour and a half of residuals
        for _ in range(10):
            cal.observe("b1", -3.0 + rng.normal(0, 3))
        t += 60
        cal.fold(t)
    est = cal.estimates["b1"]
    assert est.drift == pytest.approx(-8.0, abs=1.5)
    # positioning applies it shrunk by two standard deviations: noise is not applied, a clear change is
    assert cal.offset("b1") == pytest.approx(est.drift + 2 * est.sd) and est.drift < cal.offset("b1") < -3.0
    assert cal.flagged("b1")


def test_offsets_shrink_each_beacons_drift_by_two_spreads():
    cal = SiteCalibration()
    cal.restore("up", DriftEstimate(6.0, 1.0, 1.0, 80, 1.0))  # drift +5, sd 1: +3 applied
    cal.restore("down", DriftEstimate(-4.0, 4.0, 0.0, 80, 1.0))  # drift -4, sd 2: no more than noise
    cal.restore("down2", DriftEstimate(-9.0, 0.25, -1.0, 80, 1.0))  # drift -8, sd 0.5: -7 applied
    cal.restore("unsettled", DriftEstimate(7.0, 0.25, None, 3, 1.0))  # no baseline yet: no drift
    assert cal.offsets(["up", "down", "down2", "unsettled", "unknown"]) == pytest.approx([3.0, 0.0, -7.0, 0.0, 0.0])
    assert [cal.offset(b) for b in ("up", "down2", "unknown")] == pytest.approx([3.0, -7.0, 0.0])


def test_restored_drift_is_bounded():
    cal = SiteCalibration()
    cal.restore("b1", DriftEstimate(80.0, 0.0, -80.0, 12, 1.0))
    est = cal.estimates["b1"]
    assert est.level == POLICY.beacon_bound_db and est.baseline == -POLICY.beacon_bound_db and est.variance > 0


def test_tracker_learns_a_phones_offset_and_keeps_it_in_its_state(sim_site, sim_index):
    # readings from the engine's own model (n 3, 3 dB walls, no shadowing): the offset is the phone's alone
    radio = RadioSimulator(sim_site, RadioSpec(path_loss_exponent=3.0, wall_loss_db=3.0, shadowing_db=0.0,
                                               noise_db=6.0, batch_every_s=10.0), seed=4)
    rng = np.random.default_rng(3)
    room = next(s for s in sim_site.spaces if s.kind.value == "office" and s.floor == "L0")
    xy = room_points(sim_site, room.id, rng, 1)[0]
    state = None
    for now, readings, _truth in batches(radio, Trajectory().dwell("L0", xy, 600, room.id), Phone("p", offset_db=7.0),
                                         seed=5):
        state, _est = track(state, [Sighting(r.beacon, r.rssi, r.ts, r.tx_power) for r in readings], sim_index, now)
    assert state is not None and state.offset is not None
    assert state.offset[0] == pytest.approx(7.0, abs=2.5) and state.offset[1] < 5.0
    assert TrackingState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_a_beacon_that_drops_shows_the_largest_drift_and_no_other_is_flagged():
    """30 phones with unknown offsets still in rooms for an hour; after 20 minutes one beacon transmits 10 dB
    weaker. Learnt from 40 minutes of traffic, its drift is the most negative of the building's (it lags: about
    -6 dB of the -10), and no steady beacon is flagged (a neighbour compensates by up to +5 dB: docs)."""
    r = dwell_study(phones=30, minutes=60, seed=11, offsets="uniform", offset_db=8, warmup_minutes=10,
                    drifted_beacons=1, drift_db=-10.0, drift_after_minutes=20)
    [drifted] = r["drifted_beacons"]
    assert r["drift_estimates_db"][drifted] < -4.0
    assert min(r["largest_drifts_db"].items(), key=lambda kv: kv[1])[0] == drifted
    assert set(r["flagged_beacons"]) <= {drifted}
    assert r["room_accuracy"] > 0.95
