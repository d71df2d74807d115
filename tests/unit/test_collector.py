"""A serving process's garbage collector (``services.runtime.collector``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.runtime.collector import YOUNG_THRESHOLD, set_for_serving


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_start_up_is_frozen_and_young_collections_are_spaced_out() -> None:
    gc.unfreeze()
    _, middle, oldest = gc.get_threshold()
    set_for_serving()
    assert gc.get_freeze_count() > 1000  # the imported code, at least
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, oldest)


@pytest.mark.usefixtures("collector_restored")
def test_the_young_generation_is_still_collected_on_its_own() -> None:
    set_for_serving()
    assert gc.isenabled()
    before = gc.get_stats()[0]["collections"]
    kept = [[] for _ in range(3 * YOUNG_THRESHOLD)]  # tracked allocations, no explicit collect
    assert gc.get_stats()[0]["collections"] > before
    assert len(kept) == 3 * YOUNG_THRESHOLD
