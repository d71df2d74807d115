"""Waiting for a run over HTTP without polling: the run's event stream and ``?wait=`` on the status
routes, woken by the engine's word of each change (``RunChanges``), on memory and on Redis.

The re-check of a waiting reader is set to two minutes here: every answer that comes within
seconds was woken by the engine, not by a timer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from api_support import assert_error, client_for, make_settings, node, workflow
from dependency_injector import providers
from http_support import submit, trigger
from redis_support import RedisServer

from services.api import create_app, event_stream
from services.container import Container, close_backend, open_backend
from services.engine import EmbeddedEngine
from services.settings import Settings

RECHECK = 120.0
PROMPTLY = 10.0
"""Far below ``RECHECK``, far above what word takes (milliseconds) on a loaded machine."""


@pytest.fixture(params=["memory", "redis"])
async def container(request: pytest.FixtureRequest) -> AsyncIterator[Container]:
    container = Container()
    container.backend.override(request.param)
    values: dict[str, Any] = {"run_wait_recheck_seconds": RECHECK}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        values.update(redis_url=server.url, redis_key_prefix=f"wait-{uuid.uuid4().hex[:10]}")
    container.settings.override(providers.Object(Settings(**values)))
    await open_backend(container)
    try:
        async with EmbeddedEngine(container, workers=2):
            yield container
    finally:
        await close_backend(container)


@pytest.fixture
def app(container: Container) -> Any:
    return create_app(container.workflows, make_settings())


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


def chain(delay: float) -> dict[str, Any]:
    return workflow(
        "chain",
        node("a", "call_external_service", delay_seconds=delay),
        node("b", "call_external_service", ["a"], delay_seconds=delay),
        node("c", "call_external_service", ["b"], delay_seconds=delay),
    )


async def started(client: httpx.AsyncClient, delay: float) -> str:
    return await trigger(client, await submit(client, chain(delay)), {})


async def test_the_event_stream_follows_the_run_without_polling(client: httpx.AsyncClient) -> None:
    run_id = await started(client, 0.1)
    began = time.monotonic()
    response = await client.get(f"/api/runs/{run_id}/events")  # ends with the run's last event
    assert time.monotonic() - began < PROMPTLY
    assert response.status_code == 200
    assert "run_status" in response.text.rsplit("data:", 1)[-1]


async def test_a_stream_gathering_word_still_ends_with_the_run_and_misses_no_event(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Word of the steps between is gathered (here for up to two minutes); the run's end is read
    at once, and every event is in the stream, in order."""
    monkeypatch.setattr(event_stream, "SETTLE_SECONDS", RECHECK)
    run_id = await started(client, 0.05)
    began = time.monotonic()
    response = await client.get(f"/api/runs/{run_id}/events")
    assert time.monotonic() - began < PROMPTLY
    assert "run_status" in response.text.rsplit("data:", 1)[-1]
    numbers = [int(line[4:]) for line in response.text.splitlines() if line.startswith("id: ")]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 4  # the run's start and each node's end
    replayed = await client.get(f"/api/runs/{run_id}/events")  # the whole history, the run ended
    assert response.text == replayed.text


@pytest.mark.parametrize("route", ["/api/workflows/{}", "/api/runs/{}"])
async def test_a_waiting_status_request_answers_when_the_run_ends(
    client: httpx.AsyncClient, route: str
) -> None:
    run_id = await started(client, 0.1)
    began = time.monotonic()
    waited = await client.get(route.format(run_id), params={"wait": 60})
    assert time.monotonic() - began < PROMPTLY
    assert waited.status_code == 200, waited.text
    status = waited.json()
    assert (status.get("state") or status.get("status")) == "COMPLETED"
    plain = (await client.get(route.format(run_id))).json()
    assert waited.json() == plain  # the same shape (and, the run having ended, the same content)


async def test_wait_zero_and_a_wait_that_runs_out_answer_the_run_as_it_is(client: httpx.AsyncClient) -> None:
    run_id = await started(client, 30)  # its first node holds it RUNNING throughout
    began = time.monotonic()
    at_once = await client.get(f"/api/workflows/{run_id}", params={"wait": 0})
    assert at_once.status_code == 200
    assert at_once.json()["state"] in ("PENDING", "RUNNING")
    assert time.monotonic() - began < PROMPTLY
    began = time.monotonic()
    ran_out = await client.get(f"/api/workflows/{run_id}", params={"wait": 0.3})
    assert time.monotonic() - began >= 0.3
    assert ran_out.status_code == 200
    assert ran_out.json()["state"] == "RUNNING"
    assert set(ran_out.json()) == set(at_once.json())


@pytest.mark.parametrize("route", ["/api/workflows/x", "/api/runs/x"])
@pytest.mark.parametrize("value", ["-1", "61", "soon", "nan"])
async def test_a_bad_wait_is_a_422_naming_it(client: httpx.AsyncClient, route: str, value: str) -> None:
    error = assert_error(await client.get(route, params={"wait": value}), 422, "validation_error")
    assert [detail["path"] for detail in error["details"]] == ["query.wait"]


# -- a client that leaves ------------------------------------------------------------------------


class RawRequest:
    """One GET straight into the ASGI app, whose client can leave mid-answer (http.disconnect)."""

    def __init__(self, app: Any, path: str, query: str = "") -> None:
        self._asked = False
        self.leave = asyncio.Event()
        self.messages: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"test")],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        self.task = asyncio.ensure_future(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


async def until(condition: Any, within: float = PROMPTLY) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "path, query",
    [("/api/runs/{}/events", ""), ("/api/workflows/{}", "wait=60"), ("/api/runs/{}", "wait=60")],
)
async def test_a_client_that_leaves_takes_its_watch_with_it(
    client: httpx.AsyncClient, app: Any, container: Container, path: str, query: str
) -> None:
    run_id = await started(client, 30)
    changes = container.run_changes()
    before = changes.watch_count()
    request = RawRequest(app, path.format(run_id), query)
    await until(lambda: changes.watch_count() == before + 1)
    request.leave.set()
    await asyncio.wait_for(request.task, PROMPTLY)
    assert changes.watch_count() == before


async def test_a_stream_without_events_sends_a_ping_now_and_then(
    client: httpx.AsyncClient, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A comment (``: ping``) after ``PING_SECONDS`` without an event keeps proxies from closing
    the stream of a run that does nothing for a while; the events before it came first."""
    monkeypatch.setattr(event_stream, "PING_SECONDS", 0.3)
    run_id = await started(client, 30)  # its first node holds it RUNNING throughout
    request = RawRequest(app, f"/api/runs/{run_id}/events")

    def body() -> bytes:
        return b"".join(m.get("body", b"") for m in request.messages if m["type"] == "http.response.body")

    try:
        await until(lambda: b": ping\n\n" in body())
    finally:
        request.leave.set()
        await asyncio.wait_for(request.task, PROMPTLY)
    before_ping = body().split(b": ping\n\n", 1)[0]
    assert b"event: run_started\n" in before_ping
    assert before_ping.endswith(b"\n\n")  # between two events, not inside one
