"""The run aggregate: one run's state and the pure transition function over it.

``Run.apply(event)`` changes the run and returns its ``Outcome``: the commands to carry out, the
history entry, and which nodes changed (what a store must write). An event that is stale (an old
attempt), repeated, or arrives after the run ended changes nothing and returns None. Every backend
runs this code: it is the only place the rules of a run are written (ARCHITECTURE.md, "Written once").

When a node ends, each child's counters by parent outcome move and its trigger rule decides whether
it waits, runs (its condition checked first) or is skipped; a skip ends the child too, and its own
children are told in turn. Work per event is O(out-degree) of the nodes that end, O(nodes) once when
the run ends at once (cancel, timeout, fail-fast).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from domain.errors import RunNotActive, TemplateError
from domain.events import (
    OUTPUT_LOST,
    AttemptTimedOut,
    CancelAttempts,
    CancelRequested,
    DispatchNode,
    Event,
    EventDeadLettered,
    FinishRun,
    HeartbeatReceived,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RedriveRequested,
    RetryDue,
    RunStarted,
    RunTimedOut,
    ScheduleRetry,
    ScheduleRunDeadline,
)
from domain.heartbeats import apply_heartbeat, schedule_deadlines, timed_out_error
from domain.idempotency import IdempotentStart
from domain.map_run import (
    count_items,
    end_items,
    item_dead_lettered,
    item_failed,
    item_retry_due,
    item_started,
    item_succeeded,
    item_timed_out,
    live_attempts,
    start_map,
)
from domain.map_spec import ITEM_SEPARATOR, split_key
from domain.node_state import ErrorInfo, FailedAttempt, NodeRun
from domain.outcome import Outcome, Step
from domain.plan import DEADLINE_GRACE_SECONDS, NodeSpec, WorkflowPlan
from domain.reasons import (
    CONDITION_FALSE,
    DEAD_LETTERED,
    OUTPUT_ERROR,
    OUTPUT_LOST_ERROR,
    fail_fast_error,
    output_lost_message,
    run_timed_out_error,
    skip_error,
)
from domain.redrive import apply_redrive
from domain.run_data import condition_verdict, render_output
from domain.statuses import NodeStatus, RunStatus
from domain.templates import WORKFLOW_NAMESPACE
from domain.trigger_rules import ParentOutcome, Readiness, TriggerRule, readiness

__all__ = ["DEADLINE_GRACE_SECONDS", "Outcome", "Run", "ensure_runnable"]

_IN_FLIGHT = (NodeStatus.QUEUED, NodeStatus.RUNNING)
_PENDING = NodeStatus.PENDING
_ALL_SUCCESS = TriggerRule.ALL_SUCCESS
_FAILED, _SKIPPED = ParentOutcome.FAILED, ParentOutcome.SKIPPED
_OUTCOME_OF = {
    NodeStatus.COMPLETED: ParentOutcome.SUCCEEDED,
    NodeStatus.FAILED: ParentOutcome.FAILED,
    NodeStatus.CANCELLED: ParentOutcome.FAILED,
    NodeStatus.SKIPPED: ParentOutcome.SKIPPED,
}
"""How a node's end counts for its children's trigger rules (a cancelled parent counts as failed)."""


def ensure_runnable(run_id: str, status: RunStatus) -> None:
    """A task of a run that is no longer RUNNING (cancelled, or ended) must not start: raises
    ``RunNotActive`` (the worker acknowledges the task without running it)."""
    if status is not RunStatus.RUNNING:
        raise RunNotActive(run_id, status.value)


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
    """Nodes that failed for good and are not optional: the run fails when it ends with any."""
    error: ErrorInfo | None = None
    """Why the run failed when no node's error says it (its timeout, its output mapping)."""
    output: Any = None
    """The run's output (the definition's ``output`` rendered when the run completed)."""
    start_request: IdempotentStart | None = None
    """The idempotency key the run was started with, and its request's fingerprint."""
    started_by: str | None = None
    """The name of the API token that started the run (None: no token was needed)."""
    cancelled_by: str | None = None
    """The name of the API token that cancelled the run."""
    redriven_at: float | None = None
    """When the run was last redriven (``domain.redrive``): its timeout counts from then."""

    @classmethod
    def create(
        cls,
        run_id: str,
        definition_id: str,
        plan: WorkflowPlan,
        run_input: dict[str, Any],
        at: float,
        start_request: IdempotentStart | None = None,
        started_by: str | None = None,
    ) -> Run:
        nodes = [NodeRun.initial(spec) for spec in plan.nodes]
        return cls(
            run_id,
            definition_id,
            plan,
            run_input,
            at,
            nodes,
            unfinished=len(nodes),
            start_request=start_request,
            started_by=started_by,
        )

    def start_event(self) -> RunStarted:
        """The event that announces a run just created (queued by the store that adds it)."""
        return RunStarted(self.run_id, self.created_at, self.definition_id, self.started_by)

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
        step = Step(event.at)
        if not _HANDLERS[type(event)](self, event, step):
            return None
        return step.outcome(event)

    def _on_run_started(self, event: RunStarted, step: Step) -> bool:
        if self.status is not RunStatus.PENDING:
            return False
        self.status = RunStatus.RUNNING
        self.started_at = event.at
        step.by = event.started_by
        if self.plan.timeout_seconds is not None:
            step.commands.append(ScheduleRunDeadline(self.run_id, event.at + self.plan.timeout_seconds))
        if WORKFLOW_NAMESPACE in self.plan.map_sources:
            count_items(self, WORKFLOW_NAMESPACE, step)
        ended: deque[int] = deque()
        for index in self.plan.roots:
            self._start_if_condition_holds(index, step, ended)
        self._tell_children(ended, step)
        self._finish_if_done(step)
        return True

    def _on_node_started(self, event: NodeStarted, step: Step) -> bool:
        if ITEM_SEPARATOR in event.node_id:
            return item_started(self, event, _item_of(event.node_id), step)
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
        schedule_deadlines(self.plan, self.plan.nodes[index], event, step)
        return True

    def _on_node_succeeded(self, event: NodeSucceeded, step: Step) -> bool:
        if ITEM_SEPARATOR in event.node_id:
            return item_succeeded(self, event, _item_of(event.node_id), step)
        index = self._current(event.node_id, event.attempt)
        if index is None:
            return False
        node = self.nodes[index]
        _record_worker(node, event.worker_id, event.started_at)
        step.worker_id = node.worker_id
        if event.output is OUTPUT_LOST:
            message = output_lost_message(event.attempt)
            self._fail_attempt(index, ErrorInfo(OUTPUT_LOST_ERROR, message), True, step)
            return True
        spec = self.plan.nodes[index]
        self._close(index, NodeStatus.COMPLETED, step)
        node.error = None
        self.outputs[spec.id] = event.output
        step.output_recorded(spec.id)
        if spec.id in self.plan.map_sources:
            count_items(self, spec.id, step)
        self._tell_children(deque([index]), step)
        self._finish_if_done(step)
        return True

    def _on_node_failed(self, event: NodeFailed, step: Step) -> bool:
        if ITEM_SEPARATOR in event.node_id:
            return item_failed(self, event, _item_of(event.node_id), step)
        index = self._current(event.node_id, event.attempt)
        if index is None:
            return False
        node = self.nodes[index]
        _record_worker(node, event.worker_id, event.started_at)
        step.worker_id = node.worker_id
        self._fail_attempt(index, ErrorInfo(event.error_type, event.message), event.retryable, step)
        return True

    def _on_attempt_timed_out(self, event: AttemptTimedOut, step: Step) -> bool:
        if ITEM_SEPARATOR in event.node_id:
            return item_timed_out(self, event, _item_of(event.node_id), step)
        index = self._current(event.node_id, event.attempt)
        if index is None:
            return False
        error = timed_out_error(self.plan, self.plan.nodes[index], self.nodes[index], event.at)
        if error is None:
            return False  # set by an earlier start of this attempt, or before a heartbeat since
        # Its worker is told to stop it (a hung handler would hold its slot on).
        step.commands.append(CancelAttempts(self.run_id, ((event.node_id, event.attempt),)))
        self._fail_attempt(index, error, True, step)
        return True

    def _on_retry_due(self, event: RetryDue, step: Step) -> bool:
        if ITEM_SEPARATOR in event.node_id:
            return item_retry_due(self, event, _item_of(event.node_id), step)
        index = self._awaiting_retry(event.node_id, event.attempt)
        if index is None:
            return False
        self.nodes[index].retry_at = None
        self._dispatch(index, step)
        return True

    def _on_run_timed_out(self, event: RunTimedOut, step: Step) -> bool:
        if self.status is not RunStatus.RUNNING:
            return False
        began = self.redriven_at if self.redriven_at is not None else self.started_at
        timeout = self.plan.timeout_seconds
        if timeout is not None and began is not None and event.at < began + timeout:
            return False  # the deadline of the run's life before its redrive
        error = run_timed_out_error(self.plan.timeout_seconds)
        self.error = step.error = error
        self._end(RunStatus.FAILED, NodeStatus.CANCELLED, error, step)
        return True

    def _on_cancel_requested(self, event: CancelRequested, step: Step) -> bool:
        if self.status.is_final:
            return False
        self.cancelled_by = step.by = event.cancelled_by
        self._end(RunStatus.CANCELLED, NodeStatus.CANCELLED, None, step)
        return True

    def _on_event_dead_lettered(self, event: EventDeadLettered, step: Step) -> bool:
        error = ErrorInfo(DEAD_LETTERED, event.message)
        if event.node_id is None:
            applied = self._fail_unstarted(error, step)
        elif ITEM_SEPARATOR in event.node_id:
            applied = item_dead_lettered(self, event, _item_of(event.node_id), error, step)
        else:
            applied = self._fail_awaiting_retry(event.node_id, event.attempt, error, step)
        if applied:
            step.error = error
        return applied

    def _fail_unstarted(self, error: ErrorInfo, step: Step) -> bool:
        """The run could not start: it fails, every node skipped with the reason."""
        if self.status is not RunStatus.PENDING:
            return False
        self._end(RunStatus.FAILED, NodeStatus.SKIPPED, error, step)
        return True

    def _fail_awaiting_retry(self, node_id: str, attempt: int, error: ErrorInfo, step: Step) -> bool:
        """The retry ``attempt`` of ``node_id`` could not be dispatched: the node fails for good."""
        index = self._awaiting_retry(node_id, attempt)
        if index is None:
            return False
        node = self.nodes[index]
        node.retry_at = None
        node.error = error
        self._settle(index, NodeStatus.FAILED, step)
        self._failed_for_good(index, step)
        return True

    # -- helpers ---------------------------------------------------------------------------------

    def _end(self, status: RunStatus, unfinished_as: NodeStatus, error: ErrorInfo | None, step: Step) -> None:
        """End the run at once: every node not finished yet ends ``unfinished_as`` (with ``error``
        when given); touches every node once (bounded by MAX_NODES)."""
        self._cancel_in_flight(step)
        for index, node in enumerate(self.nodes):
            if not node.status.is_final:
                if node.items is not None:
                    end_items(self, index, step)
                node.status = unfinished_as
                node.finished_at = step.at
                node.retry_at = None
                if error is not None:
                    node.error = error
                step.changed.append(index)
        self.unfinished = 0
        self.in_flight = 0
        self._finish(status, step)

    def _cancel_in_flight(self, step: Step) -> None:
        """The attempts in flight are about to end with the run: their workers are told to stop
        them (``CancelAttempts``), when there are any."""
        if not self.in_flight:
            return
        attempts: list[tuple[str, int]] = []
        for spec, node in self.node_states():
            if node.status not in _IN_FLIGHT:
                continue
            if spec.map is None:
                attempts.append((spec.id, node.attempt))
            else:
                attempts.extend(live_attempts(self, spec.index))
        if attempts:
            step.commands.append(CancelAttempts(self.run_id, tuple(attempts)))

    def _finish(self, status: RunStatus, step: Step) -> None:
        self.status = status
        self.finished_at = step.at
        step.run_status = status
        step.commands.append(FinishRun(self.run_id, status, self.plan.name))

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
        if node.retry_at is None or attempt != node.attempt + 1 or node.status is not NodeStatus.PENDING:
            return None
        return index

    def _dispatch(self, index: int, step: Step) -> None:
        node = self.nodes[index]
        node.status = NodeStatus.QUEUED
        node.attempt += 1
        node.queued_at = step.at
        node.started_at = None
        node.worker_id = None
        if node.heartbeat_at is not None:  # the beats of an earlier attempt
            node.heartbeat_at = node.progress = None
        self.in_flight += 1
        step.changed.append(index)
        node_id = self.plan.nodes[index].id
        step.commands.append(DispatchNode(self.run_id, node_id, node.attempt))
        if step.dispatched is None:
            step.dispatched = [node_id]
        else:
            step.dispatched.append(node_id)

    def _close(self, index: int, status: NodeStatus, step: Step) -> None:
        """The attempt in flight of node ``index`` ended the node with ``status``."""
        self.in_flight -= 1
        self._settle(index, status, step)

    def _settle(self, index: int, status: NodeStatus, step: Step) -> None:
        """Node ``index`` (not in flight) ends with ``status``."""
        node = self.nodes[index]
        node.status = status
        node.finished_at = step.at
        self.unfinished -= 1
        step.changed.append(index)

    def _fail_attempt(self, index: int, error: ErrorInfo, retryable: bool, step: Step) -> None:
        """The attempt in flight of node ``index`` (checked by the caller) failed with ``error``."""
        spec = self.plan.nodes[index]
        node = self.nodes[index]
        node.error = error
        step.error = error
        step.changed.append(index)
        if retryable and node.attempts_this_time < spec.retry.max_attempts and spec.retry.retries(error.type):
            self._schedule_retry(spec, node, error, step)
            return
        self._close(index, NodeStatus.FAILED, step)
        self._failed_for_good(index, step)

    def _failed_for_good(self, index: int, step: Step) -> None:
        """Node ``index`` has just ended FAILED: it counts against the run unless it is optional;
        the workflow may fail fast; its children are told."""
        ended = deque([index])
        self._count_failure(index, step, ended)
        self._tell_children(ended, step)
        self._finish_if_done(step)

    def _count_failure(self, index: int, step: Step, ended: deque[int]) -> None:
        """Node ``index`` has just ended FAILED: it counts against the run unless it is optional,
        and the workflow may fail fast (the nodes that cancels join ``ended``)."""
        spec = self.plan.nodes[index]
        if spec.optional:
            return
        self.failed_nodes += 1
        if self.plan.fail_fast:
            ended.extend(self._cancel_for_fail_fast(spec, step))

    def _cancel_for_fail_fast(self, failed: NodeSpec, step: Step) -> list[int]:
        """Every node not finished ends CANCELLED, except ``always`` nodes not started yet (clean-up
        steps, which still run when their parents have ended). Returns the nodes cancelled."""
        error = fail_fast_error(failed.id)
        self._cancel_in_flight(step)
        cancelled = []
        for index, node in enumerate(self.nodes):
            if node.status.is_final:
                continue
            if node.undecided and self.plan.nodes[index].trigger_rule is TriggerRule.ALWAYS:
                continue
            if node.status in _IN_FLIGHT:
                self.in_flight -= 1
                end_items(self, index, step)
            node.retry_at = None
            node.error = error
            self._settle(index, NodeStatus.CANCELLED, step)
            cancelled.append(index)
        return cancelled

    def _schedule_retry(self, spec: NodeSpec, node: NodeRun, error: ErrorInfo, step: Step) -> None:
        if node.failed_attempts is None:
            node.failed_attempts = []
        node.failed_attempts.append(FailedAttempt(node.attempt, node.started_at, step.at, error))
        node.status = NodeStatus.PENDING
        delay = spec.retry.delay_before(node.attempts_this_time + 1, f"{self.run_id}/{spec.id}")
        node.retry_at = step.at + delay
        self.in_flight -= 1
        step.retry_at = node.retry_at
        step.commands.append(ScheduleRetry(self.run_id, spec.id, node.attempt + 1, node.retry_at))

    def _tell_children(self, ended: deque[int], step: Step) -> None:
        """The nodes ``ended`` have just ended: each child not decided yet counts how its parent
        ended, and its trigger rule decides. A child that ends here (skipped, or its condition
        false or broken) is told to its own children in turn: a work list, not recursion, as a
        chain of skips can be as long as the DAG."""
        nodes = self.nodes
        specs = self.plan.nodes
        changed = step.changed
        # Bound once: this loop runs for every edge of the DAG.
        pending, all_success, failed, skipped = _PENDING, _ALL_SUCCESS, _FAILED, _SKIPPED
        while ended:
            parent_index = ended.popleft()
            parent = nodes[parent_index]
            outcome = _OUTCOME_OF[parent.status]
            for child_index in specs[parent_index].children:
                child = nodes[child_index]
                if child.attempt != child.attempts_before or child.status is not pending:
                    continue  # decided early (one_success, one_failed), or ended with the run
                child.waiting_on -= 1
                if outcome is failed:
                    child.failed_parents += 1
                elif outcome is skipped:
                    child.skipped_parents += 1
                changed.append(child_index)
                spec = specs[child_index]
                if spec.trigger_rule is all_success and not (child.failed_parents or child.skipped_parents):
                    # The default rule while it still holds: the common case, decided inline.
                    if child.waiting_on:
                        continue
                    decided = Readiness.RUN
                else:
                    decided = readiness(
                        spec.trigger_rule,
                        len(spec.parents) - child.waiting_on - child.failed_parents - child.skipped_parents,
                        child.failed_parents,
                        child.skipped_parents,
                        child.waiting_on,
                    )
                    if decided is Readiness.WAIT:
                        continue
                if decided is Readiness.RUN:
                    if spec.condition is None and spec.map is None:
                        self._dispatch(child_index, step)
                    else:
                        self._start_if_condition_holds(child_index, step, ended)
                else:
                    self._skip(child_index, skip_error(spec, specs[parent_index].id, parent, outcome), step)
                    ended.append(child_index)

    def _start_if_condition_holds(self, index: int, step: Step, ended: deque[int]) -> None:
        """Node ``index`` may run: dispatch it if it has no condition or its condition holds; else
        it ends (SKIPPED when false, FAILED when it cannot be evaluated) and joins ``ended``."""
        condition = self.plan.nodes[index].condition
        if condition is None:
            self._start(index, step, ended)
            return
        verdict = condition_verdict(condition, self.outputs, self.input)
        if verdict is None:
            self._start(index, step, ended)
        elif verdict.type == CONDITION_FALSE:
            self._skip(index, verdict, step)
            ended.append(index)
        else:
            self.nodes[index].error = step.error = verdict
            self._settle(index, NodeStatus.FAILED, step)
            ended.append(index)
            self._count_failure(index, step, ended)

    def _start(self, index: int, step: Step, ended: deque[int]) -> None:
        """Node ``index`` runs: its task is dispatched, or a map node starts its items."""
        if self.plan.nodes[index].map is None:
            self._dispatch(index, step)
        else:
            start_map(self, index, step, ended)

    def _skip(self, index: int, reason: ErrorInfo, step: Step) -> None:
        self.nodes[index].error = reason
        self._settle(index, NodeStatus.SKIPPED, step)
        node_id = self.plan.nodes[index].id
        if step.skipped is None:
            step.skipped = [node_id]
        else:
            step.skipped.append(node_id)

    def _finish_if_done(self, step: Step) -> None:
        if self.unfinished != 0 or self.status is not RunStatus.RUNNING:
            return
        if self.failed_nodes:
            self._finish(RunStatus.FAILED, step)
            return
        if self.plan.output is not None:
            try:
                self.output = render_output(self.plan, self.outputs, self.input)
            except TemplateError as error:
                self.error = step.error = ErrorInfo(
                    OUTPUT_ERROR, f"the run's output cannot be rendered: {error}"
                )
                self._finish(RunStatus.FAILED, step)
                return
        self._finish(RunStatus.COMPLETED, step)


def _item_of(key: str) -> int:
    item = split_key(key)[1]
    return -1 if item is None else item  # no item has a negative index: the event is stale


def _record_worker(node: NodeRun, worker_id: str, started_at: float | None) -> None:
    """The worker that reports an attempt's end ran it (it may have taken it over)."""
    if worker_id:
        node.worker_id = worker_id
    if started_at is not None:
        node.started_at = started_at


_HANDLERS: dict[type, Callable[[Run, Any, Step], bool]] = {
    RunStarted: Run._on_run_started,
    NodeStarted: Run._on_node_started,
    NodeSucceeded: Run._on_node_succeeded,
    NodeFailed: Run._on_node_failed,
    AttemptTimedOut: Run._on_attempt_timed_out,
    RetryDue: Run._on_retry_due,
    RunTimedOut: Run._on_run_timed_out,
    CancelRequested: Run._on_cancel_requested,
    EventDeadLettered: Run._on_event_dead_lettered,
    RedriveRequested: apply_redrive,
    HeartbeatReceived: apply_heartbeat,
}
