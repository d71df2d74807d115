"""A map node's items for readers: one page of them, and a run's results with maps' lists whole.

Items that ended are read from the store (``RunRepository.item_records``, ``item_outputs``), those in
flight from the run's state; an item in neither was never dispatched (``waiting``). A page never holds
more than ``MAX_ITEMS_PER_PAGE`` items, so a map of 100,000 items is read page by page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.errors import InvalidInput, Problem
from domain.map_spec import MapOutput
from domain.map_state import ItemRun
from domain.node_state import ErrorInfo
from domain.ports import RunRepository
from domain.run import Run
from domain.statuses import NodeStatus
from services.application.errors import NodeNotFound, UsageError
from services.application.run_view import ItemCounts, completed_outputs

MAX_ITEMS_PER_PAGE = 1000
WAITING = "WAITING"
"""The status shown for an item never dispatched (a node would be PENDING)."""


@dataclass(slots=True)
class ItemView:
    index: int
    status: str
    """A node status, or ``WAITING``."""
    attempts: int
    """The number of the item's latest attempt (0 when never dispatched)."""
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    error: ErrorInfo | None = None
    retry_at: float | None = None
    has_output: bool = False
    output: Any = None


@dataclass(slots=True)
class ItemsPage:
    run_id: str
    node_id: str
    counts: ItemCounts
    items: list[ItemView]
    next_offset: int | None


async def items_page(runs: RunRepository, run: Run, node_id: str, offset: int, limit: int) -> ItemsPage:
    """Items ``[offset, offset + limit)`` of map node ``node_id``. Raises ``NodeNotFound``, and
    ``UsageError`` for a node that is not a map or has not read its list yet."""
    if node_id not in run.plan.index:
        raise NodeNotFound(run.run_id, node_id)
    if offset < 0 or not 1 <= limit <= MAX_ITEMS_PER_PAGE:
        where, got = ("$.offset", offset) if offset < 0 else ("$.limit", limit)
        raise InvalidInput(
            [Problem(where, f"must be 0 or more and limit 1 to {MAX_ITEMS_PER_PAGE}, got {got}")]
        )
    spec, node = run.plan.node(node_id), run.node(node_id)
    if spec.map is None:
        raise UsageError(f"node '{node_id}' of run '{run.run_id}' is not a map (it has no 'for_each')")
    items = node.items
    if items is None:
        raise UsageError(f"map node '{node_id}' of run '{run.run_id}' has not read its list yet")
    stop = min(offset + limit, items.total)
    ended = await runs.item_records(run.run_id, node_id, offset, stop)
    outputs = await runs.item_outputs(run.run_id, node_id, offset, stop)
    # An item a redrive put back, or not dispatched yet in this life, waits: its record, if any, is
    # of an earlier life.
    again = set(items.redo)
    views = []
    for item, output in zip(range(offset, stop), outputs, strict=True):
        state = items.live.get(item)
        if state is None and item < items.next_item and item not in again:
            state = ended.get(item)
        views.append(_view(item, state, output))
    return ItemsPage(run.run_id, node_id, ItemCounts.of(items), views, stop if stop < items.total else None)


def _view(item: int, state: ItemRun | None, output: Any) -> ItemView:
    if state is None:
        return ItemView(item, WAITING, 0)
    ended = state.status in (NodeStatus.COMPLETED, NodeStatus.FAILED, NodeStatus.SKIPPED)
    return ItemView(
        item,
        state.status.value,
        state.attempt,
        state.started_at,
        state.finished_at,
        state.worker_id,
        state.error,
        state.retry_at,
        has_output=ended,
        output=output if ended else None,
    )


async def results(runs: RunRepository, run: Run) -> dict[str, Any]:
    """Every completed node's output, a map's as the list of its items' outputs."""
    outputs = completed_outputs(run)
    for node_id, value in outputs.items():
        if type(value) is MapOutput:
            outputs[node_id] = await runs.item_outputs(run.run_id, node_id, 0, value.count)
    return outputs
