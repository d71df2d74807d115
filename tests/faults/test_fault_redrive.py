"""A redrive asked for while Redis is killed (SIGKILL) and restarted with its data: the client
repeats the request until an answer says it was taken (202, or 409 because an earlier request
that got no answer already started the run); the run still completes, every node once more, and
nothing recorded before the outage is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from distributed_support import node, results, status, workflow
from fault_support import FaultCluster, fault_node
from invariants import check_invariants


async def redrive_until_taken(client: httpx.AsyncClient, run_id: str, within: float) -> int:
    """POST the redrive until an answer says whether it was taken; returns that status."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            answer = await client.post(f"/api/runs/{run_id}/redrive")
            if answer.status_code == 202 or (answer.status_code == 409 and "RUNNING" in answer.text):
                return answer.status_code
            assert answer.status_code == 503, answer.text  # Redis is down: nothing was started
        except httpx.TransportError:
            pass
        assert asyncio.get_running_loop().time() < deadline, "the redrive was never taken"
        await asyncio.sleep(0.1)


@pytest.mark.timeout(90)
async def test_a_redrive_during_a_redis_restart_still_completes_the_run(
    faults: Callable[..., FaultCluster],
) -> None:
    engine = faults(appendfsync="always", VISIBILITY_TIMEOUT_SECONDS="3")
    server = engine.redis_server
    definition = workflow(
        "redrive_through_an_outage",
        [
            node("input", "input"),
            fault_node("first", ["input"]),
            fault_node("flaky", ["first"], fail_on=[1]),
            node("output", "output", ["flaky"]),
        ],
    )
    await engine.start_many(("api",), ("orchestrator",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition, {"seed": "s-1"})
        await engine.wait_final([run_id], within=30)
        assert (await status(client, run_id))["state"] == "FAILED"
        before = (await results(client, run_id))["results"]

        server.kill()
        asking = asyncio.create_task(redrive_until_taken(client, run_id, within=40))
        await engine.stay_alive(1.5)
        server.restart()
        assert await asking in (202, 409)

        await engine.wait_final([run_id], within=30)
        await engine.wait_drained()
        view = await status(client, run_id)
        after = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    assert view["nodes"]["flaky"]["attempts"] == 2, view
    assert view["nodes"]["first"]["attempts"] == 1, view
    assert after["first"] == before["first"]  # kept through the outage and the redrive
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})
