"""The worker's garbage collector set-up (shared/runtime.py), in a process of its own: freezing is process-wide."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.runtime import GC_THRESHOLDS

REPO = Path(__file__).resolve().parents[2]
REPORT = "import gc, json; print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"


def _report(code: str, **env: str) -> tuple[list[int], int]:
    result = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=True, env={"PATH": "/usr/bin:/bin", **env})
    thresholds, frozen = json.loads(result.stdout.strip().splitlines()[-1])
    return thresholds, frozen


def test_the_worker_collects_less_often_and_skips_what_it_loaded_at_start():
    thresholds, frozen = _report("from shared.runtime import configure_worker_gc; configure_worker_gc()")
    assert tuple(thresholds) == GC_THRESHOLDS and GC_THRESHOLDS[0] > 700
    assert frozen > 1_000  # the modules' functions, classes and dicts


def test_the_functions_worker_sets_it_up_and_a_test_importing_the_app_does_not():
    worker, frozen = _report("import function_app", FUNCTIONS_WORKER_RUNTIME="python", PYTHON_ENABLE_INIT_INDEXING="1")
    assert tuple(worker) == GC_THRESHOLDS and frozen > 1_000
    imported, frozen = _report("import function_app")
    assert tuple(imported) != GC_THRESHOLDS and frozen == 0
