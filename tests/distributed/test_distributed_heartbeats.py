"""Heartbeats with real processes on Redis (``web`` and a ``worker`` process):

- a handler that hangs without beating is timed out by its node's ``heartbeat_timeout_seconds``
  while its worker stays alive; the worker is told to stop it, so its one slot runs the retry;
- a handler that beats with progress shows it in the run view while it runs and in the run's
  events, the worker folding many beats into few reports;
- handlers that loop until cancelled, beating (a sync one, stopped by ``ctx.heartbeat`` raising,
  and an async one, whose task is cancelled), stop promptly when the run is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distributed_support import Cluster, workflow
from http_support import submit, trigger

MODULE = "heartbeat_handlers"
SOURCE = """
import asyncio
import os
import time
from pathlib import Path

from services.worker import handler


@handler("hangs_once")
async def hangs_once(ctx):
    if ctx.attempt == 1:
        await asyncio.sleep(3600)  # hung: no heartbeat, no result
    return {"attempt": ctx.attempt, "pid": os.getpid()}


@handler("counts")
def counts(ctx):
    release = Path(ctx.config["release"])
    began = time.monotonic()
    done = 0
    while not release.exists():
        done += 1
        ctx.heartbeat({"done": done, "stage": "counting"})
        time.sleep(0.002)
    return {"calls": done, "seconds": time.monotonic() - began}


@handler("sync_loop")
def sync_loop(ctx):
    try:
        while True:
            ctx.heartbeat({"alive": True})
            time.sleep(0.01)
    finally:
        Path(ctx.config["stopped"]).write_text(repr(time.time()))


@handler("async_loop")
async def async_loop(ctx):
    try:
        while True:
            await ctx.heartbeat({"alive": True})
            await asyncio.sleep(0.01)
    finally:
        Path(ctx.config["stopped"]).write_text(repr(time.time()))
"""
FAST = {"HEARTBEAT_INTERVAL_SECONDS": "0.2", "CANCEL_POLL_SECONDS": "0.1", "CANCEL_GRACE_SECONDS": "2"}


async def started_cluster(cluster: Callable[..., Cluster], **settings: str) -> Cluster:
    engine = cluster(**FAST, **settings)
    (engine.workdir / f"{MODULE}.py").write_text(SOURCE, encoding="utf-8")
    await engine.start_many(("web", "--handlers", MODULE), ("worker", "--handlers", MODULE))
    return engine


def node(node_id: str, handler: str, **keys: Any) -> dict[str, Any]:
    return {"id": node_id, "handler": handler, **keys}


async def poll[T](probe: Callable[[], Any], within: float, what: str) -> T:
    """Until ``probe()`` (awaited) answers something truthy; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await probe()
        if found:
            return found  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"{what} not seen within {within}s"
        await asyncio.sleep(0.05)


