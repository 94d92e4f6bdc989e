"""The tracker's grid posterior for many devices at once: what one trigger call of the processing function needs.

`posterior_many(index, signal, requests)` gives, for each request, the posterior of `estimator.posterior(...,
wide=True)` (the candidate points within the tracking reach of the loudest beacon, the readings' likelihood with
their common offset integrated out, the silent beacons, the motion prior, residuals, held-out residuals and the
per-space likelihood), computed for all the devices on one floor together: over the union of their candidate
points (the whole floor when that is most of it), each device masked to its own; the readings' Gaussian sums are
dense float64 matrix products of the devices' (device, floor beacon) weights with the floor's path loss, as are
the residuals, the posterior moments, the per-space sums and the silent beacons' term. A request may narrow its candidate points to a disc around the
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
    CandidateWeights,
    Posterior,
    ReadingLists,
    Readings,
    SpaceMass,
    SpacePoints,
    _silence,
    posterior,
)
from shared.domain.positioning.signal import SignalModel
from shared.domain.positioning.site_index import FloorGrid, SiteIndex

# (device, candidate point) elements of one chunk of a floor's devices: bounds the memory of a call (a few MB: the
# held-out residuals take a (device, point, reading) array of the confident devices)
MAX_CHUNK_ELEMENTS = 32_000


@dataclass(frozen=True)
class PosteriorRequest:
    """One device's posterior: its readings, the floor, the motion prior, the spread of its common offset, and
    how far from the prior's centre candidate points are worth computing (None: the whole tracking reach)."""

    readings: Readings | ReadingLists
    floor: str
    prior_xy: tuple[float, float] | None = None
    prior_sigma_m: float | None = None
    offset_prior_db: float | None = None
    within_m: float | None = None


@dataclass(frozen=True)
class _FloorGroup:
    """The requests of one floor that hold readings of it, as flat columns: device d's readings are
    `starts[d]:starts[d + 1]`, that floor's only, loudest first, at most 16 (as `posterior` orders them); with
    each device's candidate points and silent beacons as rows of masks over the floor's points and beacons."""

    positions: list[int]  # each device's position in the request list
    requests: list[PosteriorRequest]
    beacons: NDArray[np.int64]  # site beacon indices
    rssi: NDArray[np.float64]
    power: NDArray[np.float64]
    var: NDArray[np.float64]  # NaN (unknown) replaced by the signal model's noise
    local: NDArray[np.int64]  # the beacons' positions among the floor's
    device: NDArray[np.int64]  # each reading's device
    slot: NDArray[np.int64]  # each reading's place among its device's
    counts: NDArray[np.int64]  # readings per device
    starts: list[int]  # (n + 1) bounds of the devices' readings
    candidates: NDArray[np.bool_]  # (n, M): each device's candidate points
    silent: NDArray[np.bool_] | None  # (n, Bf): each device's informative silent beacons (None: no silence term)
    # |p - prior|^2 over the floor's points of the devices narrowed to their motion prior (`prior_row`: each
    # device's row, -1 for none): the chunks' motion priors take them from here
    prior_d2: NDArray[np.float64] | None
    prior_row: list[int]


def posterior_many(index: SiteIndex, signal: SignalModel, requests: Sequence[PosteriorRequest], *,
                   held_out: bool = False, held_out_within_m: float | None = None,
                   space_likelihood: bool = False) -> list[Posterior | None]:
    """The posterior of every request (None where its floor has none of its readings). Held-out residuals with
    `held_out`, for posteriors whose RMS spread is at most `held_out_within_m` when given."""
    out: list[Posterior | None] = [None] * len(requests)
    if signal.beacon_path_loss_exponent:  # calibration experiments only: no cached path loss to share
        for i, r in enumerate(requests):
            readings = r.readings.arrays() if isinstance(r.readings, ReadingLists) else r.readings
            out[i] = posterior(index, signal, readings, r.floor, prior_xy=r.prior_xy, prior_sigma_m=r.prior_sigma_m,
                               wide=True, offset_prior_db=r.offset_prior_db, held_out=held_out,
                               space_likelihood=space_likelihood)
        return out
    by_floor: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        if r.floor in index.grids:
            by_floor.setdefault(r.floor, []).append(i)
    for floor, positions in by_floor.items():
        grid = index.grids[floor]
        group = _prepare(index, signal, grid, floor, positions, [requests[i] for i in positions])
        if group is None:
            continue
        sizes = group.candidates.sum(axis=1)
        order = np.argsort(sizes, kind="stable").tolist()  # similar sizes share a chunk: less padding
        sizes_in_order = sizes[order].tolist()
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end + 1 - start) * sizes_in_order[end] <= MAX_CHUNK_ELEMENTS:
                end += 1
            chunk = order[start:end]
            posts = _floor_posteriors(index, signal, grid, floor, group, chunk, held_out, held_out_within_m,
                                      space_likelihood)
            for d, post in zip(chunk, posts):
                out[group.positions[d]] = post
            start = end
    return out


