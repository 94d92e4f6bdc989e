"""Position from one set of readings: a grid posterior over the chosen floor's candidate positions.

For every candidate point the signal model predicts each heard beacon's RSSI; the readings' common offset (phone
model, body) is integrated out in closed form, beacons in reach that were not heard add their non-detection
likelihood, and an optional motion prior (tracking) multiplies in. The estimate is the posterior mean; its
uncertainty is the posterior RMS spread in metres; space probabilities are the posterior mass inside each space.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shared.domain.positioning.signal import SignalModel
from shared.domain.positioning.site_index import FloorGrid, SiteIndex

MAX_BEACONS_PER_ESTIMATE = 16


@dataclass(frozen=True)
class Estimate:
    """Where a phone is: building metres, floor id, uncertainty (m), space and the confidence in it (0..1)."""

    x: float
    y: float
    floor: str
    uncertainty_m: float
    space_id: str | None
    space_confidence: float
    beacons_used: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Readings:
    """Resolved readings of one estimate: site beacon indices, RSSI (dBm), P1m (dBm), variance (dB^2) or NaN."""

    beacons: np.ndarray
    rssi: np.ndarray
    measured_power: np.ndarray
    variance: np.ndarray


@dataclass(frozen=True, slots=True)
class ReadingLists:
    """`Readings` as plain lists: what the tracker hands a batch of posteriors, which makes one array of each
    column for all the devices of a floor instead of four small ones per device."""

    beacons: list[int]
    rssi: list[float]
    measured_power: list[float]
    variance: list[float]

    def arrays(self) -> Readings:
        return Readings(np.array(self.beacons, dtype=np.int64), np.array(self.rssi, dtype=np.float64),
                        np.array(self.measured_power, dtype=np.float64), np.array(self.variance, dtype=np.float64))


# One scan of a `locate_many` group: (scan position, local beacon indices, rssi, measured power, unheard fallback).
_GroupItem = tuple[int, NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], float]


@dataclass(frozen=True)
class Posterior:
    floor: str
    mean: tuple[float, float]
    uncertainty_m: float
    space_probabilities: Mapping[int, float]  # SiteIndex.spaces position -> probability
    beacons_used: int
    # per beacon used (site indices): the reading minus the model's expectation, averaged over the posterior,
    # and the reading's variance: what self-calibration learns from (empty from locate_many)
    beacons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reading_var: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # with `held_out`: each beacon's reading against the model where the *other* readings put the phone, less
    # the common offset they imply (a weak beacon cannot pull the position away from itself)
    held_out_residuals: np.ndarray | None = None
    # with `space_likelihood`: log P(readings | phone in that space), position within the space after a broadened
    # motion prior (what map-matched tracking weighs its room hypotheses with)
    space_loglik: dict[int, float] | None = None
    candidates: CandidateWeights | None = None  # with `space_likelihood`: the candidate points and their weights

    def mean_in(self, space: int) -> tuple[float, float] | None:
        """The posterior mean restricted to one space (None when it holds no mass or the points were not kept)."""
        return None if self.candidates is None else self.candidates.mean_in(space)


class SpaceMass(Mapping[int, float]):
    """A batched posterior's probability of each space (above 1e-4), summed from its weights over the points'
    space memberships only when first asked: map-matched tracking weighs rooms by `space_loglik` and asks only
    for a posterior without one."""

    __slots__ = ("_mass", "_member", "_present", "_weights")

    def __init__(self, weights: np.ndarray, member: np.ndarray, present: np.ndarray) -> None:
        self._weights, self._member, self._present = weights, member, present  # (U,), (U, S), (S,)
        self._mass: dict[int, float] | None = None

    def _summed(self) -> dict[int, float]:
        if self._mass is None:
            mass = self._weights @ self._member
            kept = np.flatnonzero(mass > 1e-4)
            self._mass = dict(zip(self._present[kept].tolist(), mass[kept].tolist()))
        return self._mass

    def __getitem__(self, space: int) -> float:
        return self._summed()[space]

    def __iter__(self) -> Iterator[int]:
        return iter(self._summed())

    def __len__(self) -> int:
        return len(self._summed())


class SpacePoints:
    """Which of a set of points lie in each space (ascending positions), found on first use and kept: shared by
    the posteriors of one batch chunk, which ask for a room each."""

    __slots__ = ("_of_space", "space_of_point")

    def __init__(self, space_of_point: np.ndarray) -> None:
        self.space_of_point = space_of_point  # (U,): each point's space (SiteIndex.spaces position), -1 for none
        self._of_space: dict[int, np.ndarray] = {}

    def __call__(self, space: int) -> np.ndarray:
        found = self._of_space.get(space)
        if found is None:
            found = self._of_space[space] = np.flatnonzero(self.space_of_point == space)
        return found


@dataclass(frozen=True, slots=True)
class CandidateWeights:
    """A posterior's points and their weights, kept as the arrays (or views of them) the posterior was computed
    on: a batch of posteriors shares one set of points per chunk, each device's own candidates marked by
    `valid`, and gathers nothing until the tracker asks for one room's mean."""

    points: np.ndarray  # (U, 2)
    in_space: SpacePoints  # the points of each space
    weights: np.ndarray  # (U,): the posterior weights
    valid: np.ndarray | None = None  # (U,) bool: the posterior's own candidate points among them (None: all)

    def mean_in(self, space: int) -> tuple[float, float] | None:
        """The weighted mean of the candidate points inside one space (None when they hold no mass there)."""
        inside = self.in_space(space)
        if self.valid is not None:
            inside = inside[self.valid[inside]]
        weights = self.weights[inside]
        mass = float(weights.sum())
        if mass <= 1e-9:
            return None
        mean = weights @ self.points[inside] / mass
        return float(mean[0]), float(mean[1])


