"""Every error comes back in one JSON shape with the status of the shared error table."""

from __future__ import annotations

import httpx
import pytest
from api_support import assert_error, client_for, make_settings, node, workflow
from fastapi import FastAPI
from http_support import submit

from services.api import create_app
from services.application.workflows import WorkflowService
from services.container import Container


async def test_invalid_definition_lists_every_problem_with_its_path(client: httpx.AsyncClient) -> None:
    definition = workflow(
        "broken",
        node("a", "input", ["b"]),
        node("b", "output", ["a"]),
        node("c", "output", ["ghost"]),
    )
    error = assert_error(await client.post("/api/workflow", json=definition), 400, "invalid_definition")
    by_path = {detail["path"]: detail["message"] for detail in error["details"]}
    assert len(error["details"]) == 2
    assert "unknown node 'ghost'" in by_path["$.dag.nodes[2].dependencies[0]"]
    cycles = [message for message in by_path.values() if "cycle" in message]
    assert len(cycles) == 1 and ("a -> b -> a" in cycles[0] or "b -> a -> b" in cycles[0])


async def test_a_secret_in_when_or_output_is_refused_with_its_path(client: httpx.AsyncClient) -> None:
    definition = workflow("secretive", node("a", "input", token="{{ secrets.api_token }}"))
    definition["dag"]["nodes"][0]["when"] = "{{ secrets.api_token }} == 'x'"
    definition["output"] = {"token": "{{ secrets.api_token }}"}

    error = assert_error(await client.post("/api/workflow", json=definition), 400, "invalid_definition")

    by_path = {detail["path"]: detail["message"] for detail in error["details"]}
    assert sorted(by_path) == ["$.dag.nodes[0].when", "$.output.token"], "the config's secret is fine"
    assert "a condition cannot read a secret" in by_path["$.dag.nodes[0].when"]
    assert "the workflow's output cannot read a secret" in by_path["$.output.token"]


async def test_definition_of_the_wrong_json_type_is_a_problem_at_the_root(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.post("/api/workflow", json=[1, 2]), 400, "invalid_definition")
    assert [detail["path"] for detail in error["details"]] == ["$"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"   ", b'{"name": NaN}', b"\xff\xfe\x00", b"[" * 100_000],
    ids=["malformed", "empty", "blank", "nan", "not-utf8", "deep"],
)
async def test_unparsable_definition_body_is_a_bad_request(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/api/workflow", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "bad_request")


async def test_malformed_trigger_body_is_a_bad_request(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, workflow("one", node("input", "input")))
    response = await client.post(f"/api/workflow/trigger/{execution_id}", content=b'{"input": ')
    error = assert_error(response, 400, "bad_request")
    assert "not valid JSON" in error["message"]


async def test_non_object_input_is_refused_naming_the_problem(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, workflow("one", node("input", "input")))
    response = await client.post(f"/api/workflow/trigger/{execution_id}", json={"input": [1]})
    error = assert_error(response, 400, "invalid_input")
    assert error["details"] == [
        {"path": "$.input", "message": "run input must be a JSON object, got an array"}
    ]


@pytest.mark.parametrize(
    ("body", "path"),
    [([1], "$"), ({"user_id": "u-1"}, "$.user_id")],
    ids=["array-body", "input-outside-envelope"],
)
async def test_trigger_body_envelope_is_checked(client: httpx.AsyncClient, body: object, path: str) -> None:
    execution_id = await submit(client, workflow("one", node("input", "input")))
    response = await client.post(f"/api/workflow/trigger/{execution_id}", json=body)
    error = assert_error(response, 400, "invalid_input")
    assert [detail["path"] for detail in error["details"]] == [path]


async def test_unknown_ids_are_not_found(client: httpx.AsyncClient) -> None:
    error = assert_error(
        await client.post("/api/workflow/trigger/nope", json={"input": {}}), 404, "not_found"
    )
    assert "nope" in error["message"]
    assert_error(await client.get("/api/workflows/nope"), 404, "not_found")
    assert_error(await client.get("/api/workflows/nope/results"), 404, "not_found")


async def test_unknown_route_and_wrong_method_use_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/nowhere"), 404, "not_found")
    response = await client.get("/api/workflow")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_request_validation_errors_use_the_error_shape(container: Container) -> None:
    app: FastAPI = create_app(container.workflows, make_settings())

    @app.get("/api/probe")
    async def probe(limit: int) -> dict[str, int]:
        return {"limit": limit}

    async with client_for(app) as client:
        error = assert_error(
            await client.get("/api/probe", params={"limit": "many"}), 422, "validation_error"
        )
    assert error["details"][0]["path"] == "query.limit"


async def test_a_bug_is_a_500_in_the_error_shape_without_a_stack_trace() -> None:
    def broken_factory() -> WorkflowService:
        raise RuntimeError("secret internals")

    app = create_app(broken_factory, make_settings())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/api/workflows/any")
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text
    assert error["details"] == []
