"""The tracker's grid posterior for many devices at once: what one trigger call of the processing function needs.

`posterior_many(index, signal, requests)` gives, for each request, the posterior of `estimator.posterior(...,
wide=True)` (the candidate points within the tracking reach of the loudest beacon, the readings' likelihood with
their common offset integrated out, the silent beacons, the motion prior, residuals, held-out residuals and the
per-space likelihood), computed for all the devices on one floor together: each device's candidate points are a
row of a padded (device, point) array, the readings' sums are products over (device, point, beacon), the silent
beacons' term is one matrix product per floor. A request may narrow its candidate points to a disc around the
motion prior (`within_m`: points the step cap would refuse anyway), and ask for held-out residuals only when its
posterior is confident (`held_out_within_m`, what self-calibration uses). `track` and `track_many` both run
through it, so one device or a call's worth give the same answers (docs/positioning.md: the profile).
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shared.domain.positioning.estimator import (
    MAX_BEACONS_PER_ESTIMATE,
    ROOM_PRIOR_FLOOR,
    ROOM_PRIOR_MIN_SIGMA_M,
    Posterior,
    Readings,
    _silence,
    posterior,
)
from shared.domain.positioning.signal import SignalModel
from shared.domain.positioning.site_index import FloorGrid, SiteIndex

# (device, point, beacon) elements of one chunk of a floor's devices: bounds the memory of a call (a few MB)
MAX_CHUNK_ELEMENTS = 60_000


@dataclass(frozen=True)
class PosteriorRequest:
    """One device's posterior: its readings, the floor, the motion prior, the spread of its common offset, and
    how far from the prior's centre candidate points are worth computing (None: the whole tracking reach)."""

    readings: Readings
    floor: str
    prior_xy: tuple[float, float] | None = None
    prior_sigma_m: float | None = None
    offset_prior_db: float | None = None
    within_m: float | None = None


@dataclass(frozen=True)
class _Prepared:
    position: int  # in the request list
    beacons: NDArray[np.int64]
    rssi: NDArray[np.float64]
    power: NDArray[np.float64]
    var: NDArray[np.float64]
    local: NDArray[np.int64]
    rows: NDArray[np.int64]
    silent: NDArray[np.int64]


def posterior_many(index: SiteIndex, signal: SignalModel, requests: Sequence[PosteriorRequest], *,
                   held_out: bool = False, held_out_within_m: float | None = None,
                   space_likelihood: bool = False) -> list[Posterior | None]:
    """The posterior of every request (None where its floor has none of its readings). Held-out residuals with
    `held_out`, for posteriors whose RMS spread is at most `held_out_within_m` when given."""
    out: list[Posterior | None] = [None] * len(requests)
    if signal.beacon_path_loss_exponent:  # calibration experiments only: no cached path loss to share
        for i, r in enumerate(requests):
            out[i] = posterior(index, signal, r.readings, r.floor, prior_xy=r.prior_xy, prior_sigma_m=r.prior_sigma_m,
                               wide=True, offset_prior_db=r.offset_prior_db, held_out=held_out,
                               space_likelihood=space_likelihood)
        return out
    by_floor: dict[str, list[_Prepared]] = {}
    for i, r in enumerate(requests):
        prepared = _prepare(index, signal, r, i)
        if prepared is not None:
            by_floor.setdefault(r.floor, []).append(prepared)
    for floor, items in by_floor.items():
        grid = index.grids[floor]
        items.sort(key=lambda p: len(p.rows))  # similar sizes share a chunk: less padding
        start = 0
        while start < len(items):
            # a chunk is as wide as its most readings (padded readings weigh nothing but are computed)
            end, width = start + 1, len(items[start].local)
            while end < len(items) and (end + 1 - start) * len(items[end].rows) \
                    * max(width, len(items[end].local)) <= MAX_CHUNK_ELEMENTS:
                width = max(width, len(items[end].local))
                end += 1
            chunk = items[start:end]
            posts = _floor_posteriors(index, signal, grid, floor, chunk, [requests[p.position] for p in chunk],
                                      held_out, held_out_within_m, space_likelihood)
            for p, post in zip(chunk, posts):
                out[p.position] = post
            start = end
    return out


