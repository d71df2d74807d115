"""Worker pools in one process (memory backend): a task of a queue no worker serves waits, and the
run view says so, until a worker of that queue starts; a worker that lacks a handler hands the task
back when another live worker of the queue announced it, and fails the node only when none has."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from engine_support import fresh_registry, make_container, node, workflow

from domain.messages import DEFAULT_QUEUE
from domain.ports import StoredDefinition, WorkerAnnouncement
from domain.statuses import NodeStatus, RunStatus
from domain.validation import build_plan
from services.application.run_view import run_view
from services.container import Container
from services.engine import EmbeddedEngine
from services.worker.registry import HandlerContext, HandlerRegistry

DEADLINE = 10.0


def registry_with(*names: str) -> HandlerRegistry:
    registry = fresh_registry()
    for name in names:
        registry.register(name)(_answering(name))
    return registry


def _answering(name: str) -> Callable[[HandlerContext], Any]:
    async def done(ctx: HandlerContext) -> dict[str, Any]:
        return {"by": name}

    return done


@contextlib.asynccontextmanager
async def worker_running(container: Container, worker_id: str, **kwargs: Any) -> AsyncIterator[None]:
    """One more worker loop, on the container's adapters, until the block ends."""
    stop = asyncio.Event()
    loop = asyncio.create_task(container.worker(worker_id=worker_id, **kwargs).run(stop))
    try:
        yield
    finally:
        stop.set()
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def register_unchecked(container: Container, raw: dict[str, Any]) -> StoredDefinition:
    """Stored as an API on Redis stores it (handlers the API does not know are no refusal there);
    the embedded API refuses a handler its own registry lacks."""
    stored = StoredDefinition(f"def-{uuid.uuid4().hex[:8]}", build_plan(raw), time.time())
    return await container.definitions().add(stored)


async def until(condition: Callable[[], Any], what: str) -> None:
    """Poll ``condition`` until it holds; fails naming ``what`` after ``DEADLINE``."""
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                if await condition():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE} s: {what}") from None


async def test_a_task_of_a_queue_without_a_worker_waits_and_says_so_until_one_starts() -> None:
    container = make_container(registry_with("work"))
    workflows = container.workflows()
    stored = await workflows.register(
        workflow(node("cpu", "work"), node("gpu", "work", ["cpu"], queue="gpu"))
    )

    async with EmbeddedEngine(container, workers=1) as engine:  # serves the default queue only
        run = await workflows.start(stored.definition_id, {})

        async def gpu_queued() -> bool:
            return (await workflows.get_run(run.run_id)).node("gpu").status is NodeStatus.QUEUED

        await until(gpu_queued, "the gpu node queued")
        waiting = await workflows.get_run(run.run_id)
        reason = run_view(waiting, await workflows.queues_served(waiting)).nodes["gpu"].reason
        assert reason is not None and reason.endswith("waiting for a worker on queue gpu"), reason
        warnings = await workflows.registration_warnings(stored.plan)
        assert [(w.path, "no live worker serves queue 'gpu'" in w.message) for w in warnings] == [
            ("$.dag.nodes[1].queue", True)
        ]

        async with worker_running(container, "gpu-1", queues=["gpu"]):
            async with asyncio.timeout(DEADLINE):
                assert await engine.wait_for(run.run_id) is RunStatus.COMPLETED
    done = await workflows.get_run(run.run_id)
    assert (done.node("cpu").worker_id, done.node("gpu").worker_id) == ("worker-1", "gpu-1")
    assert (done.node("gpu").attempt, done.node("gpu").error) == (1, None)


async def test_a_worker_hands_back_a_task_whose_handler_another_live_worker_has(
    caplog: pytest.LogCaptureFixture,
) -> None:
    container = make_container(registry_with("common"))  # the engine's worker lacks "special"
    workflows = container.workflows()
    directory = container.workers_directory()
    stored = await register_unchecked(container, workflow(node("a", "special")))
    caplog.set_level(logging.INFO, logger="services.worker.loop")
    # The worker that has it announces itself, but is not taking tasks yet: the task must go to
    # the one that lacks it first, and come back.
    having = WorkerAnnouncement("having-1", frozenset({DEFAULT_QUEUE}), frozenset({"special"}))
    await directory.announce(having, 30.0)

    async with EmbeddedEngine(container, workers=1) as engine:
        run = await workflows.start(stored.definition_id, {})

        async def handed_back() -> bool:
            return any("handing back" in record.getMessage() for record in caplog.records)

        await until(handed_back, "the task handed back")
        assert (await workflows.get_run(run.run_id)).node("a").status is NodeStatus.QUEUED
        async with worker_running(container, "having-1", registry=registry_with("special")):
            async with asyncio.timeout(DEADLINE):
                assert await engine.wait_for(run.run_id) is RunStatus.COMPLETED
    done = await workflows.get_run(run.run_id)
    assert (done.node("a").worker_id, done.node("a").attempt) == ("having-1", 1)
    assert done.outputs["a"] == {"by": "special"}
    history = await workflows.history(run.run_id, 0, 100)
    assert {entry.worker_id for _, entry in history if entry.worker_id} == {"having-1"}, (
        "the worker that handed the task back never reported it started"
    )


async def test_a_handler_no_live_worker_of_the_queue_has_fails_the_node() -> None:
    container = make_container(registry_with("common"))
    workflows = container.workflows()
    directory = container.workers_directory()
    # Another live worker has it, but on another queue: it cannot take this task.
    await directory.announce(
        WorkerAnnouncement("elsewhere", frozenset({"gpu"}), frozenset({"special"})), 30.0
    )
    stored = await register_unchecked(container, workflow(node("a", "special")))

    async with EmbeddedEngine(container, workers=1) as engine:
        run = await workflows.start(stored.definition_id, {})
        async with asyncio.timeout(DEADLINE):
            assert await engine.wait_for(run.run_id) is RunStatus.FAILED
    error = (await workflows.get_run(run.run_id)).node("a").error
    assert error is not None and error.type == "UnknownHandler"
    assert error.message == (
        "no handler named 'special' is registered on this worker, nor on any live worker of queue 'default'"
    )
