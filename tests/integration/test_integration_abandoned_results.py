"""A handler that ignores its cancel is abandoned after the grace period (``services.worker.cancels``);
when it ends later, whatever it returns or raises is dropped: the node's state and the run's history
stay as the cancel left them, and when the run was redriven meanwhile, the node's new attempt is the
one whose result counts."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from engine_support import fresh_registry, make_container, node, workflow

from domain.history import EntryKind
from domain.ports import StoredDefinition
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus
from services.application.workflows import WorkflowService
from services.container import Container
from services.engine import EmbeddedEngine
from services.worker.registry import HandlerContext, HandlerRegistry

DEADLINE_SECONDS = 10.0
GRACE_SECONDS = 0.2
ABANDONED = "its handler ignored it"
ENDED_LATE = "an abandoned handler ended late"


class Stubborn:
    """The handler ``stubborn``: its first attempt ignores every cancel until ``release`` is set,
    then returns (or raises); a later attempt says it runs (``later_running``) and returns once
    ``later_may_end`` is set. ``kind``: an async or a sync handler."""

    def __init__(self, registry: HandlerRegistry, kind: str, raises: bool) -> None:
        self.release = threading.Event()
        self.later_may_end = threading.Event()
        self.first_running = asyncio.Event()
        self.first_ended = asyncio.Event()
        self.later_running = asyncio.Event()
        loop = asyncio.get_running_loop()

        def ended(ctx: HandlerContext) -> dict[str, Any]:
            if raises:
                raise RuntimeError(f"late failure of attempt {ctx.attempt}")
            return {"attempt": ctx.attempt}

        if kind == "async":

            @registry.register("stubborn")
            async def stubborn_async(ctx: HandlerContext) -> dict[str, Any]:
                if ctx.attempt > 1:
                    self.later_running.set()
                    while not self.later_may_end.is_set():  # noqa: ASYNC110 - set by the test's thread too
                        await asyncio.sleep(0.005)
                    return {"attempt": ctx.attempt}
                self.first_running.set()
                try:
                    while not self.release.is_set():
                        try:
                            await asyncio.sleep(0.005)
                        except asyncio.CancelledError:
                            continue  # ignored
                    return ended(ctx)
                finally:
                    self.first_ended.set()

        else:

            @registry.register("stubborn")
            def stubborn_sync(ctx: HandlerContext) -> dict[str, Any]:
                if ctx.attempt > 1:
                    loop.call_soon_threadsafe(self.later_running.set)
                    self.later_may_end.wait(DEADLINE_SECONDS)
                    return {"attempt": ctx.attempt}
                loop.call_soon_threadsafe(self.first_running.set)
                try:
                    self.release.wait(DEADLINE_SECONDS)  # ctx.cancelled is never looked at
                    return ended(ctx)
                finally:
                    loop.call_soon_threadsafe(self.first_ended.set)


def container_of(registry: HandlerRegistry, concurrency: int = 1) -> Container:
    return make_container(
        registry,
        worker_concurrency=concurrency,
        cancel_poll_seconds=0.02,
        cancel_grace_seconds=GRACE_SECONDS,
    )


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while not any(text in record.getMessage() for record in caplog.records):  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def state(run: Run) -> tuple[RunStatus, NodeStatus, int, bool]:
    """What a late result could change, read at once (the memory store hands out its live run):
    the run's status, slow's status and attempt, whether slow has an output."""
    slow = run.node("slow")
    return run.status, slow.status, slow.attempt, "slow" in run.outputs


async def quick(ctx: HandlerContext) -> dict[str, str]:
    return {}


async def registered(workflows: WorkflowService) -> tuple[StoredDefinition, StoredDefinition]:
    """slow (stubborn) -> after (quick), and a one-node run of quick: started after a late end, it
    completes on the one slot only once any event that end sent was applied (one bus, in order)."""
    stored = await workflows.register(workflow(node("slow", "stubborn"), node("after", "quick", ["slow"])))
    return stored, await workflows.register(workflow(node("q", "quick")))


async def cancelled_and_abandoned(
    engine: EmbeddedEngine,
    workflows: WorkflowService,
    definition_id: str,
    stubborn: Stubborn,
    caplog: pytest.LogCaptureFixture,
) -> Run:
    """A run of ``definition_id`` cancelled while slow's first attempt runs, once that attempt is
    abandoned (its handler ignored the cancel past the grace)."""
    run = await workflows.start(definition_id, {})
    async with asyncio.timeout(DEADLINE_SECONDS):
        await stubborn.first_running.wait()
    await workflows.cancel(run.run_id)
    assert await engine.wait_for(run.run_id) is RunStatus.CANCELLED
    await logged(caplog, ABANDONED)
    return run


@pytest.mark.parametrize("raises", [False, True], ids=["returns", "raises"])
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_an_abandoned_handler_that_ends_late_changes_nothing(
    kind: str, raises: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.worker")
    registry = fresh_registry()
    stubborn = Stubborn(registry, kind, raises)
    registry.register("quick")(quick)

    container = container_of(registry)
    workflows = container.workflows()
    stored, barrier = await registered(workflows)
    try:
        async with EmbeddedEngine(container, workers=1) as engine:
            run = await cancelled_and_abandoned(engine, workflows, stored.definition_id, stubborn, caplog)
            before = state(await workflows.get_run(run.run_id))
            cancelled_error = (await workflows.get_run(run.run_id)).node("slow").error
            history = await workflows.history(run.run_id, 0, 500)

            stubborn.release.set()
            async with asyncio.timeout(DEADLINE_SECONDS):
                await stubborn.first_ended.wait()
            if raises and kind == "async":  # the dropped failure is said so
                await logged(caplog, ENDED_LATE)
            # A run started after the late end completes on the one slot: any event the late end
            # had sent was applied before it (one bus, in order).
            after = await workflows.start(barrier.definition_id, {})
            async with asyncio.timeout(DEADLINE_SECONDS):
                assert await engine.wait_for(after.run_id) is RunStatus.COMPLETED

            final = await workflows.get_run(run.run_id)
            assert await workflows.history(run.run_id, 0, 500) == history
            assert state(final) == before
    finally:
        stubborn.release.set()
    assert before == (RunStatus.CANCELLED, NodeStatus.CANCELLED, 1, False)
    assert final.node("slow").error == cancelled_error
    assert final.node("after").status is NodeStatus.CANCELLED


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_late_result_of_an_abandoned_attempt_does_not_complete_the_redriven_node(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled, abandoned, redriven: attempt 2 is running when attempt 1 returns, late. The node
    stays RUNNING on attempt 2, and completes with attempt 2's output, recorded once."""
    caplog.set_level(logging.INFO, logger="services.worker")
    registry = fresh_registry()
    stubborn = Stubborn(registry, kind, raises=False)
    registry.register("quick")(quick)

    # Two slots: a sync attempt 2 needs a thread of its own while attempt 1's still runs.
    container = container_of(registry, concurrency=2)
    workflows = container.workflows()
    stored, barrier = await registered(workflows)
    try:
        async with EmbeddedEngine(container, workers=1) as engine:
            run = await cancelled_and_abandoned(engine, workflows, stored.definition_id, stubborn, caplog)

            assert await workflows.redrive(run.run_id) == ["slow", "after"]
            async with asyncio.timeout(DEADLINE_SECONDS):
                await stubborn.later_running.wait()
            stubborn.release.set()  # attempt 1 ends now, late, with {"attempt": 1}
            async with asyncio.timeout(DEADLINE_SECONDS):
                await stubborn.first_ended.wait()
            after = await workflows.start(barrier.definition_id, {})  # see the test above
            async with asyncio.timeout(DEADLINE_SECONDS):
                assert await engine.wait_for(after.run_id) is RunStatus.COMPLETED
            mid = state(await workflows.get_run(run.run_id))

            stubborn.later_may_end.set()
            async with asyncio.timeout(DEADLINE_SECONDS):
                assert await engine.wait_for(run.run_id) is RunStatus.COMPLETED
            final = await workflows.get_run(run.run_id)
            history = await workflows.history(run.run_id, 0, 500)
    finally:
        stubborn.release.set()
        stubborn.later_may_end.set()
    assert mid in {
        (RunStatus.RUNNING, status, 2, False) for status in (NodeStatus.QUEUED, NodeStatus.RUNNING)
    }
    assert final.node("slow").attempt == 2
    assert final.outputs["slow"] == {"attempt": 2}
    successes = [(e.node_id, e.attempt) for _, e in history if e.kind is EntryKind.NODE_SUCCEEDED]
    assert successes == [("slow", 2), ("after", 1)]
