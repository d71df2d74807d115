"""Shapes of the seed's four routes (exact, as the seed answered them), built from the read model of
a run (``services.application.run_view``)."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.node_state import ErrorInfo
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus
from services.api.common_schemas import (
    NodeErrorView,
    WarningDetail,
    node_error_or_none,
    utc_time,
    utc_time_or_none,
)
from services.application.run_view import NodeView, RunView


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
    return _status(view, nodes)


def _status(view: RunView, nodes: dict[str, NodeStateView]) -> WorkflowStatus:
    return WorkflowStatus(
        workflow_id=view.definition_id,
        instance_id=view.run_id,
        name=view.workflow,
        state=view.status,
        created_at=utc_time(view.created_at),
        completed_at=utc_time_or_none(view.finished_at),
        nodes=nodes,
    )


def encode_status(view: RunView) -> bytes:
    """``status_of(view).model_dump_json()``, byte for byte, without a pydantic model per node: of a
    20,000-node run's answer the node models were half the build. The envelope is still pydantic's
    (``WorkflowStatus`` with no nodes); each node is written as ``NodeStateView`` writes it
    (``tests/unit/test_seed_status_encoding.py`` holds the two to the same bytes)."""
    envelope = _status(view, {}).model_dump_json()
    assert envelope.endswith(_NO_NODES), envelope  # the last field is ``nodes``
    nodes = ",".join(
        f"{encode_basestring(node_id)}:{_node_json(node)}" for node_id, node in view.nodes.items()
    )
    return f"{envelope[: -len('{}}')]}{{{nodes}}}}}".encode()


_NO_NODES = '"nodes":{}}'


def _node_json(node: NodeView) -> str:
    error, reason = node.error, node.reason
    return (
        f'{{"status":"{node.status.value}","attempts":{node.attempts:d},'
        f'"started_at":{_time_json(node.started_at)},"finished_at":{_time_json(node.finished_at)},'
        f'"error":{"null" if error is None else _error_json(error)},'
        f'"reason":{"null" if reason is None else encode_basestring(reason)}}}'
    )


def _time_json(seconds: float | None) -> str:
    """A time as pydantic writes ``utc_time(seconds)``: ISO 8601 in UTC, ``Z``, microseconds only
    when not 0. The microseconds are rounded as ``datetime.fromtimestamp`` rounds them (half to
    even of the fraction times 10**6); the rest of the text is kept per second."""
    if seconds is None:
        return "null"
    fraction, whole = math.modf(seconds)
    microseconds = round(fraction * 1e6)
    second = int(whole)
    if microseconds >= 1_000_000:
        second, microseconds = second + 1, microseconds - 1_000_000
    prefix = _second_text(second)
    return f'"{prefix}.{microseconds:06d}Z"' if microseconds else f'"{prefix}Z"'


@functools.lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a whole second since the epoch, in UTC."""
    return datetime.fromtimestamp(second, tz=UTC).isoformat()[: -len("+00:00")]


def _error_json(error: ErrorInfo) -> str:
    return f'{{"type":{encode_basestring(error.type)},"message":{encode_basestring(error.message)}}}'


def results_of(run: Run, results: dict[str, Any]) -> WorkflowResults:
    """The outputs of a finished run, in definition order; the caller checks that it is final."""
    return WorkflowResults(
        workflow_id=run.definition_id,
        instance_id=run.run_id,
        status=run.status,
        results=results,
        output=run.output,
    )
