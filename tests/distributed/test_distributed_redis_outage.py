"""Redis outages: the API while Redis is down, and every process when Redis comes back without
its data. None of the engine processes may exit.

Redis killed and restarted with its data, and paused, in the middle of runs: the fault suite
(``tests/faults/test_fault_redis.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from distributed_support import (
    HANDLER_MODULE,
    SHARDS,
    Cluster,
    node,
    print_logs,
    results,
    setup_or_call_failed,
    status,
    workflow,
)
from http_support import submit, trigger
from redis_support import RedisServer

OUTAGE_HANDLER_MODULE = "redis_outage_test_handlers"
# ``link`` extends the chain its parent handed over (or starts it from the run input's seed), so the
# output node shows that every step ran and passed its data on; each execution adds a ledger line.
OUTAGE_HANDLERS_SOURCE = """
import asyncio
import os

from services.worker import handler


@handler("link")
async def link(ctx):
    with open(ctx.config["ledger"], "a", encoding="utf-8") as ledger:
        ledger.write(f"{ctx.run_id} {ctx.node_id} {ctx.attempt} {os.getpid()}\\n")
    await asyncio.sleep(float(ctx.config.get("sleep_seconds", 0)))
    chain = [ctx.run_input["seed"]]
    for output in ctx.inputs.values():
        if isinstance(output, dict) and "chain" in output:
            chain = list(output["chain"])
    return {"chain": [*chain, ctx.node_id]}
"""

HTTP_TIMEOUT_SECONDS = 10.0
STALE_CONNECTIONS_TOLERATED = 5


@pytest.fixture
def outage_cluster(
    request: pytest.FixtureRequest,
    fresh_redis: Callable[..., RedisServer],
    tmp_path: Path,
    engine_pycache: Path | None,
) -> Iterator[Callable[..., Cluster]]:
    """Like ``cluster``, but ``appendfsync`` of the test's redis-server is chosen (``always``: what
    Redis acknowledged survives a SIGKILL) and the ``link`` handler module is installed too."""
    made: list[Cluster] = []

    def make(*, appendfsync: str = "always", **settings: str) -> Cluster:
        workdir = tmp_path / f"outage-cluster-{len(made)}"
        settings = {"WORKER_HANDLER_MODULES": f"{HANDLER_MODULE},{OUTAGE_HANDLER_MODULE}", **settings}
        engine = Cluster(fresh_redis(appendfsync=appendfsync), workdir, engine_pycache, settings)
        (workdir / f"{OUTAGE_HANDLER_MODULE}.py").write_text(OUTAGE_HANDLERS_SOURCE, encoding="utf-8")
        made.append(engine)
        return engine

    yield make
    for each in made:
        each.stop_all()
    if setup_or_call_failed(request):
        print_logs(made)


# -- helpers -------------------------------------------------------------------------------------


async def stay_alive(engine: Cluster, seconds: float) -> None:
    """Sleep ``seconds``, checking all along that no engine process exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        engine.check_all_alive()
        await asyncio.sleep(0.1)
    engine.check_all_alive()


def restart_without_data(server: RedisServer, folder: Path) -> None:
    """A brand new redis-server on the same port, in an empty folder: every key is gone."""
    server.kill()
    assert not folder.exists()
    server.folder = folder
    server.start()


async def settle_api(client: httpx.AsyncClient, path: str) -> int:
    """GET ``path`` until the answer is not a 503 (at most ``STALE_CONNECTIONS_TOLERATED`` times);
    how many 503s came first.

    Works around the bug pinned by ``test_api_idle_through_a_restart_answers_the_next_request``: a
    pooled connection that a restart of Redis left dead fails the next request made on it.
    """
    unavailable = 0
    for _ in range(STALE_CONNECTIONS_TOLERATED):
        response = await client.get(path)
        if response.status_code != 503:
            return unavailable
        assert response.json()["error"]["code"] == "backend_unavailable", response.text
        unavailable += 1
    raise AssertionError(f"GET {path}: still 503 after {unavailable} tries: {response.text}")


def statuses_of(view: dict[str, Any]) -> dict[str, str]:
    return {node_id: node_view["status"] for node_id, node_view in view["nodes"].items()}


# -- 1. the API while Redis is down ----------------------------------------------------------------


def assert_backend_unavailable(response: httpx.Response, port: int) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == "backend_unavailable", body
    assert f"127.0.0.1:{port}" in error["message"], body
    assert error["details"] == [], body
    assert "Traceback" not in response.text


