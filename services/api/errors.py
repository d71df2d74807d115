"""Every error leaves the API in one JSON shape; statuses come from ``services.application.errors``.

``{"error": {"code": str, "message": str, "details": [{"path": ..., "message": ...}]}}`` for expected
errors (the shared table), FastAPI's request validation (422), Starlette's HTTP errors (unknown route,
wrong method) and, as a last resort, a bug (500, no stack trace in the body).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import InvalidDefinition, InvalidInput, Problem
from services.api.common_schemas import ErrorBody, ErrorDetail, ErrorResponse
from services.application.errors import ERROR_TABLE, UnknownRedriveNode, outcome_of

log = logging.getLogger(__name__)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[ErrorDetail] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=list(details)))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _naming_the_setting(problem: Problem) -> str:
    """A limit problem also names the setting that sets the limit (MAX_NODES for max_nodes)."""
    return problem.message if problem.limit is None else f"{problem.message} ({problem.limit.upper()})"


def _describe(error: Exception) -> tuple[str, list[ErrorDetail]]:
    if isinstance(error, InvalidDefinition | InvalidInput):
        details = [
            ErrorDetail(path=problem.path, message=_naming_the_setting(problem)) for problem in error.problems
        ]
        if isinstance(error, InvalidDefinition):
            return f"invalid workflow definition: {len(details)} problem(s), listed in details", details
        message = "; ".join(f"{detail.path}: {detail.message}" for detail in details)
        if isinstance(error, UnknownRedriveNode):
            return f"unknown node to redrive from: {message}", details
        return f"invalid run input: {message}", details
    return str(error), []


def response_for(error: Exception, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The response of an error of the shared table (``ValueError`` for any other error)."""
    outcome = outcome_of(error)
    if outcome is None:
        raise ValueError(f"{type(error).__name__} is not in the shared error table")
    message, details = _describe(error)
    return error_response(outcome.http_status, outcome.code, message, details, headers)


async def _expected_error(request: Request, error: Exception) -> JSONResponse:
    if outcome_of(error) is None:
        return await _unexpected_error(request, error)
    return response_for(error)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "internal_error", "internal server error")


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    status = HTTPStatus(error.status_code)
    code = status.phrase.lower().replace(" ", "_").replace("-", "_")
    message = str(error.detail)
    if error.status_code == 404 and message == status.phrase:
        message = f"nothing at {request.url.path}"
    elif error.status_code == 405 and message == status.phrase:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(error.status_code, code, message, headers=error.headers)


def _location(loc: Sequence[int | str]) -> str:
    """``("body", "input", 0)`` -> ``$.input[0]``; other sources keep their name: ``query.limit``."""
    source, rest = (str(loc[0]), loc[1:]) if loc else ("body", ())
    tail = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest)
    return "$" + tail if source == "body" else source + tail


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    details = [ErrorDetail(path=_location(item["loc"]), message=item["msg"]) for item in error.errors()]
    return error_response(422, "validation_error", "the request is not valid", details)


def install_error_handlers(app: FastAPI) -> None:
    for kind, _ in ERROR_TABLE:
        app.add_exception_handler(kind, _expected_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)


_DESCRIPTIONS = {
    400: "Invalid request: every problem is listed in details",
    401: "Missing or invalid bearer token (when API_TOKENS is set); see WWW-Authenticate",
    403: "The bearer token lacks the scope the route needs (read, run or admin); the message names it",
    404: "Not found",
    409: (
        "Conflicts with the run's state (results of a run still going, cancel of an ended run), or "
        "an idempotency key reused for another request"
    ),
    413: "Request body over MAX_REQUEST_BYTES",
    415: "Request body declared as something other than JSON",
    422: "Request validation failed (replaces FastAPI's own 422 shape)",
    429: "Too many requests from this client (API_RATE_LIMIT_PER_SECOND); see Retry-After",
    503: "The backend (Redis) cannot be reached",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for the errors a route can return, all in the one error shape."""
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}
