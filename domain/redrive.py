"""Redrive: a FAILED or CANCELLED run (a timed-out run is FAILED) runs again from where it stopped.

The rule, written once (both backends apply ``RedriveRequested`` through ``Run.apply``):

- the nodes that run again are every node that did not complete (failed, cancelled, skipped), and
  the nodes named in ``from`` with all their descendants, completed or not; every other node keeps
  its status and output. A completed node that runs again loses its output at the redrive (a
  condition or a child must not read the output of its previous life); it has one again when it
  completes again;
- each such node goes back to PENDING, waiting on its parents that run again (its counters of
  failed and skipped parents are 0: every parent it keeps has completed). Its attempt numbers go on
  counting (``NodeRun.attempts_before``), and its retry policy starts over: each redrive gives the
  node all of its ``max_attempts`` again. Its last failed attempt joins ``failed_attempts``;
- a map node runs again only its items that failed or were cancelled, and those never dispatched,
  keeping its completed items' outputs; all of its items when it or an ancestor is in ``from``;
- the run is RUNNING again with no failed node, no error, no finish time; its timeout
  (``timeout_seconds``) counts from the redrive (``Run.redriven_at``); a deadline set before it is
  ignored;
- the nodes whose parents have all completed are decided at once, as when their last parent ends:
  trigger rule, then condition (a root starts, whatever its rule); the others as their parents end.

A run in any other status (COMPLETED, RUNNING, PENDING), or one where nothing would run again, is
refused: ``Run.apply`` changes nothing, and ``redrive_refusal`` says why.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from domain.errors import Problem
from domain.events import RedriveRequested, ScheduleRunDeadline
from domain.map_run import reset_items
from domain.node_state import ErrorInfo, FailedAttempt, NodeRun
from domain.outcome import Step
from domain.plan import WorkflowPlan
from domain.statuses import NodeStatus, RunStatus

if TYPE_CHECKING:
    from domain.run import Run

REDRIVABLE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})
CANCELLED_ATTEMPT = "Cancelled"
"""The error type recorded for an attempt that was in flight when its run was cancelled."""


def unknown_from_nodes(plan: WorkflowPlan, from_nodes: Sequence[str], path: str = "$.from") -> list[Problem]:
    """A problem (at ``$.from[i]``) for each node of ``from`` that the run's workflow does not have."""
    return [
        Problem(f"{path}[{position}]", f"the workflow '{plan.name}' has no node '{node_id}'")
        for position, node_id in enumerate(from_nodes)
        if node_id not in plan.index
    ]


def nodes_to_redrive(plan: WorkflowPlan, nodes: Sequence[NodeRun], from_nodes: Sequence[str]) -> list[int]:
    """Indices (in plan order) of the nodes a redrive runs again. O(V + E). (Which items of a map
    node run again: ``domain.map_run.reset_items``.)"""
    chosen = [node.status is not NodeStatus.COMPLETED for node in nodes]
    work = deque(plan.index[node_id] for node_id in from_nodes if node_id in plan.index)
    while work:
        index = work.popleft()
        if chosen[index] and plan.nodes[index].id not in from_nodes:
            continue  # chosen already, and so are its descendants (below)
        chosen[index] = True
        work.extend(plan.nodes[index].children)
    return [index for index, again in enumerate(chosen) if again]


def _named_and_below(plan: WorkflowPlan, from_nodes: Sequence[str]) -> set[int]:
    """The nodes of ``from`` and their descendants: a map among them runs all of its items again."""
    seen: set[int] = set()
    work = [plan.index[node_id] for node_id in from_nodes if node_id in plan.index]
    while work:
        index = work.pop()
        if index not in seen:
            seen.add(index)
            work.extend(plan.nodes[index].children)
    return seen


def redrive_refusal(run: Run, from_nodes: Sequence[str]) -> str | None:
    """Why ``run`` cannot be redriven now; None when it can."""
    if run.status not in REDRIVABLE:
        what = "has completed" if run.status is RunStatus.COMPLETED else f"is {run.status.value}"
        return f"workflow run '{run.run_id}' {what}; only a FAILED or CANCELLED run can be redriven"
    if not nodes_to_redrive(run.plan, run.nodes, from_nodes):
        return (
            f"every node of workflow run '{run.run_id}' completed: nothing to redrive (name nodes in "
            "'from' to run them again)"
        )
    return None


def apply_redrive(run: Run, event: RedriveRequested, step: Step) -> bool:
    """``Run.apply`` of ``RedriveRequested`` (part of the aggregate, kept apart for its size)."""
    if redrive_refusal(run, event.from_nodes) is not None or unknown_from_nodes(run.plan, event.from_nodes):
        return False
    chosen = nodes_to_redrive(run.plan, run.nodes, event.from_nodes)
    again = set(chosen)
    named = _named_and_below(run.plan, event.from_nodes)
    specs = run.plan.nodes
    cleared: list[str] = []
    for index in chosen:
        node = run.nodes[index]
        if node.status is NodeStatus.COMPLETED:
            run.outputs.pop(specs[index].id, None)
            cleared.append(specs[index].id)
        _reset(node, len(specs[index].parents), step.at)
        reset_items(index, node, index in named, step)
    run.status = RunStatus.RUNNING
    run.started_at = run.started_at if run.started_at is not None else event.at
    run.finished_at = None
    run.redriven_at = event.at
    run.error = None
    run.output = None
    run.unfinished = len(chosen)
    run.in_flight = 0
    run.failed_nodes = 0
    step.changed.extend(chosen)
    step.redriven = [specs[index].id for index in chosen]
    step.cleared_outputs = cleared
    if run.plan.timeout_seconds is not None:
        step.commands.append(ScheduleRunDeadline(run.run_id, event.at + run.plan.timeout_seconds))
    ended: deque[int] = deque()
    for index in chosen:
        if not specs[index].parents:
            run._start_if_condition_holds(index, step, ended)
    # Each completed parent that is kept is told again, as if it had just ended: a node that runs
    # again counts it and is decided when its last parent has ended, by its trigger rule and
    # condition (the parent's other children have decided already: they ignore it).
    ended.extend(sorted({p for index in chosen for p in specs[index].parents if p not in again}))
    run._tell_children(ended, step)
    run._finish_if_done(step)
    return True


def _reset(node: NodeRun, waiting_on: int, at: float) -> None:
    recorded = node.failed_attempts is not None and node.failed_attempts[-1].attempt == node.attempt
    if node.attempt > node.attempts_before and node.status is not NodeStatus.COMPLETED and not recorded:
        error = node.error or ErrorInfo(
            CANCELLED_ATTEMPT, f"attempt {node.attempt} was cancelled with its run"
        )
        finished = node.finished_at if node.finished_at is not None else at
        node.failed_attempts = [
            *(node.failed_attempts or ()),
            FailedAttempt(node.attempt, node.started_at, finished, error),
        ]
    node.status = NodeStatus.PENDING
    node.attempts_before = node.attempt
    node.waiting_on = waiting_on
    node.failed_parents = node.skipped_parents = 0
    node.queued_at = node.started_at = node.finished_at = None
    node.worker_id = None
    node.error = None
    node.retry_at = None
