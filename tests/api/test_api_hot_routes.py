"""The hot routes (``services.api.hot_routes``): which requests they take and which they leave to
FastAPI's routes, and that a request answered by either gets the same answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_support import assert_error, make_settings, node, wait_final, workflow
from http_support import submit, trigger
from starlette.routing import Match

from services.api import create_app
from services.api.hot_routes import HotRoute, after_of, wait_of
from services.container import Container


def route_for(app: Any, method: str, path: str, query: bytes = b"") -> Any:
    """The route the app's router would hand this request to (the first that matches fully)."""
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "root_path": ""}
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


@pytest.mark.parametrize(
    ("query", "wait"),
    [(b"", 0.0), (b"wait=0", 0.0), (b"wait=2.5", 2.5), (b"wait=60", 60.0)],
)
def test_a_plain_wait_is_taken(query: bytes, wait: float) -> None:
    assert wait_of(query) == wait


@pytest.mark.parametrize(
    "query", [b"wait=-1", b"wait=abc", b"wait=1e3", b"wait=1000000", b"wait=1&x=2", b"x=1", b"wait="]
)
def test_any_other_query_of_a_status_read_is_declined(query: bytes) -> None:
    assert wait_of(query) is None


def test_an_event_stream_takes_a_plain_event_number_only() -> None:
    assert (after_of(b""), after_of(b"after=12")) == (0, 12)
    assert [after_of(q) for q in (b"after=-1", b"after=x", b"after=1&y=2")] == [None] * 3


HOT, FASTAPI = "hot route", "FastAPI's route"
ROUTING = [
    ("POST", "/api/workflow/trigger/x", b"", HOT),
    ("GET", "/api/workflows/x", b"", HOT),
    ("GET", "/api/workflows/x", b"wait=5", HOT),
    ("POST", "/api/runs", b"", HOT),
    ("GET", "/api/runs/x", b"wait=0.5", HOT),
    ("GET", "/api/runs/x/events", b"after=3", HOT),
    ("GET", "/api/workflows/x", b"wait=-1", FASTAPI),
    ("GET", "/api/workflows/x", b"wait=5&x=1", FASTAPI),
    ("GET", "/api/runs/x/events", b"after=no", FASTAPI),
    ("GET", "/api/runs", b"", FASTAPI),
    ("GET", "/api/workflows/x/results", b"", FASTAPI),
]
"""(method, path, query, the route the router should hand the request to)."""


def test_the_router_hands_plain_requests_to_the_hot_routes_and_the_rest_to_fastapi(
    container: Container,
) -> None:
    app = create_app(container.workflows, make_settings())

    def kind(route: Any) -> str | None:
        return None if route is None else HOT if isinstance(route, HotRoute) else FASTAPI

    handed = [kind(route_for(app, method, path, query)) for method, path, query, _ in ROUTING]
    assert handed == [expected for *_, expected in ROUTING]


async def test_a_status_read_answers_the_same_through_either_route(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, workflow("hot", node("a", "input")))
    instance_id = await trigger(client, execution_id, {})
    await wait_final(client, instance_id)
    for route in (f"/api/workflows/{instance_id}", f"/api/runs/{instance_id}"):
        hot = await client.get(route)
        # An unknown parameter changes nothing in the answer, and sends the read to FastAPI.
        behind = await client.get(route, params={"unused": "1"})
        assert (hot.status_code, hot.json()) == (behind.status_code, behind.json()) == (200, hot.json())
        assert hot.headers["etag"] == behind.headers["etag"]
        assert hot.headers["content-type"] == behind.headers["content-type"]
        unchanged = await client.get(route, headers={"if-none-match": hot.headers["etag"]})
        assert unchanged.status_code == 304


async def test_what_the_hot_routes_decline_gets_fastapis_answer(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/workflows/x", params={"wait": "-1"}), 422, "validation_error")
    assert_error(await client.get("/api/runs/x/events", params={"after": "no"}), 422, "validation_error")
    assert_error(await client.delete("/api/workflows/x"), 405, "method_not_allowed")
    assert_error(await client.get("/api/workflows/x"), 404, "not_found")
    assert_error(await client.get("/api/runs/x/events"), 404, "not_found")


async def test_a_start_checks_its_body_and_answers_created_then_repeated(
    client: httpx.AsyncClient,
) -> None:
    execution_id = await submit(client, workflow("hot-start", node("a", "input")))
    text = await client.post("/api/runs", content=b"{}", headers={"content-type": "text/plain"})
    assert_error(text, 415, "unsupported_media_type")
    body = {"definition_id": execution_id, "input": {}}
    key = {"idempotency-key": "hot-1"}
    first = await client.post("/api/runs", json=body, headers=key)
    again = await client.post("/api/runs", json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["run_id"] == again.json()["run_id"]
    assert first.headers["location"] == f"/api/runs/{first.json()['run_id']}"
