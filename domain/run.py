"""The run aggregate: one run's state and the pure transition function over it.

``Run.handle(event)`` mutates the run and returns the commands to carry out. Applying an event that is
stale (an old attempt), duplicated, or arrives after the run ended changes nothing and returns no
commands (``Run.apply`` returns None then, to tell it from an applied event with no consequence).
Work per event is O(out-degree) of the node concerned, plus O(descendants) once when a node fails for
good (they are skipped).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from domain.plan import NodeSpec, WorkflowPlan
from domain.statuses import NodeStatus, RunStatus

UPSTREAM_FAILED = "UpstreamFailed"
DEAD_LETTERED = "DeadLettered"
_IN_FLIGHT = (NodeStatus.QUEUED, NodeStatus.RUNNING)


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
    status: NodeStatus = NodeStatus.PENDING
    attempt: int = 0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    error: ErrorInfo | None = None
    retry_at: float | None = None
    failed_attempts: list[FailedAttempt] | None = None


@dataclass(slots=True)
class Run:
    run_id: str
    definition_id: str
    plan: WorkflowPlan
    input: dict[str, Any]
    created_at: float
    nodes: list[NodeRun]
    status: RunStatus = RunStatus.PENDING
    started_at: float | None = None
    finished_at: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    unfinished: int = 0
    in_flight: int = 0
    failed_nodes: int = 0
    last_skipped: tuple[str, ...] = ()
    """Nodes the last applied event skipped (for its history entry)."""

    @classmethod
    def create(
        cls,
        run_id: str,
        definition_id: str,
        plan: WorkflowPlan,
        run_input: dict[str, Any],
        at: float,
    ) -> Run:
        nodes = [NodeRun(waiting_on=len(spec.parents)) for spec in plan.nodes]
        return cls(run_id, definition_id, plan, run_input, at, nodes, unfinished=len(nodes))

    # -- queries ---------------------------------------------------------------------------------

    def node(self, node_id: str) -> NodeRun:
        return self.nodes[self.plan.index[node_id]]

    def node_states(self) -> Iterator[tuple[NodeSpec, NodeRun]]:
        return zip(self.plan.nodes, self.nodes, strict=True)

    @property
    def finished_count(self) -> int:
        return len(self.nodes) - self.unfinished

    # -- transitions -----------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        return self.apply(event) or []

    def apply(self, event: Event) -> list[Command] | None:
        """The commands ``event`` calls for; None when it changed nothing (stale, repeated, late)."""
        self.last_skipped = ()
        handler = _HANDLERS[type(event)]
        return handler(self, event)

    def _on_run_started(self, event: RunStarted) -> list[Command] | None:
        if self.status is not RunStatus.PENDING:
            return None
        self.status = RunStatus.RUNNING
        self.started_at = event.at
        return [self._dispatch(index, event.at) for index in self.plan.roots]

    def _on_node_started(self, event: NodeStarted) -> list[Command] | None:
        node = self._current(event.node_id, event.attempt)
        # RUNNING under another worker: the task was taken over from a silent one.
        if node is None or (node.status is NodeStatus.RUNNING and node.worker_id == event.worker_id):
            return None
        node.status = NodeStatus.RUNNING
        node.started_at = event.at
        node.worker_id = event.worker_id
        return []

    def _on_node_succeeded(self, event: NodeSucceeded) -> list[Command] | None:
        node = self._current(event.node_id, event.attempt)
        if node is None:
            return None
        spec = self.plan.node(event.node_id)
        _record_worker(node, event.worker_id, event.started_at)
        self._close(node, NodeStatus.COMPLETED, event.at)
        node.error = None
        self.outputs[spec.id] = event.output
        commands: list[Command] = []
        nodes = self.nodes
        for child_index in spec.children:
            child = nodes[child_index]
            child.waiting_on -= 1
            if child.waiting_on == 0 and child.status is NodeStatus.PENDING:
                commands.append(self._dispatch(child_index, event.at))
        return self._finish_if_done(commands, event.at)

    def _on_node_failed(self, event: NodeFailed) -> list[Command] | None:
        node = self._current(event.node_id, event.attempt)
        if node is None:
            return None
        _record_worker(node, event.worker_id, event.started_at)
        error = ErrorInfo(event.error_type, event.message)
        return self._fail_attempt(node, event.node_id, error, event.at, event.retryable)

    def _on_attempt_timed_out(self, event: AttemptTimedOut) -> list[Command] | None:
        node = self._current(event.node_id, event.attempt)
        if node is None:
            return None
        spec = self.plan.node(event.node_id)
        limit = "its timeout" if spec.timeout_seconds is None else f"the timeout of {spec.timeout_seconds}s"
        error = ErrorInfo("TimeoutError", f"attempt {event.attempt} exceeded {limit}")
        return self._fail_attempt(node, event.node_id, error, event.at, True)

    def _on_retry_due(self, event: RetryDue) -> list[Command] | None:
        index = self._awaiting_retry(event.node_id, event.attempt)
        if index is None:
            return None
        self.nodes[index].retry_at = None
        return [self._dispatch(index, event.at)]

    def _on_cancel_requested(self, event: CancelRequested) -> list[Command] | None:
        if self.status.is_final:
            return None
        return self._end(RunStatus.CANCELLED, NodeStatus.CANCELLED, None, event.at)

    def _on_event_dead_lettered(self, event: EventDeadLettered) -> list[Command] | None:
        error = ErrorInfo(DEAD_LETTERED, event.message)
        if event.node_id is None:
            return self._fail_unstarted(error, event.at)
        return self._fail_awaiting_retry(event.node_id, event.attempt, error, event.at)

    def _fail_unstarted(self, error: ErrorInfo, at: float) -> list[Command] | None:
        """The run could not start: it fails, every node skipped with the reason."""
        if self.status is not RunStatus.PENDING:
            return None
        return self._end(RunStatus.FAILED, NodeStatus.SKIPPED, error, at)

    def _fail_awaiting_retry(
        self, node_id: str, attempt: int, error: ErrorInfo, at: float
    ) -> list[Command] | None:
        """The retry ``attempt`` of ``node_id`` could not be dispatched: the node fails for good."""
        index = self._awaiting_retry(node_id, attempt)
        if index is None:
            return None
        node = self.nodes[index]
        node.retry_at = None
        node.status = NodeStatus.FAILED
        node.error = error
        node.finished_at = at
        self.unfinished -= 1
        self.failed_nodes += 1
        self._skip_descendants(self.plan.nodes[index], at)
        return self._finish_if_done([], at)

    # -- helpers ---------------------------------------------------------------------------------

    def _end(
        self, status: RunStatus, unfinished_as: NodeStatus, error: ErrorInfo | None, at: float
    ) -> list[Command]:
        """End the run at once: every node not finished yet ends ``unfinished_as`` (with ``error``
        when given); touches every node once (bounded by MAX_NODES)."""
        for node in self.nodes:
            if not node.status.is_final:
                node.status = unfinished_as
                node.finished_at = at
                node.retry_at = None
                if error is not None:
                    node.error = error
        self.unfinished = 0
        self.in_flight = 0
        self.status = status
        self.finished_at = at
        return [FinishRun(self.run_id, status)]

    def _index_while_running(self, node_id: str) -> int | None:
        """The node's index; None when the run is not running or has no such node."""
        if self.status is not RunStatus.RUNNING:
            return None
        return self.plan.index.get(node_id)

    def _current(self, node_id: str, attempt: int) -> NodeRun | None:
        """The node if this (node, attempt) is the one in flight; None for stale or repeated news."""
        index = self._index_while_running(node_id)
        if index is None:
            return None
        node = self.nodes[index]
        if node.attempt != attempt or node.status not in _IN_FLIGHT:
            return None
        return node

    def _awaiting_retry(self, node_id: str, attempt: int) -> int | None:
        """The node's index if it waits for its retry ``attempt``; None for stale or repeated news."""
        index = self._index_while_running(node_id)
        if index is None:
            return None
        node = self.nodes[index]
        if node.retry_at is None or attempt != node.attempt + 1:
            return None
        return index

    def _dispatch(self, index: int, at: float) -> DispatchNode:
        node = self.nodes[index]
        node.status = NodeStatus.QUEUED
        node.attempt += 1
        node.queued_at = at
        node.started_at = None
        node.worker_id = None
        self.in_flight += 1
        return DispatchNode(self.run_id, self.plan.nodes[index].id, node.attempt)

    def _close(self, node: NodeRun, status: NodeStatus, at: float) -> None:
        node.status = status
        node.finished_at = at
        self.unfinished -= 1
        self.in_flight -= 1

    def _fail_attempt(
        self, node: NodeRun, node_id: str, error: ErrorInfo, at: float, retryable: bool
    ) -> list[Command]:
        """``node`` is the attempt in flight (checked by the caller)."""
        spec = self.plan.node(node_id)
        node.error = error
        if retryable and node.attempt < spec.retry.max_attempts:
            return [self._schedule_retry(spec, node, error, at)]
        self._close(node, NodeStatus.FAILED, at)
        self.failed_nodes += 1
        self._skip_descendants(spec, at)
        return self._finish_if_done([], at)

    def _schedule_retry(self, spec: NodeSpec, node: NodeRun, error: ErrorInfo, at: float) -> ScheduleRetry:
        if node.failed_attempts is None:
            node.failed_attempts = []
        node.failed_attempts.append(FailedAttempt(node.attempt, node.started_at, at, error))
        node.status = NodeStatus.PENDING
        node.retry_at = at + spec.retry.delay_before(node.attempt + 1)
        self.in_flight -= 1
        return ScheduleRetry(self.run_id, spec.id, node.attempt + 1, node.retry_at)

    def _skip_descendants(self, failed: NodeSpec, at: float) -> None:
        error = ErrorInfo(UPSTREAM_FAILED, f"skipped because upstream node '{failed.id}' failed")
        skipped: list[str] = []
        queue = deque(failed.children)
        while queue:
            index = queue.popleft()
            node = self.nodes[index]
            if node.status is NodeStatus.PENDING:
                node.status = NodeStatus.SKIPPED
                node.error = error
                node.finished_at = at
                self.unfinished -= 1
                skipped.append(self.plan.nodes[index].id)
                queue.extend(self.plan.nodes[index].children)
        self.last_skipped = tuple(skipped)

    def _finish_if_done(self, commands: list[Command], at: float) -> list[Command]:
        if self.unfinished == 0:
            self.status = RunStatus.FAILED if self.failed_nodes else RunStatus.COMPLETED
            self.finished_at = at
            commands.append(FinishRun(self.run_id, self.status))
        return commands


def _record_worker(node: NodeRun, worker_id: str, started_at: float | None) -> None:
    """The worker that reports an attempt's end ran it (it may have taken it over)."""
    if worker_id:
        node.worker_id = worker_id
    if started_at is not None:
        node.started_at = started_at


_HANDLERS: dict[type, Callable[[Run, Any], list[Command] | None]] = {
    RunStarted: Run._on_run_started,
    NodeStarted: Run._on_node_started,
    NodeSucceeded: Run._on_node_succeeded,
    NodeFailed: Run._on_node_failed,
    AttemptTimedOut: Run._on_attempt_timed_out,
    RetryDue: Run._on_retry_due,
    CancelRequested: Run._on_cancel_requested,
    EventDeadLettered: Run._on_event_dead_lettered,
}