def resolve_readings(
    index: SiteIndex,
    signal: SignalModel,
    rssi: Mapping[str, float],
    *,
    tx_power: Mapping[str, float] | float | None = None,
    phone_model: str | None = None,
    variance: Mapping[str, float] | None = None,
) -> Readings:
    """Readings of known beacons with their measured power: calibration, else site model, else the batch's
    txPower, else the default; plus the phone model's offset. Unknown beacon ids are ignored."""
    ids = [b for b in rssi if b in index.beacon_index]
    idx = np.array([index.beacon_index[b] for b in ids], dtype=np.int64)
    values = np.array([rssi[b] for b in ids], dtype=np.float64)
    power = np.array([_measured_power(index, signal, b, tx_power) for b in ids], dtype=np.float64)
    power += signal.phone_offset(phone_model)
    var = np.array([np.nan if variance is None else variance.get(b, np.nan) for b in ids], dtype=np.float64)
    return Readings(idx, values, power, var)


def _measured_power(index: SiteIndex, signal: SignalModel, beacon_id: str,
                    tx_power: Mapping[str, float] | float | None) -> float:
    fitted = signal.beacon_measured_power_dbm.get(beacon_id)
    if fitted is not None:
        return fitted
    site_value = index.beacon_measured_power[index.beacon_index[beacon_id]]
    if not math.isnan(site_value):
        return float(site_value)
    if isinstance(tx_power, Mapping):
        value = tx_power.get(beacon_id)
        if value is not None:
            return float(value)
    elif tx_power is not None:
        return float(tx_power)
    return signal.default_measured_power_dbm


def floor_scores(index: SiteIndex, readings: Readings) -> np.ndarray:
    """Share of received power per floor (index.floor_ids order): the floors of the beacons heard, loudest first."""
    scores = np.zeros(len(index.floor_ids))
    if len(readings.beacons):
        top = np.argsort(-readings.rssi)[:MAX_BEACONS_PER_ESTIMATE]
        power = 10 ** ((readings.rssi[top] - readings.rssi[top].max()) / 10)
        np.add.at(scores, index.floor_of_beacon[readings.beacons[top]], power)
        scores /= scores.sum()
    return scores


