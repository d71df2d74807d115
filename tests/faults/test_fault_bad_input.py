"""Bad input at the edges: stream entries that are not valid messages are dead-lettered once, with
a log line (no crash, no loop), and the runs in flight are untouched; a node whose output is over
MAX_OUTPUT_BYTES fails with a message naming the limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from distributed_support import results, status, workflow
from fault_support import FaultCluster, fault_node
from invariants import check_invariants

MALFORMED_TASKS = [
    {"junk": "1"},
    {"r": "{run}", "d": "{definition}", "n": "x", "a": "one", "h": "fault"},  # attempt not a number
]
MALFORMED_EVENTS = [
    {"junk": "1"},
    {"k": "ok", "r": "{run}"},  # fields missing
    {"k": "bogus", "r": "{run}", "t": "1"},  # unknown kind
    {"k": "ok", "r": "{run}", "n": "x", "a": "1", "t": "1", "o": "{not json"},
    # A failure at a time that is not a number: a retry could never be scheduled for it.
    {"k": "fail", "r": "{run}", "n": "x", "a": "1", "t": "nan", "et": "E", "em": "m", "rt": "1"},
    {"k": "fail", "r": "{run}", "n": "x", "a": "1", "t": "inf", "et": "E", "em": "m", "rt": "1"},
]
# Well-formed, about nothing that exists: acknowledged and ignored, not dead-lettered.
STRAY_TASK = {"r": "no-such-run", "d": "no-such-definition", "n": "x", "a": "1", "h": "fault"}
STRAY_EVENT = {"k": "ok", "r": "no-such-run", "n": "x", "a": "1", "t": "1", "o": "{}"}


def filled(fields: dict[str, str], run_id: str, definition_id: str) -> dict[str, str]:
    return {
        key: value.replace("{run}", run_id).replace("{definition}", definition_id)
        for key, value in fields.items()
    }


@pytest.mark.timeout(60)
async def test_malformed_stream_entries_are_dead_lettered_once(faults: Callable[..., FaultCluster]) -> None:
    engine = faults()
    definition = workflow(
        "in_flight", [fault_node("x", retry=3, gate={"1": "release_x"}), fault_node("y", ["x"])]
    )
    await engine.start_many(("api",), ("orchestrator",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition)
        await engine.wait_until(lambda: engine.node_states(run_id)["x"].status == "RUNNING", 20, "x running")
        await engine.wait_settled(pending_tasks=1)
        before = engine.snapshot(run_id)
        shard = engine.keys.shard_for_run(run_id)
        definition_id = engine.stored_run(run_id).definition_id
        for fields in MALFORMED_TASKS:
            engine.redis.xadd(shard.tasks, filled(fields, run_id, definition_id))
        for fields in MALFORMED_EVENTS:
            engine.redis.xadd(shard.events, filled(fields, run_id, definition_id))
        engine.redis.xadd(engine.keys.shard_for_run("no-such-run").tasks, STRAY_TASK)
        engine.redis.xadd(engine.keys.shard_for_run("no-such-run").events, STRAY_EVENT)
        malformed = len(MALFORMED_TASKS) + len(MALFORMED_EVENTS)

        def dead_letters() -> list[dict[str, str]]:
            return [fields for s in engine.keys.all_shards() for _, fields in engine.redis.xrange(s.dead)]

        await engine.wait_until(
            lambda: len(dead_letters()) >= malformed, 20, "malformed entries dead-lettered"
        )
        await engine.wait_settled(pending_tasks=1)
        await engine.stay_alive(1.0)  # nothing more happens: no loop over them
        assert engine.snapshot(run_id) == before

        engine.open_gate("release_x")
        await engine.wait_final([run_id], within=20)
        later = await engine.start_run(client, definition)  # the engine goes on as before
        await engine.wait_final([later], within=20)
        await engine.wait_drained()
        view = await status(client, run_id)

    assert view["state"] == "COMPLETED" and view["nodes"]["x"]["attempts"] == 1, view
    dead = dead_letters()
    assert len(dead) == malformed, dead
    assert all(fields["dead.reason"].startswith("not a") for fields in dead), dead
    logs = engine.logs()
    assert logs.count("dead-lettering malformed entry") == malformed, logs
    assert "for unknown run no-such-run" in logs, logs
    assert "Traceback" not in logs, logs
    engine.check_all_alive()
    for process in engine.processes:
        assert process.running(), process.describe()
    # The stray task of an unknown run was acknowledged without running anything.
    assert not [e for e in engine.ledger.entries() if e.run == "no-such-run"]
    check_invariants(
        engine, [run_id, later], expected={run_id: "COMPLETED", later: "COMPLETED"}, injected=None
    )


MAX_OUTPUT_BYTES = 2000


@pytest.mark.timeout(60)
async def test_oversized_output_fails_the_node_naming_the_limit(faults: Callable[..., FaultCluster]) -> None:
    engine = faults(MAX_OUTPUT_BYTES=str(MAX_OUTPUT_BYTES))
    definition = workflow(
        "outputs",
        [
            # Over the limit: failed at once, not retried (repeating cannot make it smaller).
            fault_node("big", retry=3, output_bytes=MAX_OUTPUT_BYTES + 500),
            fault_node("after_big", ["big"]),
            # Over the size that travels inside the event (1 KiB), under the limit: staged, kept.
            fault_node("medium", output_bytes=1500),
            fault_node("after_medium", ["medium"]),
        ],
    )
    await engine.start_many(("api",), ("orchestrator",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition)
        await engine.wait_final([run_id], within=20)
        await engine.wait_drained()
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "FAILED", view
    big = view["nodes"]["big"]
    assert (big["status"], big["attempts"], big["error"]["type"]) == ("FAILED", 1, "OutputTooLarge"), big
    assert f"over the limit of {MAX_OUTPUT_BYTES} (MAX_OUTPUT_BYTES)" in big["error"]["message"], big
    assert view["nodes"]["after_big"]["status"] == "SKIPPED", view
    assert len(outputs["medium"]["pad"]) == 1500
    assert view["nodes"]["after_medium"]["status"] == "COMPLETED", view
    assert engine.inspect.staged(run_id) == {}  # nothing staged left behind
    check_invariants(engine, [run_id], expected={run_id: "FAILED"})
