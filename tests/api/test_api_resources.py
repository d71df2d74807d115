"""The resource API (definitions, runs, cancel, run events) over a real embedded engine, on the memory
backend and on a real Redis (see conftest)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from api_support import assert_error, node, workflow

FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def _name() -> str:
    return f"wf-{uuid.uuid4().hex[:8]}"


def _chain(name: str, delay: float = 0.0) -> dict[str, Any]:
    return workflow(
        name,
        node("first", "input"),
        node(
            "slow",
            "call_external_service",
            ["first"],
            url="{{ first.input_payload.url }}",
            delay_seconds=delay,
        ),
        node("last", "output", ["slow"]),
    )


async def _define(client: httpx.AsyncClient, definition: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/definitions", json=definition)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _start(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("input", {"url": "https://example.com/x"})
    response = await client.post("/api/runs", json=body)
    assert response.status_code == 201, response.text
    started: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/api/runs/{started['run_id']}"
    return started


async def _node_completed(client: httpx.AsyncClient, run_id: str, node_id: str) -> None:
    async with asyncio.timeout(10):
        while True:
            run = (await client.get(f"/api/runs/{run_id}")).json()
            if run["nodes"][node_id]["status"] == "COMPLETED":
                return
            await asyncio.sleep(0.01)


async def _final(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            response = await client.get(f"/api/runs/{run_id}")
            assert response.status_code == 200, response.text
            run: dict[str, Any] = response.json()
            if run["status"] in FINAL:
                return run
            await asyncio.sleep(0.02)


def _events(text: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, event, data) of every event in a text/event-stream body; comments skipped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
        if "data" in fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


# -- definitions --------------------------------------------------------------------------------


async def test_registering_a_name_again_makes_a_new_version(client: httpx.AsyncClient) -> None:
    name = _name()
    first = await _define(client, _chain(name))
    second = await _define(client, _chain(name, delay=0.01))

    assert (first["name"], first["version"], first["node_count"]) == (name, 1, 3)
    assert second["version"] == 2
    assert second["definition_id"] != first["definition_id"]
    detail = (await client.get(f"/api/definitions/{first['definition_id']}")).json()
    assert detail["version"] == 1
    assert detail["definition"]["dag"]["nodes"][1]["config"]["delay_seconds"] == 0.0


async def test_definitions_are_listed_by_name_in_cursor_pages(client: httpx.AsyncClient) -> None:
    name = _name()
    ids = [(await _define(client, _chain(name)))["definition_id"] for _ in range(3)]
    await _define(client, _chain(_name()))

    first = (await client.get("/api/definitions", params={"name": name, "limit": 2})).json()
    second = (
        await client.get(
            "/api/definitions", params={"name": name, "limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()

    listed = [d["definition_id"] for d in first["items"] + second["items"]]
    assert listed == list(reversed(ids))
    assert [d["version"] for d in first["items"] + second["items"]] == [3, 2, 1]
    assert second["next_cursor"] is None


async def test_an_invalid_definition_lists_every_problem(client: httpx.AsyncClient) -> None:
    definition = workflow(_name(), node("a", "input", ["ghost"]), node("a", "input"))
    error = assert_error(await client.post("/api/definitions", json=definition), 400, "invalid_definition")
    assert {detail["path"] for detail in error["details"]} >= {
        "$.dag.nodes[1].id",
        "$.dag.nodes[0].dependencies[0]",
    }


async def test_an_unknown_definition_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/definitions/nope"), 404, "not_found")


# -- runs ---------------------------------------------------------------------------------------


async def test_a_run_started_by_name_pins_the_newest_version(client: httpx.AsyncClient) -> None:
    name = _name()
    await _define(client, _chain(name))
    newest = await _define(client, _chain(name))

    started = await _start(client, workflow=name, input={"url": "https://example.com/x"})
    await _define(client, _chain(name))  # a later version does not change the run

    assert started["definition_id"] == newest["definition_id"]
    run = await _final(client, started["run_id"])
    assert run["status"] == "COMPLETED"
    assert run["definition_id"] == newest["definition_id"]
    assert run["input"] == {"url": "https://example.com/x"}
    assert run["nodes"]["slow"]["attempts"] == 1
    results = (await client.get(f"/api/runs/{started['run_id']}/results")).json()
    assert results["results"]["slow"]["url"] == "https://example.com/x"
    assert results["status"] == "COMPLETED"


async def test_bad_start_requests_name_the_problem(client: httpx.AsyncClient) -> None:
    definition_id = (await _define(client, _chain(_name())))["definition_id"]

    both = assert_error(
        await client.post("/api/runs", json={"definition_id": definition_id, "workflow": "x"}),
        400,
        "invalid_input",
    )
    assert both["details"][0]["path"] == "$"
    unknown = assert_error(
        await client.post("/api/runs", json={"definition_id": definition_id, "inputs": {}}),
        400,
        "invalid_input",
    )
    assert unknown["details"][0]["path"] == "$.inputs"
    not_object = assert_error(
        await client.post("/api/runs", json={"definition_id": definition_id, "input": [1]}),
        400,
        "invalid_input",
    )
    assert not_object["details"][0]["path"].startswith("$.input")
    assert_error(await client.post("/api/runs", json={"workflow": _name()}), 404, "not_found")
    assert_error(await client.post("/api/runs", json={"definition_id": "nope"}), 404, "not_found")


async def test_runs_are_listed_with_filters_and_pages(client: httpx.AsyncClient) -> None:
    name = _name()
    definition_id = (await _define(client, _chain(name)))["definition_id"]
    run_ids = [(await _start(client, definition_id=definition_id))["run_id"] for _ in range(3)]
    for run_id in run_ids:
        await _final(client, run_id)
    await _start(client, definition_id=(await _define(client, _chain(_name())))["definition_id"])

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"workflow": name, "status": "COMPLETED", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/runs", params=params)).json()
        seen += [item["run_id"] for item in page["items"]]
        assert all(item["workflow"] == name and item["status"] == "COMPLETED" for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(run_ids))
    failed = (await client.get("/api/runs", params={"workflow": name, "status": "FAILED"})).json()
    assert failed == {"items": [], "next_cursor": None}


async def test_bad_list_queries_are_refused(client: httpx.AsyncClient) -> None:
    status = assert_error(await client.get("/api/runs", params={"status": "DONE"}), 422, "validation_error")
    assert status["details"][0]["path"] == "query.status"
    assert_error(await client.get("/api/runs", params={"limit": 0}), 422, "validation_error")
    assert_error(await client.get("/api/runs", params={"limit": 501}), 422, "validation_error")
    cursor = assert_error(await client.get("/api/runs", params={"cursor": "garbage!"}), 400, "invalid_input")
    assert cursor["details"][0]["path"] == "$.cursor"


async def test_results_of_a_run_still_going_are_409(client: httpx.AsyncClient) -> None:
    definition_id = (await _define(client, _chain(_name(), delay=0.5)))["definition_id"]
    run_id = (await _start(client, definition_id=definition_id))["run_id"]

    error = assert_error(await client.get(f"/api/runs/{run_id}/results"), 409, "run_not_finished")
    assert run_id in error["message"]
    assert_error(await client.get("/api/runs/nope/results"), 404, "not_found")
    assert_error(await client.get("/api/runs/nope"), 404, "not_found")


# -- cancel -------------------------------------------------------------------------------------


async def test_cancel_ends_the_run_and_later_nodes_never_start(client: httpx.AsyncClient) -> None:
    definition_id = (await _define(client, _chain(_name(), delay=0.5)))["definition_id"]
    run_id = (await _start(client, definition_id=definition_id))["run_id"]
    await _node_completed(client, run_id, "first")

    response = await client.post(f"/api/runs/{run_id}/cancel")

    assert response.status_code == 202, response.text
    assert response.json() == {"run_id": run_id, "status": "RUNNING", "cancel_requested": True}
    run = await _final(client, run_id)
    assert run["status"] == "CANCELLED"
    assert run["nodes"]["first"]["status"] == "COMPLETED"
    assert run["nodes"]["slow"]["status"] == "CANCELLED"
    assert (run["nodes"]["last"]["status"], run["nodes"]["last"]["attempts"]) == ("CANCELLED", 0)
    await asyncio.sleep(0.7)  # the slow attempt ends meanwhile: its result changes nothing
    assert (await client.get(f"/api/runs/{run_id}")).json() == run
    again = assert_error(await client.post(f"/api/runs/{run_id}/cancel"), 409, "run_already_finished")
    assert "CANCELLED" in again["message"]
    results = (await client.get(f"/api/runs/{run_id}/results")).json()
    assert set(results["results"]) == {"first"}


async def test_cancel_of_a_wide_run_cancels_every_unfinished_node(client: httpx.AsyncClient) -> None:
    """(That queued tasks are then dropped, not run, is tests/integration/test_integration_cancel.py.)"""
    name = _name()
    nodes = [node("gate", "call_external_service", delay_seconds=0.3)]
    nodes += [node(f"n{i}", "call_external_service", ["gate"], delay_seconds=0.3) for i in range(40)]
    definition_id = (await _define(client, workflow(name, *nodes)))["definition_id"]
    run_id = (await _start(client, definition_id=definition_id))["run_id"]
    await _node_completed(client, run_id, "gate")

    assert (await client.post(f"/api/runs/{run_id}/cancel")).status_code == 202

    run = await _final(client, run_id)
    assert run["status"] == "CANCELLED"
    assert all(run["nodes"][f"n{i}"]["status"] == "CANCELLED" for i in range(40))


async def test_cancel_of_an_unknown_run_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/api/runs/nope/cancel"), 404, "not_found")


# -- events -------------------------------------------------------------------------------------


async def test_events_stream_every_event_in_order_until_the_run_ends(client: httpx.AsyncClient) -> None:
    definition_id = (await _define(client, _chain(_name(), delay=0.2)))["definition_id"]
    run_id = (await _start(client, definition_id=definition_id))["run_id"]

    response = await client.get(f"/api/runs/{run_id}/events")  # connected while the run goes on

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert [number for number, _, _ in events] == list(range(1, len(events) + 1))
    assert [(kind, data.get("node_id")) for _, kind, data in events if kind != "node_started"] == [
        ("run_started", None),
        ("node_succeeded", "first"),
        ("node_succeeded", "slow"),
        ("node_succeeded", "last"),
    ]
    assert events[0][2]["dispatched"] == ["first"]
    assert events[-1][2]["run_status"] == "COMPLETED"
    assert all(data["seq"] == number and data["kind"] == kind for number, kind, data in events)


async def test_a_late_client_gets_the_history_and_can_resume(client: httpx.AsyncClient) -> None:
    definition_id = (await _define(client, _chain(_name())))["definition_id"]
    run_id = (await _start(client, definition_id=definition_id))["run_id"]
    await _final(client, run_id)

    everything = _events((await client.get(f"/api/runs/{run_id}/events")).text)
    resumed = _events((await client.get(f"/api/runs/{run_id}/events", headers={"last-event-id": "2"})).text)
    after_end = await client.get(f"/api/runs/{run_id}/events", params={"after": len(everything)})

    assert everything[-1][2]["run_status"] == "COMPLETED"
    assert resumed == everything[2:]
    assert after_end.status_code == 200
    assert _events(after_end.text) == []


async def test_events_of_an_unknown_run_are_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/runs/nope/events"), 404, "not_found")
    assert_error(await client.get("/api/runs/nope/events", params={"after": -1}), 422, "validation_error")
