"""The read model of a run: what the command line and both HTTP APIs show of a run and its nodes.

``run_view`` builds it from a ``Run`` through the aggregate's public state only; every output is
derived from it (``dag-service run``'s report and ``--json`` document, the seed's
``GET /workflows/{id}``, the resource API's ``GET /runs/{id}``), each choosing the fields it shows
and its time format. What a field means is decided here, once:

- times are seconds since the epoch, ``None`` until the moment has come;
- a node's ``attempts`` counts the attempts dispatched so far (0 for a node that never ran), its
  ``error`` is the last error the run recorded for it (why its attempt failed, or why it was
  skipped), and ``failed_attempts`` are the earlier attempts that failed and were retried, oldest
  first;
- a node's output is there only when the run was read with outputs and the node produced one; a
  map node's (a list as long as its items) is not: its ``items`` count its items by status, and
  the results routes and the items route give their outputs.

The views are read-only by convention, not frozen: the status routes build one per node on every
read, and a frozen dataclass's constructor costs several times as much.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from domain.map_state import MapState
from domain.node_state import ErrorInfo, FailedAttempt, NodeRun
from domain.plan import NodeSpec
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus
from services.application.explain import reason_of


def _duration(started_at: float | None, finished_at: float | None) -> float | None:
    if started_at is None or finished_at is None:
        return None
    return finished_at - started_at


@dataclass(slots=True)
class ItemCounts:
    """A map node's items by status: ``waiting`` were never dispatched, ``retrying`` wait for a
    retry; the others as for nodes."""

    total: int
    waiting: int = 0
    queued: int = 0
    running: int = 0
    retrying: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, items: MapState) -> ItemCounts:
        counts = cls(
            items.total,
            items.waiting,
            completed=items.succeeded,
            failed=items.failed,
            cancelled=items.cancelled,
            skipped=items.skipped,
        )
        for state in items.live.values():
            if state.status is NodeStatus.QUEUED:
                counts.queued += 1
            elif state.status is NodeStatus.RUNNING:
                counts.running += 1
            else:
                counts.retrying += 1
        return counts


@dataclass(slots=True)
class NodeView:
    status: NodeStatus
    attempts: int
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    worker_id: str | None
    error: ErrorInfo | None
    failed_attempts: tuple[FailedAttempt, ...]
    has_output: bool
    output: Any
    """The node's output when ``has_output`` (an output may itself be ``null``); None otherwise."""
    reason: str | None
    """Why the node is where it is (``services.application.explain``)."""
    last_heartbeat_at: float | None = None
    """When the handler of its latest attempt last sent a heartbeat."""
    progress: Any = None
    """The details of its latest attempt's last heartbeat that carried any."""
    items: ItemCounts | None = None
    """A map node's items by status, once its list was read."""

    @property
    def duration_seconds(self) -> float | None:
        """From the start of the last attempt to the end; None unless both are known."""
        return _duration(self.started_at, self.finished_at)


@dataclass(slots=True)
class RunView:
    run_id: str
    definition_id: str
    workflow: str
    status: RunStatus
    input: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    nodes: dict[str, NodeView]
    """Every node by id, in definition order."""
    error: ErrorInfo | None
    """Why the run failed when no node says it (its timeout, its output mapping)."""
    output: Any
    """The run's output (its definition's ``output`` mapping), once the run has completed."""
    started_by: str | None
    """The name of the API token that started the run; None when none was needed."""
    cancelled_by: str | None
    """The name of the API token that cancelled the run."""

    @property
    def duration_seconds(self) -> float | None:
        return _duration(self.started_at, self.finished_at)

    @property
    def completed_count(self) -> int:
        return sum(1 for node in self.nodes.values() if node.status is NodeStatus.COMPLETED)


def _node_view(run: Run, spec: NodeSpec, node: NodeRun, queues_served: Collection[str] | None) -> NodeView:
    outputs, node_id = run.outputs, spec.id
    has_output = node_id in outputs and spec.map is None
    return NodeView(
        status=node.status,
        attempts=node.attempt,
        queued_at=node.queued_at,
        started_at=node.started_at,
        finished_at=node.finished_at,
        worker_id=node.worker_id,
        error=node.error,
        failed_attempts=tuple(node.failed_attempts) if node.failed_attempts else (),
        has_output=has_output,
        output=outputs[node_id] if has_output else None,
        reason=reason_of(run, spec, node, queues_served),
        last_heartbeat_at=node.heartbeat_at,
        progress=node.progress,
        items=None if node.items is None else ItemCounts.of(node.items),
    )


def run_view(run: Run, queues_served: Collection[str] | None = None) -> RunView:
    """``queues_served``: the queues live workers serve, when known (``WorkflowService.queues_served``)."""
    return RunView(
        run_id=run.run_id,
        definition_id=run.definition_id,
        workflow=run.plan.name,
        status=run.status,
        input=run.input,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        nodes={spec.id: _node_view(run, spec, node, queues_served) for spec, node in run.node_states()},
        error=run.error,
        output=run.output,
        started_by=run.started_by,
        cancelled_by=run.cancelled_by,
    )


def completed_outputs(run: Run) -> dict[str, Any]:
    """The output of every node that completed, by node id in definition order: what both results
    routes answer (their callers check that the run is final)."""
    outputs = run.outputs
    return {spec.id: outputs[spec.id] for spec in run.plan.nodes if spec.id in outputs}
