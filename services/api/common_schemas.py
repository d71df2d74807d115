"""Shapes both APIs share: the one error body, a node's error, and times as ISO 8601 (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field

from domain.errors import Problem
from domain.node_state import ErrorInfo
from services.application.waiting import MAX_WAIT_SECONDS


class ErrorDetail(BaseModel):
    path: str | None = Field(description="JSON path of the problem, e.g. $.dag.nodes[2].dependencies[0]")
    message: str


class WarningDetail(BaseModel):
    """Something a registration was accepted with that may keep its runs waiting or failing (no
    live worker serves its queue, or announced its handler)."""

    path: str = Field(description="JSON path of the node's key, e.g. $.dag.nodes[2].handler")
    message: str


def warning_details(problems: list[Problem]) -> list[WarningDetail]:
    return [WarningDetail(path=problem.path, message=problem.message) for problem in problems]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_definition, not_found")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one shape of every error the API returns."""

    error: ErrorBody


class NodeErrorView(BaseModel):
    type: str
    message: str


def utc_time(seconds: float) -> datetime:
    """Seconds since the epoch as an aware UTC time (pydantic writes it as ISO 8601)."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def utc_time_or_none(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def node_error(error: ErrorInfo) -> NodeErrorView:
    return NodeErrorView(type=error.type, message=error.message)


def node_error_or_none(error: ErrorInfo | None) -> NodeErrorView | None:
    return None if error is None else NodeErrorView(type=error.type, message=error.message)


IfChanged = Annotated[
    bool,
    Query(
        description="When the newest version of the definition's name has the same content, answer "
        "that version instead of registering a new one (a retried registration makes no new version)."
    ),
]

WaitSeconds = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description=f"Wait up to this many seconds (at most {MAX_WAIT_SECONDS:g}) for the run to "
        "end: the answer comes as soon as it is COMPLETED, FAILED or CANCELLED, or when the time is "
        "up (the run as it is then). 0, the default: answer at once. The wait is woken by the "
        "engine, not by polling.",
    ),
]
