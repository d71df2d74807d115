"""A poison task: its handler kills the worker process every time it runs. After MAX_DELIVERIES
deliveries it goes to the dead-letter stream and its node FAILS with that reason; the run's other
branch and the other runs complete meanwhile."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from distributed_support import results, status, workflow
from fault_support import FaultCluster, Supervisor, fault_node, measure
from invariants import check_invariants

from adapters.redis.codec import decode_task

MAX_DELIVERIES = 3
OTHER_RUNS = 6


@pytest.mark.timeout(60)
async def test_poison_task_is_dead_lettered_and_other_runs_go_on(faults: Callable[..., FaultCluster]) -> None:
    # One task at a time per worker: a worker the poison kills holds nothing else (the case of a
    # task held beside it: the test below).
    engine = faults(
        VISIBILITY_TIMEOUT_SECONDS="1", MAX_DELIVERIES=str(MAX_DELIVERIES), WORKER_CONCURRENCY="1"
    )
    poisoned = workflow(
        "poisoned",
        [
            fault_node("poison", crash_on="all"),
            fault_node("after_poison", ["poison"]),
            fault_node("independent"),
            fault_node("after_independent", ["independent"]),
        ],
    )
    healthy = workflow(
        "healthy", [fault_node("one"), fault_node("two", ["one"]), fault_node("three", ["two"])]
    )
    await engine.start_many(("api",), ("orchestrator",), ("worker",), ("worker",))

    async with engine.client() as client, Supervisor(engine, "worker", 2) as supervisor:
        poisoned_id = await engine.start_run(client, poisoned)
        first = await engine.ledger_entry(
            lambda e: e.node == "poison" and e.event == "crash", 20, "first crash"
        )
        # The others start once the poison has been taken (so it is never in a batch with them).
        healthy_ids = [await engine.start_run(client, healthy, {"n": n}) for n in range(OTHER_RUNS)]
        await engine.wait_final(healthy_ids, within=30)
        await engine.wait_final([poisoned_id], within=30)
        measure(
            f"poison task: first crash -> node FAILED (dead-lettered, {MAX_DELIVERIES} deliveries)",
            time.time() - first.at,
        )
        restarts = supervisor.restarts
        await engine.wait_drained()
        view = await status(client, poisoned_id)
        outputs = (await results(client, poisoned_id))["results"]

    assert view["state"] == "FAILED", view
    poison = view["nodes"]["poison"]
    assert poison["status"] == "FAILED" and poison["attempts"] == 1, poison
    assert poison["error"]["type"] == "DeadLettered", poison
    assert f"delivered {MAX_DELIVERIES} times" in poison["error"]["message"], poison
    assert view["nodes"]["after_poison"]["status"] == "SKIPPED", view
    assert view["nodes"]["after_poison"]["error"]["type"] == "UpstreamFailed", view
    assert set(outputs) == {"independent", "after_independent"}, outputs

    # One execution per delivery, each one killing its worker.
    crashes = [e for e in engine.ledger.of(poisoned_id, "poison") if e.event == "crash"]
    assert len(crashes) == MAX_DELIVERIES, crashes
    assert len({e.pid for e in crashes}) == MAX_DELIVERIES
    assert restarts >= MAX_DELIVERIES - 1
    # The dead-letter stream holds the task, with the reason.
    dead = [
        fields
        for shard in engine.keys.all_shards()
        for _, fields in engine.redis.xrange(shard.dead)
        if decode_task(fields).run_id == poisoned_id
    ]
    assert len(dead) == 1 and decode_task(dead[0]).node_id == "poison", dead
    assert f"delivered {MAX_DELIVERIES} times" in dead[0]["dead.reason"], dead
    assert any("dead-lettering entry" in w.log() for w in engine.processes if w.args[0] == "worker")

    expected = {poisoned_id: "FAILED", **dict.fromkeys(healthy_ids, "COMPLETED")}
    figures = check_invariants(engine, [poisoned_id, *healthy_ids], expected=expected)
    assert figures.statuses == {"FAILED": 1, "COMPLETED": OTHER_RUNS}


@pytest.mark.timeout(60)
async def test_task_held_alongside_a_poison_task_is_not_dead_lettered(
    faults: Callable[..., FaultCluster],
) -> None:
    engine = faults(VISIBILITY_TIMEOUT_SECONDS="1", MAX_DELIVERIES=str(MAX_DELIVERIES))
    # Execution 1 is in flight when the poison arrives; later ones take 0.5 s, long enough for the
    # poison, reclaimed in the same batch, to kill the worker first.
    innocent = workflow("innocent", [fault_node("slow", gate={"1": "never"}, sleep_on={"2": 0.5, "3": 0.5})])
    poisoned = workflow("poisoned", [fault_node("poison", crash_on="all")])
    await engine.start_many(("api",), ("orchestrator",), ("worker",))
    async with engine.client() as client, Supervisor(engine, "worker", 1):
        innocent_id = await engine.start_run(client, innocent)
        await engine.ledger_entry(lambda e: e.node == "slow", 20, "innocent task running")
        poisoned_id = await engine.start_run(client, poisoned)  # same worker: it has free slots
        await engine.wait_final([innocent_id, poisoned_id], within=40)
        await engine.wait_drained()
        innocent_view = await status(client, innocent_id)
        poisoned_view = await status(client, poisoned_id)

    # Both died together twice; from the third delivery on each ran alone on its worker.
    assert innocent_view["state"] == "COMPLETED", innocent_view["nodes"]["slow"]
    assert poisoned_view["nodes"]["poison"]["error"]["type"] == "DeadLettered", poisoned_view
    assert any("alone" in w.log() for w in engine.processes if w.args[0] == "worker")
    expected = {innocent_id: "COMPLETED", poisoned_id: "FAILED"}
    check_invariants(engine, [innocent_id, poisoned_id], expected=expected)
