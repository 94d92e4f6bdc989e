"""The tracker batched across devices: one grid posterior per floor and call, the answers of one device at a time."""
from __future__ import annotations

import math

import numpy as np
import pytest

from devkit.simulator import Phone, RadioSimulator, RadioSpec, Trajectory, batches, room_points
from shared.domain.positioning import SignalModel, batch
from shared.domain.positioning.batch import PosteriorRequest, posterior_many
from shared.domain.positioning.estimator import ReadingLists, Readings, floor_scores, posterior
from shared.domain.positioning.selfcal import SiteCalibration
from shared.domain.positioning.tracking import ReadingColumns, Sighting, TrackInput, track, track_many

T0 = 1_700_000_000.0


def _streams(site, phones=12, seconds=120, every_s=2.0, seed=4):
    """Per phone, its batches: a still phone in a room, or one walking from a room to another."""
    radio = RadioSimulator(site, RadioSpec(noise_db=6.0, batch_every_s=every_s), seed=seed)
    rng = np.random.default_rng(seed)
    offices = [s for s in site.spaces if s.kind.value == "office"]
    out = []
    for p in range(phones):
        room = offices[p % len(offices)]
        xy = room_points(site, room.id, rng, 1)[0]
        trajectory = Trajectory().dwell(room.floor, xy, seconds, room.id)
        if p % 3 == 0:
            trajectory = Trajectory().dwell(room.floor, xy, seconds / 2, room.id).walk(
                room.floor, [xy, (xy[0], 9.5), (xy[0] + 12, 9.5)]).dwell(room.floor, (xy[0] + 12, 9.5), seconds / 2)
        phone = Phone(f"p{p}", offset_db=float(rng.uniform(-8, 8)))
        out.append([(now, [Sighting(r.beacon, r.rssi, r.ts, r.tx_power) for r in readings])
                    for now, readings, _truth in batches(radio, trajectory, phone, seed=seed * 100 + p)])
    return out


def test_track_many_gives_what_track_gives_one_device_at_a_time(sim_site, sim_index):
    streams = _streams(sim_site)
    one_cal, many_cal = SiteCalibration(), SiteCalibration()
    one_states = [None] * len(streams)
    many_states = [None] * len(streams)
    for k in range(min(len(s) for s in streams)):
        many = track_many([TrackInput(many_states[p], stream[k][1], stream[k][0]) for p, stream in enumerate(streams)],
                          sim_index, site_cal=many_cal)
        for p, stream in enumerate(streams):
            one_states[p], one = track(one_states[p], stream[k][1], sim_index, stream[k][0], site_cal=one_cal)
            many_states[p], batched = many[p]
            assert (one is None) == (batched is None)
            if one is None:
                continue
            assert (batched.floor, batched.space_id) == (one.floor, one.space_id)
            assert batched.x == pytest.approx(one.x, abs=1e-4) and batched.y == pytest.approx(one.y, abs=1e-4)
            assert many_states[p].rooms.keys() == one_states[p].rooms.keys()
        one_cal.fold(streams[0][k][0])
        many_cal.fold(streams[0][k][0])
    assert many_cal.device_reference() == pytest.approx(one_cal.device_reference(), abs=1e-3)
    assert many_cal.estimates.keys() == one_cal.estimates.keys()


def test_columns_give_what_sighting_objects_give(sim_site, sim_index):
    """The processor's columnar input (beacon positions, epoch seconds) tracks exactly as sighting objects do,
    readings out of time order and of beacons the building does not have included."""
    streams = _streams(sim_site, phones=6, seconds=60, seed=9)
    stranger = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:999:9"
    states_obj, states_col = [None] * len(streams), [None] * len(streams)
    cal_obj, cal_col = SiteCalibration(), SiteCalibration()
    compared = 0
    for k in range(min(len(s) for s in streams)):
        objects, columns = [], []
        for p, stream in enumerate(streams):
            now, sightings = stream[k]
            sightings = list(reversed(sightings)) if k % 3 == 0 else sightings  # out of time order now and then
            with_stranger = [*sightings, Sighting(stranger, -40.0, now)]
            objects.append(TrackInput(states_obj[p], with_stranger, now, "Pixel 8"))
            known = [s for s in sightings if s.beacon in sim_index.beacon_index]
            columns.append(TrackInput(states_col[p], ReadingColumns(
                [sim_index.beacon_index[s.beacon] for s in known], [s.rssi for s in known],
                [float(s.ts) for s in known], [s.tx_power for s in known]), now, "Pixel 8"))
        by_obj = track_many(objects, sim_index, site_cal=cal_obj)
        by_col = track_many(columns, sim_index, site_cal=cal_col)
        for p, ((state_o, est_o), (state_c, est_c)) in enumerate(zip(by_obj, by_col)):
            assert state_c == state_o and est_c == est_o
            states_obj[p], states_col[p] = state_o, state_c
            compared += est_o is not None
        cal_obj.fold(streams[0][k][0])
        cal_col.fold(streams[0][k][0])
    assert compared > 50


