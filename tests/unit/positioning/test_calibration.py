from __future__ import annotations

import math

import numpy as np
import pytest

from shared.domain.positioning import BeaconSpec, FloorSpec, SignalModel, SiteIndex
from shared.domain.positioning.calibration import Fingerprint, KnnFingerprints, calibrate, fit_path_loss

TRUE = SignalModel(path_loss_exponent=2.4, height_m=1.5)


@pytest.fixture(scope="module")
def grid_site():
    beacons = [BeaconSpec(f"b{i}{j}", 5.0 * i, 5.0 * j, "0") for i in range(4) for j in range(4)]
    return SiteIndex.build([FloorSpec("0", 0)], beacons, grid_step_m=0.5)


def _samples(index, model, batch_power, offset, rng=None, noise=0.0, n=60):
    rng = rng or np.random.default_rng(0)
    out = []
    for _ in range(n):
        x, y = rng.uniform(0, 15, size=2)
        rssi = {}
        for b in index.beacons:
            level = model.expected_rssi(math.hypot(b.x - x, b.y - y), batch_power + offset)
            rssi[b.id] = level + (rng.normal(0, noise) if noise else 0.0)
        out.append(Fingerprint(rssi, float(x), float(y), "0", None, batch_power))
    return out


def test_fit_recovers_exponent_and_offset_from_noiseless_readings(grid_site):
    samples = _samples(grid_site, TRUE, batch_power=-45.0, offset=-7.0)
    fit = fit_path_loss(grid_site, samples, SignalModel(height_m=1.5), per_beacon=False)
    # expected_rssi uses slant^2 = d^2 + h^2 + 0.09 like the fit, so the answer is exact
    assert fit.exponent == pytest.approx(2.4, abs=1e-6)
    assert fit.offset_db == pytest.approx(-7.0, abs=1e-6)
    assert fit.powers(grid_site, -45.0)["b00"] == pytest.approx(-52.0, abs=1e-6)


def test_per_beacon_fit_finds_a_weak_beacon(grid_site):
    samples = _samples(grid_site, TRUE, batch_power=-45.0, offset=0.0, n=80)
    weak = [Fingerprint({b: (v - 6 if b == "b11" else v) for b, v in s.rssi.items()}, s.x, s.y, "0", None, -45.0)
            for s in samples]
    fit = fit_path_loss(grid_site, weak, SignalModel(height_m=1.5), per_beacon=True)
    others = [v for b, v in fit.beacon_offset_db.items() if b != "b11"]
    assert fit.beacon_offset_db["b11"] < float(np.mean(others)) - 3.0


def test_knn_returns_the_label_of_an_identical_fingerprint(grid_site):
    samples = _samples(grid_site, TRUE, -45.0, 0.0, n=30)
    labelled = [Fingerprint(s.rssi, s.x, s.y, "0", f"z{i}", s.measured_power) for i, s in enumerate(samples)]
    knn = KnnFingerprints(grid_site, labelled, k=1)
    est = knn.predict([labelled[7]])[0]
    assert (est.x, est.y, est.space_id) == (labelled[7].x, labelled[7].y, "z7")


def test_auto_prefers_fingerprints_when_the_beacon_map_is_wrong(grid_site):
    # readings produced by beacons mirrored left-right: the model is misled, fingerprints are not
    mirrored = SiteIndex.build([FloorSpec("0", 0)], [BeaconSpec(b.id, 15 - b.x, b.y, "0") for b in grid_site.beacons])
    rng = np.random.default_rng(3)
    samples = _samples(mirrored, TRUE, -45.0, 0.0, rng=rng, noise=2.0, n=160)
    locator = calibrate(grid_site, samples, "auto")
    assert locator.method in ("fingerprint", "hybrid")
    assert locator.scores["fingerprint"] < locator.scores["model"]


def test_auto_prefers_the_model_when_it_is_right(grid_site):
    samples = _samples(grid_site, TRUE, -45.0, 0.0, rng=np.random.default_rng(4), noise=4.0, n=120)
    locator = calibrate(grid_site, samples, "auto")
    assert locator.method.startswith("model")


def test_unknown_method_is_rejected(grid_site):
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        calibrate(grid_site, [], "magic")


def test_fixed_exponent_fit_shrinks_each_beacon_towards_the_site_level(grid_site):
    """model-p1m's fit: the exponent is taken as given, a beacon's own level counts n / (n + shrink)."""
    samples = _samples(grid_site, SignalModel(path_loss_exponent=3.0, height_m=1.5), batch_power=-45.0, offset=-7.0)
    weak = [Fingerprint({**s.rssi, "b00": s.rssi["b00"] - 10.0}, s.x, s.y, "0", None, -45.0) for s in samples]
    fit = fit_path_loss(grid_site, weak, SignalModel(height_m=1.5), per_beacon=True, min_readings=1,
                        exponent=3.0, shrink=60.0)
    assert fit.exponent == 3.0
    site = -7.0 - 10.0 / 16  # one beacon of 16 is 10 dB down
    assert fit.offset_db == pytest.approx(site, abs=1e-6)
    assert fit.beacon_offset_db["b00"] == pytest.approx(0.5 * (-17.0) + 0.5 * site, abs=1e-6)
    assert fit.beacon_offset_db["b11"] == pytest.approx(0.5 * (-7.0) + 0.5 * site, abs=1e-6)
