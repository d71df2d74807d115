"""A redrive of a run that its own ``timeout_seconds`` ended (``RunTimedOut``: FAILED, its
unfinished nodes CANCELLED), on every backend: the deadline's timer fires through the store's
``TimerStore``, the redrive starts the cancelled nodes again (a map only its items that had not
completed), sets a deadline counted from the redrive, and the run can complete; the first life's
deadline, and the late result of an attempt the timeout cancelled, change nothing."""

from __future__ import annotations

import pytest
from contract_support import T0, Backend, Driver, add_run, drain, node, redrive, workflow

from domain.events import CancelAttempts, NodeStarted, NodeSucceeded, RunTimedOut
from domain.map_spec import MapOutput
from domain.statuses import NodeStatus, RunStatus

TIMEOUT = 10.0


def timed_workflow() -> dict:
    """a, then b -> c and a map over a's list (two items at once); the run has 10 s."""
    raw = workflow(
        node("a"),
        node("b", ["a"]),
        node("c", ["b"]),
        node("each", ["a"], {"item": "{{ item }}"}, for_each="{{ a.xs }}", max_concurrency=2),
    )
    return {**raw, "timeout_seconds": TIMEOUT}


async def fire_deadline(driver: Driver, now: float) -> None:
    """The store's timers fire the run's deadline due by ``now``; the orchestrator applies it."""
    await driver.backend.timers.fire_due(now, 10)
    received = await drain(driver.backend.events, 1, consumer="orchestrator")
    assert [d.message for d in received] == [RunTimedOut(driver.run_id, received[0].message.at)]
    await driver.apply_received(received)


async def timed_out_run(backend: Backend) -> Driver:
    """a completes; b is running, c waits on it; the map's item 0 completed, item 1 is running and
    item 2 waits for room, when the run's deadline passes."""
    driver = Driver(backend, await add_run(backend, timed_workflow()))
    await driver.begin()
    assert await backend.timers.next_due_at() == pytest.approx(T0 + TIMEOUT)
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, {"xs": ["p", "q", "r"]}, T0 + 1))
    tasks = await driver.take_tasks(3, exactly=True)
    assert sorted(t.node_id for t in tasks) == ["b", "each#0", "each#1"]
    await driver.deliver(NodeStarted(driver.run_id, "b", 1, "w1", T0 + 2))
    await driver.deliver(NodeSucceeded(driver.run_id, "each#0", 1, "P", T0 + 3))
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["each#2"]
    await driver.deliver(NodeStarted(driver.run_id, "each#1", 1, "w2", T0 + 4))

    driver.commands.clear()
    await fire_deadline(driver, T0 + TIMEOUT + 1)

    run = await driver.get()
    assert run.status is RunStatus.FAILED
    assert run.error is not None and run.error.type == "RunTimedOut"
    assert {n: run.node(n).status for n in ("a", "b", "c", "each")} == {
        "a": NodeStatus.COMPLETED,
        "b": NodeStatus.CANCELLED,
        "c": NodeStatus.CANCELLED,
        "each": NodeStatus.CANCELLED,
    }
    [cancel] = [c for c in driver.commands if isinstance(c, CancelAttempts)]
    assert sorted(cancel.attempts) == [("b", 1), ("each#1", 1), ("each#2", 1)]
    return driver


async def test_a_redrive_of_a_timed_out_run_starts_its_cancelled_nodes_and_it_completes(
    backend: Backend,
) -> None:
    driver = await timed_out_run(backend)
    redrive_at = T0 + 20

    assert await redrive(driver, redrive_at) == ["b", "c", "each"]

    run = await driver.get()
    assert run.status is RunStatus.RUNNING and run.error is None and run.redriven_at == redrive_at
    tasks = await driver.take_tasks(3, exactly=True)
    assert sorted((t.node_id, t.attempt) for t in tasks) == [("b", 2), ("each#1", 101), ("each#2", 101)]
    assert run.node("b").failed_attempts[-1].error.type == "RunTimedOut"  # its first life kept
    assert run.outputs["a"] == {"xs": ["p", "q", "r"]}
    assert await backend.timers.next_due_at() == pytest.approx(redrive_at + TIMEOUT), (
        "the run's deadline counts from the redrive"
    )

    # The attempt the timeout cancelled ends late: its result is stale.
    history = await backend.runs.history(driver.run_id, 0, 1000)
    await driver.deliver(NodeSucceeded(driver.run_id, "b", 1, "stale", redrive_at + 1))
    assert await backend.runs.history(driver.run_id, 0, 1000) == history
    assert (await driver.get()).node("b").status is NodeStatus.QUEUED

    await driver.deliver(NodeSucceeded(driver.run_id, "b", 2, "B", redrive_at + 2))
    assert [(t.node_id, t.attempt) for t in await driver.take_tasks(1, exactly=True)] == [("c", 1)]
    await driver.deliver(NodeSucceeded(driver.run_id, "each#1", 101, "Q", redrive_at + 3))
    await driver.deliver(NodeSucceeded(driver.run_id, "each#2", 101, "R", redrive_at + 4))
    await driver.deliver(NodeSucceeded(driver.run_id, "c", 1, "C", redrive_at + 5))

    done = await driver.get()
    assert done.status is RunStatus.COMPLETED and done.error is None
    assert {n: done.node(n).status for n in ("a", "b", "c", "each")} == dict.fromkeys(
        ("a", "b", "c", "each"), NodeStatus.COMPLETED
    )
    assert done.outputs["each"] == MapOutput(3)
    assert {n: done.outputs[n] for n in ("a", "b", "c")} == {"a": {"xs": ["p", "q", "r"]}, "b": "B", "c": "C"}
    assert await backend.runs.item_outputs(driver.run_id, "each", 0, 3) == ["P", "Q", "R"]
    records = await backend.runs.item_records(driver.run_id, "each", 0, 3)
    assert [records[i].attempt for i in range(3)] == [1, 101, 101]  # item 0 was not run again

    # The redriven life's deadline passes after the run completed (if a store still holds its
    # timer, it fires): nothing changes.
    await backend.timers.fire_due(redrive_at + TIMEOUT + 1, 10)
    late = await backend.events.receive("orchestrator", 10, 0.1)
    assert [d.message for d in late] in ([], [RunTimedOut(driver.run_id, redrive_at + TIMEOUT)])
    await driver.apply_received(late)
    assert (await driver.get()).status is RunStatus.COMPLETED


async def test_a_redriven_timed_out_run_that_overruns_again_times_out_again(backend: Backend) -> None:
    driver = await timed_out_run(backend)
    redrive_at = T0 + 20
    await redrive(driver, redrive_at)
    await driver.take_tasks(3)

    await fire_deadline(driver, redrive_at + TIMEOUT + 1)

    run = await driver.get()
    assert run.status is RunStatus.FAILED and run.error is not None and run.error.type == "RunTimedOut"
    assert run.node("b").status is NodeStatus.CANCELLED
    assert await redrive(driver, redrive_at + 30) == ["b", "c", "each"]  # and it can be redriven again
    tasks = await driver.take_tasks(3, exactly=True)
    assert sorted((t.node_id, t.attempt) for t in tasks) == [("b", 3), ("each#1", 201), ("each#2", 201)]
