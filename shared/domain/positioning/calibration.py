"""Calibration from labelled fingerprints (a calibration walk, or a dataset's train split).

* `fit_path_loss`: least-squares path loss, per site (exponent, measured-power offset) or per beacon (P1m).
* `KnnFingerprints`: distance-weighted kNN on RSSI relative to measured power; position, floor and zone votes.
* `PlaceBayes` (fingerprints.py): naive Bayes over the fingerprinted places.
* `calibrate(..., method="auto")`: picks among the default model, the fitted models and the fingerprint methods
  by cross-validation on the labelled scans only, judged the way the deployment will be used (`decide_regime`):
  where the fingerprints cover the site's zones (collected in the rooms to be located) it validates in place,
  holding out time-ordered blocks of every place and scoring zone and floor misses; elsewhere it leaves whole
  places out and scores metres (kNN is not flattered where test places are new). Both losses are reported.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from shared.domain.positioning.estimator import Estimate, locate
from shared.domain.positioning.fingerprints import PlaceBayes, place_of
from shared.domain.positioning.signal import SignalModel
from shared.domain.positioning.site_index import NOT_OCCUPIABLE, SiteIndex

METHODS = ("model", "fingerprint", "bayes", "auto")
MISSING_DBM = -105.0
POWER_WEIGHT = 3.0
DEFAULT_K = 11
CANDIDATES = ("model", "model-site", "model-beacon", "model-p1m", "fingerprint", "hybrid", "bayes")
IN_PLACE = "in-place"
PLACES_OUT = "places-out"
# in place when the labelled scans cover at least this share of the site's occupiable zones, each with at least
# MIN_SCANS_PER_PLACE scans: the rooms to be located were fingerprinted
IN_PLACE_COVERAGE = 0.5
MIN_SCANS_PER_PLACE = 2
CV_FOLDS = 4
# model-p1m: the default exponent, P1m per beacon shrunk hard towards the fitted site level (weight n / (n + 100)),
# and, since the level is now calibrated for the phones of the survey, a tighter prior on the common offset of
# their scans (unseen phones keep the wide prior) and less reading noise.
P1M_SHRINK = 100.0
P1M_SIGNAL = {"known_phone_prior_db": 2.0, "noise_db": 4.0}


@dataclass(frozen=True)
class Fingerprint:
    """A labelled scan: readings (beacon id -> dBm), the batch's measured power, where it was taken."""

    rssi: Mapping[str, float]
    x: float | None
    y: float | None
    floor: str | None = None
    zone: str | None = None
    measured_power: float | None = None
    order: float | None = None  # time taken (or position in the survey): in-place validation holds out blocks
    phone: str | None = None  # phone model (per-phone offsets are fitted on it)


@dataclass(frozen=True)
class PathLossFit:
    """Fitted path loss: exponent, P1m relative to the batch's power (site-wide and per beacon), and each phone
    model's offset from the site level (a phone of no model is '')."""

    exponent: float
    offset_db: float
    beacon_offset_db: dict[str, float] = field(default_factory=dict)
    phone_offset_db: dict[str, float] = field(default_factory=dict)

    def signal(self, base: SignalModel) -> SignalModel:
        return base.model_copy(update={"path_loss_exponent": self.exponent,
                                       "phone_offsets_db": {**base.phone_offsets_db, **self.phone_offset_db}})

    def powers(self, index: SiteIndex, batch_power: float) -> dict[str, float]:
        """Measured power at 1 m of every beacon for a batch sent with `batch_power`."""
        return {b: batch_power + self.beacon_offset_db.get(b, self.offset_db) for b in index.beacon_index}


