"""The workflow language through the API: every node's ``reason`` while a run is under way and after,
the run's ``output`` in both results routes, and the run's ``error`` when its output mapping fails."""

from __future__ import annotations

import asyncio

import httpx
from api_support import node, wait_final, workflow
from http_support import submit, trigger


async def test_every_unfinished_node_says_why(client: httpx.AsyncClient) -> None:
    definition = workflow(
        "explained",
        node("slow", "call_external_service", url="https://example.com/slow", delay_seconds=1.0),
        node("after", "output", ["slow"]),
        node("never", "output", ["after"]),
    )
    definition["dag"]["nodes"][2]["when"] = "{{ after.nothing }} == 1"
    instance_id = await trigger(client, await submit(client, definition), {})
    async with asyncio.timeout(10):
        while True:
            run = (await client.get(f"/api/runs/{instance_id}")).json()
            if run["nodes"]["slow"]["status"] == "RUNNING":
                break
            await asyncio.sleep(0.02)
    assert run["nodes"]["slow"]["reason"].startswith("attempt 1 running on worker ")
    assert run["nodes"]["after"]["reason"] == "waiting on slow"
    seed_view = (await client.get(f"/api/workflows/{instance_id}")).json()
    assert seed_view["nodes"]["never"]["reason"] == "waiting on after"

    final = await wait_final(client, instance_id)
    assert final["state"] == "FAILED"  # {{ after.nothing }} is not in after's output
    never = final["nodes"]["never"]
    assert never["status"] == "FAILED"
    assert never["error"]["type"] == "ConditionError"
    assert never["reason"] is None  # a failed node's error says why


async def test_the_output_mapping_is_in_both_results_routes(client: httpx.AsyncClient) -> None:
    definition = workflow("mapped", node("a", "input"))
    definition["output"] = {"who": "{{ workflow.input.user }}", "payload": "{{ a.input_payload }}"}
    instance_id = await trigger(client, await submit(client, definition), {"user": "ada"})
    assert (await wait_final(client, instance_id))["state"] == "COMPLETED"
    expected = {"who": "ada", "payload": {"user": "ada"}}
    assert (await client.get(f"/api/workflows/{instance_id}/results")).json()["output"] == expected
    assert (await client.get(f"/api/runs/{instance_id}/results")).json()["output"] == expected
    run = (await client.get(f"/api/runs/{instance_id}")).json()
    assert (run["output"], run["error"]) == (expected, None)


async def test_an_output_that_cannot_be_rendered_fails_the_run_saying_why(client: httpx.AsyncClient) -> None:
    definition = workflow("unmapped", node("a", "input"))
    definition["output"] = {"who": "{{ a.nobody }}"}
    instance_id = await trigger(client, await submit(client, definition), {})
    assert (await wait_final(client, instance_id))["state"] == "FAILED"
    run = (await client.get(f"/api/runs/{instance_id}")).json()
    assert run["error"]["type"] == "OutputError"
    assert "{{ a.nobody }}" in run["error"]["message"]
    assert run["output"] is None