def _scanned_requests(site, index, count, seed, keep=10):
    """Requests from simulated scans on both floors: each scan's beacons by mean RSSI, loudest first (the
    `keep` loudest; None: every one heard), the floor the readings favour, a motion prior on two in three."""
    radio = RadioSimulator(site, RadioSpec(), seed=seed + 6)
    rng = np.random.default_rng(seed)
    requests = []
    for i in range(count):
        floor = ("L0", "L1")[i % 2]
        scan = radio.scan(floor, rng.uniform(1, 59), rng.uniform(1, 18), 0.0, 3.0, Phone("p"), rng)
        heard: dict[str, list[int]] = {}
        for r in scan:
            heard.setdefault(r.beacon, []).append(r.rssi)
        if not heard:
            continue
        ids = sorted(heard, key=lambda b: -np.mean(heard[b]))[:keep]
        readings = Readings(np.array([index.beacon_index[b] for b in ids]), np.array([np.mean(heard[b]) for b in ids]),
                            np.full(len(ids), -59.0), np.full(len(ids), 12.0))
        best = index.floor_ids[int(np.argmax(floor_scores(index, readings)))]
        prior = (rng.uniform(5, 55), rng.uniform(2, 17)) if i % 3 else None
        requests.append(PosteriorRequest(readings, best, prior, 4.0 if prior else None, 5.0))
    return requests


def _assert_same_posterior(many, one, floor, index):
    assert (one is None) == (many is None)
    if one is None:
        return
    assert many.mean == pytest.approx(one.mean, abs=1e-3)
    assert many.uncertainty_m == pytest.approx(one.uncertainty_m, abs=1e-3)
    assert many.space_probabilities.keys() == one.space_probabilities.keys()
    for space, p in one.space_probabilities.items():
        assert many.space_probabilities[space] == pytest.approx(p, abs=1e-4)
    for space, value in one.space_loglik.items():
        assert many.space_loglik[space] == pytest.approx(value, abs=1e-3)
    np.testing.assert_array_equal(many.beacons, one.beacons)
    np.testing.assert_allclose(many.residuals, one.residuals, atol=1e-3)
    if one.held_out_residuals is not None:
        np.testing.assert_allclose(many.held_out_residuals, one.held_out_residuals, atol=1e-3)
    # the mean within each room (what map-matched tracking places the phone at), from the kept views
    for space in one.space_probabilities:
        inside = one.mean_in(space)
        assert inside is not None and index.spaces[space].floor == floor
        assert many.mean_in(space) == pytest.approx(inside, abs=1e-3)
        room = index.spaces[space]
        xs, ys = [p[0] for p in room.polygon], [p[1] for p in room.polygon]
        assert min(xs) - 0.5 <= inside[0] <= max(xs) + 0.5 and min(ys) - 0.5 <= inside[1] <= max(ys) + 0.5
    elsewhere = next(i for i, s in enumerate(index.spaces) if s.floor != floor)
    assert many.mean_in(elsewhere) is None and one.mean_in(elsewhere) is None


def _single(index, signal, request):
    return posterior(index, signal, request.readings, request.floor, prior_xy=request.prior_xy,
                     prior_sigma_m=request.prior_sigma_m, wide=True, offset_prior_db=request.offset_prior_db,
                     held_out=True, space_likelihood=True)


def test_batched_posteriors_match_the_single_estimate_posterior(sim_site, sim_index):
    requests = _scanned_requests(sim_site, sim_index, 60, seed=2)
    signal = SignalModel()
    batched = posterior_many(sim_index, signal, requests, held_out=True, space_likelihood=True)
    for request, many in zip(requests, batched):
        _assert_same_posterior(many, _single(sim_index, signal, request), request.floor, sim_index)


