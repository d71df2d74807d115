"""Shapes of the seed's four routes (exact, as the seed answered them), built from the read model of
a run (``services.application.run_view``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.run import Run
from domain.statuses import NodeStatus, RunStatus
from services.api.common_schemas import (
    NodeErrorView,
    WarningDetail,
    node_error_or_none,
    utc_time,
    utc_time_or_none,
)
from services.application.run_view import RunView


class TriggerRequest(BaseModel):
    """Body of a trigger; optional (an empty body starts the run with an empty input)."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict, description="The run input, a JSON object.")
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="An idempotency key (as the Idempotency-Key header): a trigger repeated with the "
        "same request_id and body answers the run it started the first time; with another body, 409.",
    )


class WorkflowCreated(BaseModel):
    execution_id: str = Field(description="Id of the stored workflow definition; trigger runs with it.")
    warnings: list[WarningDetail] | None = Field(
        None,
        description="Present only when there are any (the seed's answer is otherwise unchanged): "
        "what no live worker serves, by JSON path.",
    )


class RunTriggered(BaseModel):
    instance_id: str = Field(description="Id of the new run.")


class NodeStateView(BaseModel):
    status: NodeStatus
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: NodeErrorView | None
    reason: str | None = Field(
        None,
        description="Why the node is where it is (added to the seed's shape: what it waits on, "
        "what skipped or cancelled it).",
    )


class WorkflowStatus(BaseModel):
    workflow_id: str
    instance_id: str
    name: str
    state: RunStatus
    created_at: datetime
    completed_at: datetime | None
    nodes: dict[str, NodeStateView]


class WorkflowResults(BaseModel):
    workflow_id: str
    instance_id: str
    status: RunStatus
    results: dict[str, Any] = Field(description="Output of every node that completed, by node id.")
    output: Any = Field(None, description="The run's output (the definition's `output` mapping), if any.")


def status_of(view: RunView) -> WorkflowStatus:
    nodes = {
        node_id: NodeStateView(
            status=node.status,
            attempts=node.attempts,
            started_at=utc_time_or_none(node.started_at),
            finished_at=utc_time_or_none(node.finished_at),
            error=node_error_or_none(node.error),
            reason=node.reason,
        )
        for node_id, node in view.nodes.items()
    }
    return WorkflowStatus(
        workflow_id=view.definition_id,
        instance_id=view.run_id,
        name=view.workflow,
        state=view.status,
        created_at=utc_time(view.created_at),
        completed_at=utc_time_or_none(view.finished_at),
        nodes=nodes,
    )


def results_of(run: Run, results: dict[str, Any]) -> WorkflowResults:
    """The outputs of a finished run, in definition order; the caller checks that it is final."""
    return WorkflowResults(
        workflow_id=run.definition_id,
        instance_id=run.run_id,
        status=run.status,
        results=results,
        output=run.output,
    )
