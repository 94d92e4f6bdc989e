"""Signal model: what RSSI a phone should read from a beacon at a given distance, and RSSI smoothing over time.

Log-distance path loss with the phone about `height_m` below the beacon:

    rssi = P1m + phone_offset - 10 * n * log10(sqrt(d^2 + h^2)) + noise,   noise ~ N(0, noise_db^2)

P1m (measured power at 1 m) comes from the site model's beacon, else the batch's txPower, else a default. A scan's
readings share one unknown offset (phone model, body, orientation), given a prior of `offset_prior_db`. A beacon is
reported with probability `detect_max * P(rssi > sensitivity_dbm)`; a beacon that was not heard is evidence too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MEASURED_POWER_DBM = -59.0


class SignalModel(BaseModel):
    """Parameters of the path-loss and detection model; defaults are physics plus the train splits (docs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path_loss_exponent: float = Field(default=3.0, ge=1.0, le=6.0)
    default_measured_power_dbm: float = Field(default=DEFAULT_MEASURED_POWER_DBM, ge=-100, le=0)
    height_m: float = Field(default=1.5, ge=0, le=20, description="beacon height above the phone")
    wall_loss_db: float = Field(default=3.0, ge=0, le=20, description="loss per wall of an enclosed space")
    noise_db: float = Field(default=5.0, gt=0, le=30, description="spread of one reading around the model")
    offset_prior_db: float = Field(default=6.0, ge=0, le=40, description="spread of a scan's common offset")
    sensitivity_dbm: float = Field(default=-92.0, ge=-130, le=-30)
    detect_max: float = Field(default=0.3, ge=0, lt=1, description="chance a beacon in range is reported")
    detect_spread_db: float = Field(default=5.0, gt=0, le=30)
    phone_offsets_db: dict[str, float] = Field(
        default_factory=dict, description="per phone model (calibrated), added to P1m; '' = a phone of no model"
    )
    known_phone_prior_db: float | None = Field(
        default=None, ge=0, le=40,
        description="spread of a scan's common offset for a phone model in phone_offsets_db (else offset_prior_db)",
    )
    beacon_measured_power_dbm: dict[str, float] = Field(
        default_factory=dict, description="fitted P1m per beacon id (calibration), over the site model's"
    )
    beacon_path_loss_exponent: dict[str, float] = Field(default_factory=dict)

    def phone_offset(self, phone_model: str | None) -> float:
        return self.phone_offsets_db.get(phone_model or "", 0.0)

    def offset_prior_for(self, phone_model: str | None) -> float:
        """Spread of the scan's common offset: tight for a calibrated phone model, the wide prior for others."""
        if self.known_phone_prior_db is not None and (phone_model or "") in self.phone_offsets_db:
            return self.known_phone_prior_db
        return self.offset_prior_db

    def distance_for(self, rssi: float, measured_power: float, exponent: float | None = None) -> float:
        """Horizontal distance (m) at which the model expects `rssi` (0 when stronger than right below)."""
        n = self.path_loss_exponent if exponent is None else exponent
        slant = 10 ** ((measured_power - rssi) / (10 * n))
        return math.sqrt(max(slant * slant - self.height_m**2, 0.0))

    def expected_rssi(self, distance_m: float, measured_power: float, exponent: float | None = None) -> float:
        n = self.path_loss_exponent if exponent is None else exponent
        slant = math.sqrt(distance_m * distance_m + self.height_m**2 + 0.09)
        return measured_power - 10 * n * math.log10(slant)


@dataclass
class SmoothedRssi:
    """A 1-D Kalman estimate of one beacon's RSSI for one device: value (dBm), variance (dB^2), time (s)."""

    value: float
    variance: float
    ts: float


@dataclass(frozen=True)
class RssiFilter:
    """Per-beacon Kalman smoothing of RSSI over time, tolerant of out-of-order and missing readings.

    The true level drifts as a random walk (`drift_db_per_s` standard deviation per sqrt(s)); a reading has
    `reading_noise_db`. A reading older than the estimate updates it with its extra age added to its variance
    (it cannot rewind time). An estimate not refreshed for `expire_s` is dropped.
    """

    drift_db_per_s: float = 1.5
    reading_noise_db: float = 5.0
    expire_s: float = 12.0

    def update(self, current: SmoothedRssi | None, rssi: float, ts: float) -> SmoothedRssi:
        r = self.reading_noise_db**2
        if current is None:
            return SmoothedRssi(float(rssi), r, ts)
        q = self.drift_db_per_s**2
        if ts >= current.ts:
            prior_var = current.variance + q * (ts - current.ts)
            reading_var = r
            new_ts = ts
        else:
            prior_var = current.variance
            reading_var = r + q * (current.ts - ts)
            new_ts = current.ts
        gain = prior_var / (prior_var + reading_var)
        return SmoothedRssi(
            current.value + gain * (rssi - current.value), (1 - gain) * prior_var, new_ts
        )

    def variance_at(self, current: SmoothedRssi, now: float) -> float:
        return current.variance + self.drift_db_per_s**2 * max(now - current.ts, 0.0)

    def expired(self, current: SmoothedRssi, now: float) -> bool:
        return now - current.ts > self.expire_s


def signal_for_site(site: object, base: SignalModel | None = None) -> SignalModel:
    """The signal model for a `SiteModel`: its site-level path-loss exponent when it declares one."""
    base = base or SignalModel()
    exponent = getattr(site, "path_loss_exponent", None)
    return base if exponent is None else base.model_copy(update={"path_loss_exponent": float(exponent)})