def fit_path_loss(
    index: SiteIndex, samples: Sequence[Fingerprint], base: SignalModel, *, per_beacon: bool, min_readings: int = 20,
    exponent: float | None = None, shrink: float = 30.0,
) -> PathLossFit | None:
    """Least-squares path loss from labelled scans: exponent (unless given) and offset per site, each phone
    model's offset from it, P1m per beacon if asked (shrunk towards the site value: weight n / (n + shrink) for a
    beacon or phone with n readings). None with fewer than 10 readings."""
    rows: list[tuple[int, float, float]] = []  # (beacon, rssi - batch power, 10 log10 slant distance)
    phones: list[str] = []
    h2 = base.height_m**2 + 0.09
    for s in samples:
        if s.x is None or s.y is None:
            continue
        p = base.default_measured_power_dbm if s.measured_power is None else s.measured_power
        for beacon, rssi in s.rssi.items():
            i = index.beacon_index.get(beacon)
            if i is None or (s.floor is not None and index.beacons[i].floor != s.floor):
                continue
            d2 = (index.beacons[i].x - s.x) ** 2 + (index.beacons[i].y - s.y) ** 2
            rows.append((i, rssi - p, 5.0 * math.log10(d2 + h2)))
            phones.append(s.phone or "")
    if len(rows) < 10:
        return None
    b = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    ld = np.array([r[2] for r in rows])
    if exponent is None:
        design = np.c_[np.ones_like(ld), -ld]
        (_offset, exponent), *_ = np.linalg.lstsq(design, y, rcond=None)
        exponent = float(np.clip(exponent, 1.2, 5.0))
    offset = float(np.mean(y + exponent * ld))
    # each phone model's level relative to the site's (one phone: 0); the beacons are fitted on what is left
    phone_of = np.array(phones)
    phone_offsets: dict[str, float] = {}
    for phone in sorted(set(phones)):
        mask = phone_of == phone
        weight = mask.sum() / (mask.sum() + shrink)
        phone_offsets[phone] = float(weight * (np.mean(y[mask] + exponent * ld[mask]) - offset))
    y = y - np.array([phone_offsets[ph] for ph in phones])
    beacon_offsets: dict[str, float] = {}
    if per_beacon:
        for i in np.unique(b):
            mask = b == i
            if mask.sum() < min_readings:
                continue
            weight = mask.sum() / (mask.sum() + shrink)
            value = weight * np.mean(y[mask] + exponent * ld[mask]) + (1 - weight) * offset
            beacon_offsets[index.beacons[i].id] = float(value)
    return PathLossFit(exponent, offset, beacon_offsets, phone_offsets)


class KnnFingerprints:
    """Distance-weighted kNN over RSSI vectors (missing = below sensitivity) and the batch's measured power."""

    def __init__(self, index: SiteIndex, samples: Sequence[Fingerprint], k: int = DEFAULT_K,
                 default_power: float = -59.0):
        self.index = index
        self.k = k
        self.default_power = default_power
        usable = [s for s in samples if s.rssi]
        if not usable:
            raise ValueError("kNN fingerprinting needs at least one labelled scan with readings")
        self.features = self._matrix(usable)
        self.xy = np.array([(np.nan if s.x is None else s.x, np.nan if s.y is None else s.y) for s in usable])
        self.floors = [s.floor for s in usable]
        self.zones = [s.zone for s in usable]

    def _matrix(self, samples: Sequence[Fingerprint]) -> np.ndarray:
        """RSSI per beacon (missing = MISSING_DBM) plus the batch's measured power, weighted, as one more column:
        a fingerprint taken at another transmit power is a different fingerprint."""
        out = np.full((len(samples), len(self.index.beacons) + 1), MISSING_DBM)
        for row, s in enumerate(samples):
            p = self.default_power if s.measured_power is None else s.measured_power
            out[row, -1] = POWER_WEIGHT * p
            for beacon, rssi in s.rssi.items():
                i = self.index.beacon_index.get(beacon)
                if i is not None:
                    out[row, i] = max(rssi, MISSING_DBM)
        return out

    def predict(self, queries: Sequence[Fingerprint]) -> list[Estimate | None]:
        """Estimates for many scans at once (None for a scan with no reading of a known beacon)."""
        q = self._matrix(queries)
        d2 = (q * q).sum(1)[:, None] + (self.features**2).sum(1)[None, :] - 2 * q @ self.features.T
        dist = np.sqrt(np.maximum(d2, 0.0))
        k = min(self.k, len(self.features))
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        out: list[Estimate | None] = []
        for row, s in enumerate(queries):
            if not any(b in self.index.beacon_index for b in s.rssi):
                out.append(None)
                continue
            nn = nearest[row]
            w = 1.0 / (dist[row, nn] + 1.0)
            w /= w.sum()
            xy = self.xy[nn]
            ok = ~np.isnan(xy[:, 0])
            if ok.any():
                ww = w[ok] / w[ok].sum()
                mean = ww @ xy[ok]
                unc = float(math.sqrt(max(ww @ ((xy[ok] - mean) ** 2).sum(1), 0.0)))
            else:
                mean, unc = np.array([math.nan, math.nan]), math.inf
            floor = _vote([self.floors[j] for j in nn], w) or self.index.floor_ids[0]
            zone_votes = [(self.zones[j], w[i]) for i, j in enumerate(nn) if self.floors[j] == floor]
            zone = _vote([z for z, _ in zone_votes], np.array([v for _, v in zone_votes]))
            zone_conf = sum(v for z, v in zone_votes if z == zone) if zone else 0.0
            out.append(Estimate(float(mean[0]), float(mean[1]), floor, unc, zone, float(zone_conf), len(s.rssi)))
        return out