def _prepare(index: SiteIndex, signal: SignalModel, grid: FloorGrid, floor: str, positions: list[int],
             requests: list[PosteriorRequest]) -> _FloorGroup | None:
    """The requests' readings of the floor as flat columns, and their candidate points: the points within the
    tracking reach of each device's loudest beacon, narrowed to `within_m` of its motion prior where that leaves
    any. Whole-group array operations: a device costs no numpy call of its own."""
    floor_i = index.floor_ids.index(floor)
    given = [r.readings for r in requests]
    if all(isinstance(r, ReadingLists) for r in given):  # the tracker's: one conversion per column
        beacons = np.array(list(itertools.chain.from_iterable(r.beacons for r in given)), dtype=np.int64)
        rssi = np.array(list(itertools.chain.from_iterable(r.rssi for r in given)), dtype=np.float64)
        power = np.array(list(itertools.chain.from_iterable(r.measured_power for r in given)), dtype=np.float64)
        var = np.array(list(itertools.chain.from_iterable(r.variance for r in given)), dtype=np.float64)
    else:
        arrays = [r.arrays() if isinstance(r, ReadingLists) else r for r in given]
        beacons = np.concatenate([r.beacons for r in arrays]).astype(np.int64, copy=False)
        rssi = np.concatenate([r.rssi for r in arrays]).astype(np.float64, copy=False)
        power = np.concatenate([r.measured_power for r in arrays]).astype(np.float64, copy=False)
        var = np.concatenate([r.variance for r in arrays]).astype(np.float64, copy=False)
    device = np.repeat(np.arange(len(given)), [len(r.beacons) for r in given])
    on_floor = index.floor_of_beacon[beacons] == floor_i
    if not on_floor.all():
        beacons, rssi, power, var, device = (beacons[on_floor], rssi[on_floor], power[on_floor], var[on_floor],
                                             device[on_floor])
    counts = np.bincount(device, minlength=len(given))
    starts = np.concatenate([[0], np.cumsum(counts)])
    louder_later = np.flatnonzero((rssi[1:] > rssi[:-1]) & (device[1:] == device[:-1]))
    unordered = set(device[louder_later].tolist()) | set(np.flatnonzero(counts > MAX_BEACONS_PER_ESTIMATE).tolist())
    if unordered:  # the tracker passes them loudest first already: other callers' devices are ordered one by one
        take = [np.arange(starts[d], starts[d + 1]) if d not in unordered
                else starts[d] + np.argsort(-rssi[starts[d]:starts[d + 1]])[:MAX_BEACONS_PER_ESTIMATE]
                for d in range(len(given))]
        picked = np.concatenate(take)
        beacons, rssi, power, var, device = beacons[picked], rssi[picked], power[picked], var[picked], device[picked]
        counts = np.bincount(device, minlength=len(given))
    if not counts.all():  # a device without readings of this floor has no posterior on it
        heard = counts > 0
        if not heard.any():
            return None
        positions = [p for p, h in zip(positions, heard.tolist()) if h]
        requests = [r for r, h in zip(requests, heard.tolist()) if h]
        device = (np.cumsum(heard) - 1)[device]
        counts = counts[heard]
    starts = np.concatenate([[0], np.cumsum(counts)])
    var = np.where(np.isnan(var), signal.noise_db**2, var)
    local = index.local_of_beacon[beacons]
    first = local[starts[:-1]]
    candidates = grid.wide_mask()[first]
    narrowed = [d for d, r in enumerate(requests) if r.within_m is not None and r.prior_xy is not None]
    prior_row = [-1] * len(requests)
    d2 = None
    if narrowed:
        for row, d in enumerate(narrowed):
            prior_row[d] = row
        centres = np.array([requests[d].prior_xy for d in narrowed], dtype=np.float64)
        reach = np.array([requests[d].within_m for d in narrowed], dtype=np.float64)
        # |p - c|^2 = |p|^2 - 2 p.c + |c|^2 over the floor's points, (narrowed, M)
        d2 = grid.squared_norms()[None, :] - 2.0 * (centres @ grid.points.T)
        d2 += (centres * centres).sum(axis=1)[:, None]
        near = candidates[narrowed] & (d2 <= (reach * reach)[:, None])
        kept = near.any(axis=1)  # none left: the whole reach
        candidates[np.array(narrowed)[kept]] = near[kept]
    silent = None
    if signal.detect_max > 0:
        silent = grid.near_beacon_mask()[first]
        silent[device, local] = False
    return _FloorGroup(positions, requests, beacons, rssi, power, var, local, device,
                       np.arange(len(device)) - starts[device], counts, starts.tolist(), candidates, silent, d2,
                       prior_row)


