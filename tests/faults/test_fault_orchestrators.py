"""Orchestrators killed between applying a result and acknowledging it, and two orchestrators
applying the last two parents of a 50-parent fan-in at the same moment, 200 times."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from distributed_support import SHARDS, gather_limited, node, workflow
from fault_support import FIGURES, FaultCluster, fault_node, measure, orchestrator_id_of
from http_support import submit, trigger
from invariants import check_invariants

from adapters.redis.codec import decode_event, encode_event
from domain.events import NodeStarted, NodeSucceeded
from domain.statuses import NodeStatus

VISIBILITY = 2.0
CRASH = "orchestrator.after_receive_before_apply"
CHAIN = [f"step_{number}" for number in range(1, 9)]


def chain_with_fan_out() -> dict[str, Any]:
    """A chain of quick steps, each dispatched by its parent's result, then a fan-out/fan-in."""
    nodes = [fault_node(CHAIN[0])]
    nodes += [fault_node(step, [previous]) for previous, step in itertools.pairwise(CHAIN)]
    nodes += [fault_node(f"leaf_{n}", [CHAIN[-1]]) for n in range(4)]
    nodes.append(fault_node("join", [f"leaf_{n}" for n in range(4)]))
    return workflow("orchestrator_crash", nodes)


async def crash_holding_a_batch(engine: FaultCluster, *, replica: bool) -> None:
    """One orchestrator dies holding its 3rd batch, received and not applied (an orchestrator
    acknowledges events in the commit of their effect: there is no moment between the two); with
    ``replica`` a second one runs all along (holding the other half of the shards), else a new one
    is started once the first is dead. The run is one on a shard the doomed one holds."""
    doomed = engine.start("orchestrator", DAG_FAULT_CRASH_AT=CRASH, DAG_FAULT_CRASH_AFTER="3")
    others = [engine.start("orchestrator")] if replica else []
    await engine.serving(doomed, *others, engine.start("api"), engine.start("worker"), engine.start("worker"))
    holders = [orchestrator_id_of(p) for p in (doomed, *others)]
    await engine.wait_until(lambda: shared_out(engine, holders), 20, "shards shared out")
    definition = chain_with_fan_out()
    async with engine.client() as client:
        doomed_shards = held_by(engine, orchestrator_id_of(doomed))
        run_id = await engine.start_run(client, definition)
        while engine.keys.shard_of(run_id) not in doomed_shards:
            run_id = await engine.start_run(client, definition)  # until one the doomed one applies
        died_at = await engine.wait_dead(doomed, within=20)
        assert f"crash point {CRASH} (hit 3)" in doomed.log(), doomed.describe()

        # What it held: its last batch, received, not applied, not acknowledged. The quick nodes
        # report only their results; a node slower than 0.1 s (a stall of the machine) also reports
        # its start, so the batch may be a start report instead (the checks still hold).
        held = [
            engine.redis.xrange(p["stream"], p["message_id"], p["message_id"])[0][1]
            for p in engine.pending_of("events", orchestrator_id_of(doomed))
        ]
        held_events = [decode_event(fields) for fields in held]
        assert held_events and {type(e) for e in held_events} <= {NodeSucceeded, NodeStarted}, held
        completed = [e.node_id for e in held_events if isinstance(e, NodeSucceeded)]
        states = engine.node_states(run_id)
        assert all(states[node_id].status in ("QUEUED", "RUNNING") for node_id in completed), states
        started_before = {e.node for e in engine.ledger.entries()}

        kind = "with a replica" if replica else "restarted alone"
        if not replica:
            await engine.serving(engine.start("orchestrator"))
            # Results reported meanwhile waited in the stream; the new one applies them at once.
            after = await engine.ledger_entry(
                lambda e: e.event == "start" and e.node not in started_before, 30, "work resumed"
            )
            measure(f"orchestrator SIGKILL holding a batch, {kind}: next task", after.at - died_at)
        await engine.wait_until(
            lambda: not engine.pending_of("events", orchestrator_id_of(doomed)), 30, "held event taken over"
        )
        measure(f"orchestrator SIGKILL holding a batch, {kind}: batch applied", time.time() - died_at)
        await engine.wait_final([run_id], within=30)
        await engine.wait_drained()

    # The batch was applied once, by the successor: one completion each, one dispatch per attempt
    # of their children (check_invariants counts them all).
    for node_id in completed:
        assert len(engine.results(run_id, node_id)) == 1
    figures = check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})
    assert figures.repeated_executions == 0  # no task was run twice either


def held_by(engine: FaultCluster, holder: str) -> set[int]:
    return {shard for shard, name in engine.inspect.lease_holders().items() if name == holder}