def posterior(
    index: SiteIndex,
    signal: SignalModel,
    readings: Readings,
    floor: str,
    *,
    prior_xy: tuple[float, float] | None = None,
    prior_sigma_m: float | None = None,
    default_unheard_power: float | None = None,
    wide: bool = False,
    offset_prior_db: float | None = None,
    held_out: bool = False,
    space_likelihood: bool = False,
) -> Posterior | None:
    """Grid posterior of the position on `floor` given the readings of that floor's beacons (None if none).
    `offset_prior_db` overrides the signal model's spread of the readings' common offset (a self-calibrated
    device knows its own better)."""
    grid = index.grids.get(floor)
    if grid is None:
        return None
    on_floor = index.floor_of_beacon[readings.beacons] == index.floor_ids.index(floor)
    if not on_floor.any():
        return None
    rssi = readings.rssi[on_floor]
    order = np.argsort(-rssi)[:MAX_BEACONS_PER_ESTIMATE]
    beacons = readings.beacons[on_floor][order]
    rssi = rssi[order]
    power = readings.measured_power[on_floor][order]
    var = readings.variance[on_floor][order]
    local = index.local_of_beacon[beacons]
    rows = (grid.near_points_wide if wide else grid.near_points)[local[0]]
    if len(rows) == 0:
        rows = np.arange(len(grid.points))
    uniform = not signal.beacon_path_loss_exponent
    if uniform:
        loss = grid.path_loss(signal.path_loss_exponent, signal.height_m, signal.wall_loss_db)
    else:
        loss = _mixed_path_loss(index, grid, signal)
    predicted = power - loss[np.ix_(rows, local)]  # (M, K)
    error = rssi - predicted
    noise_var = np.where(np.isnan(var), signal.noise_db**2, var)
    a = 1.0 / noise_var
    s1 = error @ a
    s2 = (error * error) @ a
    prior_db = signal.offset_prior_db if offset_prior_db is None else offset_prior_db
    shrink = 1.0 / (1.0 / max(prior_db, 1e-3) ** 2 + a.sum())
    readings_loglik = -0.5 * (s2 - shrink * s1 * s1)
    loglik = readings_loglik
    if signal.detect_max > 0:
        heard = set(local.tolist())
        silent_local = np.array([j for j in grid.near_beacons[local[0]] if j not in heard], dtype=np.int64)
        if len(silent_local):
            fallback = default_unheard_power if default_unheard_power is not None else float(np.median(power))
            silence = _silence(index, grid, signal, loss, fallback, uniform)
            loglik = loglik + silence[np.ix_(rows, silent_local)].sum(axis=1)
    points = grid.points[rows]
    space_loglik = _space_loglik(grid, rows, points, loglik, prior_xy, prior_sigma_m) if space_likelihood else None
    if prior_xy is not None and prior_sigma_m is not None:
        d2 = ((points - np.asarray(prior_xy)) ** 2).sum(axis=1)
        loglik = loglik - 0.5 * d2 / (prior_sigma_m * prior_sigma_m)
    weights = np.exp(loglik - loglik.max())
    weights /= weights.sum()
    mean = weights @ points
    spread = weights @ ((points - mean) ** 2).sum(axis=1)
    uncertainty = math.sqrt(max(float(spread), 0.0) + index.step_m**2 / 6.0)
    held_out_residuals = None
    if held_out and len(local) >= 3:
        # the posterior without each reading in turn: drop its terms from the closed-form sums
        s1_b = s1[:, None] - error * a[None, :]
        shrink_b = 1.0 / (1.0 / max(prior_db, 1e-3) ** 2 + a.sum() - a)
        ll_b = -0.5 * (s2[:, None] - error * error * a[None, :] - shrink_b[None, :] * s1_b * s1_b)
        ll_b += (loglik - readings_loglik)[:, None]
        w_b = np.exp(ll_b - ll_b.max(axis=0))
        w_b /= w_b.sum(axis=0)
        held_out_residuals = (w_b * (error - shrink_b[None, :] * s1_b)).sum(axis=0)
    owners = grid.space_of_point[rows]
    inside = owners >= 0
    space_probabilities: dict[int, float] = {}
    if inside.any():
        mass = np.bincount(owners[inside], weights=weights[inside])
        for i in np.flatnonzero(mass > 1e-4):
            space_probabilities[int(i)] = float(mass[i])
    return Posterior(floor, (float(mean[0]), float(mean[1])), uncertainty, space_probabilities, len(beacons),
                     beacons, weights @ error, noise_var, held_out_residuals, space_loglik,
                     CandidateWeights(points, SpacePoints(owners), weights)
                     if space_likelihood else None)


