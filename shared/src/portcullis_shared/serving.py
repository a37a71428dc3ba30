"""What a service process does once before it starts serving."""

from __future__ import annotations

import gc

GC_YOUNG_THRESHOLD = 20_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""


def tune_garbage_collector() -> None:
    """Fewer collections for a long-running server.

    A token request allocates thousands of short-lived objects (Litestar,
    SQLAlchemy), so at CPython's default the young generation is collected
    several times per request. Collecting it every 20,000 allocations instead
    raised client-credentials throughput by about 7 % in `make bench`; short-lived
    objects are freed by reference counting either way. What exists at start-up
    (modules, the app, the ORM's mappers) lives as long as the process, so it is
    frozen out of every later collection.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