@pytest.mark.timeout(60)
async def test_api_answers_503_while_redis_is_down(outage_cluster: Callable[..., Cluster]) -> None:
    engine = outage_cluster(appendfsync="always")
    server = engine.redis_server
    [api] = await engine.start_many(("api",))
    definition = workflow("tiny", [node("input", "input"), node("output", "output", ["input"])])

    async with httpx.AsyncClient(base_url=engine.api_url, timeout=HTTP_TIMEOUT_SECONDS) as client:
        execution_id = await submit(client, definition)
        run_id = await trigger(client, execution_id, {"n": 1})  # no orchestrator: stays PENDING
        assert (await status(client, run_id))["state"] == "PENDING"

        server.kill()
        started = time.monotonic()
        response = await client.get(f"/api/workflows/{run_id}")
        answered_in = time.monotonic() - started
        assert_backend_unavailable(response, server.port)
        assert answered_in < HTTP_TIMEOUT_SECONDS / 2, answered_in  # refused at once, no hang
        # Every route that needs Redis says the same, in the same shape.
        assert_backend_unavailable(await client.get(f"/api/workflows/{run_id}/results"), server.port)
        assert_backend_unavailable(await client.post("/api/workflow", json=definition), server.port)
        assert_backend_unavailable(
            await client.post(f"/api/workflow/trigger/{execution_id}", json={"input": {}}), server.port
        )
        # The API itself is fine: it answers what does not need Redis.
        health = await client.get("/api/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert api.running(), api.describe()

        server.restart()
        # Back at once: the first request after the restart gets its answer.
        view = await status(client, run_id)
        assert view["state"] == "PENDING", view
    assert api.running(), api.describe()
    assert "internal_error" not in api.log() and "Traceback" not in api.log(), api.describe()


@pytest.mark.timeout(60)
async def test_api_idle_through_a_restart_answers_the_next_request(
    outage_cluster: Callable[..., Cluster],
) -> None:
    engine = outage_cluster(appendfsync="always")
    server = engine.redis_server
    [api] = await engine.start_many(("api",))
    definition = workflow("tiny", [node("input", "input"), node("output", "output", ["input"])])
    async with httpx.AsyncClient(base_url=engine.api_url, timeout=HTTP_TIMEOUT_SECONDS) as client:
        run_id = await trigger(client, await submit(client, definition), {"n": 1})
        assert (await status(client, run_id))["state"] == "PENDING"
        # No request while Redis is down: the API's pooled connection is left as it was.
        server.kill()
        await asyncio.sleep(0.5)
        server.restart()
        response = await client.get(f"/api/workflows/{run_id}")
    assert api.running(), api.describe()
    assert response.status_code == 200, response.text


# -- 2. restarted without its data -----------------------------------------------------------------


def small_workflow(ledger: Path) -> dict[str, Any]:
    return workflow(
        "small",
        [
            node("input", "input"),
            node("double", "link", ["input"], ledger=str(ledger), sleep_seconds=0.05),
            node("output", "output", ["double"]),
        ],
    )


@pytest.mark.timeout(60)
async def test_processes_recover_when_redis_comes_back_empty(
    outage_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    engine = outage_cluster(appendfsync="always")
    server = engine.redis_server
    port = server.port
    ledger = tmp_path / "small-ledger.txt"
    small = small_workflow(ledger)
    api, orchestrator, worker = await engine.start_many(("api",), ("orchestrator",), ("worker",))

    async with engine.client() as client:
        # A run before the loss: groups created, scripts loaded, definitions cached.
        before = await trigger(client, await submit(client, small), {"seed": "before"})
        await engine.wait_final([before], within=20)
        assert (await status(client, before))["state"] == "COMPLETED"

        restart_without_data(server, tmp_path / "empty-redis")
        assert server.port == port
        assert engine.inspect.run(before) is None  # the data is gone
        await stay_alive(engine, 1.0)
        await settle_api(client, f"/api/workflows/{before}")  # now a 404: the run is gone

        # A new workflow, submitted and triggered over HTTP, runs to the end.
        after = await trigger(client, await submit(client, small), {"seed": "after"})
        await engine.wait_final([after], within=30)
        view = await status(client, after)
        outputs = (await results(client, after))["results"]

    assert view["state"] == "COMPLETED", view
    assert statuses_of(view) == {"input": "COMPLETED", "double": "COMPLETED", "output": "COMPLETED"}, view
    assert outputs["output"] == {"double": {"chain": ["after", "double"]}}, outputs
    for process in (api, orchestrator, worker):
        assert process.running(), process.describe()
    # The stream groups were created again.
    groups = {
        group["name"]
        for shard in engine.keys.all_shards()
        for stream in (shard.tasks, shard.events)
        if engine.redis.exists(stream)
        for group in engine.redis.xinfo_groups(stream)
    }
    assert {"orchestrators", "workers"} <= groups, groups


@pytest.mark.timeout(60)
async def test_trigger_of_a_definition_lost_with_the_data_does_not_hang(
    outage_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """After the loss, a definition registered before it is either gone (404) or runs to the end."""
    engine = outage_cluster(appendfsync="always")
    server = engine.redis_server
    await engine.start_many(("api",), ("orchestrator",), ("worker",))
    async with engine.client() as client:
        execution_id = await submit(client, small_workflow(tmp_path / "ledger.txt"))
        # Runs on every shard first: the API has written (and noted) the graph hash of each.
        before: list[str] = []
        while {engine.keys.shard_of(run_id) for run_id in before} != set(range(SHARDS)):
            assert len(before) < 100, "the run ids never covered every shard"
            before.append(await trigger(client, execution_id, {"seed": "before"}))
        await engine.wait_final(before, within=20)

        restart_without_data(server, tmp_path / "empty-redis")
        await stay_alive(engine, 1.0)
        await settle_api(client, f"/api/workflows/{before[0]}")

        response = await client.post(f"/api/workflow/trigger/{execution_id}", json={"input": {"seed": "x"}})
        if response.status_code == 404:
            assert response.json()["error"]["code"] == "not_found", response.text
            return
        assert response.status_code == 200, response.text
        run_id = response.json()["instance_id"]
        await engine.wait_final([run_id], within=8)
        view = await status(client, run_id)
    assert view["state"] == "COMPLETED", view
    assert engine.node_states(run_id)["output"].status == "COMPLETED"
    engine.check_all_alive()
