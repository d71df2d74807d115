"""A run's history: one entry per event that changed the run, in the order applied.

The entry says what happened and what it caused (nodes dispatched, descendants skipped, a retry
scheduled, the run ending), so a reader can follow a run without re-deriving the scheduling rules.
The run aggregate makes each entry (``Outcome.entry``); the store that keeps them numbers them from 1,
and a reader resumes after the last number seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.events import (
    AttemptTimedOut,
    CancelRequested,
    EventDeadLettered,
    HeartbeatReceived,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RedriveRequested,
    RetryDue,
    RunStarted,
    RunTimedOut,
)
from domain.node_state import ErrorInfo
from domain.statuses import RunStatus


class EntryKind(StrEnum):
    RUN_STARTED = "run_started"
    NODE_STARTED = "node_started"
    NODE_SUCCEEDED = "node_succeeded"
    NODE_FAILED = "node_failed"
    ATTEMPT_TIMED_OUT = "attempt_timed_out"
    RETRY_DUE = "retry_due"
    RUN_TIMED_OUT = "run_timed_out"
    CANCEL_REQUESTED = "cancel_requested"
    EVENT_DEAD_LETTERED = "event_dead_lettered"
    REDRIVE_REQUESTED = "redrive_requested"
    HEARTBEAT_RECEIVED = "heartbeat_received"


KIND_OF_EVENT: dict[type, EntryKind] = {
    RunStarted: EntryKind.RUN_STARTED,
    NodeStarted: EntryKind.NODE_STARTED,
    NodeSucceeded: EntryKind.NODE_SUCCEEDED,
    NodeFailed: EntryKind.NODE_FAILED,
    AttemptTimedOut: EntryKind.ATTEMPT_TIMED_OUT,
    RetryDue: EntryKind.RETRY_DUE,
    RunTimedOut: EntryKind.RUN_TIMED_OUT,
    CancelRequested: EntryKind.CANCEL_REQUESTED,
    EventDeadLettered: EntryKind.EVENT_DEAD_LETTERED,
    RedriveRequested: EntryKind.REDRIVE_REQUESTED,
    HeartbeatReceived: EntryKind.HEARTBEAT_RECEIVED,
}


@dataclass(slots=True)
class HistoryEntry:
    """Made once per applied event (not frozen: the hot path makes one per event; nobody changes
    it afterwards)."""

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
    by: str | None = None
    """Who asked for it (the API token's name), on the entries of a start and of a cancel."""
    redriven: tuple[str, ...] = ()
    """Nodes a redrive put back to run again (set on its entry only)."""
    progress: Any = None
    """The details a heartbeat carried (on its entry only; None when it carried none)."""

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
        if self.by is not None:
            document["by"] = self.by
        if self.redriven:
            document["redriven"] = list(self.redriven)
        if self.progress is not None:
            document["progress"] = self.progress
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> HistoryEntry:
        """The inverse of ``to_json``."""
        error = document.get("error")
        status = document.get("run_status")
        return cls(
            kind=EntryKind(document["kind"]),
            at=float(document["at"]),
            node_id=document.get("node_id"),
            attempt=document.get("attempt"),
            worker_id=document.get("worker_id"),
            error=None if error is None else ErrorInfo(error["type"], error["message"]),
            retry_at=document.get("retry_at"),
            dispatched=tuple(document.get("dispatched", ())),
            skipped=tuple(document.get("skipped", ())),
            run_status=None if status is None else RunStatus(status),
            by=document.get("by"),
            redriven=tuple(document.get("redriven", ())),
            progress=document.get("progress"),
        )
