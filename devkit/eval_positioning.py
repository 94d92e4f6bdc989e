"""`python -m devkit eval-positioning DATASET_DIR [--method model|fingerprint|bayes|auto] [--json]`

Scores the positioning engine on the test split of a dataset in the neutral format (../shared/datasets/README.md)
and prints one JSON object: dataset, method, n, mean_m, median_m, p90_m and, when the data has them,
zone_accuracy and floor_accuracy; for auto also the regime it decided from the site and the train split and both
cross-validations of every candidate (cv_loss). Only the train split is used for fitting or choosing (methods
fingerprint, bayes and auto). Every scan is scored on its own (the datasets' protocol); --mode tracking instead
replays time-stamped scans per device through the tracker that the processing function runs.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devkit.datasets import Scan
    from shared.domain.positioning import Estimate, SiteIndex
    from shared.domain.positioning.calibration import CalibratedLocator, CvScore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset_dir", help="folder with site.json and scans.jsonl")
    parser.add_argument("--method", choices=("model", "fingerprint", "bayes", "auto"), default="model")
    parser.add_argument(
        "--mode",
        choices=("snapshot", "tracking"),
        default="snapshot",
        help="snapshot scores every scan on its own (the datasets' protocol); tracking replays time-stamped scans "
        "per device through the tracker (model-based methods only)",
    )
    parser.add_argument("--json", action="store_true", help="compact JSON on one line")


def evaluate(dataset_dir: str, method: str = "model", mode: str = "snapshot") -> dict[str, Any]:
    """Score a dataset's test split; the dict that the command prints."""
    import numpy as np

    from devkit.datasets import load_dataset, measured_power_of, site_index
    from shared.domain.positioning.calibration import Fingerprint, calibrate

    started = time.perf_counter()
    dataset = load_dataset(dataset_dir)
    index = site_index(dataset)

    def fingerprint(scan: Scan, order: float | None = None) -> Fingerprint:
        t = scan.truth
        return Fingerprint(scan.rssi, t.x, t.y, t.floor, t.zone, measured_power_of(scan), order, scan.device)

    # in-place validation holds out time-ordered blocks of each place: the scan's time, else its line in the file
    train = [fingerprint(s, s.timestamp if s.timestamp is not None else float(i))
             for i, s in enumerate(dataset.split("train"))]
    if method != "model" and not train:
        raise SystemExit(f"{dataset_dir}: method {method} needs labelled scans with split 'train'")
    locator = calibrate(index, train, method)
    test = dataset.split("test")
    timed = all(s.ts is not None for s in test)
    if mode == "tracking" and not timed:
        raise SystemExit(f"{dataset_dir}: --mode tracking needs a timestamp on every test scan")
    use_tracking = locator.tracks and mode == "tracking"
    if use_tracking:
        estimates = _tracked(index, locator, test)
    elif locator.method == "model":
        from shared.domain.positioning.estimator import locate_many

        estimates = [None] * len(test)
        for device in sorted({s.device for s in test}):
            mine = [i for i, s in enumerate(test) if s.device == device]
            for i, est in zip(mine, locate_many(index, locator.signal, [test[i].rssi for i in mine],
                                                tx_power=[measured_power_of(test[i]) for i in mine],
                                                phone_model=device)):
                estimates[i] = est
    else:
        estimates = locator.locate_many([fingerprint(s) for s in test])

    errors: list[float] = []
    zone_hits: list[bool] = []
    floor_hits: list[bool] = []
    unlocated = 0
    for scan, est in zip(test, estimates):
        if est is None:
            unlocated += 1
            continue
        t = scan.truth
        if t.x is not None and t.y is not None and not math.isnan(est.x):
            errors.append(math.hypot(est.x - t.x, est.y - t.y))
        if t.zone is not None and dataset.site.zones:
            zone_hits.append(est.space_id == t.zone)
        if t.floor is not None:
            floor_hits.append(est.floor == t.floor)
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "method": method,
        "n": len(test) - unlocated,
    }
    if errors:
        e = np.array(errors)
        result.update(
            mean_m=round(float(e.mean()), 3),
            median_m=round(float(np.median(e)), 3),
            p90_m=round(float(np.percentile(e, 90)), 3),
        )
    if zone_hits:
        result["zone_accuracy"] = round(float(np.mean(zone_hits)), 4)
    if floor_hits and dataset.multi_floor:
        result["floor_accuracy"] = round(float(np.mean(floor_hits)), 4)
    result["mode"] = "tracking" if use_tracking else "snapshot"
    result["engine"] = locator.method
    if locator.regime is not None:
        result["regime"] = locator.regime.name
        result["regime_reason"] = locator.regime.reason
    if locator.cv:
        # both validations of every candidate: the regime's loss decided, the other is for information
        result["cv_loss"] = {
            regime: {name: _cv_summary(score) for name, score in scores.items()}
            for regime, scores in locator.cv.items()
        }
    result["unlocated"] = unlocated
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _cv_summary(score: CvScore) -> dict[str, float | None]:
    out: dict[str, float | None] = {"loss": round(score.loss, 4) if math.isfinite(score.loss) else None}
    if score.zone_miss is not None:
        out["zone_acc"] = round(1 - score.zone_miss, 4)
    if score.floor_miss is not None:
        out["floor_acc"] = round(1 - score.floor_miss, 4)
    if score.mean_m is not None:
        out["mean_m"] = round(score.mean_m, 3)
    return out


def _tracked(index: SiteIndex, locator: CalibratedLocator, scans: list[Scan]) -> list[Estimate | None]:
    """Replay each device's scans in time order through `track`; one estimate per scan, in input order."""
    from devkit.datasets import DatasetError, measured_power_of
    from shared.domain.positioning.tracking import Sighting, TrackingState, track

    def seconds(scan: Scan) -> float:
        if scan.timestamp is None:  # evaluate checks every test scan has one
            raise DatasetError(f"scan '{scan.id}' has no timestamp: tracking needs one")
        return scan.timestamp

    by_device: dict[str, list[int]] = defaultdict(list)
    for i, scan in enumerate(scans):
        by_device[scan.device].append(i)
    out: list[Estimate | None] = [None] * len(scans)
    for positions in by_device.values():
        positions.sort(key=lambda i: seconds(scans[i]))
        state: TrackingState | None = None
        for i in positions:
            scan = scans[i]
            ts = seconds(scan)
            powers = locator.batch_powers(measured_power_of(scan))
            sightings = [
                Sighting(b, r, ts, powers.get(b) if isinstance(powers, Mapping) else powers)
                for b, r in scan.rssi.items()
            ]
            state, out[i] = track(state, sightings, index, ts, signal=locator.signal, phone_model=scan.device)
    return out


def main(args: argparse.Namespace) -> int:
    from devkit.datasets import DatasetError

    try:
        result = evaluate(args.dataset_dir, args.method, args.mode)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