def shared_out(engine: FaultCluster, holders: list[str]) -> bool:
    """Every shard held, each holder with its fair share."""
    held = engine.inspect.lease_holders()
    share = -(-SHARDS // len(holders))
    return len(held) == SHARDS and all(list(held.values()).count(h) == share for h in holders)


@pytest.mark.timeout(60)
async def test_orchestrator_killed_holding_a_batch_with_a_second_replica(
    faults: Callable[..., FaultCluster],
) -> None:
    await crash_holding_a_batch(faults(VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY)), replica=True)


@pytest.mark.timeout(60)
async def test_orchestrator_killed_holding_a_batch_single_replica_restarted(
    faults: Callable[..., FaultCluster],
) -> None:
    await crash_holding_a_batch(faults(VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY)), replica=False)


# -- fan-in: the last two parents finish together, under two orchestrators ---------------------------

PARENTS = [f"parent_{number:02d}" for number in range(50)]
REPETITIONS = 200
FAN_IN = workflow(
    "fan_in_pair", [*(node(parent, "noop") for parent in PARENTS), node("child", "noop", PARENTS)]
)


def success(run_id: str, node_id: str) -> dict[str, str]:
    """The stream entry a worker writes when a node's first attempt succeeds with ``{}``."""
    fields = encode_event(NodeSucceeded(run_id, node_id, 1, {}, time.time(), "fault-test", None))
    return {**fields, "o": "{}"}


@pytest.mark.timeout(60)
async def test_two_last_parents_of_a_fan_in_applied_together_by_two_orchestrators(
    faults: Callable[..., FaultCluster],
) -> None:
    """No worker runs here: the test reports the parents' successes itself, straight into the event
    streams. For each run the first 48 parents are reported and applied; then the last two are
    written in one go while two orchestrators wait on the streams, each reading one entry at a time
    (ORCHESTRATOR_BATCH_SIZE=1). They share the shards out, so a run's two results go to the one
    holding its shard (to both while a lease changes hands, as the racers join); the two applied by
    two orchestrators at the same instant, on one run, is the contract test
    ``test_contract_fan_in_concurrency`` (two repositories on a real Redis). The child must be
    dispatched exactly once, every time."""
    engine = faults()
    await engine.start_many(("api",), ("orchestrator",))
    async with engine.client() as client:
        execution_id = await submit(client, FAN_IN)
        run_ids: list[str] = await gather_limited(
            (trigger(client, execution_id, {"n": n}) for n in range(REPETITIONS)), limit=20
        )
    engine.definitions.update(dict.fromkeys(run_ids, FAN_IN))
    events = {run_id: engine.keys.shard_for_run(run_id).events for run_id in run_ids}

    def in_flight() -> set[int | None]:
        return {None if run is None else run.in_flight for run in engine.inspect.runs(run_ids)}

    def report(run_id: str, node_ids: list[str]) -> None:
        pipe = engine.redis.pipeline(transaction=False)
        for node_id in node_ids:
            pipe.xadd(events[run_id], success(run_id, node_id))
        pipe.execute()

    await engine.wait_until(lambda: in_flight() == {len(PARENTS)}, 30, "every run started", poll=0.1)
    for run_id in run_ids:
        report(run_id, PARENTS[:-2])
    await engine.wait_until(lambda: in_flight() == {2}, 30, "48 parents of each run applied", poll=0.1)
    await engine.wait_until(lambda: engine.drained("events"), 10, "events drained")
    # The race itself: two replicas that read one entry at a time.
    for orchestrator in engine.live("orchestrator"):
        engine.retire(orchestrator)
    racers = [engine.start("orchestrator", ORCHESTRATOR_BATCH_SIZE="1") for _ in range(2)]
    await engine.serving(*racers)

    def child_queued(run_id: str) -> Callable[[], bool]:
        return lambda: engine.stored_run(run_id).node("child").status is NodeStatus.QUEUED

    started = time.monotonic()
    for run_id in run_ids:
        report(run_id, PARENTS[-2:])  # both in one round trip: each wakes one orchestrator
        await engine.wait_until(child_queued(run_id), 10, f"child of {run_id} queued", poll=0.002)
    FIGURES["fan-in pairs"] = {
        "repetitions": REPETITIONS,
        "ms per pair": round(1000 * (time.monotonic() - started) / REPETITIONS, 1),
    }

    # Every child dispatched exactly once; its success then ends each run.
    dispatched = engine.dispatches()
    assert {run_id: dispatched[(run_id, "child", 1)] for run_id in run_ids} == dict.fromkeys(run_ids, 1)
    for run_id in run_ids:
        report(run_id, ["child"])
    await engine.wait_final(run_ids, within=30)
    figures = check_invariants(
        engine, run_ids, expected=dict.fromkeys(run_ids, "COMPLETED"), ledger=False, drained=False
    )
    assert figures.dispatches == REPETITIONS * (len(PARENTS) + 1)
    assert engine.pending_count("events") == 0
    engine.check_all_alive()
