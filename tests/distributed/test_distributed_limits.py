"""Global concurrency limits with real worker processes: however many workers and runs, at most the
key's limit of attempts run at once (a handler counting in Redis proves it), and a worker killed while
it holds slots does not stop the others: its attempts are taken over and the run completes. (That a
slot whose holder never comes back lapses with its lease is the contract suite's.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from distributed_support import Cluster, node, status, workflow
from http_support import submit, trigger

LIMIT = 2


def limited(counter: str, count: int, sleep: float) -> dict[str, Any]:
    nodes = []
    for i in range(count):
        spec = node(f"n{i}", "counted", counter=counter, sleep_seconds=sleep)
        spec.update(concurrency_key="tenant-{{ workflow.input.tenant }}", concurrency_limit=LIMIT)
        nodes.append(spec)
    return workflow("limited", nodes)


def counted(engine: Cluster, name: str) -> int:
    return int(engine.redis.get(name) or 0)


@pytest.mark.timeout(90)
async def test_a_limit_holds_across_four_workers_and_two_runs(cluster: Callable[..., Cluster]) -> None:
    engine = cluster()
    counter = f"count-{uuid.uuid4().hex[:6]}"
    await engine.start_many(("api",), ("orchestrator",), *(("worker",) for _ in range(4)))
    async with engine.client() as client:
        execution_id = await submit(client, limited(counter, 8, 0.1))
        runs = [await trigger(client, execution_id, {"tenant": "t1"}) for _ in range(2)]
        await engine.wait_final(runs, within=60)
        views = [await status(client, run_id) for run_id in runs]
    assert [view["state"] for view in views] == ["COMPLETED", "COMPLETED"]
    # Reached, never exceeded: 4 workers x 64 places, and 16 attempts ready at once.
    assert counted(engine, f"{counter}:most") == LIMIT


@pytest.mark.timeout(90)
async def test_a_worker_killed_holding_a_slot_does_not_keep_it(cluster: Callable[..., Cluster]) -> None:
    engine = cluster(VISIBILITY_TIMEOUT_SECONDS="2")
    counter = f"count-{uuid.uuid4().hex[:6]}"
    doomed, _ = await engine.start_many(("worker",), ("worker",))
    await engine.start_many(("api",), ("orchestrator",))
    async with engine.client() as client:
        execution_id = await submit(client, limited(counter, 4, 1.0))
        run_id = await trigger(client, execution_id, {"tenant": "t2"})
        deadline = time.monotonic() + 20
        while counted(engine, f"{counter}:now") < LIMIT:  # both slots held
            assert time.monotonic() < deadline, "the slots were never both held"
            await asyncio.sleep(0.02)
        doomed.kill()
        await engine.wait_final([run_id], within=60, killed=[doomed])
        view = await status(client, run_id)
    assert view["state"] == "COMPLETED", view
    # Every slot was given back (the killed worker's attempts, taken over, held theirs again).
    holders = engine.keys.slots("tenant-t2")[0]
    assert engine.redis.zcount(holders, f"({time.time()!r}", "+inf") == 0