def _floor_posteriors(index: SiteIndex, signal: SignalModel, grid: FloorGrid, floor: str, group: _FloorGroup,
                      chunk: list[int], held_out: bool, held_out_within_m: float | None,
                      space_likelihood: bool) -> list[Posterior]:
    n = len(chunk)
    n_beacons = len(grid.beacons)
    requests = [group.requests[d] for d in chunk]
    picked = np.array(chunk)
    k = int(group.counts[picked].max())
    # the chunk's readings as (device, reading) matrices, padded with readings that weigh nothing
    reading: NDArray[np.int64] | slice
    if n == len(group.requests):
        row, slot, reading = picked.argsort()[group.device], group.slot, slice(None)
    else:
        row_of = np.full(len(group.requests), -1)
        row_of[picked] = np.arange(n)
        row = row_of[group.device]
        reading = np.flatnonzero(row >= 0)
        row, slot = row[reading], group.slot[reading]
    cols = np.zeros((n, k), dtype=np.int64)
    level = np.zeros((n, k))
    a = np.zeros((n, k))
    cols[row, slot] = group.local[reading]
    level[row, slot] = group.rssi[reading] - group.power[reading]
    a[row, slot] = 1.0 / group.var[reading]
    prior_db = np.array([signal.offset_prior_db if r.offset_prior_db is None else r.offset_prior_db
                         for r in requests], dtype=np.float64)
    # the chunk's points: the union of its devices' candidates (the whole floor when that is most of it, its
    # products kept per floor), each device masked to its own (-inf elsewhere)
    valid = group.candidates[picked]
    marked = valid.any(axis=0)
    u = int(np.count_nonzero(marked))
    loss = grid.path_loss(signal.path_loss_exponent, signal.height_m, signal.wall_loss_db)
    loss_t, loss2_t, member = _floor_products(grid, loss)
    if 4 * u >= 3 * len(grid.points):
        union: NDArray[np.int64] | slice = slice(None)
        points, squared, space_of = grid.points, grid.squared_norms(), grid.space_of_point
    else:
        union = np.flatnonzero(marked)
        valid = valid[:, union]
        loss_t, loss2_t, member = loss_t[:, union], loss2_t[:, union], member[union]
        points, squared, space_of = grid.points[union], grid.squared_norms()[union], grid.space_of_point[union]
    # the readings' sums as products over the floor's beacons: error(p, k) = level_k + loss[p, b_k], so with the
    # weights a and weighted levels a*level spread over the floor's beacons (a padded reading weighs nothing),
    # s1 = sum(a level) + A @ loss.T and s2 = sum(a level^2) + 2 (A level) @ loss.T + A @ (loss^2).T
    weight_of = np.zeros((n, n_beacons))
    weighted_level = np.zeros((n, n_beacons))
    flat = (np.arange(n)[:, None] * n_beacons + cols).ravel()
    np.add.at(weight_of.ravel(), flat, a.ravel())
    np.add.at(weighted_level.ravel(), flat, (a * level).ravel())
    s1 = weight_of @ loss_t
    s1 += (a * level).sum(axis=1)[:, None]
    s2 = weighted_level @ loss_t
    s2 *= 2.0
    s2 += weight_of @ loss2_t
    s2 += (a * level * level).sum(axis=1)[:, None]
    a_sum = a.sum(axis=1)
    shrink = 1.0 / (1.0 / np.maximum(prior_db, 1e-3) ** 2 + a_sum)
    readings_loglik = -0.5 * (s2 - shrink[:, None] * s1 * s1)
    loglik = np.where(valid, readings_loglik, -np.inf)  # outside a device's candidates: -inf from here on
    silent_rows = group.silent[picked] if group.silent is not None else None
    silent_any = np.flatnonzero(silent_rows.any(axis=1)).tolist() if silent_rows is not None else []
    if silent_any and silent_rows is not None:
        # the silent beacons' 1 m level falls back to the readings' median only where the site has none
        uniform_power = not np.isnan(index.beacon_measured_power[grid.beacons]).any()
        groups: dict[float, list[int]] = {}
        for d in silent_any:
            groups.setdefault(0.0 if uniform_power else _median_power(group, chunk[d]), []).append(d)
        for members in groups.values():
            if uniform_power:  # the site's own levels: one matrix per floor and signal model, kept
                key = (signal.path_loss_exponent, signal.height_m, signal.wall_loss_db, signal.sensitivity_dbm,
                       signal.detect_spread_db, signal.detect_max)
                silence = grid.site_silence.get(key)
                if silence is None:
                    silence = _silence(index, grid, signal, loss, 0.0, True)
                    grid.site_silence[key] = silence
            else:
                silence = _silence(index, grid, signal, loss, _median_power(group, chunk[members[0]]), True)
            chosen = np.ascontiguousarray(silent_rows[members].T, dtype=np.float64)  # (Bf, members)
            rows: slice | list[int] = slice(None) if len(members) == n else members  # (a view: no copy back)
            loglik[rows] += (silence[union] @ chosen).T  # (members, U)
    with_prior = [d for d, r in enumerate(requests) if r.prior_xy is not None and r.prior_sigma_m is not None]
    prior_rows: slice | list[int] = slice(None) if len(with_prior) == n else with_prior
    # outside a device's candidates: no room weight either (its per-space sums are over its own points)
    room_where = valid.astype(np.float64) if space_likelihood else None
    motion = None
    if with_prior:
        centres = np.array([requests[d].prior_xy for d in with_prior], dtype=np.float64)
        sigmas = np.array([requests[d].prior_sigma_m for d in with_prior], dtype=np.float64)
        rows_of = [group.prior_row[chunk[d]] for d in with_prior]
        if group.prior_d2 is not None and min(rows_of) >= 0:  # computed with the candidates
            d2 = group.prior_d2[rows_of] if isinstance(union, slice) else group.prior_d2[np.ix_(np.array(rows_of), union)]
        else:  # |p - c|^2 = |p|^2 - 2 p.c + |c|^2, (P, U)
            d2 = squared[None, :] - 2.0 * (centres @ points.T)
            d2 += (centres * centres).sum(axis=1)[:, None]
        if room_where is not None:
            broad = np.hypot(sigmas, ROOM_PRIOR_MIN_SIGMA_M)
            room_where[prior_rows] *= np.exp(-0.5 * d2 / (broad * broad)[:, None]) + ROOM_PRIOR_FLOOR
        motion = -0.5 * d2 / (sigmas * sigmas)[:, None]
    present = grid.space_slots()[1]
    n_spaces = len(present)

    def per_space(values: NDArray[np.float64]) -> NDArray[np.float64]:
        # per (device, space) sums by one product with the points' space memberships; the values are 0 off
        # each device's candidates
        return np.asarray(values @ member, dtype=np.float64)

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
    mean = weights @ points
    # E|p - mean|^2 = E|p|^2 - |mean|^2
    spread = weights @ squared - (mean * mean).sum(axis=1)
    uncertainty = np.sqrt(np.maximum(spread, 0.0) + index.step_m**2 / 6.0)
    # residual_k = sum_p w(p) (level_k + loss[p, b_k]) = level_k + (W @ loss)[b_k]
    residuals = level + np.take_along_axis(weights @ loss_t.T, cols, axis=1)
    held = None
    chunk_counts = group.counts[picked].tolist()
    wanted = [d for d, c in enumerate(chunk_counts) if held_out and c >= 3
              and (held_out_within_m is None or uncertainty[d] <= held_out_within_m)]
    if wanted:
        # the posterior without each reading in turn: its terms dropped from the closed-form sums, as (device,
        # reading, point) arrays over the chunk's points (a device's others are -inf in `extra`)
        aw = a[wanted][:, :, None]
        e = loss_t[cols[wanted]]  # (W, K, U)
        e += level[wanted][:, :, None]
        s1_b = s1[wanted][:, None, :] - e * aw
        shrink_b = 1.0 / (1.0 / np.maximum(prior_db[wanted], 1e-3)[:, None] ** 2 + a_sum[wanted][:, None]
                          - a[wanted])
        # -0.5 * (s2 - e*e*a - shrink*s1_b*s1_b) + extra, then its weights over the points: in place (these
        # (device, reading, point) arrays are the largest)
        ll_b = e * e
        ll_b *= aw
        np.subtract(s2[wanted][:, None, :], ll_b, out=ll_b)
        shrunk = shrink_b[:, :, None] * s1_b
        s1_b *= shrunk
        ll_b -= s1_b
        ll_b *= -0.5
        ll_b += (loglik - readings_loglik)[wanted][:, None, :]  # silence and motion prior; -inf off the candidates
        ll_b -= ll_b.max(axis=2, keepdims=True)
        w_b = np.exp(ll_b, out=ll_b)
        w_b /= w_b.sum(axis=2, keepdims=True)
        np.subtract(e, shrunk, out=shrunk)
        shrunk *= w_b
        held = dict(zip(wanted, shrunk.sum(axis=2)))
    out: list[Posterior] = []
    loglik_all = known = None
    if space_loglik_all is not None:
        num, den, top = space_loglik_all
        known = den > 0
        loglik_all = np.log(np.maximum(num, 1e-300)) - np.log(np.where(known, den, 1.0)) + top[:, None]
    space_logliks: list[dict[int, float] | None] = [None] * n
    if loglik_all is not None and known is not None:
        space_logliks = list(_row_dicts(known, loglik_all, present))
    elif space_likelihood:
        space_logliks = [{} for _ in chunk]
    means, spreads = mean.tolist(), uncertainty.tolist()
    in_space = SpacePoints(space_of)
    for d, g in enumerate(chunk):
        lo, hi = group.starts[g], group.starts[g + 1]
        kk = hi - lo
        held_d = held[d][:kk] if held is not None and d in held else None
        out.append(Posterior(
            floor, (means[d][0], means[d][1]), spreads[d],
            SpaceMass(weights[d], member, present) if n_spaces else {}, kk,
            group.beacons[lo:hi], residuals[d, :kk], group.var[lo:hi], held_d, space_logliks[d],
            CandidateWeights(points, in_space, weights[d], valid[d]) if space_likelihood else None,
        ))
    return out


