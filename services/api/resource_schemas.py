"""Request and response shapes of the resource API (definitions, runs, run events); a run is shown
from its read model (``services.application.run_view``), the rest from domain objects.

Times are ISO 8601 (UTC), as in the seed's routes.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.history import EntryKind, HistoryEntry
from domain.paging import Page
from domain.ports import DefinitionSummary, RunSummary, StoredDefinition
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus
from services.api.common_schemas import (
    NodeErrorView,
    WarningDetail,
    node_error,
    node_error_or_none,
    utc_time,
    utc_time_or_none,
)
from services.application.run_view import NodeView, RunView


class StartRunRequest(BaseModel):
    """Body of ``POST /runs``: exactly one of ``definition_id`` (that version) or ``workflow`` (the
    newest version of that name)."""

    model_config = ConfigDict(extra="forbid")

    definition_id: str | None = Field(None, min_length=1, description="A definition id (one version).")
    workflow: str | None = Field(None, min_length=1, description="A workflow name: its newest version.")
    input: dict[str, Any] = Field(default_factory=dict, description="The run input, a JSON object.")


class RedriveRequest(BaseModel):
    """Body of ``POST /runs/{id}/redrive`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    from_: list[str] = Field(
        default_factory=list,
        alias="from",
        description="Nodes to run again with all their descendants, even when they completed.",
    )


class DefinitionView(BaseModel):
    definition_id: str
    name: str
    version: int = Field(description="1 for the first definition registered under this name, then 2, 3 ...")
    created_at: datetime
    node_count: int


class DefinitionRegistered(DefinitionView):
    warnings: list[WarningDetail] = Field(
        description="What no live worker serves (a queue without a worker, a handler no worker of "
        "its queue announced), by JSON path; registered anyway."
    )


class ServedHandlerView(BaseModel):
    queue: str
    handler: str
    workers: int = Field(description="Live workers of the queue that announced the handler.")


class HandlersView(BaseModel):
    items: list[ServedHandlerView] = Field(description="By queue, then handler.")


class DefinitionDetail(DefinitionView):
    definition: dict[str, Any] = Field(description="The definition as it was registered.")


class DefinitionPage(BaseModel):
    items: list[DefinitionView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class RunSummaryView(BaseModel):
    run_id: str
    definition_id: str
    workflow: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunPage(BaseModel):
    items: list[RunSummaryView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end. A filtered page may hold "
        "fewer items than `limit` while this is set."
    )


class FailedAttemptView(BaseModel):
    attempt: int
    started_at: datetime | None
    finished_at: datetime
    error: NodeErrorView


class NodeDetail(BaseModel):
    status: NodeStatus
    attempts: int
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    error: NodeErrorView | None
    failed_attempts: list[FailedAttemptView]
    reason: str | None = Field(
        description="Why the node is where it is: the parents it waits on, the retry it waits for, how "
        "long it has been queued, what skipped or cancelled it."
    )
    last_heartbeat_at: datetime | None = Field(
        None, description="When the handler of its latest attempt last sent a heartbeat (ctx.heartbeat)."
    )
    progress: Any = Field(
        None, description="The details of the latest attempt's last heartbeat that carried any."
    )
    items: dict[str, int] | None = Field(
        None,
        description="A map node's items by status (total, waiting, queued, running, retrying, completed, "
        "failed, cancelled); each item at `/runs/{id}/nodes/{node}/items`.",
    )


class RunDetail(BaseModel):
    run_id: str
    definition_id: str
    workflow: str
    status: RunStatus
    input: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    nodes: dict[str, NodeDetail]
    error: NodeErrorView | None = Field(
        description="Why the run failed when no node's error says it (RunTimedOut, OutputError)."
    )
    output: Any = Field(description="The run's output (the definition's `output` mapping) once it completed.")
    started_by: str | None = Field(None, description="Name of the API token that started the run.")
    cancelled_by: str | None = Field(None, description="Name of the API token that cancelled the run.")


class RunResultsView(BaseModel):
    run_id: str
    status: RunStatus
    results: dict[str, Any] = Field(description="Output of every node that completed, by node id.")
    output: Any = Field(description="The run's output (the definition's `output` mapping); null without one.")


class CancelAccepted(BaseModel):
    run_id: str
    status: RunStatus = Field(description="The run's status when the cancel was asked for.")
    cancel_requested: Literal[True] = True


class RedriveAccepted(BaseModel):
    run_id: str
    status: RunStatus = Field(description="The run's status now: RUNNING (or already ended again).")
    redriven: list[str] = Field(description="The nodes that run again, in definition order.")


class RunEventView(BaseModel):
    """One entry of a run's history: the data of a Server-Sent Event (its `id` is `seq`)."""

    seq: int
    kind: EntryKind
    at: datetime
    node_id: str | None = None
    attempt: int | None = None
    worker_id: str | None = None
    error: NodeErrorView | None = None
    retry_at: datetime | None = None
    dispatched: list[str] = Field(default_factory=list, description="Nodes this event queued.")
    skipped: list[str] = Field(default_factory=list, description="Nodes skipped after a failure.")
    run_status: RunStatus | None = Field(None, description="Set on the event that ended the run.")
    by: str | None = Field(None, description="Who started or cancelled the run (the API token's name).")
    redriven: list[str] = Field(default_factory=list, description="Nodes a redrive runs again.")
    progress: Any = Field(None, description="The details a heartbeat carried (heartbeat_received).")


def definition_view(summary: DefinitionSummary) -> DefinitionView:
    return DefinitionView(
        definition_id=summary.definition_id,
        name=summary.name,
        version=summary.version,
        created_at=utc_time(summary.created_at),
        node_count=summary.node_count,
    )


def definition_detail(stored: StoredDefinition) -> DefinitionDetail:
    view = definition_view(stored.summary())
    return DefinitionDetail(**view.model_dump(), definition=dict(stored.plan.source))


def definition_page(page: Page[DefinitionSummary]) -> DefinitionPage:
    return DefinitionPage(items=[definition_view(item) for item in page.items], next_cursor=page.next_cursor)


def run_summary_view(summary: RunSummary) -> RunSummaryView:
    return RunSummaryView(
        run_id=summary.run_id,
        definition_id=summary.definition_id,
        workflow=summary.workflow,
        status=summary.status,
        created_at=utc_time(summary.created_at),
        started_at=utc_time_or_none(summary.started_at),
        finished_at=utc_time_or_none(summary.finished_at),
    )


def run_page(page: Page[RunSummary]) -> RunPage:
    return RunPage(items=[run_summary_view(item) for item in page.items], next_cursor=page.next_cursor)


def node_detail(node: NodeView) -> NodeDetail:
    return NodeDetail(
        status=node.status,
        attempts=node.attempts,
        queued_at=utc_time_or_none(node.queued_at),
        started_at=utc_time_or_none(node.started_at),
        finished_at=utc_time_or_none(node.finished_at),
        worker_id=node.worker_id,
        error=node_error_or_none(node.error),
        failed_attempts=[
            FailedAttemptView(
                attempt=failed.attempt,
                started_at=utc_time_or_none(failed.started_at),
                finished_at=utc_time(failed.finished_at),
                error=node_error(failed.error),
            )
            for failed in node.failed_attempts
        ],
        reason=node.reason,
        last_heartbeat_at=utc_time_or_none(node.last_heartbeat_at),
        progress=node.progress,
        items=None if node.items is None else dataclasses.asdict(node.items),
    )


def run_detail(view: RunView) -> RunDetail:
    return RunDetail(
        run_id=view.run_id,
        definition_id=view.definition_id,
        workflow=view.workflow,
        status=view.status,
        input=view.input,
        created_at=utc_time(view.created_at),
        started_at=utc_time_or_none(view.started_at),
        finished_at=utc_time_or_none(view.finished_at),
        nodes={node_id: node_detail(node) for node_id, node in view.nodes.items()},
        error=node_error_or_none(view.error),
        output=view.output,
        started_by=view.started_by,
        cancelled_by=view.cancelled_by,
    )


def run_results(run: Run, results: dict[str, Any]) -> RunResultsView:
    """The outputs of a finished run; the caller checks that it is final."""
    return RunResultsView(run_id=run.run_id, status=run.status, results=results, output=run.output)


def run_event(seq: int, entry: HistoryEntry) -> RunEventView:
    return RunEventView(
        seq=seq,
        kind=entry.kind,
        at=utc_time(entry.at),
        node_id=entry.node_id,
        attempt=entry.attempt,
        worker_id=entry.worker_id,
        error=node_error_or_none(entry.error),
        retry_at=utc_time_or_none(entry.retry_at),
        dispatched=list(entry.dispatched),
        skipped=list(entry.skipped),
        run_status=entry.run_status,
        by=entry.by,
        redriven=list(entry.redriven),
        progress=entry.progress,
    )
