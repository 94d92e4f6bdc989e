"""How a worker process that runs the pipeline sets up CPython's garbage collector: once, at start, by
function_app.py under the Functions host and by the devkit (whose benchmarks measure the pipeline as the worker
runs it). docs/capacity.md has the measurement."""
from __future__ import annotations

import gc

# A first-generation collection runs once this many more container objects were allocated than freed. At the
# default 700 the pipeline benchmark's day ran 914 of them, 83 second-generation and 8 full collections: 0.84 s of
# its 7.3 s, the full ones walking every cached device each time. Nearly all the pipeline allocates is freed by
# reference counting at once; the few cycles (exceptions, futures) now wait a little longer to be collected.
GC_THRESHOLDS = (10_000, 20, 20)


def configure_worker_gc() -> None:
    """Freeze what is loaded so far (modules, the app: never garbage, so full collections skip it) and collect less
    often."""
    gc.collect()  # what start-up left as garbage is not frozen with the rest
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
