"""Contract of heartbeats on every backend: a ``HeartbeatReceived`` travels the event bus, is applied
as the aggregate applies it (the Driver compares state and history with ``domain.run.Run``), its
progress and time are stored with the node and read back by another process, and the heartbeat
deadlines it sets fire as ``AttemptTimedOut``: stale ones change nothing, silence times the attempt
out and it is retried."""

from __future__ import annotations

import pytest
from contract_support import T0, Backend, Driver, add_run, drain, node, retry, store_definition, workflow

from domain.events import AttemptTimedOut, HeartbeatReceived, NodeStarted, NodeSucceeded
from domain.history import EntryKind
from domain.statuses import NodeStatus, RunStatus

PROGRESS = {"done": 40, "of": 100, "stage": "löad", "nested": [1, {"x": None}]}


async def beating(backend: Backend, **node_keys: object) -> Driver:
    raw = workflow(node("n", retry_policy=retry(2, 1.0), heartbeat_timeout_seconds=10, **node_keys))
    driver = Driver(backend, await add_run(backend, await store_definition(backend, raw)))
    await driver.begin()
    await driver.take_tasks(1)
    return driver


async def fire(backend: Backend, driver: Driver, at: float) -> list[AttemptTimedOut]:
    """Fire the timers due at ``at`` and apply what they sent; the deadlines that fired."""
    await backend.timers.fire_due(at, 100)
    received = await backend.events.receive("orchestrator", 100, 0.1)
    await driver.apply_received(received)
    fired = [d.message for d in received]
    assert all(isinstance(m, AttemptTimedOut) for m in fired), fired
    return fired  # type: ignore[return-value]


async def test_a_heartbeat_records_progress_in_state_and_history(backend: Backend) -> None:
    driver = await beating(backend)
    beat = HeartbeatReceived(driver.run_id, "n", 1, T0 + 2, "w1", T0 + 1, PROGRESS)
    await driver.deliver(beat)  # before the start's report: it counts as the start

    other = await backend.connect()  # another process reads it from the store
    for reader in (backend, other):
        state = (await reader.runs.get(driver.run_id)).node("n")
        assert (state.status, state.worker_id, state.started_at) == (NodeStatus.RUNNING, "w1", T0 + 1)
        assert (state.heartbeat_at, state.progress) == (T0 + 2, PROGRESS)
        [*_, entry] = await reader.runs.history(driver.run_id, 0, 100)
        assert entry[1].kind is EntryKind.HEARTBEAT_RECEIVED
        assert entry[1].progress == PROGRESS
    # A beat without details keeps the progress; the late start report changes nothing.
    await driver.deliver(
        NodeStarted(driver.run_id, "n", 1, "w1", T0 + 1),
        HeartbeatReceived(driver.run_id, "n", 1, T0 + 3, "w1", T0 + 1),
    )
    state = (await driver.get()).node("n")
    assert (state.heartbeat_at, state.progress) == (T0 + 3, PROGRESS)
    await driver.deliver(NodeSucceeded(driver.run_id, "n", 1, "ok", T0 + 4))
    assert (await driver.get()).status is RunStatus.COMPLETED


async def test_silence_times_the_attempt_out_and_stale_deadlines_change_nothing(backend: Backend) -> None:
    driver = await beating(backend)
    await driver.deliver(NodeStarted(driver.run_id, "n", 1, "w1", T0 + 1))
    await driver.deliver(HeartbeatReceived(driver.run_id, "n", 1, T0 + 6, "w1", T0 + 1, "half"))
    # The deadline set at the start (T0 + 11) is stale: the beat at T0 + 6 moved it to T0 + 16.
    [stale] = await fire(backend, driver, T0 + 11)
    assert stale.at == pytest.approx(T0 + 11)
    assert (await driver.get()).node("n").status is NodeStatus.RUNNING

    [fired] = await fire(backend, driver, T0 + 16)
    assert fired.at == pytest.approx(T0 + 16)
    state = (await driver.get()).node("n")
    assert state.status is NodeStatus.PENDING  # its retry waits
    assert state.error is not None and state.error.type == "TimeoutError"
    assert "sent no heartbeat for 10.0s" in state.error.message
    # The beats of the attempt that timed out are stale; the retry runs attempt 2.
    await driver.deliver(HeartbeatReceived(driver.run_id, "n", 1, T0 + 16.5, "w1", T0 + 1, "late"))
    await backend.timers.fire_due(T0 + 17, 10)
    await driver.apply_received(await drain(backend.events, 1, consumer="orchestrator"))
    assert await driver.take_tasks(1) == [driver.task("n", 2)]
    state = (await driver.get()).node("n")
    assert (state.status, state.heartbeat_at, state.progress) == (NodeStatus.QUEUED, None, None)
