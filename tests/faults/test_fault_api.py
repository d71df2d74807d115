"""The API killed (SIGKILL) right after it answered a trigger: no run it accepted is lost, and no
half-written run is left behind by the requests it was in the middle of."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from distributed_support import FINAL_STATES, status, workflow
from fault_support import FIGURES, FaultCluster, fault_node
from http_support import submit
from invariants import check_invariants

TRIGGERS = 30


@pytest.mark.timeout(60)
async def test_api_killed_right_after_answering_a_trigger(faults: Callable[..., FaultCluster]) -> None:
    engine = faults()
    definition = workflow("after_api_kill", [fault_node("a"), fault_node("b", ["a"]), fault_node("c", ["b"])])
    api, *_ = await engine.start_many(("api",), ("orchestrator",), ("worker",))
    async with engine.client() as client:
        execution_id = await submit(client, definition)

    # Many triggers at once, each on its own connection; the API dies as soon as one is answered.
    async def one(client: httpx.AsyncClient, n: int) -> str | None:
        try:
            response = await client.post(f"/api/workflow/trigger/{execution_id}", json={"input": {"n": n}})
        except httpx.TransportError:
            return None  # in flight when the API died: no answer, no promise
        assert response.status_code == 200, response.text
        instance_id: str = response.json()["instance_id"]
        return instance_id

    limits = httpx.Limits(max_connections=TRIGGERS)
    async with httpx.AsyncClient(base_url=engine.api_url, timeout=10.0, limits=limits) as client:
        pending = {asyncio.create_task(one(client, n)) for n in range(TRIGGERS)}
        answered: list[str] = []
        while pending and not answered:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            answered += [run_id for run_id in (task.result() for task in done) if run_id]
        engine.kill(api)
        answered += [run_id for run_id in await asyncio.gather(*pending) if run_id]
    assert answered

    # Whatever the API answered runs to the end without it ...
    for run_id in answered:
        engine.definitions[run_id] = definition
    await engine.wait_final(answered, within=30)
    # ... and every run it wrote at all (answered or not) is whole and final too.
    written = [
        key.split(":")[3]
        for key in engine.redis.scan_iter(match=f"{engine.prefix}:*:run:*", _type="hash")
        if len(key.split(":")) == 4
    ]
    assert set(answered) <= set(written)
    for run_id in written:
        engine.definitions[run_id] = definition
    await engine.wait_final(written, within=30)
    assert set(engine.run_status(written).values()) <= FINAL_STATES
    FIGURES["API SIGKILL amid triggers"] = {
        "requests": TRIGGERS,
        "answered": len(answered),
        "written": len(written),
        "lost": len(set(answered) - set(written)),
    }

    # A new API serves them.
    await engine.serving(engine.start("api"))
    async with engine.client() as client:
        views = [await status(client, run_id) for run_id in answered]
    assert {view["state"] for view in views} == {"COMPLETED"}
    await engine.wait_drained()
    check_invariants(engine, written, expected=dict.fromkeys(written, "COMPLETED"))