async def events_of(client: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's history as its SSE stream gives it (``?after=0``: from the start)."""
    events = []
    async with client.stream("GET", f"/api/runs/{run_id}/events") as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("run_status"):
                    break
    return events


async def test_a_hung_handler_times_out_by_its_heartbeat_timeout_and_is_retried(
    cluster: Callable[..., Cluster],
) -> None:
    engine = await started_cluster(cluster, WORKER_CONCURRENCY="1")
    retry = {"max_attempts": 2, "initial_backoff_seconds": 0}
    hung = node("h", "hangs_once", heartbeat_timeout_seconds=1, retry_policy=retry)
    async with engine.client() as client:
        began = time.monotonic()
        run_id = await trigger(client, await submit(client, workflow("hangs", [hung])), {})
        await engine.wait_final([run_id], within=20)
        took = time.monotonic() - began
        run = (await client.get(f"/api/runs/{run_id}")).json()

    _web, worker = engine.processes
    assert worker.running(), "the worker stays alive: only its handler hung"
    assert run["status"] == "COMPLETED", run
    state = run["nodes"]["h"]
    assert state["attempts"] == 2
    # The retry ran on the one slot of the same worker: the hung attempt was stopped.
    output = engine.redis.hget(engine.keys.run(run_id).out, "h")
    assert json.loads(output) == {"attempt": 2, "pid": worker.pid}
    [failed] = state["failed_attempts"]
    assert failed["error"]["type"] == "TimeoutError"
    assert "sent no heartbeat for 1.0s" in failed["error"]["message"], failed
    assert took < 10, f"timed out and retried in {took:.1f}s"
    assert "cancelled; its handler stopped" in worker.log(), worker.log_tail()


async def test_progress_shows_in_the_run_view_and_its_events(
    cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    engine = await started_cluster(cluster)
    release = tmp_path / "release"
    counting = node("c", "counts", config={"release": str(release)}, heartbeat_timeout_seconds=5)
    async with engine.client() as client:
        run_id = await trigger(client, await submit(client, workflow("progress", [counting])), {})

        async def progressed() -> dict[str, Any] | None:
            state = (await client.get(f"/api/runs/{run_id}")).json()["nodes"]["c"]
            done = (state.get("progress") or {}).get("done", 0)
            return state if done > 50 and state["last_heartbeat_at"] else None

        seen: dict[str, Any] = await poll(progressed, 15, "progress in the run view")
        release.write_text("go")
        await engine.wait_final([run_id], within=15)
        events = await events_of(client, run_id)
        run = (await client.get(f"/api/runs/{run_id}")).json()

    assert seen["status"] == "RUNNING" and seen["progress"]["stage"] == "counting"
    beats = [event for event in events if event["kind"] == "heartbeat_received"]
    assert beats and all(beat["node_id"] == "c" and beat["attempt"] == 1 for beat in beats)
    assert all(beat["progress"]["stage"] == "counting" for beat in beats)
    assert run["status"] == "COMPLETED"
    ran = json.loads(engine.redis.hget(engine.keys.run(run_id).out, "c"))
    # One report per interval (0.2 s) at most, however often the handler beats; the latest details
    # in each.
    assert len(beats) <= ran["seconds"] / 0.2 + 2, (len(beats), ran)
    assert ran["calls"] > 3 * len(beats), (len(beats), ran)
    dones = [beat["progress"]["done"] for beat in beats]
    assert dones == sorted(dones)


async def test_handlers_looping_until_cancelled_stop_promptly(
    cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    engine = await started_cluster(cluster)
    stopped = {kind: tmp_path / f"{kind}.stopped" for kind in ("sync", "async")}
    nodes = [
        node(f"{kind}_loop", f"{kind}_loop", config={"stopped": str(path)}, heartbeat_timeout_seconds=5)
        for kind, path in stopped.items()
    ]
    async with engine.client() as client:
        run_id = await trigger(client, await submit(client, workflow("loops", nodes)), {})

        async def both_beating() -> bool:
            states = (await client.get(f"/api/runs/{run_id}")).json()["nodes"]
            return all(state["progress"] == {"alive": True} for state in states.values())

        await poll(both_beating, 15, "both loops beating")
        cancelled_at = time.time()
        response = await client.post(f"/api/runs/{run_id}/cancel")
        assert response.status_code == 202, response.text
        await engine.wait_final([run_id], within=10)

        async def both_stopped() -> bool:
            return all(path.exists() for path in stopped.values())

        await poll(both_stopped, 10, "both handlers stopped")
    _web, worker = engine.processes
    took = {kind: float(path.read_text()) - cancelled_at for kind, path in stopped.items()}
    # Told within the cancel poll (0.1 s) of the commit; far inside the grace period (2 s).
    assert all(0 <= seconds < 1.5 for seconds in took.values()), took
    log = worker.log()
    assert log.count("cancelled; its handler stopped") == 2, worker.log_tail()
    assert "abandoned" not in log
    assert worker.running()
