"""`python -m devkit bench positioning [--json]`: single-scan estimates per second on one core, and tracker updates
(one device a call, and 50 devices a call as the processing function batches them).

Scans come from the device simulator (3 floors, ~80 m x 19 m, beacons every ~9 m, 2 s scan windows); the
batch path (`locate_many`, what the eval runs) and the one-call path (`locate`) give the same answers.
"""
from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scans", type=int, default=20_000, help="scans to estimate")
    parser.add_argument("--seed", type=int, default=5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import time

    import numpy as np

    from devkit.simulator import BuildingSpec, Phone, RadioSimulator, RadioSpec, generate_building
    from shared.domain.positioning import SignalModel, SiteIndex, locate
    from shared.domain.positioning.estimator import locate_many
    from shared.domain.positioning.tracking import Sighting, TrackInput, track, track_many

    site = generate_building(BuildingSpec(floors=3, length_m=80.0), seed=args.seed)
    started = time.perf_counter()
    index = SiteIndex.from_site_model(site)
    signal = SignalModel()
    radio = RadioSimulator(site, RadioSpec(), seed=args.seed)
    rng = np.random.default_rng(args.seed)
    scans: list[dict[str, float]] = []
    while len(scans) < args.scans:
        floor = site.floors[len(scans) % len(site.floors)].id
        x, y = rng.uniform(1, 79), rng.uniform(1, 18)
        readings = radio.scan(floor, x, y, 0.0, 2.0, Phone("bench"), rng)
        if readings:
            scans.append({r.beacon: float(r.rssi) for r in readings})
    locate_many(index, signal, scans[:500])  # warm the per-floor caches
    build_s = time.perf_counter() - started

    t = time.perf_counter()
    locate_many(index, signal, scans)
    batch_s = time.perf_counter() - t

    single = scans[: min(len(scans), 2000)]
    t = time.perf_counter()
    for s in single:
        locate(index, signal, s)
    single_s = time.perf_counter() - t

    state = None
    updates = single[:1000]
    t = time.perf_counter()
    for i, s in enumerate(updates):
        sightings = [Sighting(b, r, 1_700_000_000.0 + 2 * i) for b, r in s.items()]
        state, _ = track(state, sightings, index, 1_700_000_000.0 + 2 * i)
    track_s = time.perf_counter() - t

    # the processing function's way: every device of a trigger call through the tracker at once
    devices = 50
    states: list[Any] = [None] * devices
    t = time.perf_counter()
    for i in range(len(updates) // devices):
        now = 1_700_000_000.0 + 2 * i
        inputs = [TrackInput(states[d], [Sighting(b, r, now) for b, r in updates[(i * devices + d) % len(updates)].items()],
                             now) for d in range(devices)]
        for d, (state_d, _est) in enumerate(track_many(inputs, index)):
            states[d] = state_d
    batched_s = time.perf_counter() - t
    return {
        "target": "positioning",
        "scans": len(scans),
        "beacons_per_scan": round(float(np.mean([len(s) for s in scans])), 2),
        "site": {"floors": len(site.floors), "beacons": len(site.beacons), "spaces": len(site.spaces),
                 "grid_points": int(sum(len(g.points) for g in index.grids.values())), "grid_step_m": round(index.step_m, 2)},
        "batch_estimates_per_s": round(len(scans) / batch_s),
        "single_call_estimates_per_s": round(len(single) / single_s),
        "tracker_updates_per_s": round(len(updates) / track_s),
        "tracker_batched_updates_per_s": round((len(updates) // devices) * devices / batched_s),
        "tracker_devices_per_call": devices,
        "tracking_state_bytes": len(json.dumps(state.to_json(), separators=(",", ":"))) if state else 0,
        "setup_s": round(build_s, 3),
    }
