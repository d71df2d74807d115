"""Fan-in under a race: 50 parents finish at about the same moment, their results applied by two
orchestrator replicas at once; the child must be dispatched exactly once per run, after all of them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from distributed_support import Cluster, gather_limited, node, results, status, workflow
from http_support import submit, trigger

PARENTS = [f"parent_{number:02d}" for number in range(50)]
RUNS = 100
TRIGGER_BATCH = 25
FINISHED = re.compile(r"run (\S+) finished")

FAN_IN = workflow(
    "fan_in_race",
    [
        node("root", "noop"),
        *(node(parent, "noop", ["root"]) for parent in PARENTS),
        # ``output`` returns its inputs: the child's output shows which parents it saw finished.
        node("child", "output", PARENTS),
    ],
)


@pytest.mark.timeout(180)
async def test_fan_in_child_dispatched_exactly_once_per_run(cluster: Callable[..., Cluster]) -> None:
    # INFO: each orchestrator logs the runs whose last event it applied ("run <id> finished ...").
    engine = cluster(LOG_LEVEL="INFO")
    _, *orchestrators, _, _ = await engine.start_many(
        ("api",), ("orchestrator",), ("orchestrator",), ("worker",), ("worker",)
    )
    # Both replicas hold shards before the runs start: the first one up takes every shard, and gives
    # some back only at its next lease renewal, by when 100 runs can be over.
    deadline = time.monotonic() + 60
    while not all("took the leases of shards" in orchestrator.log() for orchestrator in orchestrators):
        assert time.monotonic() < deadline, [orchestrator.describe() for orchestrator in orchestrators]
        await asyncio.sleep(0.1)
    async with engine.client() as client:
        execution_id = await submit(client, FAN_IN)
        run_ids: list[str] = []
        for batch_start in range(0, RUNS, TRIGGER_BATCH):
            batch = range(batch_start, min(batch_start + TRIGGER_BATCH, RUNS))
            run_ids += await gather_limited(
                (trigger(client, execution_id, {"n": n}) for n in batch), limit=TRIGGER_BATCH
            )
        assert len(set(run_ids)) == RUNS

        await engine.wait_final(run_ids, within=130)

        views: list[dict[str, Any]] = await gather_limited(status(client, run_id) for run_id in run_ids)
        outputs: list[dict[str, Any]] = await gather_limited(results(client, run_id) for run_id in run_ids)

    for view, result in zip(views, outputs, strict=True):
        assert view["state"] == "COMPLETED", view["instance_id"]
        child = view["nodes"]["child"]
        assert child["status"] == "COMPLETED", (view["instance_id"], child)
        assert child["attempts"] == 1, (view["instance_id"], child)
        assert {node_view["attempts"] for node_view in view["nodes"].values()} == {1}
        # The child ran once every parent's output was there.
        assert result["results"]["child"] == {parent: {} for parent in PARENTS}, view["instance_id"]

    dispatched = engine.task_counts()
    child_dispatches = {run_id: dispatched[(run_id, "child")] for run_id in run_ids}
    assert child_dispatches == dict.fromkeys(run_ids, 1)
    duplicates = {key: count for key, count in dispatched.items() if count != 1}
    assert duplicates == {}, f"nodes dispatched more than once: {duplicates}"
    assert sum(dispatched.values()) == RUNS * (len(PARENTS) + 2)
    assert engine.pending_tasks() == 0
    engine.check_all_alive()

    # Both replicas took part, and each run was finished by exactly one of them, once.
    finished_by = [FINISHED.findall(orchestrator.log()) for orchestrator in orchestrators]
    assert all(finished_by), [len(finished) for finished in finished_by]
    assert sorted(finished_by[0] + finished_by[1]) == sorted(run_ids)
