"""Self-calibration from live traffic: a per-device RSSI offset and a per-beacon measured-power drift.

Both are estimated from *confident* positions only (posterior spread at most `confident_m`, at least
`min_beacons` beacons used). A device's offset is the precision-weighted mean residual of an update (readings
minus the model at the posterior; its readings share the offset). A beacon's residual is taken *held out*: its
reading against the model where the other readings put the phone, less the common offset they imply, so a weak
beacon cannot pull the position away from itself; and only where the model expects it well above the phone's
sensitivity (a weak beacon is heard, and kept among the loudest, only when it fades up, which would hide a drop).

A beacon's residuals mix a real change (battery, turned, moved) with what the model gets wrong about it for good
(path-loss exponent, walls, shadowing: +-5 dB per beacon in the simulator). So each beacon keeps a *level* (a
scalar Kalman filter, random walk `beacon_walk_db_per_h`) and a *baseline* (the level once settled, then following
it at `baseline_walk_db_per_h`); its **drift** is level - baseline. Positioning adds the drift to the beacon's
measured power, and a drift beyond `flag_db`, known to within `flag_sd_db`, flags the beacon in beacon health. A
building whose model fits badly is thus not "corrected" into a worse one; a beacon that changes is.

Each is bounded and shrunk towards no change (the Kalman prior); the device offset is persisted with the device's
tracking state, the beacon estimates with beacon health.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SelfCalibrationPolicy:
    """Tuning of self-calibration (docs/positioning.md has the measurements behind it)."""

    enabled: bool = True
    confident_m: float = 2.5  # posterior RMS spread at most this
    min_beacons: int = 3
    scan_jitter_db: float = 3.0  # a calibrated device's offset still varies this much update to update
    device_model_error_db: float = 3.0  # floor of one update's offset measurement
    device_walk_db_per_h: float = 2.0  # a device's offset may wander this much an hour
    device_bound_db: float = 20.0
    device_level_after: int = 30  # device measurements before the building's device level is used
    device_level_prior_db: float = 10.0
    device_level_spread_db: float = 6.0  # devices' offsets around the building's level (phones differ)
    device_level_floor_db: float = 0.3  # the level keeps following slowly (phone mix, season)
    observe_above_dbm: float = -85.0  # a beacon's residual counts where the model expects it at least this loud
    beacon_prior_db: float = 3.0  # prior spread of a beacon's drift
    beacon_observation_db: float = 6.0  # one device-update's residual of one beacon (fading, shadowing, model)
    beacon_walk_db_per_h: float = 4.0  # how fast a beacon's level may change
    baseline_after: int = 100  # observations before a beacon's level is taken as its baseline
    baseline_walk_db_per_h: float = 0.1  # the baseline follows a lasting change at this pace (a month: ~7 dB)
    beacon_bound_db: float = 15.0
    flag_db: float = 6.0
    flag_sd_db: float = 2.0


@dataclass(frozen=True)
class DeviceOffset:
    """A device's estimated RSSI offset (dB, added to every beacon's measured power) and its variance (dB^2)."""

    mean: float
    variance: float

    def prior_db(self, policy: SelfCalibrationPolicy) -> float:
        """Spread of the next update's common offset around this estimate."""
        return math.sqrt(self.variance + policy.scan_jitter_db**2)


def update_device_offset(current: DeviceOffset, observed: float, observation_var: float, dt_s: float,
                         policy: SelfCalibrationPolicy) -> DeviceOffset:
    """Fold one confident update's measurement of the device's offset (the readings' precision-weighted mean
    residual plus the offset applied) into its estimate: a Kalman step whose noise never drops below the model
    error, bounded."""
    noise = observation_var + policy.device_model_error_db**2
    prior_var = current.variance + (policy.device_walk_db_per_h**2) * max(dt_s, 0.0) / 3600.0
    gain = prior_var / (prior_var + noise)
    mean = float(np.clip(current.mean + gain * (observed - current.mean), -policy.device_bound_db,
                         policy.device_bound_db))
    return DeviceOffset(mean, (1.0 - gain) * prior_var)


def measured_offset(residuals: np.ndarray, reading_var: np.ndarray) -> tuple[float, float]:
    """The common offset one update's residuals show (precision-weighted mean) and its variance."""
    weights = 1.0 / reading_var
    return float((weights * residuals).sum() / weights.sum()), 1.0 / float(weights.sum())


@dataclass
class DriftEstimate:
    """One beacon: its apparent level (dB, variance dB^2), the baseline it is compared with (None until the level
    settled), observations folded in, time (epoch s)."""

    level: float
    variance: float
    baseline: float | None = None
    observations: int = 0
    ts: float | None = None

    @property
    def drift(self) -> float:
        return 0.0 if self.baseline is None else self.level - self.baseline

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance)


