"""A run as one comparable value, shared by the unit and contract suites."""

from __future__ import annotations

from typing import Any

from domain.run import Run


def snapshot(run: Run) -> tuple[Any, ...]:
    """Everything observable about a run, as a comparable value."""
    nodes = tuple(
        (
            spec.id,
            state.status,
            state.attempt,
            state.waiting_on,
            state.queued_at,
            state.started_at,
            state.finished_at,
            state.worker_id,
            state.error,
            state.retry_at,
            tuple(state.failed_attempts or ()),
            state.failed_parents,
            state.skipped_parents,
            state.attempts_before,
            state.items,
        )
        for spec, state in run.node_states()
    )
    return (
        run.run_id,
        run.definition_id,
        run.input,
        run.created_at,
        run.status,
        run.started_at,
        run.finished_at,
        dict(run.outputs),
        run.unfinished,
        run.in_flight,
        run.failed_nodes,
        run.error,
        run.output,
        run.start_request,
        run.redriven_at,
        nodes,
    )
