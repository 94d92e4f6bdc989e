"""`devkit bench scale`: worker processes over disjoint partitions, every sighting processed exactly once."""
from __future__ import annotations

import argparse
import importlib

import pytest

from devkit import bench
from devkit.benchmarks.scale import assign_partitions, usable_cores


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(["scale", *argv])


def test_a_tiny_run_processes_every_sighting_once_across_the_workers() -> None:
    args = _parse("--phones", "12", "--minutes", "4", "--workers", "2,1", "--partitions", "4",
                  "--ingest-requests", "60", "--json")
    result = importlib.import_module(bench.TARGETS[args.target]).run(args)

    assert result["sightings"] > 0 and result["batches"] > 0
    assert sum(result["partition_sightings"]) == result["sightings"]
    assert result["usable_cores"] == usable_cores() and result["cpu_count"] >= 1
    assert [run["workers"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        workers = run["per_worker"]
        assert len(workers) == run["workers"] == len(run["per_worker_sightings_per_s"])
        owned = [p for w in workers for p in w["partitions"]]
        assert sorted(owned) == list(range(4))  # disjoint and covering
        # each worker processed exactly its partitions' sightings; together, every sighting once
        assert [w["sightings"] for w in workers] == [
            sum(result["partition_sightings"][p] for p in w["partitions"]) for w in workers]
        assert run["sightings_processed"] == result["sightings"]
        assert run["devices_overlap"] == 0
        assert all(w["duplicates"] == 0 for w in workers)
        assert run["exactly_once"] is True
        assert run["workers_exceed_cores"] == (run["workers"] > result["usable_cores"])
        assert run["total_sightings_per_s"] > 0 and all(r > 0 for r in run["per_worker_sightings_per_cpu_s"])
    assert result["runs"][0]["scaling_efficiency"] == 1.0
    # the ingest route's CPU per request, every POST accepted (the bench fails otherwise)
    assert result["ingest"]["requests"] == 60 and result["ingest"]["cpu_ms_per_request"] > 0
    assert result["ingest"]["sightings_per_request"] > 0


def test_partitions_are_dealt_round_robin_and_never_shared() -> None:
    assert assign_partitions(8, 3) == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert assign_partitions(4, 1) == [[0, 1, 2, 3]]
    with pytest.raises(ValueError):
        assign_partitions(4, 5)


def test_bad_worker_lists_are_refused() -> None:
    with pytest.raises(SystemExit):
        _parse("--workers", "1,x")
    with pytest.raises(SystemExit):
        _parse("--workers", "0")
    args = _parse("--workers", "9", "--partitions", "8")
    with pytest.raises(SystemExit, match="more than --partitions"):
        importlib.import_module(bench.TARGETS["scale"]).run(args)
