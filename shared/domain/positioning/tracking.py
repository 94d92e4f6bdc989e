"""Tracking one device over a stream of batches: what the processing function calls once per batch.

    state, estimate = track(state, sightings, index, now, site_cal=building_calibration)

`TrackingState` is small plain data, stored as JSON (`state.to_json()`, `TrackingState.from_json(...)`, the
`tracking/v1` form, about 1 KB): the smoothed RSSI
of the beacons heard lately, the last position, floor and space, the pending switches, and the device's
self-calibrated RSSI offset. `site_cal` (a `SiteCalibration`, one per building, optional) supplies each beacon's
measured-power drift and the building's device level, and collects the residuals of confident positions
(selfcal.py); without it the device's offset is learnt but not applied.
"""
from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

import numpy as np

from shared.domain import space_kinds
from shared.domain.positioning.batch import PosteriorRequest, posterior_many
from shared.domain.positioning.estimator import Estimate, Posterior, ReadingLists, choose_space, floor_scores
from shared.domain.positioning.floor import FloorDecision, FloorPolicy, decide_floor, may_change_floor
from shared.domain.positioning.mapmatch import MapMatchPolicy, arrive, step
from shared.domain.positioning.selfcal import (
    DeviceOffset,
    SelfCalibrationPolicy,
    SiteCalibration,
    measured_offset,
    update_device_offset,
)
from shared.domain.positioning.signal import RssiFilter, SignalModel
from shared.domain.positioning.site_index import SiteIndex
from shared.domain.positioning.space import SpacePolicy, decide_space

TRACKING_SCHEMA: Final = "tracking/v1"
PASSAGES = space_kinds.PASSAGES


@dataclass(frozen=True)
class Sighting:
    """One beacon reading: beacon id, RSSI (dBm), time (epoch seconds or datetime), the batch's txPower."""

    beacon: str
    rssi: float
    ts: float | datetime
    tx_power: float | None = None


@dataclass(frozen=True)
class TrackingPolicy:
    """Tuning of tracking mode (see docs/positioning.md for the measurements behind the defaults)."""

    # with map matching the room decision no longer leans on smoothed RSSI: a beacon left behind must stop
    # pulling the position back within seconds (drift 3 dB/sqrt(s), forgotten after 8 s unheard)
    filter: RssiFilter = field(default_factory=lambda: RssiFilter(drift_db_per_s=3.0, reading_noise_db=4.0,
                                                                  expire_s=8.0))
    shadowing_db: float = 3.0
    walking_speed_mps: float = 1.0
    max_speed_mps: float = 2.5
    max_beacons: int = 10
    still_m: float = 1.0
    passage_weight_when_still: float = 0.5
    future_tolerance_s: float = 5.0
    floor: FloorPolicy = field(default_factory=FloorPolicy)
    space: SpacePolicy = field(default_factory=SpacePolicy)
    selfcal: SelfCalibrationPolicy = field(default_factory=SelfCalibrationPolicy)
    # map-matched room decisions (mapmatch.py); None = the grid posterior's space masses with passage weighting
    map_matching: MapMatchPolicy | None = field(default_factory=MapMatchPolicy)
    matched_space: SpacePolicy = field(default_factory=lambda: SpacePolicy(margin=0.4, dwell_s=0.0,
                                                                            evidence_needed=0.8,
                                                                            min_probability=0.7))