@dataclass
class SiteCalibration:
    """One building's self-calibration, fed by the tracker and folded in batches: the measured-power drift of
    every beacon, and the level of its devices' offsets.

    `offset(beacon)` is what the tracker adds to a beacon's measured power (its drift, shrunk by two standard
    deviations so that noise is not applied); `device_reference()` is the building's device level, which each
    device's own offset is taken relative to (what the model gets wrong for every phone in this building is not
    the phone's); `observe` / `observe_device` record a confident position's residuals; `fold(now)` turns the
    observations since the last fold into new estimates (one Kalman update each, the fold's observations pooled).
    The caller persists `estimates` (with beacon health) and restores them with `restore`; the device level is
    relearnt from traffic in minutes.
    """

    policy: SelfCalibrationPolicy = field(default_factory=SelfCalibrationPolicy)
    estimates: dict[str, DriftEstimate] = field(default_factory=dict)
    device_level: DriftEstimate | None = None
    _pending: dict[str, list[float]] = field(default_factory=dict)
    _pending_devices: list[float] = field(default_factory=list)

    def offset(self, beacon: str) -> float:
        return self.offsets([beacon])[0]

    def offsets(self, beacons: Iterable[str]) -> list[float]:
        """`offset` of each beacon (what the tracker asks for every beacon of every update: one call, the
        estimates' drift and spread read inline)."""
        out = []
        estimates = self.estimates
        for beacon in beacons:
            est = estimates.get(beacon)
            if est is None:
                out.append(0.0)
                continue
            drift = 0.0 if est.baseline is None else est.level - est.baseline
            out.append(math.copysign(max(abs(drift) - 2.0 * math.sqrt(est.variance), 0.0), drift))
        return out

    def device_reference(self) -> float | None:
        """The building's device level once enough devices were heard from confident positions, else None."""
        level = self.device_level
        if level is None or level.observations < self.policy.device_level_after:
            return None
        return level.level

    def observe(self, beacon: str, residual: float) -> None:
        if math.isfinite(residual):
            self._pending.setdefault(beacon, []).append(residual)

    def observe_device(self, offset: float) -> None:
        if math.isfinite(offset):
            self._pending_devices.append(offset)

    def restore(self, beacon: str, estimate: DriftEstimate) -> None:
        """Take a persisted estimate (beacon health), bounded like a fresh one."""
        bound = self.policy.beacon_bound_db
        self.estimates[beacon] = DriftEstimate(
            float(np.clip(estimate.level, -bound, bound)), max(estimate.variance, 0.0025),
            None if estimate.baseline is None else float(np.clip(estimate.baseline, -bound, bound)),
            max(estimate.observations, 0), estimate.ts)

    def fold(self, now: float) -> list[str]:
        """Fold the pending observations; returns the beacons whose estimate changed."""
        p = self.policy
        if self._pending_devices:
            devices = self.device_level or DriftEstimate(0.0, p.device_level_prior_db**2)
            values = self._pending_devices
            gain = devices.variance / (devices.variance + p.device_level_spread_db**2 / len(values))
            self.device_level = DriftEstimate(devices.level + gain * (float(np.mean(values)) - devices.level),
                                              max((1.0 - gain) * devices.variance, p.device_level_floor_db**2),
                                              None, devices.observations + len(values), now)
            self._pending_devices = []
        changed: list[str] = []
        for beacon, values in self._pending.items():
            est = self.estimates.get(beacon) or DriftEstimate(0.0, p.beacon_prior_db**2)
            dt_h = 0.0 if est.ts is None else max(now - est.ts, 0.0) / 3600.0
            prior_var = est.variance + p.beacon_walk_db_per_h**2 * dt_h
            # the residuals of one fold are pooled: their mean, with the variance of a mean of n observations
            n = len(values)
            gain = prior_var / (prior_var + p.beacon_observation_db**2 / n)
            level = float(np.clip(est.level + gain * (float(np.mean(values)) - est.level),
                                  -p.beacon_bound_db, p.beacon_bound_db))
            observations = est.observations + n
            baseline = est.baseline
            if baseline is None:
                if observations >= p.baseline_after:
                    baseline = level
            else:
                # the baseline follows the level slowly: a change for good is folded into it over days
                step = min(1.0, p.baseline_walk_db_per_h * dt_h / max(abs(level - baseline), 1e-9))
                baseline = baseline + step * (level - baseline)
            self.estimates[beacon] = DriftEstimate(level, (1.0 - gain) * prior_var, baseline, observations, now)
            changed.append(beacon)
        self._pending.clear()
        return changed

    def flagged(self, beacon: str) -> bool:
        """Drifted beyond the bound, and known well enough to say so."""
        est = self.estimates.get(beacon)
        return est is not None and abs(est.drift) > self.policy.flag_db and est.sd <= self.policy.flag_sd_db

    def __iter__(self) -> Iterator[str]:
        return iter(self.estimates)
