from __future__ import annotations

import math

import numpy as np
import pytest

from shared.domain.positioning import SignalModel, floor_scores, locate, resolve_readings
from shared.domain.positioning.signal import DEFAULT_MEASURED_POWER_DBM

NOISELESS = SignalModel(path_loss_exponent=2.0, noise_db=2.0, detect_max=0.0, wall_loss_db=0.0)


def _readings_at(index, model, x, y):
    return {
        b.id: model.expected_rssi(math.hypot(b.x - x, b.y - y), b.measured_power) for b in index.beacons
    }


@pytest.mark.parametrize("x, y", [(5, 5), (2, 3), (8, 7), (3, 8)])
def test_noiseless_readings_locate_the_phone(square_site, x, y):
    est = locate(square_site, NOISELESS, _readings_at(square_site, NOISELESS, x, y))
    assert math.hypot(est.x - x, est.y - y) < 0.6
    assert est.uncertainty_m < 2.0


def test_a_common_offset_does_not_move_the_estimate(square_site):
    readings = _readings_at(square_site, NOISELESS, 3, 7)
    shifted = {b: r - 8 for b, r in readings.items()}
    a = locate(square_site, NOISELESS, readings)
    b = locate(square_site, NOISELESS.model_copy(update={"offset_prior_db": 20}), shifted)
    assert math.hypot(a.x - b.x, a.y - b.y) < 0.5


def test_space_and_confidence_follow_the_position(square_site):
    west = locate(square_site, NOISELESS, _readings_at(square_site, NOISELESS, 1.5, 5))
    east = locate(square_site, NOISELESS, _readings_at(square_site, NOISELESS, 8.5, 5))
    middle = locate(square_site, NOISELESS, _readings_at(square_site, NOISELESS, 5.0, 5))
    assert (west.space_id, east.space_id) == ("west", "east")
    assert west.space_confidence > 0.9 and east.space_confidence > 0.9
    assert middle.space_confidence < 0.8


def test_uncertainty_grows_with_noise(square_site):
    readings = _readings_at(square_site, NOISELESS, 4, 4)
    sharp = locate(square_site, NOISELESS, readings)
    vague = locate(square_site, NOISELESS.model_copy(update={"noise_db": 8.0}), readings)
    assert vague.uncertainty_m > sharp.uncertainty_m


def test_one_loud_beacon_puts_the_phone_near_it(square_site):
    est = locate(square_site, SignalModel(), {"ne": -55})
    assert math.hypot(est.x - 10, est.y - 10) < 3.5


def test_nothing_known_heard_gives_no_estimate(square_site):
    assert locate(square_site, SignalModel(), {}) is None
    assert locate(square_site, SignalModel(), {"not-a-beacon": -50}) is None


def test_measured_power_order_calibration_then_site_then_batch_then_default(square_site):
    index = square_site
    model = SignalModel(beacon_measured_power_dbm={"sw": -70.0})
    r = resolve_readings(index, model, {"sw": -60, "se": -60})
    assert list(r.measured_power) == [-70.0, -59.0]  # calibrated, then site value
    from shared.domain.positioning import BeaconSpec, FloorSpec, SiteIndex

    bare = SiteIndex.build([FloorSpec("0")], [BeaconSpec("a", 0, 0, "0"), BeaconSpec("b", 5, 0, "0")])
    assert list(resolve_readings(bare, SignalModel(), {"a": -60}, tx_power=-65).measured_power) == [-65.0]
    assert list(resolve_readings(bare, SignalModel(), {"a": -60}).measured_power) == [DEFAULT_MEASURED_POWER_DBM]
    with_phone = SignalModel(phone_offsets_db={"X": -3.0})
    assert list(resolve_readings(bare, with_phone, {"a": -60}, phone_model="X").measured_power) == [-62.0]


def test_floor_scores_are_power_shares_by_hand(sim_index):
    l0 = [b.id for b in sim_index.beacons if b.floor == "L0"][:2]
    l1 = [b.id for b in sim_index.beacons if b.floor == "L1"][:1]
    readings = resolve_readings(sim_index, SignalModel(), {l0[0]: -60, l0[1]: -70, l1[0]: -60})
    scores = floor_scores(sim_index, readings)
    # powers relative to the loudest: 1, 0.1 on L0 and 1 on L1 -> 1.1/2.1 and 1/2.1
    assert scores == pytest.approx(np.array([1.1 / 2.1, 1 / 2.1]))
