"""The state of one node of a run: its status, attempts, times, worker and errors."""

from __future__ import annotations

from dataclasses import dataclass

from domain.map_state import MapState
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
    """Parents not finished yet."""
    status: NodeStatus = NodeStatus.PENDING
    attempt: int = 0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    error: ErrorInfo | None = None
    retry_at: float | None = None
    failed_attempts: list[FailedAttempt] | None = None
    failed_parents: int = 0
    """Parents that ended FAILED or CANCELLED (counted until the node's trigger rule decided)."""
    skipped_parents: int = 0
    attempts_before: int = 0
    """Attempts made before the run's latest redrive of this node: attempt numbers go on counting,
    the retry policy counts from here (each redrive gives the node its whole policy again)."""
    items: MapState | None = None
    """A map node's items, once its list was read (before it starts, when its source recorded it)."""

    @property
    def attempts_this_time(self) -> int:
        """Attempts made since the node was last redriven (all of them if it never was)."""
        return self.attempt - self.attempts_before

    @property
    def undecided(self) -> bool:
        """Whether the node's trigger rule and condition have not decided yet."""
        return self.attempt == self.attempts_before and self.status is NodeStatus.PENDING

    @classmethod
    def initial(cls, spec: NodeSpec) -> NodeRun:
        """A node of a run that has not started: waiting on all its parents."""
        return cls(waiting_on=len(spec.parents))
