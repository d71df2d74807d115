"""Worker pools with real processes: tasks of a queue reach only the workers serving it; a task of a
queue without a worker waits (the run view says so) until a worker of that queue starts; a worker
lacking a handler hands its tasks back to the one that has it; `dag-service handlers` lists what
the live workers serve."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from distributed_support import Cluster, node, results, status, workflow
from http_support import trigger

from bench.processes import DAG_SERVICE

DEFAULT_NODES = [f"cpu_{number:02d}" for number in range(12)]
GPU_NODES = [f"gpu_{number:02d}" for number in range(12)]


def on_queue(definition: dict[str, Any], queue: str, node_ids: list[str]) -> dict[str, Any]:
    for spec in definition["dag"]["nodes"]:
        if spec["id"] in node_ids:
            spec["queue"] = queue
    return definition


async def register(client: httpx.AsyncClient, definition: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/definitions", json=definition)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def served(client: httpx.AsyncClient, expected: set[tuple[str, str, int]], within: float = 20) -> None:
    """Until GET /api/handlers lists (queue, handler, workers) ``expected`` among its items."""
    deadline = time.monotonic() + within
    while True:
        items = (await client.get("/api/handlers")).json()["items"]
        listed = {(item["queue"], item["handler"], item["workers"]) for item in items}
        if expected <= listed:
            return
        assert time.monotonic() < deadline, f"handlers listed: {sorted(listed)}"
        await asyncio.sleep(0.1)


def client_command(engine: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DAG_SERVICE), *args, "--api-url", engine.api_url],
        env=engine.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.timeout(90)
async def test_tasks_of_each_queue_run_only_on_the_workers_serving_it(
    cluster: Callable[..., Cluster],
) -> None:
    engine = cluster()
    *_, cpu_worker, gpu_worker = await engine.start_many(
        ("api",), ("orchestrator",), ("worker", "--concurrency", "4"), ("worker", "--queues", "gpu")
    )
    nodes = [node(node_id, "whoami", sleep_seconds=0.05) for node_id in DEFAULT_NODES + GPU_NODES]
    definition = on_queue(workflow("pools", nodes), "gpu", GPU_NODES)
    async with engine.client() as client:
        await served(client, {("default", "whoami", 1), ("gpu", "whoami", 1)})
        registered = await register(client, definition)
        assert registered["warnings"] == []
        run_id = await trigger(client, registered["definition_id"], {})
        await engine.wait_final([run_id], within=40)
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    ran_in = {node_id: output["pid"] for node_id, output in outputs.items()}
    assert {ran_in[node_id] for node_id in GPU_NODES} == {gpu_worker.pid}
    assert {ran_in[node_id] for node_id in DEFAULT_NODES} == {cpu_worker.pid}
    listing = client_command(engine, "handlers")
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert rows[0] == ["QUEUE", "HANDLER", "WORKERS"]
    assert ["gpu", "whoami", "1"] in rows and ["default", "whoami", "1"] in rows, listing.stdout
    assert "queues gpu" in gpu_worker.log(), "the start-up line names the queues it serves"


@pytest.mark.timeout(90)
async def test_a_queue_without_a_worker_waits_saying_so_until_a_worker_of_it_starts(
    cluster: Callable[..., Cluster],
) -> None:
    engine = cluster()
    await engine.start_many(("api",), ("orchestrator",), ("worker",))
    definition = workflow("late", [node("first", "whoami"), node("later", "whoami", ["first"])])
    definition = on_queue(definition, "late", ["later"])
    async with engine.client() as client:
        await served(client, {("default", "whoami", 1)})
        registered = await register(client, definition)
        [warning] = registered["warnings"]
        assert warning["path"] == "$.dag.nodes[1].queue", warning
        definition_file = engine.workdir / "late.json"
        definition_file.write_text(json.dumps(definition), encoding="utf-8")
        submitted = client_command(engine, "submit", str(definition_file))
        assert submitted.returncode == 0, submitted.stderr
        assert f"warning: $.dag.nodes[1].queue: {warning['message']}" in submitted.stderr
        run_id = await trigger(client, registered["definition_id"], {})

        deadline = time.monotonic() + 20
        while (later := (await status(client, run_id))["nodes"]["later"])["status"] != "QUEUED":
            assert time.monotonic() < deadline, later
            await asyncio.sleep(0.1)
        detail = (await client.get(f"/api/runs/{run_id}")).json()["nodes"]["later"]
        assert detail["reason"].endswith("waiting for a worker on queue late"), detail
        await asyncio.sleep(1.0)  # a while later, it still waits: no worker took it, none failed it
        assert (await status(client, run_id))["nodes"]["later"]["status"] == "QUEUED"

        late_worker = engine.start("worker", "--queues", "late")
        await engine.wait_serving(late_worker)
        await engine.wait_final([run_id], within=30)
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    assert outputs["later"]["pid"] == late_worker.pid
    assert view["nodes"]["later"]["attempts"] == 1


@pytest.mark.timeout(90)
async def test_a_worker_lacking_a_handler_hands_its_tasks_to_the_worker_that_has_it(
    cluster: Callable[..., Cluster],
) -> None:
    engine = cluster()
    await engine.start_many(("api",), ("orchestrator",))
    # Only the built-ins here; two slots there, so this one receives most of the tasks first.
    lacking = engine.start("worker", WORKER_HANDLER_MODULES="")
    having = engine.start("worker", "--concurrency", "2")
    await asyncio.gather(engine.wait_serving(lacking), engine.wait_serving(having))
    node_ids = [f"n{number:02d}" for number in range(10)]
    definition = workflow("handed", [node(node_id, "whoami", sleep_seconds=0.05) for node_id in node_ids])
    async with engine.client() as client:
        await served(client, {("default", "whoami", 1), ("default", "input", 2)})
        registered = await register(client, definition)
        assert registered["warnings"] == []
        run_id = await trigger(client, registered["definition_id"], {})
        await engine.wait_final([run_id], within=40)
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    assert {node_view["attempts"] for node_view in view["nodes"].values()} == {1}
    assert {output["pid"] for output in outputs.values()} == {having.pid}
    assert "handing back" in lacking.log(), "the worker lacking the handler received some tasks"