ROOM_PRIOR_FLOOR = 0.05  # the within-space position prior never drops below this share of its peak
ROOM_PRIOR_MIN_SIGMA_M = 3.0


def _space_loglik(grid: FloorGrid, rows: np.ndarray, points: np.ndarray, loglik: np.ndarray,
                  prior_xy: tuple[float, float] | None, prior_sigma_m: float | None) -> dict[int, float]:
    """log P(readings | in space s) for every space with points among `rows`: the likelihood averaged over the
    space's points, weighted by the motion prior broadened to at least 3 m and floored (a phone can be anywhere
    in a room it may have just entered, most likely near where it was)."""
    owners = grid.space_of_point[rows]
    inside = owners >= 0
    if not inside.any():
        return {}
    if prior_xy is not None and prior_sigma_m is not None:
        sigma = math.hypot(prior_sigma_m, ROOM_PRIOR_MIN_SIGMA_M)
        d2 = ((points - np.asarray(prior_xy)) ** 2).sum(axis=1)
        where = np.exp(-0.5 * d2 / (sigma * sigma)) + ROOM_PRIOR_FLOOR
    else:
        where = np.ones(len(points))
    top = float(loglik.max())
    lik = np.exp(loglik - top) * where
    num = np.bincount(owners[inside], weights=lik[inside])
    den = np.bincount(owners[inside], weights=where[inside])
    present = np.flatnonzero(den > 0)
    return {int(i): float(np.log(max(num[i], 1e-300)) - np.log(den[i]) + top) for i in present}


def _mixed_path_loss(index: SiteIndex, grid: FloorGrid, signal: SignalModel) -> np.ndarray:
    """Path loss with a fitted exponent per beacon (not cached: calibration experiments only)."""
    exponents = np.array(
        [signal.beacon_path_loss_exponent.get(index.beacons[b].id, signal.path_loss_exponent) for b in grid.beacons],
        dtype=np.float32,
    )
    loss: np.ndarray = exponents[None, :] * grid.log_distance(signal.height_m)
    if signal.wall_loss_db > 0 and len(grid.walls):
        loss = loss + np.float32(signal.wall_loss_db) * grid.walls_between()
    return loss


def _silence(index: SiteIndex, grid: FloorGrid, signal: SignalModel, loss: np.ndarray, fallback: float,
             cacheable: bool) -> np.ndarray:
    """Log-probability of not hearing each of the floor's beacons at each point (their 1 m level: fitted, else
    site model, else `fallback`). The scan's common offset is not applied to silent beacons."""
    power = index.beacon_measured_power[grid.beacons].copy()
    power[np.isnan(power)] = fallback
    if signal.beacon_measured_power_dbm:
        ids = [index.beacons[b].id for b in grid.beacons]
        power = np.array([signal.beacon_measured_power_dbm.get(i, v) for i, v in zip(ids, power)])
    key = (signal.path_loss_exponent, signal.height_m, signal.wall_loss_db) if cacheable else None
    if key is None:
        z = (power[None, :] - loss - signal.sensitivity_dbm) * (1.702 / signal.detect_spread_db)
        silence: np.ndarray = np.log1p(-signal.detect_max / (1.0 + np.exp(-z)))
        return silence
    return grid.silence_loglik(loss, key, power, signal.sensitivity_dbm, signal.detect_spread_db, signal.detect_max)


