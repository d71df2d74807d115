"""The same result and task messages delivered twice: copies of real stream entries are written
into the streams while the run is in the middle of its work. Everything repeated is ignored: the
run's stored state does not change, and the run then completes with each node done once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from distributed_support import results, workflow
from fault_support import FaultCluster, fault_node
from invariants import check_invariants

from adapters.redis.codec import decode_event, decode_task


@pytest.mark.timeout(60)
async def test_duplicated_result_and_task_messages_are_ignored(faults: Callable[..., FaultCluster]) -> None:
    engine = faults()
    # a, then b (held at a gate until the test is done) and c after both.
    definition = workflow(
        "duplicates",
        [fault_node("a"), fault_node("b", ["a"], gate={"all": "release_b"}), fault_node("c", ["a", "b"])],
    )
    # One worker: a repeated task runs under the same worker id, so its start report is a repeat too.
    await engine.start_many(("api",), ("orchestrator",), ("orchestrator",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition)

        def b_running() -> bool:
            return engine.node_states(run_id)["b"].status == "RUNNING"

        await engine.wait_until(b_running, 20, "b running")
        await engine.wait_settled(pending_tasks=1)
        before = engine.snapshot(run_id)
        before_states = engine.node_states(run_id)
        assert before_states["a"].status == "COMPLETED" and before_states["c"].status == "PENDING"

        # Copies of every entry of this run so far: the start, a's and b's tasks, a's success, b's
        # start report.
        copies = {"events": 0, "tasks": 0}
        for kind in ("events", "tasks"):
            decode = decode_event if kind == "events" else decode_task
            for stream, _, fields in engine.entries_with_ids(kind):
                if decode(fields).run_id == run_id:
                    engine.redis.xadd(stream, fields)
                    copies[kind] += 1
        assert copies["tasks"] == 2 and copies["events"] >= 3, copies

        # The copied task of a runs again (the ledger shows it) and reports again; the copy of b's
        # task waits at the gate like the original. Once everything is delivered and applied:
        await engine.ledger_entry(
            lambda e: e.node == "a" and e.event == "end" and e.execution == 2, 20, "a again"
        )
        await engine.ledger_entry(
            lambda e: e.node == "b" and e.event == "start" and e.execution == 2, 20, "b again"
        )
        await engine.wait_until(lambda: len(engine.results(run_id, "a")) == 3, 20, "a's third report")
        await engine.wait_settled(pending_tasks=2)
        assert engine.snapshot(run_id) == before  # nothing changed, history included

        engine.open_gate("release_b")
        await engine.wait_final([run_id], within=20)
        await engine.wait_drained()
        outputs = (await results(client, run_id))["results"]

    assert outputs["a"]["x"] == 1  # the first execution's output stands
    assert outputs["b"]["x"] in (1, 2)  # both executions of b's attempt 1 ended; one was kept
    assert len(engine.results(run_id, "b")) == 2
    # The copies are in the task stream too; apart from them, each node was dispatched once.
    injected = Counter({(run_id, "a", 1): 1, (run_id, "b", 1): 1})
    assert engine.dispatches() - injected == Counter({(run_id, node_id, 1): 1 for node_id in "abc"})
    figures = check_invariants(engine, [run_id], expected={run_id: "COMPLETED"}, injected=injected)
    assert figures.duplicated_completions == 0
    assert figures.repeated_executions == 2  # a and b ran twice, once for each copy of their task
