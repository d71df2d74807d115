"""Redis outages: every process rides them out and the runs in flight finish.

The redis-server is killed (SIGKILL) and restarted with its data (AOF, ``appendfsync always``, so
nothing Redis acknowledged is lost), restarted without its data, and paused (SIGSTOP) in the middle
of a fan-in. None of the engine processes may exit; the runs complete, nodes are dispatched once.
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
    EngineProcess,
    node,
    results,
    status,
    submit,
    trigger,
    workflow,
)
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

RETRYING = "retrying until the backend answers"
RECOVERED = "works again"
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
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call")
    )
    if failed:
        for each in made:
            print(f"\n##### engine logs (key prefix {each.prefix}, folder {each.workdir})")
            print(each.logs())
            redis_log = each.redis_server.folder / "redis.log"
            if redis_log.exists():
                tail = redis_log.read_text(encoding="utf-8", errors="replace")[-3000:]
                print(f"=== {redis_log} ===\n{tail}")


# -- helpers -------------------------------------------------------------------------------------


async def wait_until[T](probe: Callable[[], T | None], within: float, what: str, engine: Cluster) -> T:
    """Poll ``probe`` (cheap, synchronous) until it returns something; every engine process must
    stay alive meanwhile."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found:
            return found
        engine.check_all_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within}s: {what}")
        await asyncio.sleep(0.02)


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


def noticed_outage(process: EngineProcess) -> bool:
    log = process.log()
    return RETRYING in log and RECOVERED in log


# -- 1. killed and restarted with its data ---------------------------------------------------------

STEPS = [f"step_{number}" for number in range(1, 7)]
STEP_SECONDS = 0.5


def chain_workflow(ledger: Path) -> dict[str, Any]:
    nodes = [node("input", "input")]
    for previous, step in zip(["input", *STEPS], STEPS, strict=False):
        nodes.append(node(step, "link", [previous], ledger=str(ledger), sleep_seconds=STEP_SECONDS))
    nodes.append(node("output", "output", [STEPS[-1]]))
    return workflow("chain_through_an_outage", nodes)


