"""The run aggregate: one run's state and the pure transition function over it.

``Run.apply(event)`` changes the run and returns its ``Outcome``: the commands to carry out, the
history entry, and which nodes changed (what a store must write). An event that is stale (an old
attempt), repeated, or arrives after the run ended changes nothing and returns None. Every backend
runs this code: it is the only place the rules of a run are written (ARCHITECTURE.md, "Written once").
Work per event is O(out-degree) of the node concerned, plus O(descendants) once when a node fails for
good (they are skipped), and O(nodes) when the run ends at once (cancel).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from domain.errors import RunNotActive
from domain.events import (
    OUTPUT_LOST,
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
    ScheduleDeadline,
    ScheduleRetry,
)
from domain.history import KIND_OF_EVENT, HistoryEntry
from domain.node_state import ErrorInfo, FailedAttempt, NodeRun
from domain.plan import NodeSpec, WorkflowPlan
from domain.statuses import NodeStatus, RunStatus

UPSTREAM_FAILED = "UpstreamFailed"
DEAD_LETTERED = "DeadLettered"
OUTPUT_LOST_ERROR = "OutputLost"
TIMEOUT_ERROR = "TimeoutError"
DEADLINE_GRACE_SECONDS = 5.0
"""The orchestrator's deadline for an attempt is its node's timeout plus this: the worker enforces
the timeout itself and reports first; the deadline catches a worker that died or hangs."""

_IN_FLIGHT = (NodeStatus.QUEUED, NodeStatus.RUNNING)


def ensure_runnable(run_id: str, status: RunStatus) -> None:
    """A task of a run that is no longer RUNNING (cancelled, or ended) must not start: raises
    ``RunNotActive`` (the worker acknowledges the task without running it)."""
    if status is not RunStatus.RUNNING:
        raise RunNotActive(run_id, status.value)


def timeout_message(attempt: int, timeout_seconds: float | None) -> str:
    """The error message of an attempt that ran past its node's timeout (worker or deadline)."""
    limit = "its timeout" if timeout_seconds is None else f"the timeout of {timeout_seconds}s"
    return f"attempt {attempt} exceeded {limit}"


@dataclass(slots=True)
class Outcome:
    """What one applied event changed: everything a store needs to commit it. (Not frozen, like the
    other objects of the hot path: it is made once per event; nobody changes it afterwards.)"""

    commands: list[Command]
    entry: HistoryEntry
    changed: list[int]
    """Indices (in the plan) of the nodes whose state changed; an index may appear more than once."""
    recorded_output: str | None = None
    """The node whose output the event recorded in ``Run.outputs``."""

    @property
    def run_status(self) -> RunStatus | None:
        """The run's final status when the event ended it."""
        return self.entry.run_status


