"""Process-wide settings of SMMC's long-running services (`smmc worker`, `smmc sim run`,
`smmc demo`), applied by the command that starts one, not by the library objects it runs:
tests and one-shot runs keep Python's defaults."""

from __future__ import annotations

import gc

__all__ = ["YOUNG_COLLECTION_THRESHOLD", "settle_heap"]

YOUNG_COLLECTION_THRESHOLD = 50_000
"""Allocations between two young-generation collections (Python's default is 700): an order
or a first association allocates thousands of short-lived objects in one burst."""


def settle_heap() -> None:
    """What start-up built (modules, the catalog, engines, a fleet plan) lives as long as the
    process: out of the cyclic collector's way, whose full collections would otherwise
    traverse it again and again; and young collections less often. Measured in
    docs/benchmarks.md (issue 5 (a), issue 7 fleet-day)."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
