"""Workers as separate processes share the work of one run.

Workers killed, paused or stopped in the middle of a task: the fault suite (``tests/faults``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from distributed_support import Cluster, node, results, status, workflow
from http_support import submit, trigger

WIDE_NODES = [f"sleeper_{number:02d}" for number in range(40)]
WIDE = workflow("wide", [node(node_id, "whoami", sleep_seconds=0.2) for node_id in WIDE_NODES])
WORKER_CONCURRENCY = "4"


def worker_pid(worker_id: str) -> int:
    """Worker ids are ``<host>-<pid>-worker<n>`` (the host name may contain dashes)."""
    _, pid, _ = worker_id.rsplit("-", 2)
    return int(pid)


@pytest.mark.timeout(60)
async def test_two_workers_share_one_wide_run(cluster: Callable[..., Cluster]) -> None:
    engine = cluster()
    # A small concurrency per worker: neither can hold all 40 tasks, so both must take some.
    *_, first, second = await engine.start_many(
        ("api",),
        ("orchestrator",),
        ("worker", "--concurrency", WORKER_CONCURRENCY),
        ("worker", "--concurrency", WORKER_CONCURRENCY),
    )
    async with engine.client() as client:
        run_id = await trigger(client, await submit(client, WIDE), {})
        await engine.wait_final([run_id], within=30)
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    assert {node_view["attempts"] for node_view in view["nodes"].values()} == {1}
    assert set(outputs) == set(WIDE_NODES)

    # Who ran each node, as the handler saw it (its process id) ...
    ran_in = {node_id: output["pid"] for node_id, output in outputs.items()}
    per_worker = Counter(ran_in.values())
    assert set(per_worker) == {first.pid, second.pid}, per_worker
    # ... and as the engine recorded it (the worker id in the node's stored state).
    recorded = {node_id: state.worker_id for node_id, state in engine.node_states(run_id).items()}
    assert {node_id: worker_pid(worker_id) for node_id, worker_id in recorded.items()} == ran_in
    assert engine.task_counts() == Counter({(run_id, node_id): 1 for node_id in WIDE_NODES})
