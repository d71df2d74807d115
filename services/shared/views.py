"""Plain-JSON views of runs, shared by the CLI and the HTTP API."""

from __future__ import annotations

from typing import Any

from domain.run import NodeRun, Run


def _node_view(node: NodeRun, output: Any, has_output: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "status": node.status.value,
        "attempts": node.attempt,
        "queued_at": node.queued_at,
        "started_at": node.started_at,
        "finished_at": node.finished_at,
        "worker_id": node.worker_id,
        "error": None if node.error is None else {"type": node.error.type, "message": node.error.message},
    }
    if node.failed_attempts:
        view["failed_attempts"] = [
            {
                "attempt": failed.attempt,
                "started_at": failed.started_at,
                "finished_at": failed.finished_at,
                "error": {"type": failed.error.type, "message": failed.error.message},
            }
            for failed in node.failed_attempts
        ]
    if has_output:
        view["output"] = output
    return view


def run_view(run: Run) -> dict[str, Any]:
    duration = None
    if run.started_at is not None and run.finished_at is not None:
        duration = run.finished_at - run.started_at
    return {
        "run_id": run.run_id,
        "definition_id": run.definition_id,
        "workflow": run.plan.name,
        "status": run.status.value,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": duration,
        "nodes": {
            spec.id: _node_view(node, run.outputs.get(spec.id), spec.id in run.outputs)
            for spec, node in run.node_states()
        },
    }