def _prepare(index: SiteIndex, signal: SignalModel, request: PosteriorRequest, position: int) -> _Prepared | None:
    """The request's readings of its floor, loudest first (at most 16), as `posterior` orders them, and its
    candidate points."""
    grid = index.grids.get(request.floor)
    if grid is None:
        return None
    readings = request.readings
    floor_i = index.floor_ids.index(request.floor)
    on_floor = index.floor_of_beacon[readings.beacons] == floor_i
    if on_floor.all():
        rssi, beacons = readings.rssi, readings.beacons
        power, var = readings.measured_power, readings.variance
    elif on_floor.any():
        rssi, beacons = readings.rssi[on_floor], readings.beacons[on_floor]
        power, var = readings.measured_power[on_floor], readings.variance[on_floor]
    else:
        return None
    values = rssi.tolist()
    if len(values) > MAX_BEACONS_PER_ESTIMATE or any(b > a for a, b in itertools.pairwise(values)):
        order = np.argsort(-rssi)[:MAX_BEACONS_PER_ESTIMATE]  # the tracker passes them loudest first already
        rssi, beacons, power, var = rssi[order], beacons[order], power[order], var[order]
    var = np.where(np.isnan(var), signal.noise_db**2, var)
    local = index.local_of_beacon[beacons]
    first = int(local[0])
    rows = grid.near_points_wide[first]
    if len(rows):
        points, squared = grid.wide_points(first) if request.within_m is not None else (None, None)
    else:
        rows = np.arange(len(grid.points))
        points, squared = grid.points, grid.squared_norms()
    if request.within_m is not None and request.prior_xy is not None and points is not None \
            and squared is not None:
        px, py = request.prior_xy
        d2 = squared - 2.0 * (points @ np.array([px, py])) + (px * px + py * py)
        near = rows[d2 <= request.within_m**2]
        if len(near):
            rows = near
    silent = np.zeros(0, dtype=np.int64)
    if signal.detect_max > 0:
        heard = set(local.tolist())
        silent = np.array([j for j in grid.near_beacons[first].tolist() if j not in heard], dtype=np.int64)
    return _Prepared(position, beacons, rssi, power, var, local, rows, silent)