@pytest.mark.timeout(60)
async def test_killed_redis_restarted_with_its_data_mid_run(
    outage_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    # A visibility timeout shorter than the default only bounds how long a task delivered in the
    # instant of the kill (recorded by Redis, never received) waits before it is reclaimed.
    engine = outage_cluster(appendfsync="always", VISIBILITY_TIMEOUT_SECONDS="5")
    server = engine.redis_server
    port, folder = server.port, server.folder
    ledger = tmp_path / "chain-ledger.txt"
    api, orchestrator, worker = await engine.start_many(("api",), ("orchestrator",), ("worker",))

    async with engine.client() as client:
        run_id = await trigger(client, await submit(client, chain_workflow(ledger)), {"seed": "s-1"})

        def first_steps_done() -> dict[str, Any] | None:
            states = engine.node_states(run_id)
            done = states["step_1"]["s"] == "COMPLETED" and states["step_2"]["s"] == "COMPLETED"
            return states if done else None

        before = await wait_until(first_steps_done, 20, "step_1 and step_2 completed", engine)
        assert before["output"]["s"] == "PENDING", before
        server.kill()
        await stay_alive(engine, 2.0)  # they must ride the outage out, not exit
        server.restart()
        assert (server.port, server.folder) == (port, folder)  # same port, same data

        # What Redis acknowledged before the kill is still there.
        after = engine.node_states(run_id)
        assert after["step_1"]["s"] == after["step_2"]["s"] == "COMPLETED", after

        await engine.wait_final([run_id], within=30)
        await settle_api(client, f"/api/workflows/{run_id}")
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    executions = ledger.read_text(encoding="utf-8").splitlines()
    assert view["state"] == "COMPLETED", (view, executions)
    assert statuses_of(view) == dict.fromkeys(["input", *STEPS, "output"], "COMPLETED"), view
    # No attempt failed: a task delivered again (redelivery) keeps its attempt number.
    attempts = {node_id: node_view["attempts"] for node_id, node_view in view["nodes"].items()}
    assert set(attempts.values()) == {1}, (attempts, executions)
    assert all(node_view["error"] is None for node_view in view["nodes"].values()), view
    # The output got the whole chain, every step's data handed on through the outage.
    assert outputs["output"] == {STEPS[-1]: {"chain": ["s-1", *STEPS]}}, outputs
    assert {line.split()[1] for line in executions} == set(STEPS), executions
    # Each node was dispatched once (the audit group survived the restart, so nothing was trimmed).
    dispatched = engine.task_counts()
    assert {key: count for key, count in dispatched.items() if key[0] == run_id} == {
        (run_id, node_id): 1 for node_id in ["input", *STEPS, "output"]
    }, dispatched
    assert engine.pending_tasks() == 0

    for process in (api, orchestrator, worker):
        assert process.running(), process.describe()
    # The loops did see the outage (and said so once), and saw its end.
    for process in (orchestrator, worker):
        assert noticed_outage(process), process.describe()


# -- 2. the API while Redis is down ----------------------------------------------------------------


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


# -- 3. restarted without its data -----------------------------------------------------------------


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
        assert not engine.redis.exists(engine.keys.run(before).meta)  # the data is gone
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
    assert engine.node_states(run_id)["output"]["s"] == "COMPLETED"
    engine.check_all_alive()


# -- 4. paused in the middle of a fan-in -----------------------------------------------------------

PARENTS = [f"parent_{number:02d}" for number in range(20)]
PAUSE_SECONDS = 4.0
VISIBILITY_SECONDS = 2.0


def fan_in_workflow() -> dict[str, Any]:
    # Parents finish one after another (0.2 s to 2.1 s), so the pause falls among them.
    return workflow(
        "fan_in_through_a_pause",
        [
            node("root", "noop"),
            *(
                node(parent, "whoami", ["root"], sleep_seconds=round(0.2 + 0.1 * number, 2))
                for number, parent in enumerate(PARENTS)
            ),
            node("child", "output", PARENTS),
        ],
    )


@pytest.mark.timeout(60)
async def test_fan_in_survives_a_redis_pause(outage_cluster: Callable[..., Cluster]) -> None:
    # Redis's read timeout (10 s) is too long to wait out here; the pause instead outlasts the
    # visibility timeout, so that entries held across it look abandoned when Redis wakes up and get
    # reclaimed (by their own holder or by the other replica) while their results are coming in.
    engine = outage_cluster(appendfsync="always", VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY_SECONDS))
    server = engine.redis_server
    await engine.start_many(("api",), ("orchestrator",), ("orchestrator",), ("worker",), ("worker",))

    async with engine.client() as client:
        run_id = await trigger(client, await submit(client, fan_in_workflow()), {})

        def some_parents_done() -> dict[str, Any] | None:
            states = engine.node_states(run_id)
            done = sum(states[parent]["s"] == "COMPLETED" for parent in PARENTS)
            return states if done >= 3 else None

        at_pause = await wait_until(some_parents_done, 20, "3 parents completed", engine)
        server.pause()
        try:
            await stay_alive(engine, PAUSE_SECONDS)
        finally:
            server.resume()
        completed_at_pause = [parent for parent in PARENTS if at_pause[parent]["s"] == "COMPLETED"]
        assert len(completed_at_pause) < len(PARENTS), at_pause  # the pause fell in the fan-in
        assert at_pause["child"]["s"] == "PENDING", at_pause

        await engine.wait_final([run_id], within=30)
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    assert statuses_of(view) == dict.fromkeys(["root", *PARENTS, "child"], "COMPLETED"), view
    assert {node_view["attempts"] for node_view in view["nodes"].values()} == {1}, view
    # The child ran after every parent, with every parent's output.
    assert set(outputs["child"]) == set(PARENTS), outputs["child"]
    assert {parent: output["node"] for parent, output in outputs["child"].items()} == {p: p for p in PARENTS}

    dispatched = engine.task_counts()
    assert dispatched[(run_id, "child")] == 1, dispatched
    assert dispatched == {(run_id, node_id): 1 for node_id in ["root", *PARENTS, "child"]}, dispatched
    assert engine.pending_tasks() == 0
    engine.check_all_alive()
