"""``POST /api/runs/{id}/redrive`` over a real embedded engine: a run whose node fails its first
attempts runs again from where it failed, keeping completed outputs; refusals are 409 and 422."""

from __future__ import annotations

import json

import httpx
from api_support import assert_error, node, wait_final, workflow
from http_support import submit, trigger


def flaky(fail_attempts: int) -> dict:
    """first completes; flaky fails its first ``fail_attempts`` attempts (no retry); last after it."""
    return workflow(
        "redrive-me",
        node("first", "call_llm_service", delay_seconds=0, prompt="p"),
        node("flaky", "call_llm_service", ["first"], delay_seconds=0, fail_attempts=fail_attempts),
        node("last", "output", ["flaky"]),
    )


async def failed_run(client: httpx.AsyncClient, fail_attempts: int) -> str:
    instance_id = await trigger(client, await submit(client, flaky(fail_attempts)), {})
    status = await wait_final(client, instance_id)
    assert status["state"] == "FAILED", status
    return instance_id


async def test_redrive_runs_the_failed_and_skipped_nodes_again_until_it_completes(
    client: httpx.AsyncClient,
) -> None:
    run_id = await failed_run(client, fail_attempts=2)
    before = (await client.get(f"/api/runs/{run_id}")).json()
    first_output = (await client.get(f"/api/runs/{run_id}/results")).json()["results"]["first"]

    for expected in ("FAILED", "COMPLETED"):  # attempt 2 fails again, attempt 3 succeeds
        answer = await client.post(f"/api/runs/{run_id}/redrive")
        assert answer.status_code == 202, answer.text
        assert answer.json()["redriven"] == ["flaky", "last"]
        assert (await wait_final(client, run_id))["state"] == expected

    run = (await client.get(f"/api/runs/{run_id}")).json()
    assert run["nodes"]["flaky"]["attempts"] == 3
    assert [a["attempt"] for a in run["nodes"]["flaky"]["failed_attempts"]] == [1, 2]
    assert run["nodes"]["first"]["attempts"] == 1
    assert run["nodes"]["first"]["finished_at"] == before["nodes"]["first"]["finished_at"]
    results = (await client.get(f"/api/runs/{run_id}/results")).json()["results"]
    assert results["first"] == first_output
    events = (await client.get(f"/api/runs/{run_id}/events/tail?limit=200")).json()["events"]
    redrives = [e for e in events if e["kind"] == "redrive_requested"]
    assert [e["redriven"] for e in redrives] == [["flaky", "last"], ["flaky", "last"]]
    assert [e["dispatched"] for e in redrives] == [["flaky"], ["flaky"]]
    assert [e["run_status"] for e in events if e.get("run_status")] == ["FAILED", "FAILED", "COMPLETED"]

    # The event stream replays every life of the run, ending with the last end.
    async with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
        kinds = [
            json.loads(line[5:])
            for line in [x async for x in stream.aiter_lines()]
            if line.startswith("data:")
        ]
    assert [e.get("run_status") for e in kinds if e.get("run_status")] == ["FAILED", "FAILED", "COMPLETED"]

    refused = assert_error(await client.post(f"/api/runs/{run_id}/redrive"), 409, "run_not_redrivable")
    assert "has completed" in refused["message"]


async def test_redrive_from_reruns_a_completed_node_and_its_descendants(client: httpx.AsyncClient) -> None:
    run_id = await failed_run(client, fail_attempts=1)

    answer = await client.post(f"/api/runs/{run_id}/redrive", json={"from": ["first"]})

    assert answer.status_code == 202, answer.text
    assert answer.json()["redriven"] == ["first", "flaky", "last"]
    assert (await wait_final(client, run_id))["state"] == "COMPLETED"
    run = (await client.get(f"/api/runs/{run_id}")).json()
    assert [run["nodes"][n]["attempts"] for n in ("first", "flaky", "last")] == [2, 2, 1]


async def test_redrive_refusals_name_the_problem(client: httpx.AsyncClient) -> None:
    run_id = await failed_run(client, fail_attempts=1)

    unknown = assert_error(
        await client.post(f"/api/runs/{run_id}/redrive", json={"from": ["first", "nope"]}),
        422,
        "unknown_node",
    )
    assert unknown["details"] == [
        {"path": "$.from[1]", "message": "the workflow 'redrive-me' has no node 'nope'"}
    ]
    bad = assert_error(
        await client.post(f"/api/runs/{run_id}/redrive", json={"from": "first"}), 400, "invalid_input"
    )
    assert bad["details"][0]["path"] == "$.from"
    assert_error(await client.post("/api/runs/no-such-run/redrive"), 404, "not_found")
    # Nothing was started by the refusals.
    assert (await client.get(f"/api/runs/{run_id}")).json()["status"] == "FAILED"