@dataclass(slots=True)
class TrackingState:
    """Per-device state between batches (stored with the device; keep it small). Plain data: `to_json` gives the
    stored `tracking/v1` form, `from_json` reads it back (documents written by earlier versions included)."""

    ts: float | None = None  # time of the last estimate, epoch seconds
    # beacon id -> (smoothed rssi, variance, time, measured power)
    beacons: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    x: float | None = None
    y: float | None = None
    floor: str | None = None
    uncertainty_m: float | None = None
    floor_candidate: str | None = None
    floor_candidate_since: float | None = None
    space: str | None = None
    space_confidence: float = 0.0
    space_candidate: str | None = None
    space_candidate_since: float | None = None
    space_evidence: float = 0.0
    offset: tuple[float, float] | None = None  # self-calibrated RSSI offset of the device (dB), its variance (dB^2)
    rooms: dict[str, float] | None = None  # map-matched probability of each space

    def copy(self) -> TrackingState:
        """A shallow copy (what the tracker updates, field by field)."""
        return TrackingState(self.ts, self.beacons, self.x, self.y, self.floor, self.uncertainty_m,
                             self.floor_candidate, self.floor_candidate_since, self.space, self.space_confidence,
                             self.space_candidate, self.space_candidate_since, self.space_evidence, self.offset,
                             self.rooms)

    def to_json(self) -> dict[str, Any]:
        """The stored form, `tracking/v1` (every field present, tuples as lists)."""
        return {
            "schema": TRACKING_SCHEMA, "ts": self.ts,
            "beacons": {b: list(v) for b, v in self.beacons.items()},
            "x": self.x, "y": self.y, "floor": self.floor, "uncertainty_m": self.uncertainty_m,
            "floor_candidate": self.floor_candidate, "floor_candidate_since": self.floor_candidate_since,
            "space": self.space, "space_confidence": self.space_confidence, "space_candidate": self.space_candidate,
            "space_candidate_since": self.space_candidate_since, "space_evidence": self.space_evidence,
            "offset": None if self.offset is None else list(self.offset),
            "rooms": None if self.rooms is None else dict(self.rooms),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrackingState:
        """Read a stored `tracking/v1` state; ValueError when it is not one (another schema, an unknown field, a
        value of the wrong type), TypeError when it is not even a JSON object."""
        if not isinstance(data, Mapping):
            raise TypeError("a tracking state is a JSON object")
        if data.get("schema", TRACKING_SCHEMA) != TRACKING_SCHEMA:
            raise ValueError(f"expected a {TRACKING_SCHEMA} tracking state, got {data.get('schema')!r}")
        unknown = data.keys() - _STATE_FIELDS
        if unknown:
            raise ValueError(f"unknown tracking state fields: {sorted(unknown)}")
        try:
            raw_beacons = data.get("beacons") or {}
            offset = data.get("offset")
            rooms = data.get("rooms")
            if not isinstance(raw_beacons, Mapping) or not all(
                    isinstance(v, list | tuple) and len(v) == 4 for v in raw_beacons.values()) \
                    or (offset is not None and len(offset) != 2):
                raise ValueError("beacons are (rssi, variance, time, power); the offset is (mean, variance)")
            beacons = {str(b): (float(v[0]), float(v[1]), float(v[2]), float(v[3])) for b, v in raw_beacons.items()}
            return cls(
                ts=_opt_float(data.get("ts")), beacons=beacons, x=_opt_float(data.get("x")),
                y=_opt_float(data.get("y")), floor=_opt_str(data.get("floor")),
                uncertainty_m=_opt_float(data.get("uncertainty_m")),
                floor_candidate=_opt_str(data.get("floor_candidate")),
                floor_candidate_since=_opt_float(data.get("floor_candidate_since")),
                space=_opt_str(data.get("space")), space_confidence=float(data.get("space_confidence") or 0.0),
                space_candidate=_opt_str(data.get("space_candidate")),
                space_candidate_since=_opt_float(data.get("space_candidate_since")),
                space_evidence=float(data.get("space_evidence") or 0.0),
                offset=None if offset is None else (float(offset[0]), float(offset[1])),
                rooms=None if rooms is None else {str(k): float(v) for k, v in dict(rooms).items()},
            )
        except (TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"not a {TRACKING_SCHEMA} tracking state: {type(exc).__name__}") from None


_STATE_FIELDS = frozenset({"schema", *(f for f in TrackingState.__slots__ if not f.startswith("_"))})


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(type(value).__name__)
    return float(value)


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(type(value).__name__)


def _seconds(ts: float | datetime) -> float:
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


def _field(item: Any, name: str, alt: str | None = None) -> Any:
    if isinstance(item, dict):
        return item.get(name, item.get(alt) if alt else None)
    value = getattr(item, name, None)
    if value is None and alt:
        value = getattr(item, alt, None)
    return value


@dataclass(frozen=True, slots=True)
class ReadingColumns:
    """A batch's readings as columns (what the processor passes, no object per reading): each beacon's position
    in the building's `SiteIndex.beacons`, RSSI (dBm), epoch seconds, the advertised power (None: not sent)."""

    beacon: Sequence[int]
    rssi: Sequence[float]
    ts: Sequence[float]
    tx_power: Sequence[float | None]


@dataclass(frozen=True)
class TrackInput:
    """One device's batch for `track_many`: its state, the sightings (objects or columns), the time of the batch,
    its phone model."""

    state: TrackingState | None
    sightings: Iterable[Sighting | Any] | ReadingColumns
    now: float | datetime
    phone_model: str | None = None


def track(
    state: TrackingState | None,
    sightings: Iterable[Sighting | Any],
    index: SiteIndex,
    now: float | datetime,
    *,
    signal: SignalModel | None = None,
    policy: TrackingPolicy | None = None,
    phone_model: str | None = None,
    site_cal: SiteCalibration | None = None,
) -> tuple[TrackingState, Estimate | None]:
    """Fold one batch of sightings into a device's state; return the new state and the current estimate
    (None while nothing of this site was heard within the RSSI filter's memory). With `site_cal`, each beacon's
    drift and the device's offset (relative to the building's device level) are added to the measured power, and
    confident positions feed all three estimates."""
    return track_many([TrackInput(state, sightings, now, phone_model)], index, signal=signal, policy=policy,
                      site_cal=site_cal)[0]


def track_many(
    inputs: Sequence[TrackInput],
    index: SiteIndex,
    *,
    signal: SignalModel | None = None,
    policy: TrackingPolicy | None = None,
    site_cal: SiteCalibration | None = None,
) -> list[tuple[TrackingState, Estimate | None]]:
    """`track` for the batches of many devices (one each) at once, the same answers: the grid posteriors of the
    devices on one floor are computed together (batch.py). What the processing function runs per trigger call."""
    signal = signal or SignalModel()
    policy = policy or TrackingPolicy()
    jobs = [_prepare(index, signal, policy, site_cal, item) for item in inputs]
    pending = [job for job in jobs if job.request is not None]
    cal = policy.selfcal
    posts = posterior_many(index, signal, [job.request for job in pending if job.request is not None],
                           held_out=site_cal is not None and cal.enabled, held_out_within_m=cal.confident_m,
                           space_likelihood=policy.map_matching is not None)
    for job, post in zip(pending, posts):
        job.result = _finish(index, signal, policy, site_cal, job, post)
    return [job.result if job.result is not None else (job.new_state, None) for job in jobs]


@dataclass(slots=True)
class _Job:
    """One device's update between `_prepare` and `_finish`."""

    state: TrackingState
    new_state: TrackingState
    now_s: float
    phone_model: str | None
    result: tuple[TrackingState, Estimate | None] | None = None
    request: PosteriorRequest | None = None
    live: dict[str, tuple[float, float, float, float]] | None = None  # beacon -> (rssi, variance, time, power)
    ids: list[str] | None = None
    drift: list[float] | None = None
    device: DeviceOffset | None = None
    applied: float = 0.0
    readings: ReadingLists | None = None
    offset_prior: float = 0.0
    last_xy: tuple[float, float] | None = None
    decision: FloorDecision | None = None
    same_floor: bool = False
    dt: float = math.inf


_Beacon = TypeVar("_Beacon", bound=Hashable)  # an id or a position in the SiteIndex


def ascending(values: Sequence[float]) -> bool:
    """Whether the values never go down: one comparison pass in C (SDK batches are in time order)."""
    return all(map(operator.le, values, itertools.islice(values, 1, None)))


def newest_per_beacon(beacons: Sequence[_Beacon], times: Sequence[float]) -> dict[_Beacon, float]:
    """Each beacon's latest time in a batch's columns: a batch in time order needs no comparison per reading
    (the last time a dict keeps for a key is then its largest)."""
    if ascending(times):
        return dict(zip(beacons, times))
    newest: dict[_Beacon, float] = {}
    for beacon, at in zip(beacons, times):
        if newest.get(beacon, -math.inf) < at:
            newest[beacon] = at
    return newest


def _readings_in_order(sightings: Iterable[Sighting | Any] | ReadingColumns, index: SiteIndex,
                       ) -> Iterable[tuple[str, float, float, float | None]]:
    """(beacon, rssi, epoch seconds, tx power) of each sighting, in time order."""
    if isinstance(sightings, ReadingColumns):
        times = sightings.ts
        rows = zip(list(map(index.beacon_ids.__getitem__, sightings.beacon)), sightings.rssi, times,
                   sightings.tx_power)
        if not ascending(times):
            return sorted(rows, key=lambda r: r[2])
        return rows
    out = []
    for s in sightings:
        if isinstance(s, Sighting):
            ts = s.ts if isinstance(s.ts, float) else _seconds(s.ts)
            out.append((s.beacon, float(s.rssi), ts, s.tx_power))
        else:
            out.append((_field(s, "beacon"), float(_field(s, "rssi")), _seconds(_field(s, "ts")),
                        _field(s, "tx_power", "txPower")))
    if any(later[2] < earlier[2] for earlier, later in itertools.pairwise(out)):  # SDK batches are in time order
        out.sort(key=lambda r: r[2])
    return out


def _prepare(index: SiteIndex, signal: SignalModel, policy: TrackingPolicy, site_cal: SiteCalibration | None,
             item: TrackInput) -> _Job:
    """Fold the sightings into the RSSI filters and decide the floor: everything before the grid posterior."""
    state = item.state or TrackingState()
    phone_model = item.phone_model
    now_s = _seconds(item.now)
    flt = policy.filter
    # the RSSI filters (RssiFilter.update, inlined on (value, variance, time) tuples: the one loop per reading).
    # A beacon not heard in this batch keeps the state's own (value, variance, time, power), already rounded as
    # the state stores it: only the beacons a reading updated (3-tuples) are rounded again below.
    stored = state.beacons
    smoothed: dict[str, tuple[float, float, float] | tuple[float, float, float, float]] = dict(stored)
    powers: dict[str, float] = {}  # the levels this batch's advertised powers set
    phone = signal.phone_offset(phone_model)
    known = index.beacon_index
    latest, expire_s = now_s + policy.future_tolerance_s, flt.expire_s
    r, q = flt.reading_noise_db**2, flt.drift_db_per_s**2
    advertised: dict[str, float | None] = {}
    isfinite, current_of = math.isfinite, smoothed.get  # (bound once: this loop runs once per reading)
    for beacon, rssi, ts, tx_power in _readings_in_order(item.sightings, index):
        if beacon not in known or not isfinite(rssi) or ts > latest or now_s - ts > expire_s:
            continue
        at = min(ts, now_s)
        current = current_of(beacon)
        if current is None:
            smoothed[beacon] = (float(rssi), r, at)
        else:
            value, variance, since = current[0], current[1], current[2]
            if at >= since:
                prior_var, reading_var, new_ts = variance + q * (at - since), r, at
            else:
                prior_var, reading_var, new_ts = variance, r + q * (since - at), since
            gain = prior_var / (prior_var + reading_var)
            smoothed[beacon] = (value + gain * (rssi - value), (1 - gain) * prior_var, new_ts)
        if tx_power is not None or (beacon not in stored and beacon not in advertised):
            advertised[beacon] = tx_power  # the latest advertised power sets the beacon's level
    for beacon, tx_power in advertised.items():
        powers[beacon] = _power(index, signal, beacon, tx_power) + phone
    loudest = sorted(((b, v) for b, v in smoothed.items() if not now_s - v[2] > expire_s), key=lambda kv: -kv[1][0])
    live: dict[str, tuple[float, float, float, float]] = {}  # (value, variance, time, power) of the loudest
    kept: dict[str, tuple[float, float, float, float]] = {}  # the same as the state stores them
    for b, v in loudest[: policy.max_beacons]:
        if len(v) == 4:  # not heard in this batch: stored rounded, and round(round(x, n), n) == round(x, n)
            live[b] = kept[b] = v
        else:  # updated by a reading: its power is this batch's level or the stored one
            power = powers[b] if b in powers else stored[b][3]
            live[b] = (v[0], v[1], v[2], power)
            kept[b] = (round(v[0], 2), round(v[1], 2), round(v[2], 3), _rounded_power(power))
    new_state = state.copy()
    new_state.beacons = kept
    job = _Job(state, new_state, now_s, phone_model)
    if not live:
        job.result = (new_state, None)
        return job
    ids = list(live)
    cal = policy.selfcal
    device = _device_offset(state, signal, phone_model, cal)
    reference = site_cal.device_reference() if site_cal is not None and cal.enabled else None
    applied = device.mean - reference if reference is not None else 0.0
    drift = site_cal.offsets(ids) if site_cal is not None and cal.enabled else [0.0] * len(ids)
    # the readings as plain floats: (power + applied) + drift and the variances are the same sums numpy would
    # take over arrays of a few elements; the batch of posteriors makes one array per column of all the devices
    beacons = [known[b] for b in ids]
    values = [live[b][0] for b in ids]
    shadowing = policy.shadowing_db**2
    # RssiFilter.variance_at, inlined on the (value, variance, time) tuples
    readings = ReadingLists(
        beacons=beacons,
        rssi=values,
        measured_power=[live[b][3] + applied + d for b, d in zip(ids, drift)],
        variance=[shadowing + (live[b][1] + q * max(now_s - live[b][2], 0.0)) for b in ids],
    )
    offset_prior = device.prior_db(cal) if reference is not None else signal.offset_prior_for(phone_model)
    last_xy = (state.x, state.y) if state.x is not None and state.y is not None else None
    decision = decide_floor(
        index,
        _floor_shares(index, beacons, values),
        now_s,
        current=state.floor,
        candidate=state.floor_candidate,
        candidate_since=state.floor_candidate_since,
        last_xy=last_xy,
        last_seen=state.ts,
        policy=policy.floor,
    )
    floor = decision.floor
    same_floor = floor == state.floor and last_xy is not None and state.ts is not None
    dt = max(now_s - state.ts, 0.0) if state.ts is not None else math.inf
    prior_sigma = within = None
    if same_floor and math.isfinite(dt):
        prior_sigma = math.hypot(state.uncertainty_m or 1.0, policy.walking_speed_mps * dt)
        # farther than the step cap plus two spreads of the motion prior, a point cannot win: not computed
        within = policy.max_speed_mps * dt + (state.uncertainty_m or 0.0) + 2.0 * prior_sigma
    job.live, job.ids, job.drift, job.device, job.applied = live, ids, drift, device, applied
    job.readings, job.offset_prior, job.last_xy, job.decision = readings, offset_prior, last_xy, decision
    job.same_floor, job.dt = same_floor, dt
    job.request = PosteriorRequest(readings, floor, last_xy if same_floor else None, prior_sigma, offset_prior,
                                   within)
    return job


def _finish(index: SiteIndex, signal: SignalModel, policy: TrackingPolicy, site_cal: SiteCalibration | None,
            job: _Job, post: Posterior | None) -> tuple[TrackingState, Estimate | None]:
    """Everything after the grid posterior: map-matched room, decisions, self-calibration, the new state."""
    state, new_state, now_s, readings = job.state, job.new_state, job.now_s, job.readings
    decision, last_xy, dt = job.decision, job.last_xy, job.dt
    if readings is None or decision is None:  # _prepare fills both for every job with a posterior request
        raise RuntimeError("a tracking job reached its posterior without readings")
    floor = decision.floor
    same_floor = job.same_floor
    cal = policy.selfcal
    if post is None:
        # none of the decided floor's beacons is live any more: move to the loudest floor if that is possible
        # from where the phone was (stairs, elevator, or not seen for long), else hold the last estimate
        loudest = index.floor_ids[int(np.argmax(floor_scores(index, readings.arrays())))]
        lost = state.ts is None or now_s - state.ts > policy.floor.lost_after_s
        if state.floor is not None and last_xy is not None and not lost and not may_change_floor(
            index, state.floor, last_xy, policy.floor
        ):
            held = math.hypot(state.uncertainty_m or 1.0, policy.walking_speed_mps * min(dt, 60.0))
            return new_state, Estimate(last_xy[0], last_xy[1], state.floor, held, state.space,
                                       state.space_confidence * 0.5, 0)
        floor = loudest
        same_floor = False
        post = posterior_many(index, signal, [PosteriorRequest(readings, floor, offset_prior_db=job.offset_prior)],
                              space_likelihood=policy.map_matching is not None)[0]
        if post is None:
            return new_state, None
    x, y = post.mean
    if same_floor and last_xy is not None and math.isfinite(dt):
        reach = policy.max_speed_mps * dt + (state.uncertainty_m or 0.0)
        moved = math.hypot(x - last_xy[0], y - last_xy[1])
        if moved > reach > 0:
            x = last_xy[0] + (x - last_xy[0]) * reach / moved
            y = last_xy[1] + (y - last_xy[1]) * reach / moved
    matcher = policy.map_matching
    space_policy = policy.space if matcher is None else policy.matched_space
    rooms: dict[int, float] | None = None
    if matcher is not None and post.space_loglik:
        before = {index.space_position[sid]: p for sid, p in (state.rooms or {}).items()
                  if sid in index.space_position}
        if state.floor is not None and floor != state.floor and before:
            rooms = arrive(index, before, post.space_loglik, matcher)
        else:
            same = {i: p for i, p in before.items() if index.spaces[i].floor == floor}
            rooms = step(index, same, post.space_loglik, xy=last_xy if same_floor else None,
                         uncertainty_m=state.uncertainty_m or 1.0, dt_s=dt if math.isfinite(dt) else 0.0,
                         policy=matcher)
    if rooms is not None:
        probabilities = {index.spaces[i].id: p for i, p in rooms.items()}
    else:
        probabilities = {index.spaces[i].id: p for i, p in post.space_probabilities.items()}
    if rooms is None and same_floor and last_xy is not None \
            and math.hypot(x - last_xy[0], y - last_xy[1]) < policy.still_m and probabilities:
        # a phone that stays put is more likely in a room than standing in a corridor
        probabilities = {
            sid: p * (policy.passage_weight_when_still if index.spaces[index.space_position[sid]].kind in PASSAGES else 1)
            for sid, p in probabilities.items()
        }
        total = sum(probabilities.values())
        probabilities = {sid: p / total for sid, p in probabilities.items()}
    if not probabilities:
        space, confidence = choose_space(index, post)
        if space is not None:
            probabilities = {space: confidence}
    if floor != state.floor:
        space_decision = decide_space(probabilities, now_s, current=None, confidence=0.0, candidate=None,
                                      candidate_since=None, policy=space_policy)
    else:
        space_decision = decide_space(
            probabilities,
            now_s,
            current=state.space,
            confidence=state.space_confidence,
            candidate=state.space_candidate,
            candidate_since=state.space_candidate_since,
            evidence=state.space_evidence,
            elapsed_s=dt if math.isfinite(dt) else space_policy.max_step_s,
            policy=space_policy,
        )
    device = job.device
    if device is None or job.ids is None or job.drift is None or job.live is None:  # _prepare fills them with readings
        raise RuntimeError("a tracking job reached its posterior without its device offset")
    if cal.enabled and post.uncertainty_m <= cal.confident_m and len(post.beacons) >= cal.min_beacons:
        common, common_var = measured_offset(post.residuals, post.reading_var)
        observed = job.applied + common  # the residuals are against the model with `applied` added
        device = update_device_offset(device, observed, common_var, dt if math.isfinite(dt) else 0.0, cal)
        if site_cal is not None:
            site_cal.observe_device(observed)
        if site_cal is not None and post.held_out_residuals is not None:
            # what each beacon leaves over where the other readings put the phone, on top of the drift used
            used = {index.beacon_index[b]: d for b, d in zip(job.ids, job.drift)}
            for b, residual, fitted in zip(post.beacons.tolist(), post.held_out_residuals.tolist(),
                                           post.residuals.tolist()):
                beacon = index.beacons[b].id
                # only beacons expected well above the phone's sensitivity: a weak one is heard (and kept among
                # the loudest) only when it fades up, which would hide a drop
                if job.live[beacon][0] - fitted >= cal.observe_above_dbm:
                    site_cal.observe(beacon, residual + used.get(b, 0.0))
    if cal.enabled:
        new_state.offset = (round(device.mean, 2), round(device.variance, 3))
    new_state.rooms = None if rooms is None else {index.spaces[i].id: round(p, 4) for i, p in rooms.items()}
    if rooms is not None and space_decision.space in index.space_position:
        # the position where the map-matched room says the phone is: the posterior within that room
        inside = post.mean_in(index.space_position[space_decision.space])
        if inside is not None:
            x, y = inside
    new_state.ts = now_s if state.ts is None else max(state.ts, now_s)
    new_state.x, new_state.y = round(x, 2), round(y, 2)
    new_state.floor = floor
    new_state.uncertainty_m = round(post.uncertainty_m, 2)
    new_state.floor_candidate = decision.candidate
    new_state.floor_candidate_since = decision.candidate_since
    new_state.space = space_decision.space
    new_state.space_confidence = round(space_decision.confidence, 3)
    new_state.space_candidate = space_decision.candidate
    new_state.space_candidate_since = space_decision.candidate_since
    new_state.space_evidence = round(space_decision.evidence, 3)
    estimate = Estimate(x, y, floor, post.uncertainty_m, space_decision.space, space_decision.confidence,
                        post.beacons_used)
    return new_state, estimate




_ROUNDED_POWERS: dict[float, float] = {}  # a building's beacons share a few 1 m levels: round(power, 1) of each


def _rounded_power(power: float) -> float:
    rounded = _ROUNDED_POWERS.get(power)
    if rounded is None:
        if len(_ROUNDED_POWERS) >= 4096:
            _ROUNDED_POWERS.clear()
        rounded = _ROUNDED_POWERS[power] = round(power, 1)
    return rounded


def _floor_shares(index: SiteIndex, beacons: list[int], rssi: list[float]) -> list[float]:
    """`floor_scores` for the tracker's few readings (at most `max_beacons`, loudest first): plain Python."""
    scores = [0.0] * len(index.floor_ids)
    loudest = max(rssi)
    floor_of = index.floor_of_beacon_list
    for b, v in zip(beacons, rssi):
        scores[floor_of[b]] += 10 ** ((v - loudest) / 10)
    total = sum(scores)
    return [x / total for x in scores]


def _device_offset(state: TrackingState, signal: SignalModel, phone_model: str | None,
                   policy: SelfCalibrationPolicy) -> DeviceOffset:
    """The device's offset so far; a new device starts at its phone model's (already in the measured power) with
    the model's prior spread, less the update-to-update jitter that the prior also covers."""
    if state.offset is not None and policy.enabled:
        return DeviceOffset(state.offset[0], max(state.offset[1], 0.0))
    spread = signal.offset_prior_for(phone_model)
    return DeviceOffset(0.0, max(spread**2 - policy.scan_jitter_db**2, 1.0))


def _power(index: SiteIndex, signal: SignalModel, beacon: str, tx_power: float | None) -> float:
    fitted = signal.beacon_measured_power_dbm.get(beacon)
    if fitted is not None:
        return fitted
    site_value = index.site_measured_power.get(beacon)
    if site_value is not None:
        return site_value
    if tx_power is not None:
        return float(tx_power)
    return signal.default_measured_power_dbm
