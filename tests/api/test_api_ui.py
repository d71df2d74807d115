"""The web UI's files and the routes it reads beside the resource API: a definition's graph laid out
and one node of a run with its output (on both backends)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from api_support import assert_error, client_for, make_settings, node, workflow

from services.api import create_app
from services.container import Container

FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


async def _final(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            run: dict[str, Any] = (await client.get(f"/api/runs/{run_id}")).json()
            if run["status"] in FINAL:
                return run
            await asyncio.sleep(0.02)


async def test_the_page_is_served_at_the_root_with_the_api_prefix(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<meta name="dag-api" content="/api">' in page.text
    script = await client.get("/ui/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert (await client.get("/ui/style.css")).status_code == 200
    assert (await client.get("/ui/js/no-such-file.js")).status_code == 404


async def test_with_tokens_the_ui_files_are_open_and_the_api_is_not(container: Container) -> None:
    app = create_app(container.workflows, make_settings(api_tokens="s3cret", api_str="/v2"))
    async with client_for(app) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert 'content="/v2"' in page.text
        assert (await client.get("/ui/js/api.js")).status_code == 200
        assert_error(await client.get("/v2/runs"), 401, "unauthorized")
        assert (await client.get("/v2/runs", headers={"Authorization": "Bearer s3cret"})).status_code == 200


async def test_the_graph_of_a_definition_is_its_layout(client: httpx.AsyncClient) -> None:
    definition = workflow(
        f"g-{uuid.uuid4().hex[:8]}",
        node("a", "input"),
        node("b", "output", ["a"]),
        node("c", "output", ["a"]),
        node("d", "output", ["b", "c"]),
    )
    created = (await client.post("/api/definitions", json=definition)).json()
    response = await client.get(f"/api/definitions/{created['definition_id']}/graph")
    assert response.status_code == 200, response.text
    graph = response.json()
    assert [(n["id"], n["layer"]) for n in graph["nodes"]] == [("a", 0), ("b", 1), ("c", 1), ("d", 2)]
    assert sorted(map(tuple, graph["edges"])) == [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert graph["nodes"][0]["handler"] == "input"
    assert graph["width"] > graph["node_width"] and graph["height"] >= graph["node_height"]
    again = await client.get(f"/api/definitions/{created['definition_id']}/graph")
    assert again.json() == graph
    assert_error(await client.get("/api/definitions/nope/graph"), 404, "not_found")


async def test_a_node_of_a_run_comes_with_its_output(client: httpx.AsyncClient) -> None:
    definition = workflow(
        f"n-{uuid.uuid4().hex[:8]}", node("first", "input"), node("last", "output", ["first"])
    )
    created = (await client.post("/api/definitions", json=definition)).json()
    started = await client.post(
        "/api/runs", json={"definition_id": created["definition_id"], "input": {"k": 1}}
    )
    run_id = started.json()["run_id"]
    await _final(client, run_id)
    response = await client.get(f"/api/runs/{run_id}/nodes/last")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["status"] == "COMPLETED"
    assert detail["parents"] == ["first"]
    assert (detail["handler"], detail["queue"]) == ("output", "default")
    assert detail["has_output"] is True
    assert detail["output"] == {"first": {"input_payload": {"k": 1}}}
    assert detail["attempts"] == 1 and detail["worker_id"]
    missing = assert_error(await client.get(f"/api/runs/{run_id}/nodes/nope"), 404, "not_found")
    assert "nope" in missing["message"]
    assert_error(await client.get("/api/runs/no-such-run/nodes/first"), 404, "not_found")


async def test_the_tail_of_a_runs_events_gives_the_newest_and_where_to_resume(
    client: httpx.AsyncClient,
) -> None:
    nodes = [node("n0", "input"), *(node(f"n{i}", "output", [f"n{i - 1}"]) for i in range(1, 6))]
    created = (
        await client.post("/api/definitions", json=workflow(f"t-{uuid.uuid4().hex[:8]}", *nodes))
    ).json()
    started = await client.post("/api/runs", json={"definition_id": created["definition_id"]})
    run_id = started.json()["run_id"]
    await _final(client, run_id)
    everything = (await client.get(f"/api/runs/{run_id}/events/tail", params={"limit": 500})).json()
    numbers = [event["seq"] for event in everything["events"]]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 7  # start + 6 results
    assert everything["last_seq"] == numbers[-1]
    assert everything["events"][-1]["run_status"] == "COMPLETED"
    tail = (await client.get(f"/api/runs/{run_id}/events/tail", params={"limit": 2})).json()
    assert tail["last_seq"] == numbers[-1]
    assert [event["seq"] for event in tail["events"]] == numbers[-2:]
    assert_error(await client.get("/api/runs/no-such-run/events/tail"), 404, "not_found")
