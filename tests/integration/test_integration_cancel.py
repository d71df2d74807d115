"""Cancelling a run: nodes not yet started never start; attempts already running are let go."""

from __future__ import annotations

import asyncio
import logging

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
