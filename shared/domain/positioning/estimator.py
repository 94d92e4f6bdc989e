"""Position from one set of readings: a grid posterior over the chosen floor's candidate positions.

For every candidate point the signal model predicts each heard beacon's RSSI; the readings' common offset (phone
model, body) is integrated out in closed form, beacons in reach that were not heard add their non-detection
likelihood, and an optional motion prior (tracking) multiplies in. The estimate is the posterior mean; its
uncertainty is the posterior RMS spread in metres; space probabilities are the posterior mass inside each space.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from shared.domain.positioning.signal import SignalModel
from shared.domain.positioning.site_index import SiteIndex

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

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Readings:
    """Resolved readings of one estimate: site beacon indices, RSSI (dBm), P1m (dBm), variance (dB^2) or NaN."""

    beacons: np.ndarray
    rssi: np.ndarray
    measured_power: np.ndarray
    variance: np.ndarray


@dataclass(frozen=True)
class Posterior:
    floor: str
    mean: tuple[float, float]
    uncertainty_m: float
    space_probabilities: dict[int, float]  # SiteIndex.spaces position -> probability
    beacons_used: int


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


def _measured_power(index: SiteIndex, signal: SignalModel, beacon_id: str, tx_power) -> float:
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
) -> Posterior | None:
    """Grid posterior of the position on `floor` given the readings of that floor's beacons (None if none)."""
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
    rows = grid.near_points[local[0]]
    if len(rows) == 0:
        rows = np.arange(len(grid.points))
    log_dist = grid.log_distance(signal.height_m)
    exponent = _exponents(index, signal, beacons)
    predicted = power - exponent * log_dist[np.ix_(rows, local)]  # (M, K)
    walled = signal.wall_loss_db > 0 and len(grid.walls) > 0
    if walled:
        predicted = predicted - signal.wall_loss_db * grid.walls_between()[np.ix_(rows, local)]
    error = rssi - predicted
    noise_var = np.where(np.isnan(var), signal.noise_db**2, var)
    a = 1.0 / noise_var
    s1 = error @ a
    s2 = (error * error) @ a
    shrink = 1.0 / (1.0 / max(signal.offset_prior_db, 1e-3) ** 2 + a.sum())
    loglik = -0.5 * (s2 - shrink * s1 * s1)
    if signal.detect_max > 0:
        heard = set(local.tolist())
        silent_local = np.array([j for j in grid.near_beacons[local[0]] if j not in heard], dtype=np.int64)
        if len(silent_local):
            silent = grid.beacons[silent_local]
            silent_power = _silent_power(index, signal, silent, power, default_unheard_power)
            offset = shrink * s1
            silent_pred = silent_power - _exponents(index, signal, silent) * log_dist[np.ix_(rows, silent_local)]
            if walled:
                silent_pred = silent_pred - signal.wall_loss_db * grid.walls_between()[np.ix_(rows, silent_local)]
            sensitivity = signal.sensitivity_dbm
            if signal.adaptive_sensitivity_db is not None:
                sensitivity = float(readings.rssi.min()) - signal.adaptive_sensitivity_db
            z = (silent_pred + offset[:, None] - sensitivity) / signal.detect_spread_db
            detect = signal.detect_max / (1.0 + np.exp(-1.702 * z))
            loglik = loglik + np.log1p(-detect).sum(axis=1)
    points = grid.points[rows]
    if prior_xy is not None and prior_sigma_m is not None:
        d2 = ((points - np.asarray(prior_xy)) ** 2).sum(axis=1)
        loglik = loglik - 0.5 * d2 / (prior_sigma_m * prior_sigma_m)
    weights = np.exp(loglik - loglik.max())
    weights /= weights.sum()
    mean = weights @ points
    spread = weights @ ((points - mean) ** 2).sum(axis=1)
    uncertainty = math.sqrt(max(float(spread), 0.0) + index.step_m**2 / 6.0)
    owners = grid.space_of_point[rows]
    inside = owners >= 0
    space_probabilities: dict[int, float] = {}
    if inside.any():
        mass = np.bincount(owners[inside], weights=weights[inside])
        for i in np.flatnonzero(mass > 1e-4):
            space_probabilities[int(i)] = float(mass[i])
    return Posterior(floor, (float(mean[0]), float(mean[1])), uncertainty, space_probabilities, len(beacons))


def _exponents(index: SiteIndex, signal: SignalModel, beacons: np.ndarray) -> np.ndarray | float:
    if not signal.beacon_path_loss_exponent:
        return signal.path_loss_exponent
    return np.array(
        [signal.beacon_path_loss_exponent.get(index.beacons[b].id, signal.path_loss_exponent) for b in beacons]
    )


def _silent_power(index, signal, silent, heard_power, default_unheard_power) -> np.ndarray:
    site = index.beacon_measured_power[silent]
    fallback = default_unheard_power if default_unheard_power is not None else float(np.median(heard_power))
    out = np.where(np.isnan(site), fallback, site)
    if signal.beacon_measured_power_dbm:
        out = np.array(
            [signal.beacon_measured_power_dbm.get(index.beacons[b].id, v) for b, v in zip(silent, out)]
        )
    return out


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
    post = posterior(index, signal, readings, floor, default_unheard_power=default_power)
    if post is None:
        return None
    space, confidence = choose_space(index, post)
    return Estimate(post.mean[0], post.mean[1], floor, post.uncertainty_m, space, confidence, post.beacons_used)
