"""What applying one event changed (``Outcome``), and the accumulator that gathers it (``Step``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from domain.events import Command, Event
from domain.history import KIND_OF_EVENT, HistoryEntry
from domain.node_state import ErrorInfo
from domain.statuses import RunStatus

if TYPE_CHECKING:
    from domain.map_state import ItemRun


@dataclass(slots=True)
class Outcome:
    """What one applied event changed: everything a store needs to commit it. (Not frozen, like the
    other objects of the hot path: it is made once per event; nobody changes it afterwards.)"""

    commands: list[Command]
    entry: HistoryEntry
    changed: list[int]
    """Indices (in the plan) of the nodes whose state changed; an index may appear more than once."""
    recorded_outputs: list[str] | None = None
    """The nodes whose output the event recorded in ``Run.outputs``, in order: the event's node,
    and any map node it completed at once (an empty list: its output recorded in the same step)."""
    cleared_outputs: list[str] | None = None
    """Nodes whose output the event dropped (completed nodes a redrive runs again)."""
    resumed: bool = False
    """The event took an ended run back to RUNNING (a redrive): a store lifts its expiry."""
    items_changed: list[tuple[int, int]] | None = None
    """(node index, item) of map items whose live state changed (``NodeRun.items.live``)."""
    items_ended: list[tuple[int, int, ItemRun]] | None = None
    """(node index, item, its final record) of map items that ended: they left the live state, the
    store keeps the record."""
    recorded_item: tuple[str, Any] | None = None
    """(item key, output) of a map item that ended with an output (or its error, failed)."""
    items_marked: list[tuple[int, int, str | None]] | None = None
    """(node index, item, mark) of map items whose place in ``MapState.failed_items`` (mark
    ``f``) or ``MapState.redo`` (``r``) changed; None: in neither any more."""

    @property
    def run_status(self) -> RunStatus | None:
        """The run's final status when the event ended it."""
        return self.entry.run_status


@dataclass(slots=True)
class Step:
    """What an event changes, gathered while it is applied (the parts of its ``Outcome``)."""

    at: float
    commands: list[Command] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    dispatched: list[str] | None = None
    skipped: list[str] | None = None
    error: ErrorInfo | None = None
    worker_id: str | None = None
    retry_at: float | None = None
    run_status: RunStatus | None = None
    recorded_outputs: list[str] | None = None
    by: str | None = None
    redriven: list[str] | None = None
    cleared_outputs: list[str] | None = None
    progress: Any = None
    items_changed: list[tuple[int, int]] | None = None
    items_ended: list[tuple[int, int, ItemRun]] | None = None
    recorded_item: tuple[str, Any] | None = None
    items_marked: list[tuple[int, int, str | None]] | None = None

    def output_recorded(self, node_id: str) -> None:
        if self.recorded_outputs is None:
            self.recorded_outputs = [node_id]
        else:
            self.recorded_outputs.append(node_id)

    def item_marked(self, index: int, item: int, mark: str | None) -> None:
        if self.items_marked is None:
            self.items_marked = []
        self.items_marked.append((index, item, mark))

    def item_changed(self, index: int, item: int) -> None:
        if self.items_changed is None:
            self.items_changed = []
        self.items_changed.append((index, item))

    def item_ended(self, index: int, item: int, state: ItemRun) -> None:
        if self.items_ended is None:
            self.items_ended = []
        self.items_ended.append((index, item, state))

    def outcome(self, event: Event) -> Outcome:
        node_id: str | None = getattr(event, "node_id", None)
        entry = HistoryEntry(
            KIND_OF_EVENT[type(event)],
            event.at,
            node_id,
            None if node_id is None else getattr(event, "attempt", None),
            self.worker_id,
            self.error,
            self.retry_at,
            () if self.dispatched is None else tuple(self.dispatched),
            () if self.skipped is None else tuple(self.skipped),
            self.run_status,
            self.by,
            () if self.redriven is None else tuple(self.redriven),
            self.progress,
        )
        resumed = self.redriven is not None
        return Outcome(
            self.commands,
            entry,
            self.changed,
            self.recorded_outputs,
            self.cleared_outputs,
            resumed,
            self.items_changed,
            self.items_ended,
            self.recorded_item,
            self.items_marked,
        )
