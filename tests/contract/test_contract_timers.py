"""Contract of ``TimerStore``: timers the run repository set (retries, attempt deadlines), fired onto
the event bus when due.

``fire_due(now, max_count)`` moves what is due onto the event bus (``RetryDue``, ``AttemptTimedOut``)
and answers the earliest due time still waiting (None when nothing waits).
"""

from __future__ import annotations

import pytest
from contract_support import (
    T0,
    Backend,
    Driver,
    add_run,
    drain,
    node,
    nothing_waiting,
    retry,
    store_definition,
    workflow,
)

from domain.events import AttemptTimedOut, NodeFailed, NodeStarted, RetryDue
from domain.ports import StoredDefinition
from domain.run import DEADLINE_GRACE_SECONDS


async def failed_once(
    backend: Backend, backoff: float, stored: StoredDefinition | None = None, nodes: tuple[str, ...] = ("n",)
) -> Driver:
    """A run whose ``nodes`` (roots) failed their first attempt at T0; each waits ``backoff`` seconds."""
    if stored is None:
        raw = workflow(*(node(n, retry_policy=retry(3, backoff)) for n in nodes))
        stored = await store_definition(backend, raw)
    driver = Driver(backend, await add_run(backend, stored))
    await driver.begin()
    await driver.take_tasks(len(nodes))
    await driver.deliver(*(NodeFailed(driver.run_id, n, 1, "IOError", "flaky", T0) for n in nodes))
    return driver


def retry_due(received: list) -> list[tuple[str, str, int, float]]:
    messages = [d.message for d in received]
    assert all(isinstance(m, RetryDue) for m in messages), messages
    return sorted((m.run_id, m.node_id, m.attempt, round(m.at, 3)) for m in messages)


async def test_an_empty_store_has_nothing_due(backend: Backend) -> None:
    assert await backend.timers.next_due_at() is None
    assert await backend.timers.fire_due(T0 + 10**6, 100) is None
    assert await nothing_waiting(backend.events)


async def test_timers_fire_in_due_order_and_only_when_due(backend: Backend) -> None:
    late = await failed_once(backend, 5.0)
    early = await failed_once(backend, 3.0)

    assert await backend.timers.next_due_at() == pytest.approx(T0 + 3)
    assert await backend.timers.fire_due(T0 + 2.99, 10) == pytest.approx(T0 + 3)
    assert await nothing_waiting(backend.events)

    assert await backend.timers.fire_due(T0 + 4, 10) == pytest.approx(T0 + 5)
    assert retry_due(await drain(backend.events, 1)) == [(early.run_id, "n", 2, T0 + 3)]
    assert await nothing_waiting(backend.events)
    assert await backend.timers.next_due_at() == pytest.approx(T0 + 5)

    assert await backend.timers.fire_due(T0 + 5, 10) is None  # due exactly now counts as due
    assert retry_due(await drain(backend.events, 1)) == [(late.run_id, "n", 2, T0 + 5)]
    assert await backend.timers.next_due_at() is None
    assert await backend.timers.fire_due(T0 + 100, 10) is None
    assert await nothing_waiting(backend.events)


async def test_fire_due_moves_at_most_max_count_of_one_run(backend: Backend) -> None:
    driver = await failed_once(backend, 1.0, nodes=("x", "y", "z"))
    assert await backend.timers.next_due_at() == pytest.approx(T0 + 1)

    # Three timers due together (one run: one shard); one call moves at most two of them.
    assert await backend.timers.fire_due(T0 + 10, 2) == pytest.approx(T0 + 1)
    first = retry_due(await drain(backend.events, 2))
    assert await nothing_waiting(backend.events)
    assert await backend.timers.fire_due(T0 + 10, 2) is None
    second = retry_due(await drain(backend.events, 1))

    assert sorted(first + second) == [(driver.run_id, n, 2, T0 + 1) for n in ("x", "y", "z")]
    assert await nothing_waiting(backend.events)


async def test_timers_are_shared_by_every_process(backend: Backend) -> None:
    driver = await failed_once(backend, 2.0)
    other = await backend.connect()

    assert await other.timers.next_due_at() == pytest.approx(T0 + 2)
    assert await other.timers.fire_due(T0 + 2.5, 10) is None
    assert await backend.timers.next_due_at() is None
    # On the event stream of the run's shard, read by the orchestrator that holds it.
    assert retry_due(await drain(backend.events, 1)) == [(driver.run_id, "n", 2, T0 + 2)]


async def test_a_deadline_fires_as_attempt_timed_out_and_fails_the_attempt(backend: Backend) -> None:
    """The orchestrator's deadline of an attempt of a node with a timeout (set when it starts)."""
    raw = workflow(node("n", retry_policy=retry(2, 1.0), timeout_seconds=10))
    driver = Driver(backend, await add_run(backend, await store_definition(backend, raw)))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(driver.run_id, "n", 1, "w1", T0 + 1))
    deadline = T0 + 1 + 10 + DEADLINE_GRACE_SECONDS
    assert await backend.timers.next_due_at() == pytest.approx(deadline)

    assert await backend.timers.fire_due(deadline, 10) is None
    [delivery] = await drain(backend.events, 1, consumer="orchestrator")
    assert delivery.message == AttemptTimedOut(driver.run_id, "n", 1, pytest.approx(deadline))
    await driver.apply_received([delivery])  # the Driver checks the store against the aggregate

    node_state = (await driver.get()).node("n")
    assert node_state.error is not None and node_state.error.type == "TimeoutError"
    assert node_state.retry_at == pytest.approx(deadline + 1.0)