def _vote(labels: list[str | None], weights: np.ndarray) -> str | None:
    tally: dict[str, float] = {}
    for label, w in zip(labels, weights):
        if label is not None:
            tally[label] = tally.get(label, 0.0) + float(w)
    return max(tally.items(), key=lambda kv: kv[1])[0] if tally else None


@dataclass(frozen=True)
class Regime:
    """How the deployment will use the site: `in-place` (the rooms to be located were fingerprinted) or
    `places-out` (phones will be where no fingerprint was taken), and why."""

    name: str
    reason: str


def decide_regime(index: SiteIndex, samples: Sequence[Fingerprint]) -> Regime:
    """In place when the site has zones and the labelled scans cover at least IN_PLACE_COVERAGE of them with
    MIN_SCANS_PER_PLACE scans each; leaving places out otherwise. Looks at the site and the labelled scans only."""
    zones = {s.id for s in index.spaces if s.kind not in NOT_OCCUPIABLE}
    if not zones:
        return Regime(PLACES_OUT, "the site defines no zones: positions are scored in metres at new places")
    counts: dict[str, int] = {}
    for s in samples:
        if s.zone in zones and s.rssi:
            counts[s.zone] = counts.get(s.zone, 0) + 1
    covered = sum(1 for n in counts.values() if n >= MIN_SCANS_PER_PLACE)
    share = covered / len(zones)
    if share >= IN_PLACE_COVERAGE:
        return Regime(IN_PLACE, f"{covered} of {len(zones)} zones fingerprinted (>= {MIN_SCANS_PER_PLACE} scans)")
    return Regime(PLACES_OUT, f"only {covered} of {len(zones)} zones fingerprinted: phones will be at new places")


@dataclass(frozen=True)
class CvScore:
    """A cross-validated candidate: zone and floor miss rates (where labelled), mean metres, and the loss compared
    (zone + floor miss rates where scans carry zones, else metres + 10 m per floor miss)."""

    loss: float
    zone_miss: float | None
    floor_miss: float | None
    mean_m: float | None
    scored: int


