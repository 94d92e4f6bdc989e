"""Positioning engine: RSSI sightings -> position, floor and space, per scan or tracked per device.

Pure domain code (stdlib, numpy, pydantic). Build a `SiteIndex` once per building and reuse it.
"""
from shared.domain.positioning.estimator import Estimate, Readings, floor_scores, locate, posterior, resolve_readings
from shared.domain.positioning.signal import RssiFilter, SignalModel
from shared.domain.positioning.site_index import BeaconSpec, FloorSpec, SiteIndex, SpaceSpec

__all__ = [
    "BeaconSpec",
    "Estimate",
    "FloorSpec",
    "Readings",
    "RssiFilter",
    "SignalModel",
    "SiteIndex",
    "SpaceSpec",
    "floor_scores",
    "locate",
    "posterior",
    "resolve_readings",
]
