"""A map whose items are in the hands of a worker that is killed: its items are taken over and the
map completes with every item's output, in order, each recorded once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from distributed_support import node, results, status, workflow
from fault_support import FaultCluster, fault_node
from invariants import check_invariants

ITEMS = 30
SETTINGS = {"VISIBILITY_TIMEOUT_SECONDS": "2.0"}


@pytest.mark.timeout(90)
async def test_a_map_survives_the_kill_of_a_worker_holding_its_items(
    faults: Callable[..., FaultCluster],
) -> None:
    engine = faults(**SETTINGS)
    mapped = fault_node("each", ["input"], sleep=0.05, item="{{ item }}")
    mapped["for_each"] = "{{ input.input_payload.xs }}"
    mapped["max_concurrency"] = 6
    definition = workflow("killed_map", [node("input", "input"), mapped, node("output", "output", ["each"])])
    await engine.start_many(("api",), ("orchestrator",), ("worker",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition, {"xs": list(range(ITEMS))})
        first = await engine.ledger_entry(
            lambda e: e.node.startswith("each#") and e.event == "start", 20, "an item started"
        )
        engine.kill(engine.by_pid(first.pid))
        await engine.wait_final([run_id], within=60)
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    assert [out["key"].split(":")[1] for out in outputs["each"]] == [f"each#{i}" for i in range(ITEMS)]
    assert outputs["output"]["each"] == outputs["each"]
    # At least once: an item the dead worker held ran again; exactly once: one output per item.
    entries = engine.ledger.entries()
    ended = [e.node for e in entries if e.run == run_id and e.event == "end" and e.node.startswith("each#")]
    assert set(ended) == {f"each#{i}" for i in range(ITEMS)}
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})