@dataclass
class CalibratedLocator:
    """A single-scan locator after calibration: the chosen method and what it needs."""

    method: str
    index: SiteIndex
    signal: SignalModel
    knn: KnnFingerprints | None = None
    fit: PathLossFit | None = None
    scores: dict[str, float] = field(default_factory=dict)  # the deciding regime's CV loss per candidate
    bayes: PlaceBayes | None = None
    regime: Regime | None = None
    cv: dict[str, dict[str, CvScore]] = field(default_factory=dict)  # regime -> candidate -> score

    @property
    def tracks(self) -> bool:
        """True when the method is model-based and so also works in tracking mode."""
        return self.knn is None and self.bayes is None

    def locate_many(self, scans: Sequence[Fingerprint]) -> list[Estimate | None]:
        if self.bayes is not None:
            return self.bayes.predict(scans)
        if self.knn is None:
            return [self.locate_one(s) for s in scans]
        knn = self.knn.predict(scans)
        if self.method != "hybrid":
            return knn
        return [self._blend(s, k) for s, k in zip(scans, knn)]

    def locate_one(self, scan: Fingerprint) -> Estimate | None:
        if self.knn is not None or self.bayes is not None:
            return self.locate_many([scan])[0]
        return locate(self.index, self.signal, scan.rssi, tx_power=self.batch_powers(scan.measured_power),
                      phone_model=scan.phone)

    def _blend(self, scan: Fingerprint, knn: Estimate | None) -> Estimate | None:
        """Hybrid: kNN decides the floor; the position is the inverse-variance mean of kNN and the model."""
        if knn is None or math.isnan(knn.x):
            return knn
        model = locate(self.index, self.signal, scan.rssi, tx_power=self.batch_powers(scan.measured_power),
                       phone_model=scan.phone, floor=knn.floor)
        if model is None:
            return knn
        wk = 1.0 / max(knn.uncertainty_m, 0.5) ** 2
        wm = 1.0 / max(model.uncertainty_m, 0.5) ** 2
        x = (wk * knn.x + wm * model.x) / (wk + wm)
        y = (wk * knn.y + wm * model.y) / (wk + wm)
        space = knn.space_id
        confidence = knn.space_confidence
        if space is None:
            space, distance = self.index.space_containing(knn.floor, (x, y), 3.0)
            confidence = 0.0 if space is None else max(0.0, 1.0 - distance / 3.0) * 0.5
        return Estimate(x, y, knn.floor, math.sqrt(1.0 / (wk + wm)), space, confidence, model.beacons_used)

    def batch_powers(self, measured_power: float | None) -> Mapping[str, float] | float | None:
        """Measured power to use for a batch: the fitted per-beacon values, else the batch's own."""
        if self.fit is None:
            return measured_power
        base = self.signal.default_measured_power_dbm if measured_power is None else measured_power
        return self.fit.powers(self.index, base)


Factory = Callable[[list[Fingerprint]], CalibratedLocator]


def places_out_folds(samples: Sequence[Fingerprint], folds: int = CV_FOLDS) -> list[int]:
    """Fold of each scan when whole places are held out: a fold never holds a place seen in training."""
    groups = [place_of(s) for s in samples]
    places = sorted(set(groups), key=str)
    fold_of = {p: i % folds for i, p in enumerate(places)}
    return [fold_of[g] for g in groups]


def in_place_folds(samples: Sequence[Fingerprint], folds: int = CV_FOLDS) -> list[int]:
    """Fold of each scan when every place keeps most of its scans: each place's scans in time order (`order`,
    else their order in the survey) cut into `folds` contiguous blocks, fold k holding block k of every place.
    Contiguous blocks, not every k-th scan: neighbouring scans are correlated, and a deployment meets the room
    at another time than the survey did."""
    by_place: dict[object, list[int]] = {}
    for i, s in enumerate(samples):
        by_place.setdefault(place_of(s), []).append(i)
    out = [0] * len(samples)
    for members in by_place.values():
        members.sort(key=lambda i: (samples[i].order if samples[i].order is not None else math.inf, i))
        for k, block in enumerate(np.array_split(np.array(members, dtype=np.int64), folds)):
            for i in block.tolist():
                out[i] = k
    return out


def cross_validate(factory: Factory, samples: Sequence[Fingerprint], fold_of: Sequence[int]) -> CvScore:
    """Fit on all folds but one, score the held-out fold, for every fold. The loss is what the product needs:
    the zone and floor miss rates where the scans are labelled with zones (rooms), else mean metres + 10 m a
    floor miss."""
    zone_miss: list[float] = []
    floor_miss: list[float] = []
    metres: list[float] = []
    folds = sorted(set(fold_of))
    if len(folds) < 2:
        return CvScore(math.inf, None, None, None, 0)
    for f in folds:
        train = [s for s, k in zip(samples, fold_of) if k != f]
        held = [s for s, k in zip(samples, fold_of) if k == f]
        if not train or not held:
            continue
        locator = factory(train)
        for s, est in zip(held, locator.locate_many(held)):
            if s.zone is not None:
                zone_miss.append(float(est is None or est.space_id != s.zone))
            if s.floor is not None:
                floor_miss.append(float(est is None or est.floor != s.floor))
            if est is not None and s.x is not None and s.y is not None and not math.isnan(est.x):
                metres.append(math.hypot(est.x - s.x, est.y - s.y))
    zm = float(np.mean(zone_miss)) if zone_miss else None
    fm = float(np.mean(floor_miss)) if floor_miss else None
    mm = float(np.mean(metres)) if metres else None
    if zm is not None:
        loss = zm + (fm or 0.0)
    else:
        loss = math.inf if mm is None else mm + 10.0 * (fm or 0.0)
    return CvScore(loss, zm, fm, mm, len(zone_miss) or len(floor_miss) or len(metres))