def choose_space(index: SiteIndex, post: Posterior, max_distance_m: float = 3.0) -> tuple[str | None, float]:
    """The most probable space and its probability; with no mass in any space, the polygon nearest the mean."""
    if post.space_probabilities:
        best = max(post.space_probabilities.items(), key=lambda kv: kv[1])
        return index.spaces[best[0]].id, best[1]
    space, distance = index.space_containing(post.floor, post.mean, max_distance_m)
    if space is None:
        return None, 0.0
    return space, max(0.0, 1.0 - distance / max_distance_m) * 0.5


def locate(
    index: SiteIndex,
    signal: SignalModel,
    rssi: Mapping[str, float],
    *,
    tx_power: Mapping[str, float] | float | None = None,
    phone_model: str | None = None,
    floor: str | None = None,
) -> Estimate | None:
    """Single-scan estimate (no history). None when no beacon of the site was heard."""
    readings = resolve_readings(index, signal, rssi, tx_power=tx_power, phone_model=phone_model)
    if len(readings.beacons) == 0:
        return None
    if floor is None:
        floor = index.floor_ids[int(np.argmax(floor_scores(index, readings)))]
    default_power = None
    if tx_power is not None and not isinstance(tx_power, Mapping):
        default_power = float(tx_power) + signal.phone_offset(phone_model)
    post = posterior(index, signal, readings, floor, default_unheard_power=default_power,
                     offset_prior_db=signal.offset_prior_for(phone_model))
    if post is None:
        return None
    space, confidence = choose_space(index, post)
    return Estimate(post.mean[0], post.mean[1], floor, post.uncertainty_m, space, confidence, post.beacons_used)


def locate_many(
    index: SiteIndex,
    signal: SignalModel,
    scans: Sequence[Mapping[str, float]],
    *,
    tx_power: Sequence[float | None] | None = None,
    phone_model: str | None = None,
) -> list[Estimate | None]:
    """`locate` for many scans at once (same answers), vectorised over the scans that share a floor and a
    loudest beacon: what the eval and the benchmark run."""
    if signal.beacon_path_loss_exponent:
        return [
            locate(index, signal, s, tx_power=None if tx_power is None else tx_power[i], phone_model=phone_model)
            for i, s in enumerate(scans)
        ]
    out: list[Estimate | None] = [None] * len(scans)
    groups: dict[tuple[str, int], list[_GroupItem]] = {}
    offset = signal.phone_offset(phone_model)
    beacon_index = index.beacon_index
    floor_of = index.floor_of_beacon
    local_of = index.local_of_beacon
    site_power = index.beacon_measured_power
    fitted = signal.beacon_measured_power_dbm
    for i, rssi in enumerate(scans):
        tx = None if tx_power is None else tx_power[i]
        heard = [(v, beacon_index[b], b) for b, v in rssi.items() if b in beacon_index]
        if not heard:
            continue
        heard.sort(key=lambda h: -h[0])
        loudest = heard[0][0]
        shares: dict[int, float] = {}
        for v, b, _id in heard[:MAX_BEACONS_PER_ESTIMATE]:
            f = int(floor_of[b])
            shares[f] = shares.get(f, 0.0) + 10 ** ((v - loudest) / 10)
        floor_i = max(sorted(shares), key=lambda f: shares[f])
        chosen = [h for h in heard if floor_of[h[1]] == floor_i][:MAX_BEACONS_PER_ESTIMATE]
        local = local_of[[h[1] for h in chosen]]
        power = np.array([_power_of(h[2], h[1], site_power, fitted, tx, signal) for h in chosen]) + offset
        if tx is not None and not isinstance(tx, Mapping):
            fallback = float(tx) + offset
        else:
            fallback = float(np.median(power))
        groups.setdefault((index.floor_ids[floor_i], int(local[0])), []).append(
            (i, local, np.array([h[0] for h in chosen], dtype=np.float64), power, fallback)
        )
    prior_db = signal.offset_prior_for(phone_model)
    for (floor, strongest), items in groups.items():
        _locate_group(index, signal, floor, strongest, items, out, prior_db)
    return out


