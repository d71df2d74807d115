"""``EmbeddedEngine.wait_for``: the end of a run, whether it came before the call or after it, and
the new end of a redriven run (not the end of its earlier life)."""

from __future__ import annotations

import asyncio

import pytest
from engine_support import fresh_registry, make_container, node, workflow

from domain.errors import NotFound
from domain.statuses import RunStatus
from services.engine import EmbeddedEngine

WITHIN_SECONDS = 10.0


def fails_once() -> dict[str, object]:
    """A run whose only node fails its first attempt for good (no retries) and succeeds after."""
    config = {"delay_seconds": 0, "fail_attempts": 1}
    return workflow(node("flaky", "call_external_service", config=config))


async def test_a_redriven_run_is_waited_for_until_its_new_end() -> None:
    container = make_container(fresh_registry(builtins=True))
    workflows = container.workflows()
    stored = await workflows.register(fails_once())
    async with EmbeddedEngine(container) as engine, asyncio.timeout(WITHIN_SECONDS):
        run = await workflows.start(stored.definition_id, {})
        assert await engine.wait_for(run.run_id) is RunStatus.FAILED
        assert await engine.wait_for(run.run_id) is RunStatus.FAILED, "an end before the call"

        assert await workflows.redrive(run.run_id) == ["flaky"]
        assert await engine.wait_for(run.run_id) is RunStatus.COMPLETED
        assert (await workflows.get_run(run.run_id)).node("flaky").attempt == 2


async def test_waiters_of_one_run_share_its_end_and_one_leaving_does_not_end_the_others() -> None:
    container = make_container(fresh_registry(builtins=True))
    workflows = container.workflows()
    stored = await workflows.register(workflow(node("nap", "sleep", config={"seconds": 0.2})))
    async with EmbeddedEngine(container) as engine, asyncio.timeout(WITHIN_SECONDS):
        run = await workflows.start(stored.definition_id, {})
        leaving = asyncio.create_task(engine.wait_for(run.run_id))
        staying = asyncio.create_task(engine.wait_for(run.run_id))
        await asyncio.sleep(0)
        leaving.cancel()
        assert await staying is RunStatus.COMPLETED
        assert leaving.cancelled()


async def test_waiting_for_a_run_that_is_not_stored_is_an_error() -> None:
    container = make_container(fresh_registry())
    async with EmbeddedEngine(container) as engine:
        with pytest.raises(NotFound):
            await engine.wait_for("no-such-run")