def cross_validation_loss(locator_factory: Factory, samples: Sequence[Fingerprint], folds: int = CV_FOLDS) -> float:
    """Mean error (m) plus 10 m per floor miss, over folds grouped by location."""
    return cross_validate(locator_factory, samples, places_out_folds(samples, folds)).loss


def calibrate(
    index: SiteIndex,
    samples: Sequence[Fingerprint],
    method: str = "auto",
    *,
    base: SignalModel | None = None,
    k: int = DEFAULT_K,
    candidates: Sequence[str] = CANDIDATES,
) -> CalibratedLocator:
    """A locator for the site: `model` (no training), `fingerprint` (kNN), `bayes` (naive Bayes over the
    fingerprinted places), or `auto`: every candidate is
    cross-validated both in place and leaving places out, the regime of the site and its labelled scans
    (`decide_regime`) picks which loss decides, and the winner is refitted on all samples."""
    base = base or SignalModel()
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
    if method == "model":
        return CalibratedLocator("model", index, base)
    labelled = [s for s in samples if s.rssi]
    if method in ("fingerprint", "bayes"):
        return _candidates_one(method, index, labelled, base, k)
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or not candidates:
        raise ValueError(f"unknown candidate(s) {', '.join(unknown) or '(none)'}: use {', '.join(CANDIDATES)}")
    regime = decide_regime(index, labelled)
    folds = {IN_PLACE: in_place_folds(labelled), PLACES_OUT: places_out_folds(labelled)}
    cv = {
        name: {c: cross_validate(partial(_candidates_one, c, index, base=base, k=k), labelled, fold_of)
               for c in candidates}
        for name, fold_of in folds.items()
    }
    deciding = cv[regime.name]
    best = min(candidates, key=lambda c: (deciding[c].loss, deciding[c].mean_m or 0.0))
    chosen = _candidates_one(best, index, labelled, base, k)
    chosen.scores = {c: round(deciding[c].loss, 4) for c in candidates}
    chosen.regime = regime
    chosen.cv = cv
    return chosen


def _candidates_one(name: str, index: SiteIndex, train: Sequence[Fingerprint], base: SignalModel,
                    k: int) -> CalibratedLocator:
    if name == "model":
        return CalibratedLocator("model", index, base)
    if name == "fingerprint":
        return CalibratedLocator("fingerprint", index, base, KnnFingerprints(index, train, k=k))
    if name == "bayes":
        return CalibratedLocator("bayes", index, base, bayes=PlaceBayes(index, train))
    if name == "model-p1m":
        fit = fit_path_loss(index, train, base, per_beacon=True, min_readings=1,
                            exponent=base.path_loss_exponent, shrink=P1M_SHRINK)
        if fit is None:
            return CalibratedLocator("model", index, base)
        return CalibratedLocator(name, index, fit.signal(base).model_copy(update=P1M_SIGNAL), fit=fit)
    fit = fit_path_loss(index, train, base, per_beacon=name in ("model-beacon", "hybrid"))
    if name == "hybrid":
        signal = base if fit is None else fit.signal(base)
        return CalibratedLocator("hybrid", index, signal, KnnFingerprints(index, train, k=k), fit=fit)
    if fit is None:
        return CalibratedLocator("model", index, base)
    return CalibratedLocator(name, index, fit.signal(base), fit=fit)
