"""The seed's routes end to end over a real embedded engine."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from api_support import assert_error, load_example, node, wait_final, with_delay, workflow
from http_support import submit, trigger

USER_INPUT = {"user_id": "u-123"}


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0)
    return moment


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_fan_out_fan_in_runs_to_completion(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, with_delay(load_example("scenario_b_fan_out_fan_in"), 0.05))
    instance_id = await trigger(client, execution_id, USER_INPUT)
    assert instance_id != execution_id

    first = await client.get(f"/api/workflows/{instance_id}")
    assert first.status_code == 200
    assert set(first.json()) == {
        "workflow_id",
        "instance_id",
        "name",
        "state",
        "created_at",
        "completed_at",
        "nodes",
    }

    status = await wait_final(client, instance_id)
    assert status["state"] == "COMPLETED"
    assert status["workflow_id"] == execution_id
    assert status["instance_id"] == instance_id
    assert status["name"] == "scenario_b_fan_out_fan_in"
    assert _utc(status["completed_at"]) >= _utc(status["created_at"])
    assert list(status["nodes"]) == ["input", "get_user", "get_comments", "output"]
    for node_state in status["nodes"].values():
        assert set(node_state) == {"status", "attempts", "started_at", "finished_at", "error", "reason"}
        assert node_state["status"] == "COMPLETED"
        assert node_state["attempts"] == 1
        assert node_state["error"] is None
        assert _utc(node_state["finished_at"]) >= _utc(node_state["started_at"])

    response = await client.get(f"/api/workflows/{instance_id}/results")
    assert response.status_code == 200, response.text
    results = response.json()
    assert results["workflow_id"] == execution_id
    assert results["instance_id"] == instance_id
    assert results["status"] == "COMPLETED"
    assert set(results["results"]) == {"input", "get_user", "get_comments", "output"}
    assert results["results"]["input"] == {"input_payload": USER_INPUT}
    output = results["results"]["output"]
    assert output["get_user"]["url"] == "https://jsonplaceholder.typicode.com/users/u-123"
    assert output["get_comments"]["url"] == "https://jsonplaceholder.typicode.com/comments?user=u-123"
    assert output["get_user"]["status_code"] == 200


async def test_results_before_the_run_ends_are_refused(client: httpx.AsyncClient) -> None:
    slow = workflow("slow", node("wait", "call_external_service", delay_seconds=2))
    instance_id = await trigger(client, await submit(client, slow), {})

    error = assert_error(await client.get(f"/api/workflows/{instance_id}/results"), 400, "run_not_finished")
    assert "not finished" in error["message"]
    assert instance_id in error["message"]


async def test_failed_run_reports_the_error_and_the_outputs_it_has(client: httpx.AsyncClient) -> None:
    definition = workflow(
        "partly_failing",
        node("input", "input"),
        node("broken", "call_external_service", ["input"], delay_seconds=0.01, fail_attempts=1),
        node("after", "output", ["broken"]),
    )
    instance_id = await trigger(client, await submit(client, definition), USER_INPUT)

    status = await wait_final(client, instance_id)
    assert status["state"] == "FAILED"
    assert status["nodes"]["broken"]["status"] == "FAILED"
    assert status["nodes"]["broken"]["error"]["type"] == "SimulatedServiceError"
    assert "attempt 1" in status["nodes"]["broken"]["error"]["message"]
    assert status["nodes"]["after"]["status"] == "SKIPPED"
    assert status["nodes"]["after"]["started_at"] is None

    results = (await client.get(f"/api/workflows/{instance_id}/results")).json()
    assert results["status"] == "FAILED"
    assert results["results"] == {"input": {"input_payload": USER_INPUT}}


async def test_trigger_without_a_body_starts_with_an_empty_input(client: httpx.AsyncClient) -> None:
    execution_id = await submit(
        client, workflow("echo", node("input", "input"), node("out", "output", ["input"]))
    )
    response = await client.post(f"/api/workflow/trigger/{execution_id}")
    assert response.status_code == 200, response.text
    instance_id = response.json()["instance_id"]

    assert (await wait_final(client, instance_id))["state"] == "COMPLETED"
    results = (await client.get(f"/api/workflows/{instance_id}/results")).json()
    assert results["results"]["out"] == {"input": {"input_payload": {}}}
