from __future__ import annotations

import math

import numpy as np
import pytest

from shared.domain.positioning import BeaconSpec, FloorSpec, SignalModel, SiteIndex, SpaceSpec
from shared.domain.positioning.calibration import (
    Fingerprint,
    KnnFingerprints,
    calibrate,
    decide_regime,
    fit_path_loss,
    in_place_folds,
    places_out_folds,
)
from shared.domain.positioning.fingerprints import PlaceBayes

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
    assert locator.method in ("fingerprint", "hybrid", "bayes")
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


@pytest.fixture(scope="module")
def zoned_site():
    """The 4 x 4 beacon grid with nine 5 m x 5 m zones."""
    beacons = [BeaconSpec(f"b{i}{j}", 5.0 * i, 5.0 * j, "0") for i in range(4) for j in range(4)]
    zones = [SpaceSpec(f"z{i}{j}", "0", ((5.0 * i, 5.0 * j), (5.0 * i + 5, 5.0 * j), (5.0 * i + 5, 5.0 * j + 5),
                                         (5.0 * i, 5.0 * j + 5))) for i in range(3) for j in range(3)]
    return SiteIndex.build([FloorSpec("0", 0)], beacons, zones, grid_step_m=0.5)


def _zone_samples(index, model, rng, per_zone, noise=4.0, zones=None):
    """Scans at a few fixed points per zone (a survey), time-ordered within each zone."""
    out = []
    for space in index.spaces:
        if zones is not None and space.id not in zones:
            continue
        x0, y0 = space.polygon[0]
        spots = [(x0 + 1.5, y0 + 1.5), (x0 + 3.5, y0 + 3.5)]
        for t in range(per_zone):
            x, y = spots[t % 2]
            rssi = {b.id: model.expected_rssi(math.hypot(b.x - x, b.y - y), -59.0) + rng.normal(0, noise)
                    for b in index.beacons}
            out.append(Fingerprint(rssi, x, y, "0", space.id, -59.0, float(t)))
    return out


def test_regime_follows_the_site_and_the_survey_never_the_test(grid_site, zoned_site):
    rng = np.random.default_rng(5)
    no_zones = decide_regime(grid_site, _samples(grid_site, TRUE, -59.0, 0.0, rng=rng))
    assert no_zones.name == "places-out" and "no zones" in no_zones.reason
    surveyed = decide_regime(zoned_site, _zone_samples(zoned_site, TRUE, rng, per_zone=4))
    assert surveyed.name == "in-place" and "9 of 9" in surveyed.reason
    few = decide_regime(zoned_site, _zone_samples(zoned_site, TRUE, rng, per_zone=4, zones={"z00", "z11"}))
    assert few.name == "places-out"


def test_in_place_folds_hold_out_time_ordered_blocks_of_every_place(zoned_site):
    samples = _zone_samples(zoned_site, TRUE, np.random.default_rng(1), per_zone=8)
    folds = in_place_folds(samples)
    for zone in {s.zone for s in samples}:
        mine = [(s.order, f) for s, f in zip(samples, folds) if s.zone == zone]
        assert sorted({f for _o, f in mine}) == [0, 1, 2, 3]  # every place is in every fold
        by_fold = {f: [o for o, g in mine if g == f] for f in range(4)}
        assert all(max(by_fold[f]) < min(by_fold[f + 1]) for f in range(3))  # contiguous in time
    out = places_out_folds(samples)
    for zone in {s.zone for s in samples}:
        assert len({f for s, f in zip(samples, out) if s.zone == zone}) == 1  # a place is held out whole


def test_place_classifier_learns_each_beacons_own_spread(zoned_site):
    """Four beacons scatter 15 dB (a body in the way, a turned beacon): judged against their own spread they do
    not outvote the steady ones, while kNN's distances are swamped by them."""
    rng = np.random.default_rng(2)
    samples = _zone_samples(zoned_site, TRUE, rng, per_zone=40, noise=2.0)
    wild_beacons = {b.id for b in zoned_site.beacons[:4]}
    wild = [Fingerprint({b: v + (rng.normal(0, 15.0) if b in wild_beacons else 0.0) for b, v in s.rssi.items()},
                        s.x, s.y, s.floor, s.zone, s.measured_power, s.order) for s in samples]
    train = [s for s in wild if s.order < 30]
    held = [s for s in wild if s.order >= 30]

    def hit_rate(estimates):
        return np.mean([e is not None and e.space_id == s.zone for e, s in zip(estimates, held)])

    assert hit_rate(PlaceBayes(zoned_site, train).predict(held)) >= 0.95
    assert hit_rate(KnnFingerprints(zoned_site, train).predict(held)) <= 0.8
    est = PlaceBayes(zoned_site, train).predict([s for s in held if s.zone == "z11"][:1])[0]
    assert est.floor == "0" and 5.0 <= est.x <= 10.0 and 5.0 <= est.y <= 10.0


def test_auto_validates_in_place_where_the_rooms_were_fingerprinted(zoned_site):
    # readings from a mirrored beacon map: only fingerprints taken in the rooms can name them
    mirrored = SiteIndex.build([FloorSpec("0", 0)], [BeaconSpec(b.id, 15 - b.x, b.y, "0") for b in zoned_site.beacons],
                               zoned_site.spaces)
    samples = _zone_samples(mirrored, TRUE, np.random.default_rng(3), per_zone=24)
    relabelled = [Fingerprint(s.rssi, s.x, s.y, s.floor, s.zone, s.measured_power, s.order) for s in samples]
    locator = calibrate(zoned_site, relabelled, "auto")
    assert locator.regime is not None and locator.regime.name == "in-place"
    assert set(locator.cv) == {"in-place", "places-out"}
    assert locator.method in ("fingerprint", "hybrid", "bayes")
    in_place = locator.cv["in-place"]
    assert in_place[locator.method].zone_miss is not None and in_place[locator.method].zone_miss < 0.2
    assert in_place["model"].zone_miss is not None and in_place["model"].zone_miss > 0.5
    # leaving whole zones out, no fingerprint method can name a held-out zone
    assert locator.cv["places-out"]["fingerprint"].zone_miss == 1.0
