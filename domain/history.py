"""A run's history: one entry per event that changed the run, in the order applied.

The entry says what happened and what it caused (nodes dispatched, descendants skipped, a retry
scheduled, the run ending), so a reader can follow a run without re-deriving the scheduling rules.
Entries are numbered from 1 by the store that keeps them; a reader resumes after the last number seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.events import (
    AttemptTimedOut,
    CancelRequested,
    Command,
    DispatchNode,
    Event,
    EventDeadLettered,
    FinishRun,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RetryDue,
    RunStarted,
    ScheduleRetry,
)
from domain.run import DEAD_LETTERED, ErrorInfo, Run
from domain.statuses import RunStatus


class EntryKind(StrEnum):
    RUN_STARTED = "run_started"
    NODE_STARTED = "node_started"
    NODE_SUCCEEDED = "node_succeeded"
    NODE_FAILED = "node_failed"
    ATTEMPT_TIMED_OUT = "attempt_timed_out"
    RETRY_DUE = "retry_due"
    CANCEL_REQUESTED = "cancel_requested"
    EVENT_DEAD_LETTERED = "event_dead_lettered"


KIND_OF_EVENT: dict[type, EntryKind] = {
    RunStarted: EntryKind.RUN_STARTED,
    NodeStarted: EntryKind.NODE_STARTED,
    NodeSucceeded: EntryKind.NODE_SUCCEEDED,
    NodeFailed: EntryKind.NODE_FAILED,
    AttemptTimedOut: EntryKind.ATTEMPT_TIMED_OUT,
    RetryDue: EntryKind.RETRY_DUE,
    CancelRequested: EntryKind.CANCEL_REQUESTED,
    EventDeadLettered: EntryKind.EVENT_DEAD_LETTERED,
}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: EntryKind
    at: float
    node_id: str | None = None
    attempt: int | None = None
    worker_id: str | None = None
    error: ErrorInfo | None = None
    retry_at: float | None = None
    """Set when the event scheduled another attempt of the node."""
    dispatched: tuple[str, ...] = ()
    """Nodes queued by this event (a retry queues the node itself)."""
    skipped: tuple[str, ...] = ()
    run_status: RunStatus | None = None
    """Set on the entry that ended the run."""

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON, leaving out what is empty."""
        document: dict[str, Any] = {"kind": self.kind.value, "at": self.at}
        if self.node_id is not None:
            document["node_id"] = self.node_id
            document["attempt"] = self.attempt
        if self.worker_id:
            document["worker_id"] = self.worker_id
        if self.error is not None:
            document["error"] = {"type": self.error.type, "message": self.error.message}
        if self.retry_at is not None:
            document["retry_at"] = self.retry_at
        if self.dispatched:
            document["dispatched"] = list(self.dispatched)
        if self.skipped:
            document["skipped"] = list(self.skipped)
        if self.run_status is not None:
            document["run_status"] = self.run_status.value
        return document


def entry_for(event: Event, commands: list[Command], run: Run, skipped: tuple[str, ...]) -> HistoryEntry:
    """The entry of an event ``run`` has just applied, given the commands it returned."""
    dispatched: list[str] = []
    retry_at = None
    run_status = None
    for command in commands:
        if type(command) is DispatchNode:
            dispatched.append(command.node_id)
        elif type(command) is ScheduleRetry:
            retry_at = command.due_at
        elif type(command) is FinishRun:
            run_status = command.status
    node_id: str | None = getattr(event, "node_id", None)
    error = None
    worker_id = None
    if type(event) is EventDeadLettered:
        error = ErrorInfo(DEAD_LETTERED, event.message)
    elif node_id is not None:
        node = run.node(node_id)
        if type(event) in (NodeFailed, AttemptTimedOut):
            error = node.error
        if type(event) in (NodeStarted, NodeSucceeded, NodeFailed):
            worker_id = node.worker_id
    return HistoryEntry(
        kind=KIND_OF_EVENT[type(event)],
        at=event.at,
        node_id=node_id,
        attempt=None if node_id is None else getattr(event, "attempt", None),
        worker_id=worker_id,
        error=error,
        retry_at=retry_at,
        dispatched=tuple(dispatched),
        skipped=skipped,
        run_status=run_status,
    )
