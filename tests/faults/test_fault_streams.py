"""Stream housekeeping under worker churn: trimming never drops a task that is pending (held by a
killed worker) or not yet delivered, and consumers left by stopped or killed workers are pruned once
they hold nothing, so the group's consumer count stays bounded.

The engine's processes run housekeeping every 30 s and prune consumers idle for 10 minutes (neither
is a setting); the test runs the same code (``RedisStreamQueue.maintain``) on the test's own
schedule, with a short idle time, while the processes work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from distributed_support import workflow
from fault_support import WORKERS_GROUP, FaultCluster, fault_node, worker_id_of
from invariants import check_invariants

from adapters.redis.codec import decode_task, encode_task
from adapters.redis.connection import Redis, create_client
from adapters.redis.streams import RedisStreamQueue, StreamConfig
from domain.messages import Task

PRUNE_IDLE_SECONDS = 1.5
CHURNED_WORKERS = 4


def housekeeper(engine: FaultCluster, client: Redis) -> RedisStreamQueue[Task]:
    """The task queue as a worker builds it, but pruning consumers idle for a few seconds."""
    shards = engine.keys.all_shards()
    config = StreamConfig(
        streams=tuple(shard.tasks for shard in shards),
        dead_letters=tuple(shard.dead for shard in shards),
        group=WORKERS_GROUP,
        visibility_timeout_seconds=2.0,
        max_deliveries=5,
        prune_idle_consumers_seconds=PRUNE_IDLE_SECONDS,
    )
    return RedisStreamQueue(client, engine.redis_server.url, config, encode_task, decode_task, lambda t: 0)


def task_ids(engine: FaultCluster) -> dict[str, list[str]]:
    return {
        shard.tasks: [i for i, _ in engine.redis.xrange(shard.tasks)] for shard in engine.keys.all_shards()
    }


def consumer_names(engine: FaultCluster) -> dict[str, int]:
    """Consumer name -> entries it holds, over every shard's task stream."""
    held: dict[str, int] = {}
    for consumer in engine.consumers("tasks"):
        held[consumer["name"]] = held.get(consumer["name"], 0) + int(consumer["pending"])
    return held


def idle_over(engine: FaultCluster, names: set[str], seconds: float) -> bool:
    idle: Mapping[str, Any] = {c["name"]: c["idle"] for c in engine.consumers("tasks") if c["name"] in names}
    return bool(idle) and all(value > seconds * 1000 for value in idle.values())


@pytest.mark.timeout(60)
async def test_trimming_keeps_pending_tasks_and_pruning_bounds_consumers(
    faults: Callable[..., FaultCluster],
) -> None:
    # No audit group here: it would keep every entry, and trimming is what is tested.
    engine = faults(audit=False, VISIBILITY_TIMEOUT_SECONDS="2", WORKER_CONCURRENCY="2")
    wide = workflow("wide", [fault_node(f"n{number:02d}", sleep=0.1) for number in range(30)])
    held = workflow("held", [fault_node("held", gate={"1": "never"}), fault_node("after", ["held"])])
    later = workflow("later", [fault_node("first"), fault_node("second", ["first"])])
    started = await engine.start_many(("api",), ("orchestrator",), *[("worker",)] * (CHURNED_WORKERS + 1))
    doomed, churned = started[2], started[3:]
    churned_names = {worker_id_of(worker) for worker in churned}
    client = create_client(engine.redis_server.url, read_timeout_seconds=10.0)
    keeper = housekeeper(engine, client)
    try:
        async with engine.client() as client:
            # Work for everyone: a consumer exists once it has received an entry.
            wide_ids: list[str] = []
            while not {worker_id_of(doomed), *churned_names} <= set(consumer_names(engine)):
                assert len(wide_ids) < 5, consumer_names(engine)
                wide_ids.append(await engine.start_run(client, wide, {"n": len(wide_ids)}))
                await engine.wait_final(wide_ids, within=20)
            await engine.wait_drained()
            for worker in churned:  # they came, worked, and left
                worker.stop()
                assert worker.popen.returncode == 0, worker.describe()
                engine.doomed.add(worker.pid)

            held_id = await engine.start_run(client, held)
            await engine.ledger_entry(lambda e: e.node == "held", 20, "held task running")
            engine.kill(doomed)  # it dies holding the task
            later_id = await engine.start_run(client, later)  # no worker alive: not delivered
            await engine.wait_until(
                lambda: engine.node_states(later_id)["first"].status == "QUEUED", 20, "queued"
            )

            [pending] = engine.pending_of("tasks", worker_id_of(doomed))
            undelivered = [
                (stream, entry_id)
                for stream, entry_id, fields in engine.entries_with_ids("tasks")
                if decode_task(fields).run_id == later_id
            ]
            before = task_ids(engine)
            assert consumer_names(engine) == {worker_id_of(doomed): 1, **dict.fromkeys(churned_names, 0)}
            await engine.wait_until(lambda: idle_over(engine, churned_names, PRUNE_IDLE_SECONDS), 20, "idle")

            await keeper.maintain()

            after = task_ids(engine)
            assert sum(map(len, after.values())) < sum(map(len, before.values())) - 20, (before, after)
            kept = engine.redis.xrange(pending["stream"], pending["message_id"], pending["message_id"])
            assert kept, "the pending task was trimmed"
            for stream, entry_id in undelivered:
                assert engine.redis.xrange(stream, entry_id, entry_id), "an undelivered task was trimmed"
            # Nothing below the oldest pending entry of its stream survives; nothing from it on is lost.
            assert after[pending["stream"]] == [
                i for i in before[pending["stream"]] if _order(i) >= _order(pending["message_id"])
            ]
            # The stopped workers' consumers are gone; the killed one's stays while it holds a task.
            assert consumer_names(engine) == {worker_id_of(doomed): 1}

            # A new worker takes over the held task and runs the undelivered ones.
            [rescuer] = await engine.start_many(("worker",))
            await engine.wait_final([held_id, later_id], within=20)
            await engine.wait_drained()
            await engine.wait_until(
                lambda: idle_over(engine, {worker_id_of(doomed)}, PRUNE_IDLE_SECONDS),
                20,
                "dead consumer idle",
            )
            await keeper.maintain()
            # At most the live worker remains (an idle one may go too: it comes back with its next
            # entry); the streams keep only their last delivered entry.
            assert set(consumer_names(engine)) <= {worker_id_of(rescuer)}, consumer_names(engine)
            assert all(len(ids) <= 1 for ids in task_ids(engine).values()), task_ids(engine)
    finally:
        await client.aclose()

    assert [e.pid for e in engine.ledger.of(held_id, "held", "start")] == [doomed.pid, rescuer.pid]
    check_invariants(
        engine,
        [*wide_ids, held_id, later_id],
        expected=dict.fromkeys([*wide_ids, held_id, later_id], "COMPLETED"),
    )


def _order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence)
