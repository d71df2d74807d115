"""Worker pools seen through the API, on both backends (each with the fixture's two workers of the
default queue): GET /api/handlers lists what the live workers serve, a registration is answered
with warnings for what no live worker serves, and the run view names a queue without a worker.

A handler the API's own registry lacks is refused on the memory backend (its workers run in the API's
process, with that registry: it is the whole truth) and a warning on Redis (workers are elsewhere
and may start later)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from api_support import POLL_LIMIT_SECONDS, assert_error, node, workflow

from services.container import Container
from services.worker.builtin import builtin_names

BUILTINS = sorted(builtin_names())


async def handlers_listed(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The answer once both of the fixture's workers have announced themselves."""
    async with asyncio.timeout(POLL_LIMIT_SECONDS):
        while True:
            response = await client.get("/api/handlers")
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            if items and all(item["workers"] == 2 for item in items):
                return items
            await asyncio.sleep(0.02)


async def test_handlers_lists_each_queue_and_handler_with_its_workers(client: httpx.AsyncClient) -> None:
    items = await handlers_listed(client)
    assert items == [{"queue": "default", "handler": name, "workers": 2} for name in BUILTINS]


async def test_a_queue_without_a_worker_is_a_warning_and_its_node_waits_saying_so(
    client: httpx.AsyncClient,
) -> None:
    await handlers_listed(client)
    definition = workflow("gpu", node("input", "input"), node("train", "call_llm_service", ["input"]))
    definition["dag"]["nodes"][1]["queue"] = "gpu"

    registered = await client.post("/api/definitions", json=definition)
    assert registered.status_code == 201, registered.text
    [warning] = registered.json()["warnings"]
    assert warning["path"] == "$.dag.nodes[1].queue"
    assert "no live worker serves queue 'gpu'" in warning["message"]
    seed = await client.post("/api/workflow", json=definition)
    assert seed.json()["warnings"] == [warning], "the seed's answer carries them too, when there are any"

    run = await client.post("/api/runs", json={"definition_id": registered.json()["definition_id"]})
    run_id = run.json()["run_id"]
    async with asyncio.timeout(POLL_LIMIT_SECONDS):
        while True:
            train = (await client.get(f"/api/runs/{run_id}")).json()["nodes"]["train"]
            if train["status"] == "QUEUED":
                break
            await asyncio.sleep(0.02)
    assert train["reason"].endswith("waiting for a worker on queue gpu"), train
    seed_view = (await client.get(f"/api/workflows/{run_id}")).json()["nodes"]["train"]
    assert seed_view["reason"] == train["reason"]
    await client.post(f"/api/runs/{run_id}/cancel")


async def test_a_definition_served_by_live_workers_has_no_warning(client: httpx.AsyncClient) -> None:
    await handlers_listed(client)
    definition = workflow("served", node("input", "input"), node("ask", "call_llm_service", ["input"]))

    registered = await client.post("/api/definitions", json=definition)
    seed = await client.post("/api/workflow", json=definition)

    assert registered.json()["warnings"] == []
    assert set(seed.json()) == {"execution_id"}, "the seed's answer keeps its exact shape"


async def test_an_unknown_handler_is_refused_in_memory_and_a_warning_on_redis(
    client: httpx.AsyncClient, container: Container
) -> None:
    await handlers_listed(client)
    definition = workflow("unknown", node("input", "input"), node("fetch", "no_such_handler", ["input"]))

    response = await client.post("/api/definitions", json=definition)

    if container.backend() == "memory":
        error = assert_error(response, 400, "invalid_definition")
        assert error["details"][0]["path"] == "$.dag.nodes[1].handler"
        return
    assert response.status_code == 201, response.text
    [warning] = response.json()["warnings"]
    assert warning["path"] == "$.dag.nodes[1].handler"
    assert "no live worker of queue 'default' has announced handler 'no_such_handler'" in warning["message"]