@pytest.mark.parametrize("chunk_elements", [batch.MAX_CHUNK_ELEMENTS, 2_500])
def test_batched_posteriors_take_readings_in_any_order_of_any_floor(sim_site, sim_index, monkeypatch,
                                                                    chunk_elements):
    """Readings out of order, more than the 16 an estimate uses, of both floors, or none of the floor asked: each
    posterior is still the single-estimate one, the floor's devices in one chunk or split across several."""
    monkeypatch.setattr(batch, "MAX_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(11)
    requests = []
    for r in _scanned_requests(sim_site, sim_index, 40, seed=5, keep=None):
        order = rng.permutation(len(r.readings.beacons))
        shuffled = Readings(*(values[order] for values in (r.readings.beacons, r.readings.rssi,
                                                           r.readings.measured_power, r.readings.variance)))
        # a reach beyond the floor narrows nothing: the same posterior, its motion prior from the narrowing's sums
        within = 500.0 if r.prior_xy is not None and len(requests) % 2 else None
        requests.append(PosteriorRequest(shuffled, r.floor, r.prior_xy, r.prior_sigma_m, r.offset_prior_db, within))
    on_l0 = [b for b, beacon in enumerate(sim_index.beacons) if beacon.floor == "L0"][:3]
    only_l0 = Readings(np.array(on_l0), np.array([-60.0, -70.0, -65.0]), np.full(3, -59.0), np.full(3, np.nan))
    requests.insert(7, PosteriorRequest(only_l0, "L1"))  # none of its readings is on the floor asked
    requests.insert(9, PosteriorRequest(only_l0, "L0"))  # unknown variances: the signal model's noise
    every_l0 = [b for b, beacon in enumerate(sim_index.beacons) if beacon.floor == "L0"] * 2  # two scans' worth
    loud = Readings(np.array(every_l0), rng.uniform(-95, -55, len(every_l0)), np.full(len(every_l0), -59.0),
                    np.full(len(every_l0), 12.0))
    requests.insert(12, PosteriorRequest(loud, "L0", (20.0, 9.0), 5.0))  # every beacon heard twice, in no order
    floor_of = sim_index.floor_of_beacon.tolist()
    on_floor = [sum(floor_of[b] == sim_index.floor_ids.index(r.floor) for b in r.readings.beacons.tolist())
                for r in requests]
    assert max(on_floor) > 16 and any(f < len(r.readings.beacons) for f, r in zip(on_floor, requests))
    signal = SignalModel()
    batched = posterior_many(sim_index, signal, requests, held_out=True, space_likelihood=True)
    assert batched[7] is None
    for request, many in zip(requests, batched):
        _assert_same_posterior(many, _single(sim_index, signal, request), request.floor, sim_index)


def test_reading_lists_give_what_reading_arrays_give(sim_site, sim_index):
    """The tracker hands its readings over as lists: the same posteriors as arrays, also mixed in one call and on
    the per-request path of a signal model with per-beacon path loss."""
    requests = _scanned_requests(sim_site, sim_index, 24, seed=7)

    def as_lists(r):
        lists = ReadingLists(r.readings.beacons.tolist(), r.readings.rssi.tolist(),
                             r.readings.measured_power.tolist(), r.readings.variance.tolist())
        return PosteriorRequest(lists, r.floor, r.prior_xy, r.prior_sigma_m, r.offset_prior_db, r.within_m)

    listed = [as_lists(r) for r in requests]
    mixed = [as_lists(r) if i % 2 else r for i, r in enumerate(requests)]
    some_beacon = sim_index.beacons[int(requests[0].readings.beacons[0])].id
    for signal in (SignalModel(), SignalModel(beacon_path_loss_exponent={some_beacon: 2.6})):
        by_arrays = posterior_many(sim_index, signal, requests, held_out=True, space_likelihood=True)
        for other in (listed, mixed):
            for a, b in zip(by_arrays, posterior_many(sim_index, signal, other, held_out=True, space_likelihood=True)):
                assert (a is None) == (b is None)
                if a is not None:
                    assert (a.mean, a.uncertainty_m, dict(a.space_loglik)) == (b.mean, b.uncertainty_m,
                                                                               dict(b.space_loglik))
                    np.testing.assert_array_equal(a.beacons, b.beacons)


def test_a_request_narrowed_to_its_motion_prior_keeps_its_estimate_near_it(sim_index):
    beacons = [b for b in sim_index.beacons if b.floor == "L0"]
    near_east = sorted(beacons, key=lambda b: -b.x)[:4]  # readings that say: the east end
    readings = Readings(np.array([sim_index.beacon_index[b.id] for b in near_east]), np.array([-62.0, -65, -68, -70]),
                        np.full(4, -59.0), np.full(4, 12.0))
    wide, narrow = posterior_many(sim_index, SignalModel(), [
        PosteriorRequest(readings, "L0", (near_east[0].x - 20, 9.0), 3.0),
        PosteriorRequest(readings, "L0", (near_east[0].x - 20, 9.0), 3.0, within_m=8.0)])
    assert wide is not None and narrow is not None
    assert math.dist(narrow.mean, (near_east[0].x - 20, 9.0)) <= 8.0 < math.dist(wide.mean, (near_east[0].x - 20, 9.0))
