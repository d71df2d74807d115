"""Workers as separate processes: they share the work of one run, and a worker killed in the middle of
a task loses nothing (its task is reclaimed after the visibility timeout and run again elsewhere)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from distributed_support import Cluster, EngineProcess, node, results, status, submit, trigger, workflow

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
    recorded = {node_id: state["wk"] for node_id, state in engine.node_states(run_id).items()}
    assert {node_id: worker_pid(worker_id) for node_id, worker_id in recorded.items()} == ran_in
    assert engine.task_counts() == Counter({(run_id, node_id): 1 for node_id in WIDE_NODES})


LEDGER_WAIT_SECONDS = 30.0


def ledger_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


async def wait_for_lines(path: Path, count: int, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while True:
        lines = ledger_lines(path)
        if len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} has {len(lines)} line(s) after {within}s, expected {count}")
        await asyncio.sleep(0.05)


@dataclass
class Rescue:
    """What happened when a worker was killed in the middle of a task and another took over."""

    engine: Cluster
    ledger: Path
    run_id: str
    doomed: EngineProcess
    rescuer: EngineProcess
    view: dict[str, Any]
    outputs: dict[str, Any]
    rescued_after: float


async def kill_a_worker_mid_task(cluster: Callable[..., Cluster], tmp_path: Path) -> Rescue:
    engine = cluster(VISIBILITY_TIMEOUT_SECONDS="2")
    ledger = tmp_path / "ledger.txt"
    definition = workflow(
        "crash",
        [
            node("input", "input"),
            # Its first execution sleeps far longer than the test waits: it dies in there.
            node("slow", "ledger", ["input"], ledger=str(ledger), first_sleep_seconds=60),
            node("output", "output", ["slow"]),
        ],
    )
    _, _, doomed = await engine.start_many(("api",), ("orchestrator",), ("worker",))
    async with engine.client() as client:
        run_id = await trigger(client, await submit(client, definition), {"user_id": "u-1"})
        [first_line] = await wait_for_lines(ledger, 1, LEDGER_WAIT_SECONDS)
        assert first_line == f"{run_id} slow 1 {doomed.pid}"
        doomed.kill()
        assert doomed.popen.returncode == -9
        killed_at = time.monotonic()

        [rescuer] = await engine.start_many(("worker",))
        await engine.wait_final([run_id], within=30, killed=[doomed])
        rescued_after = time.monotonic() - killed_at
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]
    return Rescue(engine, ledger, run_id, doomed, rescuer, view, outputs, rescued_after)


@pytest.mark.timeout(90)
async def test_task_of_a_killed_worker_is_reclaimed_and_completed(
    cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    rescue = await kill_a_worker_mid_task(cluster, tmp_path)
    engine, run_id, view, outputs = rescue.engine, rescue.run_id, rescue.view, rescue.outputs

    assert view["state"] == "COMPLETED", view
    slow = view["nodes"]["slow"]
    assert slow["status"] == "COMPLETED", slow
    assert slow["error"] is None, slow
    # The entry was redelivered, not dispatched again: still attempt 1, one task entry.
    assert slow["attempts"] == 1, slow
    assert engine.task_counts()[(run_id, "slow")] == 1
    # Not before the visibility timeout (2 s after the last heartbeat, which comes every 2/3 s).
    assert rescue.rescued_after >= 1.0

    # At least once: the handler ran twice, the second time in the new worker ...
    assert ledger_lines(rescue.ledger) == [
        f"{run_id} slow 1 {rescue.doomed.pid}",
        f"{run_id} slow 1 {rescue.rescuer.pid}",
    ]
    # ... exactly once: one completion recorded, the one the rescuer reported.
    assert outputs["slow"] == {"executions_before": 1, "pid": rescue.rescuer.pid}
    assert outputs["output"] == {"slow": outputs["slow"]}
    completions = [
        fields
        for fields in engine.stream_entries("events")
        if fields.get("k") == "ok" and fields.get("r") == run_id and fields.get("n") == "slow"
    ]
    assert len(completions) == 1, completions
    assert engine.pending_tasks() == 0
    engine.check_all_alive(except_for=[rescue.doomed])


@pytest.mark.timeout(90)
async def test_reclaimed_node_records_the_worker_that_completed_it(
    cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    rescue = await kill_a_worker_mid_task(cluster, tmp_path)
    assert rescue.view["state"] == "COMPLETED", rescue.view
    recorded = rescue.engine.node_states(rescue.run_id)["slow"]["wk"]
    assert worker_pid(recorded) == rescue.rescuer.pid, (recorded, rescue.doomed.pid, rescue.rescuer.pid)
