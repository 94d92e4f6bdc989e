from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.positioning import RssiFilter, SignalModel


def test_expected_rssi_follows_log_distance_by_hand():
    model = SignalModel(path_loss_exponent=2.0, height_m=0.0)
    # slant = sqrt(10^2 + 0.09) = 10.0045 m -> -59 - 20*log10(10.0045) = -79.004
    assert model.expected_rssi(10.0, -59.0) == pytest.approx(-79.004, abs=1e-3)
    assert model.expected_rssi(0.0, -59.0) == pytest.approx(-59 - 20 * math.log10(0.3), abs=1e-9)


@given(st.floats(0.0, 60.0), st.floats(1.5, 4.0), st.floats(-80, -40))
def test_distance_for_inverts_expected_rssi(distance, exponent, power):
    model = SignalModel(path_loss_exponent=exponent, height_m=1.5)
    rssi = model.expected_rssi(distance, power)
    # expected_rssi adds 0.09 m^2 to the slant distance; the inverse is exact up to that
    assert model.distance_for(rssi, power) == pytest.approx(math.sqrt(distance**2 + 0.09), abs=1e-6)


def test_phone_offset_defaults_to_zero_for_unknown_models():
    model = SignalModel(phone_offsets_db={"iPhone15,2": -4.0})
    assert model.phone_offset("iPhone15,2") == -4.0
    assert model.phone_offset("Pixel 7") == 0.0
    assert model.phone_offset(None) == 0.0


def test_kalman_filter_averages_two_simultaneous_readings_by_hand():
    flt = RssiFilter(drift_db_per_s=1.0, reading_noise_db=4.0)
    first = flt.update(None, -70, 100.0)
    assert (first.value, first.variance) == (-70, 16.0)
    second = flt.update(first, -60, 100.0)
    # equal variances: gain 1/2 -> mean -65, variance 8
    assert second.value == pytest.approx(-65.0)
    assert second.variance == pytest.approx(8.0)


def test_kalman_filter_trusts_a_late_reading_less_and_does_not_rewind_time():
    flt = RssiFilter(drift_db_per_s=1.0, reading_noise_db=4.0)
    now = flt.update(None, -70, 100.0)
    in_order = flt.update(now, -60, 100.0)
    late = flt.update(now, -60, 91.0)  # 9 s older than the estimate: variance 16 + 9
    assert late.ts == 100.0
    gain = 16 / (16 + 25)
    assert late.value == pytest.approx(-70 + gain * 10)
    assert abs(late.value - -70) < abs(in_order.value - -70)


def test_kalman_filter_forgets_with_time_and_expires():
    flt = RssiFilter(drift_db_per_s=2.0, reading_noise_db=4.0, expire_s=10)
    est = flt.update(None, -70, 0.0)
    assert flt.variance_at(est, 5.0) == pytest.approx(16 + 4 * 5)
    after_gap = flt.update(est, -60, 5.0)
    # prior variance 36, reading 16 -> gain 36/52
    assert after_gap.value == pytest.approx(-70 + 10 * 36 / 52)
    assert not flt.expired(est, 10.0)
    assert flt.expired(est, 10.5)


def test_site_level_exponent_overrides_the_default(sim_site):
    from shared.domain.positioning import signal_for_site

    assert signal_for_site(sim_site).path_loss_exponent == SignalModel().path_loss_exponent
    declared = sim_site.model_copy(update={"path_loss_exponent": 2.2})
    assert signal_for_site(declared).path_loss_exponent == 2.2
