"""The garbage collector of a long-running process, set for its steady state.

A deployable under load allocates many short-lived objects per event (a decoded delivery, the
dataclasses of a decision, the dicts of a Redis reply) beside many long-lived ones (the imported
code, compiled plans, cached runs). CPython's defaults collect the youngest generation every 2,000
allocations, hundreds of times a second under load, and the older collections (every 10 young
ones, and every 10 of those) walk the long-lived objects again. So a serving process freezes what
start-up made (``gc.freeze``: never collected, never walked) and collects the youngest generation
every ``YOUNG_THRESHOLD`` allocations, which makes the older collections as much rarer; they keep
their default ratios, so cyclic garbage is still collected, a little later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 2,000)."""


def set_for_serving() -> None:
    """Freeze what start-up allocated and space the young collections out (module docstring).
    Call once, after start-up, before serving."""
    gc.collect()  # start-up's garbage is not frozen with the rest
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
