"""Why a node is where it is: the ``reason`` the run view shows for every node not finished, and for
nodes skipped or cancelled (which parents it waits on, the retry it waits for, how long it has been
queued, what skipped or cancelled it). Read from the run's state: nothing here decides anything."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from domain.node_state import NodeRun
from domain.plan import NodeSpec
from domain.reasons import FAIL_FAST, RUN_TIMED_OUT
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus
from domain.trigger_rules import TriggerRule

_CANCELLING_ERRORS = frozenset({FAIL_FAST, RUN_TIMED_OUT})
"""The errors the engine gives the nodes it cancels (a cancel on request gives none)."""


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reason_of(
    run: Run, spec: NodeSpec, node: NodeRun, queues_served: Collection[str] | None = None
) -> str | None:
    """A sentence for a user; None for a node that completed or failed (its error says why).
    ``queues_served``: the queues live workers serve (None: not known), to say when a queued node
    waits for a worker of a queue that has none."""
    no_worker = queues_served is not None and spec.queue not in queues_served
    match node.status:
        case NodeStatus.PENDING:
            return _pending_reason(run, spec, node)
        case NodeStatus.QUEUED:
            since = _when(node.queued_at or run.created_at)
            waits = "a worker" + (f" on queue {spec.queue}" if no_worker else "")
            if spec.concurrency is not None:
                waits += f", or for one of the {spec.concurrency.limit} slot(s) of its concurrency key"
            return f"attempt {node.attempt} queued since {since}, waiting for {waits}"
        case NodeStatus.RUNNING if node.items is not None:
            items = node.items
            waiting = f"; waiting for a worker on queue {spec.queue}" if no_worker else ""
            return (
                f"{items.ended} of {items.total} items ended ({items.failed} failed), "
                f"{len(items.live)} in flight, {items.waiting} waiting{waiting}"
            )
        case NodeStatus.RUNNING:
            since = "" if node.started_at is None else f" since {_when(node.started_at)}"
            return f"attempt {node.attempt} running on worker {node.worker_id}{since}"
        case NodeStatus.SKIPPED:
            return None if node.error is None else node.error.message
        case NodeStatus.CANCELLED:
            return _cancelled_reason(run, node)
        case _:
            return None


def _cancelled_reason(run: Run, node: NodeRun) -> str | None:
    """What cancelled the node: the fail-fast or the run's timeout (its error says so), else a cancel
    of the run, naming who asked for it when known. A node cancelled on request may still carry the
    error of an earlier failed attempt (it was waiting for its retry, or retrying): that is not why."""
    error = node.error
    if error is not None and error.type in _CANCELLING_ERRORS:
        return error.message
    if run.status is RunStatus.CANCELLED:
        by = f" of {run.cancelled_by}" if run.cancelled_by else ""
        return f"cancelled with the run, on request{by}"
    return None if error is None else error.message


def _pending_reason(run: Run, spec: NodeSpec, node: NodeRun) -> str:
    if node.retry_at is not None:
        return f"waiting for attempt {node.attempt + 1}, due at {_when(node.retry_at)}"
    if run.status is RunStatus.PENDING:
        return "waiting for the run to start"
    waiting = [run.plan.nodes[p].id for p in spec.parents if not run.nodes[p].status.is_final]
    rule = (
        "" if spec.trigger_rule is TriggerRule.ALL_SUCCESS else f" (trigger rule {spec.trigger_rule.value})"
    )
    return f"waiting on {', '.join(waiting)}{rule}" if waiting else f"waiting{rule}"
