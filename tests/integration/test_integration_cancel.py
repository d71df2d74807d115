"""Cancelling a run: nodes not yet started never start; attempts already running are let go."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from engine_support import fresh_registry, make_container, node, workflow

from domain.statuses import NodeStatus, RunStatus
from services.application.errors import RunAlreadyFinished
from services.engine import EmbeddedEngine
from services.worker.registry import HandlerContext

CHILDREN = [f"c{i}" for i in range(5)]


async def test_queued_nodes_of_a_cancelled_run_never_start(caplog: pytest.LogCaptureFixture) -> None:
    started: list[str] = []
    one_started = asyncio.Event()
    release = asyncio.Event()
    registry = fresh_registry()

    @registry.register("quick")
    async def quick(ctx: HandlerContext) -> dict[str, str]:
        return {}

    @registry.register("tracked")
    async def tracked(ctx: HandlerContext) -> dict[str, str]:
        started.append(ctx.node_id)
        one_started.set()
        await release.wait()
        return {"node": ctx.node_id}

    # One slot: after the gate, one child runs and the other four wait in the task queue.
    container = make_container(registry, worker_concurrency=1)
    workflows = container.workflows()
    definition = workflow(node("gate", "quick"), *(node(c, "tracked", ["gate"]) for c in CHILDREN))
    stored = await workflows.register(definition)
    caplog.set_level(logging.INFO, logger="services.worker.loop")

    async with EmbeddedEngine(container, workers=1) as engine:
        run = await workflows.start(stored.definition_id, {})
        async with asyncio.timeout(10):
            await one_started.wait()
        assert await workflows.cancel(run.run_id) is RunStatus.RUNNING
        assert await engine.wait_for(run.run_id) is RunStatus.CANCELLED
        release.set()  # the running attempt ends; its result must change nothing
        async with asyncio.timeout(10):
            while True:  # the worker drops the four queued children as it receives them
                if sum("not starting" in r.getMessage() for r in caplog.records) == len(CHILDREN) - 1:
                    break
                await asyncio.sleep(0.005)
        with pytest.raises(RunAlreadyFinished):
            await workflows.cancel(run.run_id)

    final = await workflows.get_run(run.run_id)
    assert len(started) == 1  # only the child already running when the cancel came
    assert final.status is RunStatus.CANCELLED
    assert final.node("gate").status is NodeStatus.COMPLETED
    assert [final.node(c).status for c in CHILDREN] == [NodeStatus.CANCELLED] * len(CHILDREN)
    assert set(final.outputs) == {"gate"}


@pytest.mark.parametrize("ignores", [False, True], ids=["stops", "ignores-it"])
async def test_a_cancel_reaches_running_handlers(ignores: bool) -> None:
    """An async handler's task is cancelled, a sync handler sees ``ctx.cancelled``; one that ignores
    it is abandoned after the grace period. Either way the worker's one slot is free again: the
    next run completes."""
    running = {"async": asyncio.Event(), "sync": asyncio.Event()}
    stopped: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    registry = fresh_registry()

    release = threading.Event()  # ends an ignoring handler when the test is over

    @registry.register("loops_async")
    async def loops_async(ctx: HandlerContext) -> None:
        running["async"].set()
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if not ignores:
                    stopped["async"] = time.monotonic()
                    raise

    @registry.register("loops_sync")
    def loops_sync(ctx: HandlerContext) -> None:
        loop.call_soon_threadsafe(running["sync"].set)
        while not release.is_set():
            if ctx.cancelled.wait(0.01) and not ignores:
                stopped["sync"] = time.monotonic()
                return

    together: set[str] = set()
    both_in = asyncio.Event()

    @registry.register("pair")
    async def pair(ctx: HandlerContext) -> dict[str, str]:
        together.add(ctx.node_id)  # ends only when both run at once: both slots were free
        if len(together) == 2:
            both_in.set()
        await both_in.wait()
        return {"done": ctx.node_id}

    container = make_container(
        registry, worker_concurrency=2, cancel_poll_seconds=0.05, cancel_grace_seconds=0.5
    )
    workflows = container.workflows()
    looping = await workflows.register(workflow(node("a", "loops_async"), node("s", "loops_sync")))
    after = await workflows.register(workflow(node("q1", "pair"), node("q2", "pair")))
    try:
        freed_after, cancelled_at = await _cancel_and_run_again(
            workflows, looping.definition_id, after.definition_id, container, running
        )
        if not ignores:
            async with asyncio.timeout(10):
                while len(stopped) < 2:  # noqa: ASYNC110 - noted by the threads, not awaitable
                    await asyncio.sleep(0.005)
    finally:
        release.set()
    if ignores:
        assert stopped == {}
        assert freed_after >= 0.5  # not before the grace period
    else:
        assert set(stopped) == {"async", "sync"}
        took = max(stopped.values()) - cancelled_at
        print(f"cancel reached both handlers in {took:.3f}s (poll 0.05s)")
        assert took < 0.5  # within the poll interval and the loops' reaction, well under the grace


async def _cancel_and_run_again(
    workflows: Any, looping: str, after: str, container: Any, running: dict[str, asyncio.Event]
) -> tuple[float, float]:
    async with EmbeddedEngine(container, workers=1) as engine:
        run = await workflows.start(looping, {})
        async with asyncio.timeout(10):
            await running["async"].wait()
            await running["sync"].wait()
        cancelled_at = time.monotonic()
        await workflows.cancel(run.run_id)
        assert await engine.wait_for(run.run_id) is RunStatus.CANCELLED
        # Both slots must come free (the handlers stopped, or were abandoned after the grace).
        next_run = await workflows.start(after, {})
        async with asyncio.timeout(10):
            assert await engine.wait_for(next_run.run_id) is RunStatus.COMPLETED
        return time.monotonic() - cancelled_at, cancelled_at
