"""The state of a map node's items while they run (``domain.map_spec``).

A run keeps only what it needs to decide: counters, and the items in flight or waiting for a retry
(at most ``max_concurrency`` of them). An item that ends leaves the state: its record (``ItemRun``, final)
and its output go to the store with the transition that ended it (``Outcome.items_ended``), so a map
of 100,000 items costs the run the same memory as a map of 10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain.statuses import NodeStatus

if TYPE_CHECKING:
    from domain.node_state import ErrorInfo


@dataclass(slots=True)
class ItemRun:
    """One item of a map: its latest attempt."""

    attempt: int
    status: NodeStatus = NodeStatus.QUEUED
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    error: ErrorInfo | None = None
    retry_at: float | None = None
    attempts_before: int = 0
    """Attempt numbers of earlier lives of the map (``ATTEMPTS_PER_LIFE``): the retry policy counts
    from here."""

    @property
    def attempts_this_time(self) -> int:
        return self.attempt - self.attempts_before


@dataclass(slots=True)
class MapState:
    """A map node's items: ``total`` of them, ``[0, next_item)`` dispatched at least once."""

    total: int
    next_item: int = 0
    live: dict[int, ItemRun] = field(default_factory=dict)
    """Items in flight (QUEUED, RUNNING) or waiting for a retry (PENDING), by index."""
    succeeded: int = 0
    failed: int = 0
    """Items that failed for good."""
    cancelled: int = 0
    """Items in flight when the node ended without them (a failure beyond tolerance, a cancel)."""
    skipped: int = 0
    """Items whose condition was false (``MapSpec.item_condition``)."""
    failed_items: set[int] = field(default_factory=set)
    """Items that ended FAILED or CANCELLED in this life of the map: what a redrive runs again."""
    redo: list[int] = field(default_factory=list)
    """Items a redrive put back, highest first (dispatched from the end, before ``next_item``)."""

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.cancelled + self.skipped

    @property
    def waiting(self) -> int:
        """Items not dispatched yet (in this life)."""
        return self.total - self.next_item + len(self.redo)

    def fresh(self) -> MapState:
        """The same list, none of it run: the map's next life when all of it runs again."""
        return MapState(self.total)

    def again(self) -> MapState:
        """The map's next life when only what did not complete runs again (a redrive): the items
        that failed or were cancelled, and those never dispatched; completed ones keep their
        outputs."""
        return MapState(
            self.total,
            self.next_item,
            {},
            self.succeeded,
            skipped=self.skipped,
            redo=sorted(self.failed_items, reverse=True),
        )