def _floor_posteriors(index: SiteIndex, signal: SignalModel, grid: FloorGrid, floor: str,
                      items: Sequence[_Prepared], requests: Sequence[PosteriorRequest], held_out: bool,
                      held_out_within_m: float | None, space_likelihood: bool) -> list[Posterior]:
    n = len(items)
    r_max = max(len(p.rows) for p in items)
    k = max(len(p.local) for p in items)
    loss = grid.path_loss(signal.path_loss_exponent, signal.height_m, signal.wall_loss_db)
    rows = np.zeros((n, r_max), dtype=np.int64)
    valid = np.zeros((n, r_max), dtype=bool)
    cols = np.zeros((n, k), dtype=np.int64)
    level = np.zeros((n, k), dtype=np.float32)
    a = np.zeros((n, k), dtype=np.float32)
    prior_db = np.empty(n)
    for d, (p, r) in enumerate(zip(items, requests)):
        rows[d, : len(p.rows)] = p.rows
        valid[d, : len(p.rows)] = True
        kk = len(p.local)
        cols[d, :kk] = p.local
        level[d, :kk] = p.rssi - p.power
        a[d, :kk] = 1.0 / p.var
        prior_db[d] = signal.offset_prior_db if r.offset_prior_db is None else r.offset_prior_db
    # (N, R, K) float32: reading minus the model's expectation, rssi - (power - loss); a padded beacon has a = 0,
    # so it adds nothing to the sums (its columns of residuals are dropped)
    error = level[:, None, :] + np.take(loss, (rows * loss.shape[1])[:, :, None] + cols[:, None, :])
    s1 = np.matmul(error, a[:, :, None])[:, :, 0].astype(np.float64)
    s2 = np.matmul(error * error, a[:, :, None])[:, :, 0].astype(np.float64)
    a_sum = a.sum(axis=1, dtype=np.float64)
    shrink = 1.0 / (1.0 / np.maximum(prior_db, 1e-3) ** 2 + a_sum)
    readings_loglik = -0.5 * (s2 - shrink[:, None] * s1 * s1)
    loglik = np.where(valid, readings_loglik, -np.inf)  # padding: -inf from here on (no mass)
    silent_any = [d for d, p in enumerate(items) if len(p.silent)]
    if silent_any:
        # the silent beacons' 1 m level falls back to the readings' median only where the site has none
        uniform_power = not np.isnan(index.beacon_measured_power[grid.beacons]).any()
        groups: dict[float, list[int]] = {}
        for d in silent_any:
            groups.setdefault(0.0 if uniform_power else float(np.median(items[d].power)), []).append(d)
        for members in groups.values():
            if uniform_power:  # the site's own levels: one matrix per floor and signal model, kept
                key = (signal.path_loss_exponent, signal.height_m, signal.wall_loss_db, signal.sensitivity_dbm,
                       signal.detect_spread_db, signal.detect_max)
                silence = grid.site_silence.get(key)
                if silence is None:
                    silence = _silence(index, grid, signal, loss, 0.0, True)
                    grid.site_silence[key] = silence
            else:
                silence = _silence(index, grid, signal, loss, float(np.median(items[members[0]].power)), True)
            chosen = np.zeros((len(grid.beacons), len(members)))
            for j, d in enumerate(members):
                chosen[items[d].silent, j] = 1.0
            term = silence @ chosen  # (M, members): every point of the floor
            loglik[members] += term[rows[members], np.arange(len(members))[:, None]]
    points = grid.points[rows]  # (N, R, 2)
    squared = grid.squared_norms()[rows]  # (N, R)
    with_prior = [d for d, r in enumerate(requests) if r.prior_xy is not None and r.prior_sigma_m is not None]
    # the devices with a motion prior: usually all of them, then no copies of their rows are taken
    prior_rows: slice | list[int] = slice(None) if len(with_prior) == n else with_prior
    room_where = np.ones((n, r_max)) if space_likelihood else None
    motion = None
    if with_prior:
        centres = np.array([requests[d].prior_xy for d in with_prior], dtype=np.float64)
        sigmas = np.array([requests[d].prior_sigma_m for d in with_prior], dtype=np.float64)
        # |p - c|^2 = |p|^2 - 2 p.c + |c|^2, (P, R)
        d2 = squared[prior_rows] - 2.0 * np.matmul(points[prior_rows], centres[:, :, None])[:, :, 0]
        d2 += (centres * centres).sum(axis=1)[:, None]
        if room_where is not None:
            broad = np.hypot(sigmas, ROOM_PRIOR_MIN_SIGMA_M)
            room_where[prior_rows] = np.exp(-0.5 * d2 / (broad * broad)[:, None]) + ROOM_PRIOR_FLOOR
        motion = -0.5 * d2 / (sigmas * sigmas)[:, None]
    owners = grid.space_of_point[rows]  # (N, R)
    slot_of_point, present = grid.space_slots()
    slots = slot_of_point[rows]
    n_spaces = len(present)
    # per (device, space) sums by one bincount: bin d * S + s, padding and points outside spaces to a last bin
    bins = np.where(valid & (slots >= 0), np.arange(n)[:, None] * n_spaces + slots, n * n_spaces).ravel()

    def per_space(values: NDArray[np.float64]) -> NDArray[np.float64]:
        summed = np.bincount(bins, weights=values.ravel(), minlength=n * n_spaces + 1)
        return np.asarray(summed[:-1], dtype=np.float64).reshape(n, n_spaces)

    space_loglik_all = None
    if space_likelihood and n_spaces and room_where is not None:
        top = loglik.max(axis=1)
        lik = np.exp(loglik - top[:, None])
        lik *= room_where
        space_loglik_all = (per_space(lik), per_space(room_where), top)
    if motion is not None:
        loglik[prior_rows] += motion
    weights = loglik - loglik.max(axis=1, keepdims=True)
    np.exp(weights, out=weights)
    weights /= weights.sum(axis=1, keepdims=True)
    mean = np.einsum("nr,nrc->nc", weights, points)
    # E|p - mean|^2 = E|p|^2 - |mean|^2: the points' squared norms are per floor
    spread = (weights * squared).sum(axis=1) - (mean * mean).sum(axis=1)
    uncertainty = np.sqrt(np.maximum(spread, 0.0) + index.step_m**2 / 6.0)
    residuals = np.matmul(weights[:, None, :], error)[:, 0, :]
    mass = per_space(weights) if n_spaces else None
    held = None
    wanted = [d for d, p in enumerate(items) if held_out and len(p.local) >= 3
              and (held_out_within_m is None or uncertainty[d] <= held_out_within_m)]
    if wanted:
        # the posterior without each reading in turn: its terms dropped from the closed-form sums
        chosen_rows: slice | list[int] = slice(None) if len(wanted) == n else wanted
        e, aw = error[chosen_rows].astype(np.float64), a[chosen_rows].astype(np.float64)
        s1w, s2w = s1[chosen_rows], s2[chosen_rows]
        extra = (loglik - readings_loglik)[chosen_rows]  # silence and motion prior; -inf on padding
        s1_b = s1w[:, :, None] - e * aw[:, None, :]
        shrink_b = 1.0 / (1.0 / np.maximum(prior_db[wanted], 1e-3)[:, None] ** 2 + a_sum[wanted][:, None] - aw)
        # -0.5 * (s2 - e*e*a - shrink*s1_b*s1_b) + extra, then its weights over the points: the same operations
        # in the same order as written out, in place (these (device, point, beacon) arrays are the largest)
        ll_b = e * e
        ll_b *= aw[:, None, :]
        np.subtract(s2w[:, :, None], ll_b, out=ll_b)
        shrunk = shrink_b[:, None, :] * s1_b
        s1_b *= shrunk
        ll_b -= s1_b
        ll_b *= -0.5
        ll_b += extra[:, :, None]
        ll_b -= ll_b.max(axis=1, keepdims=True)
        w_b = np.exp(ll_b, out=ll_b)
        w_b /= w_b.sum(axis=1, keepdims=True)
        np.subtract(e, shrunk, out=shrunk)
        shrunk *= w_b
        held = dict(zip(wanted, shrunk.sum(axis=1)))
    out: list[Posterior] = []
    loglik_all = known = None
    if space_loglik_all is not None:
        num, den, top = space_loglik_all
        known = den > 0
        loglik_all = np.log(np.maximum(num, 1e-300)) - np.log(np.where(known, den, 1.0)) + top[:, None]
    # per device, only the spaces that count (in space order): picked by numpy for the whole chunk at once
    space_probabilities = _row_dicts(mass > 1e-4, mass, present) if mass is not None else [{} for _ in items]
    space_logliks: list[dict[int, float] | None] = [None] * n
    if loglik_all is not None and known is not None:
        space_logliks = list(_row_dicts(known, loglik_all, present))
    elif space_likelihood:
        space_logliks = [{} for _ in items]
    means, spreads = mean.tolist(), uncertainty.tolist()
    for d, p in enumerate(items):
        kk = len(p.local)
        held_d = held[d][:kk] if held is not None and d in held else None
        m = len(p.rows)
        out.append(Posterior(
            floor, (means[d][0], means[d][1]), spreads[d], space_probabilities[d], kk,
            p.beacons, residuals[d, :kk].astype(np.float64), p.var, held_d, space_logliks[d],
            points[d, :m] if space_likelihood else None, weights[d, :m] if space_likelihood else None,
            owners[d, :m] if space_likelihood else None,
        ))
    return out


def _row_dicts(keep: NDArray[np.bool_], values: NDArray[np.float64], present: NDArray[np.int64],
               ) -> list[dict[int, float]]:
    """Per row d: {present[s]: values[d, s] for the columns s kept in that row}, in column order."""
    rows, cols = np.nonzero(keep)  # row-major: each row's columns ascending
    keys, kept = present[cols].tolist(), values[rows, cols].tolist()
    bounds = np.searchsorted(rows, np.arange(len(keep) + 1)).tolist()
    return [dict(zip(keys[a:b], kept[a:b])) for a, b in itertools.pairwise(bounds)]
