"""Contract of the event bus on Redis: an event that no orchestrator could apply, dead-lettered after
``max_deliveries``, is settled so that its run still ends: a result fails its attempt for good, the
run's start fails the run, a retry fails its node. A settlement is never settled again, so a dead
letter never breeds another; a node's start report and a cancel turn into nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from contract_support import ONE_PROCESS, T0, Backend, Driver, add_run, drain, node, nothing_waiting, workflow

from domain.events import (
    AttemptTimedOut,
    CancelRequested,
    Event,
    EventDeadLettered,
    FinishRun,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RetryDue,
    RunStarted,
)
from domain.ports import Delivery
from domain.reasons import DEAD_LETTERED
from domain.statuses import NodeStatus, RunStatus

VISIBILITY = 0.2
PAST_VISIBILITY = VISIBILITY + 0.1
MAX_DELIVERIES = 2

pytestmark = [
    pytest.mark.contract_skip(memory=ONE_PROCESS),
    pytest.mark.contract_settings(visibility_timeout_seconds=VISIBILITY, max_deliveries=MAX_DELIVERIES),
]


async def dead_letter(backend: Backend, event: Event) -> list[Delivery[Event]]:
    """Send ``event`` and let orchestrators that never acknowledge it receive it until it is
    exhausted; what the one that dead-letters it receives next (an event it led to) is returned."""
    await backend.events.send([event])
    quiet = [(await backend.connect()).events for _ in range(MAX_DELIVERIES + 1)]
    for number in range(MAX_DELIVERIES):
        if number:
            await asyncio.sleep(PAST_VISIBILITY)
        received = await drain(quiet[number], 1, consumer=f"quiet-{number}")
        assert [d.message for d in received] == [event]
    await asyncio.sleep(PAST_VISIBILITY)
    after = await quiet[-1].receive("last", 10, 0.05)
    assert event not in [d.message for d in after]  # dead-lettered, not delivered
    return after


async def settlement(backend: Backend, event: Event) -> list[Delivery[Event]]:
    """What ``event`` is settled by once dead-lettered: received by the orchestrator that
    dead-lettered it, or else still waiting on the bus."""
    return await dead_letter(backend, event) or await drain(backend.events, 1, consumer="orchestrator")


@pytest.mark.parametrize(
    "result",
    [
        lambda run_id: NodeSucceeded(run_id, "a", 1, {"x": 1}, T0 + 1),
        lambda run_id: NodeFailed(run_id, "a", 1, "ValueError", "boom", T0 + 1),
        lambda run_id: AttemptTimedOut(run_id, "a", 1, T0 + 1),
    ],
    ids=["succeeded", "failed", "timed-out"],
)
async def test_a_dead_lettered_result_fails_its_attempt_for_good_and_the_run_ends(
    backend: Backend, result: Any
) -> None:
    driver = Driver(backend, await add_run(backend, workflow(node("a"), node("b", ["a"]))))
    await driver.begin()
    await driver.take_tasks(1)
    event = result(driver.run_id)

    received = await settlement(backend, event)
    [failure] = [d.message for d in received]
    assert isinstance(failure, NodeFailed)
    assert (failure.run_id, failure.node_id, failure.attempt) == (driver.run_id, "a", 1)
    assert (failure.error_type, failure.retryable) == (DEAD_LETTERED, False)
    assert f"event {type(event).__name__} delivered {MAX_DELIVERIES} times" in failure.message
    assert backend.dead_stream(driver.run_id) in failure.message
    commands = await driver.apply_received(received)
    assert commands[-1:] == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert run.node("a").status is NodeStatus.FAILED
    assert run.node("b").status is NodeStatus.SKIPPED


@pytest.mark.parametrize(
    "other",
    [
        lambda run_id: NodeFailed(run_id, "a", 1, DEAD_LETTERED, "task delivered 5 times", T0, False),
        lambda run_id: NodeStarted(run_id, "a", 1, "w", T0 + 1),
        lambda run_id: EventDeadLettered(run_id, None, 0, "event RunStarted delivered 5 times", T0),
        lambda run_id: EventDeadLettered(run_id, "a", 2, "event RetryDue delivered 5 times", T0),
        lambda run_id: CancelRequested(run_id, T0 + 1),
    ],
    ids=["dead-lettered-failure", "node-start", "dead-lettered-run-start", "dead-lettered-retry", "cancel"],
)
async def test_a_dead_lettered_event_that_settles_no_attempt_turns_into_nothing(
    backend: Backend, other: Any
) -> None:
    driver = Driver(backend, await add_run(backend, workflow(node("a"))))
    await driver.begin()

    assert await dead_letter(backend, other(driver.run_id)) == []
    assert await nothing_waiting(backend.events, "orchestrator")
    [(_, record)] = await backend.client.xrange(backend.dead_stream(driver.run_id))
    assert f"delivered {MAX_DELIVERIES} times" in record["dead.reason"]


async def test_a_dead_lettered_run_start_fails_the_run(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, workflow(node("a"), node("b", ["a"]))))
    [start] = await drain(backend.events, 1, consumer="orchestrator")  # taken, never acknowledged
    assert start.message == RunStarted(driver.run_id, T0, driver.run.definition_id)
    await backend.events.ack([start])  # so that only the copy below is in play

    received = await settlement(backend, start.message)
    [settled] = [d.message for d in received]
    assert isinstance(settled, EventDeadLettered)
    assert (settled.run_id, settled.node_id) == (driver.run_id, None)
    assert f"event RunStarted delivered {MAX_DELIVERIES} times" in settled.message
    assert backend.dead_stream(driver.run_id) in settled.message
    commands = await driver.apply_received(received)
    assert commands == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert [n.status for n in run.nodes] == [NodeStatus.SKIPPED] * 2
    assert await nothing_waiting(backend.tasks, "worker")


async def test_a_dead_lettered_retry_fails_its_node(backend: Backend) -> None:
    raw = workflow(
        node("a", retry_policy={"max_attempts": 3, "initial_backoff_seconds": 1}), node("b", ["a"])
    )
    driver = Driver(backend, await add_run(backend, raw))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(driver.run_id, "a", 1, "IOError", "flaky", T0 + 1))
    retry = RetryDue(driver.run_id, "a", 2, T0 + 2)

    received = await settlement(backend, retry)
    [settled] = [d.message for d in received]
    assert isinstance(settled, EventDeadLettered)
    assert (settled.run_id, settled.node_id, settled.attempt) == (driver.run_id, "a", 2)
    assert f"event RetryDue delivered {MAX_DELIVERIES} times" in settled.message
    commands = await driver.apply_received(received)
    assert commands == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert (run.node("a").status, run.node("a").error.type if run.node("a").error else None) == (
        NodeStatus.FAILED,
        DEAD_LETTERED,
    )
    assert run.node("b").status is NodeStatus.SKIPPED
