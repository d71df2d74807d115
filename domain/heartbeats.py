"""Heartbeats and attempt deadlines: the rules, written once (``Run.apply`` calls them).

- A heartbeat (``HeartbeatReceived``) counts only for the attempt in flight; an older beat than the
  one recorded (reordered), or one of another attempt, changes nothing. It records when the handler
  last beat (``NodeRun.heartbeat_at``) and, when it carries details, the attempt's progress; a beat
  that comes before the report of the attempt's start counts as that start too.
- An attempt's deadlines are set when it starts: its node's ``timeout_seconds`` (plus
  ``DEADLINE_GRACE_SECONDS``: the worker enforces it itself and reports first), or, for a node that
  sets no timeout of either kind, the engine's default (``WorkflowPlan.default_attempt_timeout_seconds``,
  which only this deadline enforces: the worker is then told to stop the attempt);
  and its ``heartbeat_timeout_seconds`` after the start. Each heartbeat sets the heartbeat deadline
  again, from the beat. Timers are never withdrawn: when one fires, ``timed_out_error`` compares
  times and says whether a limit has really been reached (an earlier start or a later beat makes the
  timer stale).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.events import HeartbeatReceived, NodeStarted, ScheduleDeadline
from domain.node_state import ErrorInfo, NodeRun
from domain.outcome import Step
from domain.plan import DEADLINE_GRACE_SECONDS, NodeSpec, WorkflowPlan
from domain.reasons import TIMEOUT_ERROR, heartbeat_timeout_message, timeout_message
from domain.statuses import NodeStatus

if TYPE_CHECKING:
    from domain.run import Run


def attempt_timeout(plan: WorkflowPlan, spec: NodeSpec) -> tuple[float | None, bool]:
    """The attempt timeout of ``spec``'s attempts, and whether it is the engine's default (the node
    sets neither ``timeout_seconds`` nor ``heartbeat_timeout_seconds``)."""
    if spec.timeout_seconds is not None:
        return spec.timeout_seconds, False
    if spec.heartbeat_timeout_seconds is not None:
        return None, False  # a node that must beat is watched by its heartbeats
    return plan.default_attempt_timeout_seconds, True


def schedule_deadlines(plan: WorkflowPlan, spec: NodeSpec, event: NodeStarted, step: Step) -> None:
    """The deadlines of an attempt that has just started (``event.at``)."""
    timeout, default = attempt_timeout(plan, spec)
    if timeout is not None:
        # No grace for the default: no worker enforces it, the deadline alone does.
        due_at = event.at + timeout + (0.0 if default else DEADLINE_GRACE_SECONDS)
        step.commands.append(ScheduleDeadline(event.run_id, event.node_id, event.attempt, due_at))
    silence = spec.heartbeat_timeout_seconds
    if silence is not None:
        step.commands.append(ScheduleDeadline(event.run_id, event.node_id, event.attempt, event.at + silence))


def timed_out_error(plan: WorkflowPlan, spec: NodeSpec, node: NodeRun, at: float) -> ErrorInfo | None:
    """Why the attempt in flight of ``spec`` times out at ``at`` (a deadline fired); None when no
    limit has been reached by then (the timer was set by an earlier start, or before a heartbeat)."""
    started = node.started_at
    timeout, default = attempt_timeout(plan, spec)
    if timeout is not None and (started is None or at >= started + timeout):
        return ErrorInfo(TIMEOUT_ERROR, timeout_message(node.attempt, timeout, default=default))
    silence = spec.heartbeat_timeout_seconds
    if silence is not None:
        signs = [moment for moment in (started, node.heartbeat_at) if moment is not None]
        if not signs or at >= max(signs) + silence:
            return ErrorInfo(TIMEOUT_ERROR, heartbeat_timeout_message(node.attempt, silence))
        return None
    if timeout is None:  # no limit at all: a deadline that was set counts as it always has
        return ErrorInfo(TIMEOUT_ERROR, timeout_message(node.attempt, None))
    return None


def apply_heartbeat(run: Run, event: HeartbeatReceived, step: Step) -> bool:
    """``Run.apply`` of a ``HeartbeatReceived``."""
    index = run._current(event.node_id, event.attempt)
    if index is None:
        return False
    node = run.nodes[index]
    if node.heartbeat_at is not None and event.at <= node.heartbeat_at:
        return False  # older than a beat recorded: the latest wins
    if node.status is NodeStatus.QUEUED:  # it overtook the report of the attempt's start
        started_at = event.at if event.started_at is None else event.started_at
        run._on_node_started(
            NodeStarted(event.run_id, event.node_id, event.attempt, event.worker_id, started_at), step
        )
    node.heartbeat_at = event.at
    if event.details is not None:
        node.progress = step.progress = event.details
    step.changed.append(index)
    step.worker_id = node.worker_id
    silence = run.plan.nodes[index].heartbeat_timeout_seconds
    if silence is not None:
        step.commands.append(ScheduleDeadline(event.run_id, event.node_id, event.attempt, event.at + silence))
    return True
