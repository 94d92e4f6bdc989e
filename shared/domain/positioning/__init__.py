"""Positioning engine: RSSI sightings -> position, floor and space, per scan or tracked per device.

Pure domain code (stdlib, numpy, pydantic). Build a `SiteIndex` once per building (site model version) and reuse it:

    index = SiteIndex.from_site_model(site)            # cache per building
    signal = signal_for_site(site)                     # site-level path-loss exponent, if the site declares one
    state, estimate = track(state, sightings, index, now, signal=signal, phone_model=batch_model,
                            site_cal=building_calibration)
    # state: TrackingState (plain data; to_json() ~1.2 KB) stored per device; estimate: x, y, floor, uncertainty_m, space_id,
    # space_confidence (None while nothing of the site was heard lately)
    results = track_many([TrackInput(state, sightings, now, model), ...], index, ...)  # a trigger call's devices

Single scans (eval, benchmarks): `locate(index, signal, {beacon: rssi})`, `locate_many(index, signal, scans)`.
Beacon planning (a building without beacons): `plan_beacons(site)` -> wall-mounted positions and their coverage,
`coverage(site, beacons)`, `predict_room_accuracy(site, beacons)`.
See docs/positioning.md for the method and its measurements.
"""
from shared.domain.positioning.estimator import (
    Estimate,
    Readings,
    floor_scores,
    locate,
    locate_many,
    posterior,
    resolve_readings,
)
from shared.domain.positioning.planning import (
    BeaconPlan,
    CoverageReport,
    PlannedBeacon,
    RoomCoverage,
    coverage,
    plan_beacons,
    predict_room_accuracy,
)
from shared.domain.positioning.signal import RssiFilter, SignalModel, signal_for_site
from shared.domain.positioning.site_index import BeaconSpec, FloorSpec, SiteIndex, SpaceSpec
from shared.domain.positioning.tracking import (
    ReadingColumns,
    Sighting,
    TrackingPolicy,
    TrackingState,
    TrackInput,
    track,
    track_many,
)

__all__ = [
    "BeaconPlan",
    "BeaconSpec",
    "CoverageReport",
    "Estimate",
    "FloorSpec",
    "PlannedBeacon",
    "ReadingColumns",
    "Readings",
    "RoomCoverage",
    "RssiFilter",
    "Sighting",
    "SignalModel",
    "SiteIndex",
    "SpaceSpec",
    "TrackInput",
    "TrackingPolicy",
    "TrackingState",
    "coverage",
    "floor_scores",
    "locate",
    "locate_many",
    "plan_beacons",
    "posterior",
    "predict_room_accuracy",
    "resolve_readings",
    "signal_for_site",
    "track",
    "track_many",
]
