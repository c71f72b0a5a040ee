"""The garbage collector's settings while Panorama works: what a long-running process needs.

Used by the app while it serves (``main.py``), by ``panorama rollup``, and by the benchmarks
that time Panorama's work in their own process.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GC_YOUNG_THRESHOLD = 10_000
"""Container objects allocated before a young collection (CPython's default: 700)."""


@contextlib.contextmanager
def collector_for_serving() -> Iterator[None]:
    """While Panorama works (the app serving, a rollup from the command line): what is alive once
    it has started is frozen out of the garbage collector's scans, and young collections come
    after 10,000 allocations instead of 700.

    Why (measured with ``bench/stack.py``, which counts the collector's time per request): a
    started Panorama holds ~240,000 objects (FastAPI's routes and models, SQLAlchemy's tables,
    pydantic's validators) that never die, and every full collection scanned them all, about
    0.1 s of the event loop at a time, landing on whichever request allocated at that moment
    (a cold three-year report, a webhook in a storm: their p99). A cold three-year report
    allocates enough containers to trigger ~25 young collections; with the higher threshold most
    of those objects are freed by reference counting before any scan, and the collector's share
    of that request fell from 120–160 µs to 15–25 µs. Cycles are still collected, only later.
    No full collection before freezing (it would cost every start, and tests start hundreds of
    apps): what little garbage is frozen with the rest waits until the app stops. Undone when the
    app stops (tests run many apps in one process: a stopped app's objects must become
    collectable again). ``panorama rollup`` runs its days under it too, and ``bench/rollup.py``
    its measured rollups (measured there before it was: a day's store took 190–250 ms instead of
    40–60 whenever a full collection landed in it, every tenth day or so).
    """
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
