"""Naive Bayes over fingerprinted places: where fingerprints were collected in the rooms to be located.

Per place (a zone, else a surveyed point), per measured-power group and per beacon the training scans give the
chance the beacon is heard there and a smoothed histogram of its RSSI (Gaussian kernel `bandwidth_db` on a 1 dB
grid). A place with few scans borrows from its neighbours on the same floor (`neighbour_weight` pseudo-scans of
their pooled distribution, Gaussian in distance, `neighbour_scale_m`), so a sparse survey is not all noise and a
dense one is its own. A scan's log-likelihood at a place is the sum over the site's beacons of log P(heard) +
log density(rssi), or log P(not heard). Floor = the floor with the most posterior mass; zone = the most probable
place of that floor; position = the posterior mean of that floor's place centres.

Unlike kNN, a beacon's RSSI is judged against its own spread at that place (a beacon that scatters 15 dB in a
sector, fading in and out behind a body, does not outvote a steady one), and a deep fade is only unlikely, not
far away.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from shared.domain.positioning.estimator import Estimate
from shared.domain.positioning.site_index import SiteIndex

GRID_LO_DBM = -115.0
GRID_HI_DBM = -20.0


class LabelledScan(Protocol):
    """What a place model learns from: readings, batch power, and where the scan was taken."""

    @property
    def rssi(self) -> Mapping[str, float]: ...
    @property
    def x(self) -> float | None: ...
    @property
    def y(self) -> float | None: ...
    @property
    def floor(self) -> str | None: ...
    @property
    def zone(self) -> str | None: ...
    @property
    def measured_power(self) -> float | None: ...


PlaceKey = tuple[str | float | None, ...]


def place_of(scan: LabelledScan) -> PlaceKey:
    """The place a labelled scan was taken at: its zone, else its surveyed point (to 0.1 m), else its floor."""
    if scan.zone is not None:
        return (scan.floor, scan.zone)
    if scan.x is not None and scan.y is not None:
        return (scan.floor, round(scan.x, 1), round(scan.y, 1))
    return (scan.floor,)


@dataclass(frozen=True)
class _Tables:
    """Per place and beacon of one power group: log P(heard), log P(not heard), log density on the dB grid."""

    log_heard: NDArray[np.float64]  # (C, B)
    log_silent: NDArray[np.float64]  # (C, B)
    log_density: NDArray[np.float64]  # (C, B, G)


class PlaceBayes:
    """Naive Bayes classifier of places from labelled scans (see the module docstring)."""

    def __init__(self, index: SiteIndex, samples: Sequence[LabelledScan], *, bandwidth_db: float = 1.5,
                 neighbour_weight: float = 3.0, neighbour_scale_m: float = 3.0,
                 default_power: float = -59.0) -> None:
        usable = [s for s in samples if s.rssi]
        if not usable:
            raise ValueError("place fingerprints need at least one labelled scan with readings")
        self.index = index
        self.default_power = default_power
        keys = [place_of(s) for s in usable]
        self.places: list[PlaceKey] = sorted(set(keys), key=str)
        position = {p: i for i, p in enumerate(self.places)}
        place = np.array([position[k] for k in keys], dtype=np.int64)
        n_places = len(self.places)
        self.floors: list[str] = []
        self.zones: list[str | None] = []
        centres = np.full((n_places, 2), np.nan)
        for i, key in enumerate(self.places):
            members = [s for s, p in zip(usable, place) if p == i]
            floors = [s.floor for s in members if s.floor is not None]
            self.floors.append(max(set(floors), key=floors.count) if floors else index.floor_ids[0])
            self.zones.append(members[0].zone)
            xy = [(s.x, s.y) for s in members if s.x is not None and s.y is not None]
            if xy:
                centres[i] = np.mean(np.array(xy, dtype=np.float64), axis=0)
        self.centres = centres
        self.floor_of_place = np.array([index.floor_ids.index(f) if f in index.floor_ids else 0
                                        for f in self.floors], dtype=np.int64)
        self.grid = np.arange(GRID_LO_DBM, GRID_HI_DBM + 0.5, 1.0)
        kernel_span = np.arange(-4 * bandwidth_db, 4 * bandwidth_db + 0.5, 1.0)
        self._kernel = np.exp(-0.5 * (kernel_span / bandwidth_db) ** 2)
        self._kernel /= self._kernel.sum()
        # neighbours: same floor, Gaussian in distance; a tiny constant so a lone place still has a fallback
        weights = np.full((n_places, n_places), 1e-3)
        known = ~np.isnan(centres[:, 0])
        d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        near = np.exp(-0.5 * np.where(np.isnan(d2), np.inf, d2) / neighbour_scale_m**2)
        same_floor = self.floor_of_place[:, None] == self.floor_of_place[None, :]
        weights += np.where(same_floor & known[:, None] & known[None, :], near, 0.0)
        np.fill_diagonal(weights, 0.0)
        self._neighbours = weights
        self._tau = neighbour_weight
        powers = np.array([self._power(s) for s in usable])
        readings = self._matrix(usable)
        self._groups: dict[float, _Tables] = {}
        for p in np.unique(powers):
            members = powers == p
            self._groups[float(p)] = self._fit(readings[members], place[members], n_places)
        self._pooled = self._fit(readings, place, n_places)

    def _power(self, scan: LabelledScan) -> float:
        return float(round(self.default_power if scan.measured_power is None else scan.measured_power))

    def _matrix(self, scans: Sequence[LabelledScan]) -> NDArray[np.float64]:
        """(N, B) RSSI of every site beacon, NaN when not heard."""
        out = np.full((len(scans), len(self.index.beacons)), np.nan)
        for row, s in enumerate(scans):
            for beacon, rssi in s.rssi.items():
                i = self.index.beacon_index.get(beacon)
                if i is not None:
                    out[row, i] = min(max(rssi, GRID_LO_DBM), GRID_HI_DBM)
        return out

    def _fit(self, readings: NDArray[np.float64], place: NDArray[np.int64], n_places: int) -> _Tables:
        n_beacons, n_grid = readings.shape[1], len(self.grid)
        scans = np.bincount(place, minlength=n_places).astype(np.float64)  # (C,)
        heard = np.zeros((n_places, n_beacons))
        counts = np.zeros((n_places, n_beacons, n_grid))
        ok = ~np.isnan(readings)
        rows, cols = np.nonzero(ok)
        bins = np.rint(readings[rows, cols] - self.grid[0]).astype(np.int64)
        np.add.at(heard, (place[rows], cols), 1.0)
        np.add.at(counts, (place[rows], cols, bins), 1.0)
        half = len(self._kernel) // 2
        smoothed = np.zeros_like(counts)
        for shift, weight in zip(range(-half, half + 1), self._kernel):
            lo, hi = max(shift, 0), n_grid + min(shift, 0)
            smoothed[:, :, lo:hi] += weight * counts[:, :, lo - shift:hi - shift]
        w = self._neighbours
        tau = self._tau
        nb_scans = w @ scans
        nb_heard = w @ heard
        p_heard_nb = (nb_heard + 0.5) / (nb_scans[:, None] + 1.0)
        p_heard = (heard + tau * p_heard_nb) / (scans[:, None] + tau)
        nb_density = np.einsum("cd,dbg->cbg", w, smoothed)
        nb_density = (nb_density + 1e-3) / (nb_density.sum(axis=2, keepdims=True) + 1e-3 * n_grid)
        density = (smoothed + tau * nb_density) / (heard[:, :, None] + tau)
        density = 0.98 * density + 0.02 / n_grid  # a reading never seen there is unlikely, not impossible
        p_heard = np.clip(p_heard, 1e-3, 1 - 1e-3)
        return _Tables(np.log(p_heard), np.log1p(-p_heard), np.log(density))

    def log_likelihood(self, scans: Sequence[LabelledScan]) -> NDArray[np.float64]:
        """(N, C) log-likelihood of each scan at each place."""
        readings = self._matrix(scans)
        out = np.zeros((len(scans), len(self.places)))
        powers = np.array([self._power(s) for s in scans])
        for p in np.unique(powers):
            rows = np.flatnonzero(powers == p)
            tables = self._groups.get(float(p), self._pooled)
            q = readings[rows]
            heard = ~np.isnan(q)
            bins = np.rint(np.where(heard, q, self.grid[0]) - self.grid[0]).astype(np.int64)
            # (n, C, B): density of each reading at each place; silent beacons use log P(not heard)
            dens = tables.log_density[:, np.arange(q.shape[1])[None, :], bins]  # (C, n, B)
            dens = np.transpose(dens, (1, 0, 2))
            ll = np.where(heard[:, None, :], tables.log_heard[None] + dens, tables.log_silent[None])
            out[rows] = ll.sum(axis=2)
        return out

    def predict(self, scans: Sequence[LabelledScan]) -> list[Estimate | None]:
        """Estimates for many scans (None for a scan that heard no beacon of the site)."""
        loglik = self.log_likelihood(scans)
        post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        n_floors = len(self.index.floor_ids)
        floor_mass = np.zeros((len(scans), n_floors))
        for f in range(n_floors):
            floor_mass[:, f] = post[:, self.floor_of_place == f].sum(axis=1)
        out: list[Estimate | None] = []
        for row, scan in enumerate(scans):
            if not any(b in self.index.beacon_index for b in scan.rssi):
                out.append(None)
                continue
            f = int(np.argmax(floor_mass[row]))
            on_floor = self.floor_of_place == f
            p = np.where(on_floor, post[row], 0.0)
            p /= max(p.sum(), 1e-300)
            best = int(np.argmax(p))
            located = on_floor & ~np.isnan(self.centres[:, 0])
            if located.any():
                w = p[located] / max(p[located].sum(), 1e-300)
                mean = w @ self.centres[located]
                spread = float(w @ ((self.centres[located] - mean) ** 2).sum(axis=1))
                x, y, unc = float(mean[0]), float(mean[1]), math.sqrt(max(spread, 0.0))
            else:
                x, y, unc = math.nan, math.nan, math.inf
            zone = self.zones[best]
            confidence = float(sum(p[i] for i in range(len(p)) if self.zones[i] == zone)) if zone else 0.0
            out.append(Estimate(x, y, self.index.floor_ids[f], unc, zone, confidence, len(scan.rssi)))
        return out
