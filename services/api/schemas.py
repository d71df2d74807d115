"""Request and response shapes of the HTTP API (pydantic), and their construction from a ``Run``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.definition import WorkflowDefinition
from domain.run import ErrorInfo, Run
from domain.statuses import NodeStatus, RunStatus


class ErrorDetail(BaseModel):
    path: str | None = Field(description="JSON path of the problem, e.g. $.dag.nodes[2].dependencies[0]")
    message: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_definition, not_found")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one shape of every error the API returns."""

    error: ErrorBody


class TriggerRequest(BaseModel):
    """Body of a trigger; optional (an empty body starts the run with an empty input)."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict, description="The run input, a JSON object.")


class StartRunRequest(BaseModel):
    """Body of ``POST /runs``: exactly one of ``definition_id`` (that version) or ``workflow`` (the
    newest version of that name)."""

    model_config = ConfigDict(extra="forbid")

    definition_id: str | None = Field(None, min_length=1, description="A definition id (one version).")
    workflow: str | None = Field(None, min_length=1, description="A workflow name: its newest version.")
    input: dict[str, Any] = Field(default_factory=dict, description="The run input, a JSON object.")


class WorkflowCreated(BaseModel):
    execution_id: str = Field(description="Id of the stored workflow definition; trigger runs with it.")


class RunTriggered(BaseModel):
    instance_id: str = Field(description="Id of the new run.")


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyStatus(BaseModel):
    status: Literal["ready"] = "ready"


class NodeErrorView(BaseModel):
    type: str
    message: str


class NodeStateView(BaseModel):
    status: NodeStatus
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: NodeErrorView | None


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


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _error_view(error: ErrorInfo) -> NodeErrorView:
    return NodeErrorView(type=error.type, message=error.message)


def status_of(run: Run) -> WorkflowStatus:
    nodes = {
        spec.id: NodeStateView(
            status=node.status,
            attempts=node.attempt,
            started_at=_time(node.started_at),
            finished_at=_time(node.finished_at),
            error=None if node.error is None else _error_view(node.error),
        )
        for spec, node in run.node_states()
    }
    return WorkflowStatus(
        workflow_id=run.definition_id,
        instance_id=run.run_id,
        name=run.plan.name,
        state=run.status,
        created_at=datetime.fromtimestamp(run.created_at, tz=UTC),
        completed_at=_time(run.finished_at),
        nodes=nodes,
    )


def results_of(run: Run) -> WorkflowResults:
    """The outputs of a finished run, in definition order; the caller checks that it is final."""
    outputs = run.outputs
    return WorkflowResults(
        workflow_id=run.definition_id,
        instance_id=run.run_id,
        status=run.status,
        results={spec.id: outputs[spec.id] for spec in run.plan.nodes if spec.id in outputs},
    )


def request_body_schemas() -> dict[str, Any]:
    """OpenAPI component schemas of the bodies the routes read raw (they parse JSON themselves)."""
    schemas: dict[str, Any] = {}
    for model in (WorkflowDefinition, TriggerRequest, StartRunRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def json_body(component: str, *, required: bool) -> dict[str, Any]:
    """``openapi_extra`` documenting a raw JSON request body by a component from ``request_body_schemas``."""
    schema = {"$ref": f"#/components/schemas/{component}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}
