"""The routes a client drives a run by, served ahead of FastAPI's routing.

A run start and the reads that wait for its end are most of what an API under load answers: the
seed's ``POST {prefix}/workflow/trigger/{id}`` and ``GET {prefix}/workflows/{id}``, the resource
API's ``POST {prefix}/runs``, ``GET {prefix}/runs/{id}`` and its event stream
``GET {prefix}/runs/{id}/events``. Through FastAPI each went through its routing (every included
router's routes tried in turn), its request handler and its dependency resolution: about a third
of the API's CPU in W3 (500 runs waited on by long-poll, py-spy). These routes are plain Starlette
routes put first in the router; they call the same route functions (``seed_routes``,
``resource_routes``). Starlette still handles their errors with the app's handlers, and the
middleware (CORS, authentication, rate limit, body limit) still wraps them. FastAPI's routes stay
behind them: they document the routes (OpenAPI) and answer every request a hot route declines:

- a request with another method: FastAPI answers 405 as before;
- a status read whose query is not empty or a plain ``wait`` in range, an event stream whose query
  is not empty or a plain ``after`` (a bad value, another parameter): FastAPI validates it, 422
  included.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from services.api import resource_routes, seed_routes
from services.api.dependencies import workflow_service
from services.application.waiting import MAX_WAIT_SECONDS

PLAIN_WAIT = re.compile(rb"wait=([0-9]{1,9}(?:\.[0-9]{1,9})?)")
"""The query of a long-poll the hot route takes: a plain decimal number (what FastAPI's validation
of ``wait`` would accept as it is); any other query goes to FastAPI."""
PLAIN_AFTER = re.compile(rb"after=([0-9]{1,18})")
"""The query of an event stream the hot route takes: a plain event number."""

QUERY = "hot_route.query"
"""Where a hot route's endpoint finds the query its route parsed (in the request's scope)."""

QueryParser = Callable[[bytes], float | int | None]
"""A query string to the value the endpoint takes, or None when the route declines it."""


class HotRoute(Route):
    """A Starlette route for one method, which lets FastAPI's route behind it answer every other
    method and every query its parser declines."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        method: str,
        query: QueryParser,
    ) -> None:
        super().__init__(path, endpoint, methods=[method], include_in_schema=False)
        self._method = method
        self._query = query

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != self._method:
            return Match.NONE, {}
        value = self._query(scope["query_string"])
        if value is None:
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is Match.FULL:
            child[QUERY] = value
        return match, child


def wait_of(query: bytes) -> float | None:
    """The ``wait`` of a status read the hot route takes: 0 without a query; None to decline."""
    if not query:
        return 0.0
    plain = PLAIN_WAIT.fullmatch(query)
    if plain is None:
        return None
    wait = float(plain.group(1))
    return wait if wait <= MAX_WAIT_SECONDS else None


def after_of(query: bytes) -> int | None:
    """The ``after`` of an event stream the hot route takes: 0 without a query; None to decline."""
    if not query:
        return 0
    plain = PLAIN_AFTER.fullmatch(query)
    return None if plain is None else int(plain.group(1))


def any_query(query: bytes) -> int:
    """A start takes whatever its query is, as FastAPI's route does."""
    return 0


async def _trigger(request: Request) -> Response:
    return await seed_routes.trigger_workflow(request.path_params["execution_id"], request)


async def _status(request: Request) -> Response:
    wait: float = request.scope[QUERY]
    return await seed_routes.workflow_status(request.path_params["instance_id"], request, wait)


async def _start(request: Request) -> Response:
    return await resource_routes.start_run(request)


async def _run(request: Request) -> Response:
    wait: float = request.scope[QUERY]
    service = await workflow_service(request)
    return await resource_routes.get_run(request.path_params["run_id"], request, service, wait)


async def _events(request: Request) -> Response:
    after: int = request.scope[QUERY]
    run_id: str = request.path_params["run_id"]
    service = await workflow_service(request)
    resumed = request.headers.get("last-event-id")
    start = await resource_routes.first_event_after(run_id, service, after, resumed)
    return await resource_routes.run_events(run_id, service, start)


def install_hot_routes(app: FastAPI, prefix: str) -> None:
    """Put the hot routes first in ``app``'s router (after its other routes were included)."""
    hot: list[Any] = [
        HotRoute(f"{prefix}/workflow/trigger/{{execution_id}}", _trigger, "POST", any_query),
        HotRoute(f"{prefix}/workflows/{{instance_id}}", _status, "GET", wait_of),
        HotRoute(f"{prefix}/runs", _start, "POST", any_query),
        HotRoute(f"{prefix}/runs/{{run_id}}", _run, "GET", wait_of),
        HotRoute(f"{prefix}/runs/{{run_id}}/events", _events, "GET", after_of),
    ]
    app.router.routes[:0] = hot