def _power_of(beacon_id: str, b: int, site_power: NDArray[np.float64], fitted: Mapping[str, float],
              tx: Mapping[str, float] | float | None, signal: SignalModel) -> float:
    value = fitted.get(beacon_id) if fitted else None
    if value is not None:
        return value
    site_value = float(site_power[b])
    if not math.isnan(site_value):
        return site_value
    if isinstance(tx, Mapping):
        tx = tx.get(beacon_id)
    return signal.default_measured_power_dbm if tx is None else float(tx)


def _locate_group(index: SiteIndex, signal: SignalModel, floor: str, strongest: int, items: list[_GroupItem],
                  out: list[Estimate | None], offset_prior_db: float) -> None:
    grid = index.grids[floor]
    rows = grid.near_points[strongest]
    if len(rows) == 0:
        rows = np.arange(len(grid.points))
    loss = grid.path_loss(signal.path_loss_exponent, signal.height_m, signal.wall_loss_db)[rows]  # (M, Bf)
    n = len(items)
    k = max(len(it[1]) for it in items)
    cols = np.zeros((n, k), dtype=np.int64)
    level = np.zeros((n, k), dtype=np.float32)  # rssi - measured power
    mask = np.zeros((n, k), dtype=np.float32)
    for r, (_i, local, rssi, power, _fb) in enumerate(items):
        cols[r, : len(local)] = local
        level[r, : len(local)] = rssi - power
        mask[r, : len(local)] = 1.0
    a = 1.0 / signal.noise_db**2
    error = (level[None, :, :] + loss[:, cols]) * mask[None]  # (M, N, K)
    s1 = error.sum(axis=2) * a
    s2 = (error * error).sum(axis=2) * a
    shrink = 1.0 / (1.0 / max(offset_prior_db, 1e-3) ** 2 + mask.sum(axis=1) * a)  # (N,)
    loglik = -0.5 * (s2 - shrink * s1 * s1)
    if signal.detect_max > 0:
        near = grid.near_beacons[strongest]
        full_loss = grid.path_loss(signal.path_loss_exponent, signal.height_m, signal.wall_loss_db)
        by_fallback: dict[float, list[int]] = {}
        for r, item in enumerate(items):
            by_fallback.setdefault(item[4], []).append(r)
        for fallback, members in by_fallback.items():
            silence = _silence(index, grid, signal, full_loss, fallback, True)[rows]  # (M, Bf)
            sets = []
            for r in members:
                heard_set = set(items[r][1].tolist())
                sets.append(np.array([j for j in near.tolist() if j not in heard_set], dtype=np.int64))
            u = max(len(x) for x in sets)
            if not u:
                continue
            scols = np.zeros((len(members), u), dtype=np.int64)
            smask = np.zeros((len(members), u), dtype=np.float32)
            for j, silent in enumerate(sets):
                scols[j, : len(silent)] = silent
                smask[j, : len(silent)] = 1.0
            loglik[:, members] += (silence[:, scols] * smask[None]).sum(axis=2)
    weights = np.exp(loglik - loglik.max(axis=0))
    weights /= weights.sum(axis=0)
    points = grid.points[rows]
    mean = weights.T @ points  # (N, 2)
    second = weights.T @ (points * points).sum(axis=1)
    spread = np.maximum(second - (mean * mean).sum(axis=1), 0.0) + index.step_m**2 / 6.0
    owners = grid.space_of_point[rows]
    present = np.unique(owners[owners >= 0])
    if len(present):
        onehot = (owners[:, None] == present[None, :]).astype(np.float64)
        mass = weights.T @ onehot  # (N, S)
        best = mass.argmax(axis=1)
    for r, (i, local, _rssi, _power, _fb) in enumerate(items):
        x, y = float(mean[r, 0]), float(mean[r, 1])
        space: str | None
        if len(present) and mass[r, best[r]] > 1e-4:
            space, confidence = index.spaces[int(present[best[r]])].id, float(mass[r, best[r]])
        else:
            space, confidence = choose_space(index, Posterior(floor, (x, y), 0.0, {}, len(local)))
        out[i] = Estimate(x, y, floor, math.sqrt(float(spread[r])), space, confidence, len(local))
