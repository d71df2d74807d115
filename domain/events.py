"""Events (past tense: what happened) and commands (imperative: what to do next).

Every message about a node carries (run_id, node_id, attempt) so stale and duplicate deliveries can
be recognised and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.statuses import RunStatus


@dataclass(frozen=True, slots=True)
class RunStarted:
    """``definition_id``: the definition the run was created from, when its sender knows it (a store
    can then make the run's initial state without reading it)."""

    run_id: str
    at: float
    definition_id: str | None = None
    started_by: str | None = None
    """Who started the run (the API token's name); None when no token was needed."""


@dataclass(frozen=True, slots=True)
class NodeStarted:
    run_id: str
    node_id: str
    attempt: int
    worker_id: str
    at: float


class _OutputLost:
    def __repr__(self) -> str:
        return "OUTPUT_LOST"


OUTPUT_LOST: Any = _OutputLost()
"""The ``output`` of a success whose output was stored apart from its event and is gone (lost with
the store's data): the attempt fails instead of completing with nothing."""


@dataclass(frozen=True, slots=True)
class NodeSucceeded:
    """``worker_id`` and ``started_at`` say who ran the attempt and when it began, so a worker
    need not report the start of an attempt that ends quickly."""

    run_id: str
    node_id: str
    attempt: int
    output: Any
    at: float
    worker_id: str = ""
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class NodeFailed:
    run_id: str
    node_id: str
    attempt: int
    error_type: str
    message: str
    at: float
    retryable: bool = True
    worker_id: str = ""
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class AttemptTimedOut:
    """The orchestrator's deadline for an attempt has passed (``at``) with no result from its worker:
    it counts when the attempt is still in flight and has run its node's timeout since it last
    started, or gone its ``heartbeat_timeout_seconds`` without a heartbeat (a deadline set by an
    earlier start, or before a later heartbeat, does not: ``domain.heartbeats``)."""

    run_id: str
    node_id: str
    attempt: int
    at: float


@dataclass(frozen=True, slots=True)
class HeartbeatReceived:
    """The handler of an attempt said it is alive (``ctx.heartbeat``) at ``at``, with ``details``
    (a small JSON value: its progress; None when it gave none). Its worker sends at most one per
    attempt per interval, carrying the latest. ``worker_id`` and ``started_at`` say who runs the
    attempt since when, should the beat come before the report of the attempt's start."""

    run_id: str
    node_id: str
    attempt: int
    at: float
    worker_id: str = ""
    started_at: float | None = None
    details: Any = None


@dataclass(frozen=True, slots=True)
class RetryDue:
    """A scheduled retry's time has come."""

    run_id: str
    node_id: str
    attempt: int
    at: float


@dataclass(frozen=True, slots=True)
class RunTimedOut:
    """The run's own deadline (its definition's ``timeout_seconds`` after it started) has come."""

    run_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelRequested:
    run_id: str
    at: float
    cancelled_by: str | None = None
    """Who asked for the cancel (the API token's name); None when no token was needed."""


@dataclass(frozen=True, slots=True)
class EventDeadLettered:
    """No orchestrator could apply the event that starts the run (``node_id`` None) or the one that
    dispatches a retry (``node_id``, ``attempt``: the attempt it was to dispatch); it went to the
    dead-letter stream. ``message`` says which entry and why. The run fails at that point, so it
    still ends."""

    run_id: str
    node_id: str | None
    attempt: int
    message: str
    at: float


@dataclass(frozen=True, slots=True)
class RedriveRequested:
    """A FAILED or CANCELLED run is to run again (``domain.redrive``): its failed, cancelled and
    skipped nodes, and ``from_nodes`` with their descendants even when they completed."""

    run_id: str
    at: float
    from_nodes: tuple[str, ...] = ()


type Event = (
    RunStarted
    | NodeStarted
    | NodeSucceeded
    | NodeFailed
    | AttemptTimedOut
    | HeartbeatReceived
    | RetryDue
    | RunTimedOut
    | CancelRequested
    | EventDeadLettered
    | RedriveRequested
)


@dataclass(frozen=True, slots=True)
class DispatchNode:
    run_id: str
    node_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ScheduleRetry:
    run_id: str
    node_id: str
    attempt: int
    due_at: float


@dataclass(frozen=True, slots=True)
class ScheduleDeadline:
    """Time the attempt out at ``due_at`` unless its result comes first (``AttemptTimedOut``)."""

    run_id: str
    node_id: str
    attempt: int
    due_at: float


@dataclass(frozen=True, slots=True)
class ScheduleRunDeadline:
    """End the run at ``due_at`` unless it has ended (``RunTimedOut``)."""

    run_id: str
    due_at: float


@dataclass(frozen=True, slots=True)
class FinishRun:
    run_id: str
    status: RunStatus
    workflow: str = field(default="", compare=False)
    """The run's workflow name, for whoever counts runs by workflow (not part of the command's
    identity)."""


@dataclass(frozen=True, slots=True)
class CancelAttempts:
    """Tell the workers holding these attempts (``(node_id, attempt)``) that their run ended
    without them (cancelled, failed fast, timed out): their handlers should stop. Delivered after
    the commit, best effort; the attempts' late results are stale and ignored either way."""

    run_id: str
    attempts: tuple[tuple[str, int], ...]


type Command = (
    DispatchNode | ScheduleRetry | ScheduleDeadline | ScheduleRunDeadline | FinishRun | CancelAttempts
)
