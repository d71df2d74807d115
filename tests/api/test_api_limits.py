"""Limits from settings: the request body (413 before it is buffered), the body's media type (415),
and the definition and input limits, whose refusals name the setting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_support import assert_error, client_for, make_settings, node, workflow
from dependency_injector import providers
from http_support import submit

from services.api import create_app
from services.api.middleware import drain_bound
from services.container import Container

LIMIT = 1000
CHUNK = 100


@pytest.fixture
async def small(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an API that takes bodies of at most ``LIMIT`` bytes."""
    async with client_for(create_app(container.workflows, make_settings(max_request_bytes=LIMIT))) as client:
        yield client


class Chunks:
    """A chunked request body (no Content-Length) that counts how much of it was read."""

    def __init__(self, count: int, chunk: bytes = b" " * CHUNK) -> None:
        self.count = count
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.sent += 1
            yield self.chunk


def assert_too_large(response: httpx.Response) -> str:
    error = assert_error(response, 413, "payload_too_large")
    assert "MAX_REQUEST_BYTES" in error["message"]
    assert str(LIMIT) in error["message"]
    message: str = error["message"]
    return message


async def test_a_declared_content_length_over_the_limit_is_refused_up_front(
    small: httpx.AsyncClient,
) -> None:
    body = b'{"name": "big", "dag": {"nodes": []}, "pad": "' + b"x" * LIMIT + b'"}'
    response = await small.post("/api/workflow", content=body, headers={"content-type": "application/json"})
    assert str(len(body)) in assert_too_large(response)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit_and_read_no_further_than_the_bound(
    small: httpx.AsyncClient,
) -> None:
    bound = LIMIT + drain_bound(LIMIT)  # read and dropped before the 413, so that the client reads it
    body = Chunks(count=bound // CHUNK + 1000)
    response = await small.post("/api/workflow", content=body, headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_too_large(response)
    assert body.sent <= bound // CHUNK + 2, "the body was read past the bound"


async def test_a_chunked_trigger_body_is_refused_too(small: httpx.AsyncClient) -> None:
    execution_id = await submit(small, workflow("one", node("input", "input")))
    response = await small.post(f"/api/workflow/trigger/{execution_id}", content=Chunks(count=50))
    assert_too_large(response)


async def test_a_chunked_body_within_the_limit_is_accepted(small: httpx.AsyncClient) -> None:
    body = b'{"name": "small", "dag": {"nodes": [{"id": "input", "handler": "input"}]}}'
    chunks = Chunks(count=1, chunk=body)
    response = await small.post("/api/workflow", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


async def test_a_body_exactly_at_the_limit_is_read(small: httpx.AsyncClient) -> None:
    body = b" " * LIMIT
    response = await small.post("/api/workflow", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "bad_request")  # read and parsed: blank, not too large


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
async def test_a_body_declared_as_something_other_than_json_is_refused(
    client: httpx.AsyncClient, content_type: str
) -> None:
    body = b'{"name": "one", "dag": {"nodes": [{"id": "input", "handler": "input"}]}}'
    response = await client.post("/api/workflow", content=body, headers={"content-type": content_type})
    error = assert_error(response, 415, "unsupported_media_type")
    assert content_type in error["message"]
    assert "application/json" in error["message"]

    execution_id = await submit(client, workflow("one", node("input", "input")))
    response = await client.post(
        f"/api/workflow/trigger/{execution_id}",
        content=b'{"input": {}}',
        headers={"content-type": content_type},
    )
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/vnd.dag+json", None]
)
async def test_json_media_types_and_a_missing_content_type_are_accepted(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    body = b'{"name": "one", "dag": {"nodes": [{"id": "input", "handler": "input"}]}}'
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/api/workflow", content=body, headers=headers)
    assert response.status_code == 200, response.text


async def test_an_empty_trigger_body_is_fine_whatever_its_declared_type(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, workflow("one", node("input", "input")))
    response = await client.post(
        f"/api/workflow/trigger/{execution_id}", content=b"", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 200, response.text


@pytest.fixture
async def limited(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an engine with tiny definition and input limits."""
    settings = make_settings(max_nodes=2, max_config_bytes=64, max_input_bytes=32)
    container.settings.override(providers.Object(settings))
    try:
        async with client_for(create_app(container.workflows, settings)) as client:
            yield client
    finally:
        container.settings.reset_override()


async def test_too_many_nodes_are_refused_naming_the_limit(limited: httpx.AsyncClient) -> None:
    definition = workflow("three", node("a", "input"), node("b", "output", ["a"]), node("c", "output", ["a"]))
    error = assert_error(await limited.post("/api/workflow", json=definition), 400, "invalid_definition")
    assert error["details"] == [
        {"path": "$.dag.nodes", "message": "3 nodes exceed the limit of 2 (MAX_NODES)"}
    ]


async def test_a_config_over_the_limit_is_refused_naming_the_limit(limited: httpx.AsyncClient) -> None:
    definition = workflow("big", node("a", "call_llm_service", prompt="x" * 100))
    error = assert_error(await limited.post("/api/workflow", json=definition), 400, "invalid_definition")
    [detail] = error["details"]
    assert detail["path"] == "$.dag.nodes[0].config"
    assert "over the limit of 64" in detail["message"]
    assert detail["message"].endswith("(MAX_CONFIG_BYTES)")


async def test_an_input_over_the_limit_is_refused_naming_the_limit(limited: httpx.AsyncClient) -> None:
    execution_id = await submit(limited, workflow("one", node("input", "input")))
    response = await limited.post(f"/api/workflow/trigger/{execution_id}", json={"input": {"text": "x" * 64}})
    error = assert_error(response, 400, "invalid_input")
    [detail] = error["details"]
    assert detail["path"] == "$.input"
    assert "over the limit of 32 (MAX_INPUT_BYTES)" in detail["message"]
    assert "MAX_INPUT_BYTES" in error["message"]
