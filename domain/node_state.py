"""The state of one node of a run: its status, attempts, times, worker and errors."""

from __future__ import annotations

from dataclasses import dataclass

from domain.plan import NodeSpec
from domain.statuses import NodeStatus


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    type: str
    message: str


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    attempt: int
    started_at: float | None
    finished_at: float
    error: ErrorInfo


@dataclass(slots=True)
class NodeRun:
    waiting_on: int
    """Parents not completed yet: the node is ready when this reaches 0."""
    status: NodeStatus = NodeStatus.PENDING
    attempt: int = 0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    error: ErrorInfo | None = None
    retry_at: float | None = None
    failed_attempts: list[FailedAttempt] | None = None

    @classmethod
    def initial(cls, spec: NodeSpec) -> NodeRun:
        """A node of a run that has not started: waiting on all its parents."""
        return cls(waiting_on=len(spec.parents))