def _median_power(group: _FloorGroup, device: int) -> float:
    return float(np.median(group.power[group.starts[device]:group.starts[device + 1]]))


def _floor_products(grid: FloorGrid, loss: NDArray[np.float32]) -> tuple[NDArray[np.float64], ...]:
    """(loss.T, (loss^2).T, the points' space memberships (M, S)) of a floor in float64, kept per path loss."""
    kept = grid.products.get(id(loss))
    if kept is None or kept[0] is not loss:
        loss64 = loss.astype(np.float64)
        slots, present = grid.space_slots()
        member = np.zeros((len(grid.points), len(present)))
        inside = np.flatnonzero(slots >= 0)
        member[inside, slots[inside]] = 1.0
        kept = (loss, np.ascontiguousarray(loss64.T), np.ascontiguousarray((loss64 * loss64).T), member)
        if len(grid.products) > 8:
            grid.products.clear()
        grid.products[id(loss)] = kept
    return kept[1], kept[2], kept[3]


def _row_dicts(keep: NDArray[np.bool_], values: NDArray[np.float64], present: NDArray[np.int64],
               ) -> list[dict[int, float]]:
    """Per row d: {present[s]: values[d, s] for the columns s kept in that row}, in column order."""
    rows, cols = np.nonzero(keep)  # row-major: each row's columns ascending
    keys, kept = present[cols].tolist(), values[rows, cols].tolist()
    bounds = np.searchsorted(rows, np.arange(len(keep) + 1)).tolist()
    return [dict(zip(keys[a:b], kept[a:b])) for a, b in itertools.pairwise(bounds)]