@dataclass(slots=True)
class _Step:
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
    recorded_output: str | None = None

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
        )
        return Outcome(self.commands, entry, self.changed, self.recorded_output)


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

    @classmethod
    def create(
        cls,
        run_id: str,
        definition_id: str,
        plan: WorkflowPlan,
        run_input: dict[str, Any],
        at: float,
    ) -> Run:
        nodes = [NodeRun.initial(spec) for spec in plan.nodes]
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

    def apply(self, event: Event) -> Outcome | None:
        """Apply ``event``; None when it changed nothing (stale, repeated, late)."""
        step = _Step(event.at)
        if not _HANDLERS[type(event)](self, event, step):
            return None
        return step.outcome(event)

    def _on_run_started(self, event: RunStarted, step: _Step) -> bool:
        if self.status is not RunStatus.PENDING:
            return False
        self.status = RunStatus.RUNNING
        self.started_at = event.at
        for index in self.plan.roots:
            self._dispatch(index, step)
        return True

    def _on_node_started(self, event: NodeStarted, step: _Step) -> bool:
        index = self._current(event.node_id, event.attempt)
        if index is None:
            return False
        node = self.nodes[index]
        # RUNNING under another worker: the task was taken over from a silent one.
        if node.status is NodeStatus.RUNNING and node.worker_id == event.worker_id:
            return False
        node.status = NodeStatus.RUNNING
        node.started_at = event.at
        node.worker_id = event.worker_id
        step.changed.append(index)
        step.worker_id = node.worker_id
        timeout = self.plan.nodes[index].timeout_seconds
        if timeout is not None:
            due_at = event.at + timeout + DEADLINE_GRACE_SECONDS
            step.commands.append(ScheduleDeadline(self.run_id, event.node_id, event.attempt, due_at))
        return True

    def _on_node_succeeded(self, event: NodeSucceeded, step: _Step) -> bool:
        index = self._current(event.node_id, event.attempt)
        if index is None:
            return False
        node = self.nodes[index]
        _record_worker(node, event.worker_id, event.started_at)
        step.worker_id = node.worker_id
        if event.output is OUTPUT_LOST:
            message = f"the output of attempt {event.attempt} was lost before it was recorded"
            self._fail_attempt(index, ErrorInfo(OUTPUT_LOST_ERROR, message), True, step)
            return True
        spec = self.plan.nodes[index]
        self._close(index, NodeStatus.COMPLETED, step)
        node.error = None
        self.outputs[spec.id] = event.output
        step.recorded_output = spec.id
        nodes = self.nodes
        for child_index in spec.children:
            child = nodes[child_index]
            child.waiting_on -= 1
            step.changed.append(child_index)
            if child.waiting_on == 0 and child.status is NodeStatus.PENDING:
                self._dispatch(child_index, step)
        self._finish_if_done(step)
        return True

    def _on_node_failed(self, event: NodeFailed, step: _Step) -> bool:
        index = self._current(event.node_id, event.attempt)
        if index is None:
            return False
        node = self.nodes[index]
        _record_worker(node, event.worker_id, event.started_at)
        step.worker_id = node.worker_id
        self._fail_attempt(index, ErrorInfo(event.error_type, event.message), event.retryable, step)
        return True

    def _on_attempt_timed_out(self, event: AttemptTimedOut, step: _Step) -> bool:
        index = self._current(event.node_id, event.attempt)
        if index is None:
            return False
        node = self.nodes[index]
        timeout = self.plan.nodes[index].timeout_seconds
        if timeout is not None and node.started_at is not None and event.at < node.started_at + timeout:
            return False  # set by an earlier start of this attempt: it has not run its timeout yet
        error = ErrorInfo(TIMEOUT_ERROR, timeout_message(event.attempt, timeout))
        self._fail_attempt(index, error, True, step)
        return True

    def _on_retry_due(self, event: RetryDue, step: _Step) -> bool:
        index = self._awaiting_retry(event.node_id, event.attempt)
        if index is None:
            return False
        self.nodes[index].retry_at = None
        self._dispatch(index, step)
        return True

    def _on_cancel_requested(self, event: CancelRequested, step: _Step) -> bool:
        if self.status.is_final:
            return False
        self._end(RunStatus.CANCELLED, NodeStatus.CANCELLED, None, step)
        return True

    def _on_event_dead_lettered(self, event: EventDeadLettered, step: _Step) -> bool:
        error = ErrorInfo(DEAD_LETTERED, event.message)
        if event.node_id is None:
            applied = self._fail_unstarted(error, step)
        else:
            applied = self._fail_awaiting_retry(event.node_id, event.attempt, error, step)
        if applied:
            step.error = error
        return applied

    def _fail_unstarted(self, error: ErrorInfo, step: _Step) -> bool:
        """The run could not start: it fails, every node skipped with the reason."""
        if self.status is not RunStatus.PENDING:
            return False
        self._end(RunStatus.FAILED, NodeStatus.SKIPPED, error, step)
        return True

    def _fail_awaiting_retry(self, node_id: str, attempt: int, error: ErrorInfo, step: _Step) -> bool:
        """The retry ``attempt`` of ``node_id`` could not be dispatched: the node fails for good."""
        index = self._awaiting_retry(node_id, attempt)
        if index is None:
            return False
        node = self.nodes[index]
        node.retry_at = None
        node.status = NodeStatus.FAILED
        node.error = error
        node.finished_at = step.at
        step.changed.append(index)
        self.unfinished -= 1
        self.failed_nodes += 1
        self._skip_descendants(self.plan.nodes[index], step)
        self._finish_if_done(step)
        return True

    # -- helpers ---------------------------------------------------------------------------------

    def _end(
        self, status: RunStatus, unfinished_as: NodeStatus, error: ErrorInfo | None, step: _Step
    ) -> None:
        """End the run at once: every node not finished yet ends ``unfinished_as`` (with ``error``
        when given); touches every node once (bounded by MAX_NODES)."""
        for index, node in enumerate(self.nodes):
            if not node.status.is_final:
                node.status = unfinished_as
                node.finished_at = step.at
                node.retry_at = None
                if error is not None:
                    node.error = error
                step.changed.append(index)
        self.unfinished = 0
        self.in_flight = 0
        self.status = status
        self.finished_at = step.at
        step.run_status = status
        step.commands.append(FinishRun(self.run_id, status))

    def _index_while_running(self, node_id: str) -> int | None:
        """The node's index; None when the run is not running or has no such node."""
        if self.status is not RunStatus.RUNNING:
            return None
        return self.plan.index.get(node_id)

    def _current(self, node_id: str, attempt: int) -> int | None:
        """The node's index if this (node, attempt) is the one in flight; None for stale or repeated
        news."""
        index = self._index_while_running(node_id)
        if index is None:
            return None
        node = self.nodes[index]
        if node.attempt != attempt or node.status not in _IN_FLIGHT:
            return None
        return index

    def _awaiting_retry(self, node_id: str, attempt: int) -> int | None:
        """The node's index if it waits for its retry ``attempt``; None for stale or repeated news."""
        index = self._index_while_running(node_id)
        if index is None:
            return None
        node = self.nodes[index]
        if node.retry_at is None or attempt != node.attempt + 1:
            return None
        return index

    def _dispatch(self, index: int, step: _Step) -> None:
        node = self.nodes[index]
        node.status = NodeStatus.QUEUED
        node.attempt += 1
        node.queued_at = step.at
        node.started_at = None
        node.worker_id = None
        self.in_flight += 1
        step.changed.append(index)
        node_id = self.plan.nodes[index].id
        step.commands.append(DispatchNode(self.run_id, node_id, node.attempt))
        if step.dispatched is None:
            step.dispatched = [node_id]
        else:
            step.dispatched.append(node_id)

    def _close(self, index: int, status: NodeStatus, step: _Step) -> None:
        node = self.nodes[index]
        node.status = status
        node.finished_at = step.at
        self.unfinished -= 1
        self.in_flight -= 1
        step.changed.append(index)

    def _fail_attempt(self, index: int, error: ErrorInfo, retryable: bool, step: _Step) -> None:
        """The attempt in flight of node ``index`` (checked by the caller) failed with ``error``."""
        spec = self.plan.nodes[index]
        node = self.nodes[index]
        node.error = error
        step.error = error
        step.changed.append(index)
        if retryable and node.attempt < spec.retry.max_attempts:
            self._schedule_retry(spec, node, error, step)
            return
        self._close(index, NodeStatus.FAILED, step)
        self.failed_nodes += 1
        self._skip_descendants(spec, step)
        self._finish_if_done(step)

    def _schedule_retry(self, spec: NodeSpec, node: NodeRun, error: ErrorInfo, step: _Step) -> None:
        if node.failed_attempts is None:
            node.failed_attempts = []
        node.failed_attempts.append(FailedAttempt(node.attempt, node.started_at, step.at, error))
        node.status = NodeStatus.PENDING
        node.retry_at = step.at + spec.retry.delay_before(node.attempt + 1)
        self.in_flight -= 1
        step.retry_at = node.retry_at
        step.commands.append(ScheduleRetry(self.run_id, spec.id, node.attempt + 1, node.retry_at))

    def _skip_descendants(self, failed: NodeSpec, step: _Step) -> None:
        error = ErrorInfo(UPSTREAM_FAILED, f"skipped because upstream node '{failed.id}' failed")
        queue = deque(failed.children)
        while queue:
            index = queue.popleft()
            node = self.nodes[index]
            if node.status is NodeStatus.PENDING:
                node.status = NodeStatus.SKIPPED
                node.error = error
                node.finished_at = step.at
                self.unfinished -= 1
                step.changed.append(index)
                if step.skipped is None:
                    step.skipped = []
                step.skipped.append(self.plan.nodes[index].id)
                queue.extend(self.plan.nodes[index].children)

    def _finish_if_done(self, step: _Step) -> None:
        if self.unfinished == 0:
            self.status = RunStatus.FAILED if self.failed_nodes else RunStatus.COMPLETED
            self.finished_at = step.at
            step.run_status = self.status
            step.commands.append(FinishRun(self.run_id, self.status))


def _record_worker(node: NodeRun, worker_id: str, started_at: float | None) -> None:
    """The worker that reports an attempt's end ran it (it may have taken it over)."""
    if worker_id:
        node.worker_id = worker_id
    if started_at is not None:
        node.started_at = started_at


_HANDLERS: dict[type, Callable[[Run, Any, _Step], bool]] = {
    RunStarted: Run._on_run_started,
    NodeStarted: Run._on_node_started,
    NodeSucceeded: Run._on_node_succeeded,
    NodeFailed: Run._on_node_failed,
    AttemptTimedOut: Run._on_attempt_timed_out,
    RetryDue: Run._on_retry_due,
    CancelRequested: Run._on_cancel_requested,
    EventDeadLettered: Run._on_event_dead_lettered,
}
