"""Contract of ``RunRepository`` (with the event bus, task queue and timers it feeds).

Every event travels the way the services send it: over the event bus (which, on Redis, stages a
success's output in the run's state), received, then applied. Tasks are taken from the task queue.
"""

from __future__ import annotations

import asyncio

import pytest
from contract_support import (
    NO_EXPIRY,
    T0,
    Backend,
    Driver,
    add_run,
    diamond,
    drain,
    finishes,
    mirror_snapshot,
    node,
    nothing_waiting,
    retry,
    snapshot,
    store_definition,
    workflow,
)

from domain.errors import NotFound, RunNotActive
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
from domain.messages import Task
from domain.node_state import ErrorInfo
from domain.reasons import DEAD_LETTERED, UPSTREAM_FAILED
from domain.statuses import NodeStatus, RunStatus

RUN_INPUT = {"user": "ada", "n": 3, "tags": ["x"], "nested": {"ok": True}}


async def started(backend: Backend, raw: dict, run_input: dict | None = None) -> Driver:
    driver = Driver(backend, await add_run(backend, raw, run_input))
    await driver.begin()
    return driver


async def succeed(driver: Driver, node_id: str, output: object, at: float, attempt: int = 1) -> list:
    return await driver.deliver(NodeSucceeded(driver.run_id, node_id, attempt, output, at))


async def assert_nothing_changes(driver: Driver, *events: Event) -> None:
    """Applying ``events`` changes no observable state, queues nothing and finishes nothing."""
    backend = driver.backend
    before = snapshot(await driver.get())
    due_before = await backend.timers.next_due_at()
    commands = await driver.deliver(*events)
    assert finishes(commands) == []
    assert snapshot(await driver.get()) == before
    no_tasks, no_events = await asyncio.gather(
        nothing_waiting(backend.tasks, "worker"), nothing_waiting(backend.events, "orchestrator")
    )
    assert (no_tasks, no_events) == (True, True)
    assert await backend.timers.next_due_at() == due_before


# -- adding and reading ------------------------------------------------------------------------------


async def test_add_then_get_is_pending_and_queues_run_started(backend: Backend) -> None:
    run = await add_run(backend, diamond(), RUN_INPUT)

    stored = await backend.runs.get(run.run_id)
    assert stored.run_id == run.run_id
    assert stored.definition_id == run.definition_id
    assert stored.input == RUN_INPUT
    assert stored.created_at == T0
    assert stored.status is RunStatus.PENDING
    assert stored.started_at is None
    assert stored.outputs == {}
    assert stored.unfinished == 4
    assert [
        (spec.id, state.status, state.attempt, state.waiting_on) for spec, state in stored.node_states()
    ] == [
        ("a", NodeStatus.PENDING, 0, 0),
        ("b", NodeStatus.PENDING, 0, 1),
        ("c", NodeStatus.PENDING, 0, 1),
        ("d", NodeStatus.PENDING, 0, 2),
    ]

    received = await drain(backend.events, 1)
    assert [d.message for d in received] == [RunStarted(run.run_id, T0, run.definition_id)]
    assert await nothing_waiting(backend.tasks)


async def test_get_and_read_data_of_unknown_run_raise_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.runs.get("no-such-run")
    with pytest.raises(NotFound):
        await backend.runs.read_data("no-such-run", {"a", "workflow"})


async def test_run_started_queues_the_roots(backend: Backend) -> None:
    raw = workflow(node("r1"), node("r2"), node("join", ["r1", "r2"]), node("tail", ["join"]))
    driver = Driver(backend, await add_run(backend, raw))

    commands = await driver.begin()

    assert finishes(commands) == []
    tasks = await driver.take_tasks(2, exactly=True)
    assert sorted(tasks, key=lambda t: t.node_id) == [driver.task("r1"), driver.task("r2")]
    assert all(isinstance(task, Task) for task in tasks)
    run = await driver.get()
    assert run.status is RunStatus.RUNNING
    assert run.started_at == T0
    assert [(s.id, n.status, n.attempt) for s, n in run.node_states()] == [
        ("r1", NodeStatus.QUEUED, 1),
        ("r2", NodeStatus.QUEUED, 1),
        ("join", NodeStatus.PENDING, 0),
        ("tail", NodeStatus.PENDING, 0),
    ]
    assert run.node("r1").queued_at == T0


async def test_started_then_succeeded_records_the_output(backend: Backend) -> None:
    driver = await started(backend, diamond(), RUN_INPUT)
    assert await driver.take_tasks(1) == [driver.task("a")]

    await driver.deliver(NodeStarted(driver.run_id, "a", 1, "worker-7", T0 + 1))
    running = (await driver.get()).node("a")
    assert running.status is NodeStatus.RUNNING
    assert running.worker_id == "worker-7"
    assert running.started_at == T0 + 1
    assert await nothing_waiting(backend.tasks, "worker")

    output = {"rows": [1, 2, 3], "ok": True, "name": "ünïcode", "none": None}
    commands = await succeed(driver, "a", output, T0 + 2)

    assert finishes(commands) == []
    run = await driver.get()
    done = run.node("a")
    assert done.status is NodeStatus.COMPLETED
    assert done.finished_at == T0 + 2
    assert done.worker_id == "worker-7"
    assert done.error is None
    assert run.outputs == {"a": output}
    assert await backend.runs.read_data(driver.run_id, {"a", "workflow"}) == {
        "a": output,
        "workflow": {"input": RUN_INPUT},
    }
    tasks = await driver.take_tasks(2, exactly=True)
    assert sorted(tasks, key=lambda t: t.node_id) == [driver.task("b"), driver.task("c")]
    run = await driver.get()
    assert (run.node("b").status, run.node("c").status) == (NodeStatus.QUEUED, NodeStatus.QUEUED)
    assert run.node("d").status is NodeStatus.PENDING


async def test_a_start_from_another_worker_records_the_takeover(backend: Backend) -> None:
    driver = await started(backend, diamond())
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(driver.run_id, "a", 1, "worker-1", T0 + 1))

    # The task was reclaimed from a silent worker and started again elsewhere.
    await driver.deliver(NodeStarted(driver.run_id, "a", 1, "worker-2", T0 + 5))

    a = (await driver.get()).node("a")
    assert (a.status, a.attempt, a.worker_id, a.started_at) == (NodeStatus.RUNNING, 1, "worker-2", T0 + 5)
    # The same start again (redelivered) changes nothing.
    await assert_nothing_changes(driver, NodeStarted(driver.run_id, "a", 1, "worker-2", T0 + 6))


@pytest.mark.parametrize("output", [None, 0, "", [], {}, False, "plain text", 3.25])
async def test_outputs_of_any_json_value_are_kept(backend: Backend, output: object) -> None:
    driver = await started(backend, workflow(node("only"), node("next", ["only"])))
    await driver.take_tasks(1)

    await succeed(driver, "only", output, T0 + 1)

    assert (await driver.get()).outputs == {"only": output}
    assert await backend.runs.read_data(driver.run_id, {"only", "workflow"}) == {
        "only": output,
        "workflow": {"input": {}},
    }


async def test_read_data_omits_nodes_without_output(backend: Backend) -> None:
    driver = await started(backend, diamond(), RUN_INPUT)
    await driver.take_tasks(1)
    await succeed(driver, "a", [1], T0 + 1)

    data = await backend.runs.read_data(driver.run_id, {"a", "b", "workflow"})

    assert data == {"a": [1], "workflow": {"input": RUN_INPUT}}


async def test_read_data_returns_only_the_roots_asked_for(backend: Backend) -> None:
    driver = await started(backend, diamond(), RUN_INPUT)
    await driver.take_tasks(1)
    await succeed(driver, "a", {"v": 1}, T0 + 1)

    assert await backend.runs.read_data(driver.run_id, {"a"}) == {"a": {"v": 1}}


async def test_another_process_continues_the_run_from_the_store(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond(), RUN_INPUT))
    other = await backend.connect()  # another orchestrator and worker: own client, empty caches
    received = await drain(other.events, 1, consumer="orchestrator-2")
    assert [d.message for d in received] == [RunStarted(driver.run_id, T0, driver.run.definition_id)]

    await other.runs.apply([d.message for d in received])
    await other.events.ack(received)

    assert [d.message for d in await drain(other.tasks, 1, consumer="worker-2")] == [driver.task("a")]
    await other.events.send([NodeSucceeded(driver.run_id, "a", 1, {"from": "other"}, T0 + 1)])
    await other.runs.apply([d.message for d in await drain(other.events, 1, consumer="orchestrator-2")])
    for reader in (backend, other):
        run = await reader.runs.get(driver.run_id)
        assert run.status is RunStatus.RUNNING
        assert run.node("a").status is NodeStatus.COMPLETED
        assert await reader.runs.read_data(driver.run_id, {"a", "workflow"}) == {
            "a": {"from": "other"},
            "workflow": {"input": RUN_INPUT},
        }


# -- fan-in ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parents", [2, 3])
async def test_fan_in_child_is_queued_once_after_all_parents(backend: Backend, parents: int) -> None:
    ids = [f"p{i}" for i in range(parents)]
    driver = await started(backend, workflow(*(node(p) for p in ids), node("join", ids)))
    await driver.take_tasks(parents)

    for number, parent in enumerate(ids[:-1]):
        await succeed(driver, parent, {"from": parent}, T0 + number)
        # The same success again (redelivered), and twice in one batch.
        await succeed(driver, parent, {"from": parent}, T0 + number)
        duplicate = NodeSucceeded(driver.run_id, parent, 1, {"from": parent}, T0 + number)
        await driver.deliver(duplicate, duplicate)
        assert await nothing_waiting(backend.tasks, "worker")
        join = (await driver.get()).node("join")
        assert join.status is NodeStatus.PENDING
        assert join.waiting_on == parents - number - 1

    last = ids[-1]
    last_success = NodeSucceeded(driver.run_id, last, 1, {"from": last}, T0 + 10)
    await driver.deliver(last_success, last_success)

    assert await driver.take_tasks(1, exactly=True) == [driver.task("join")]
    await succeed(driver, last, {"from": last}, T0 + 11)
    assert await nothing_waiting(backend.tasks, "worker")
    run = await driver.get()
    assert run.node("join").status is NodeStatus.QUEUED
    assert run.node("join").attempt == 1
    assert run.node("join").waiting_on == 0
    assert run.outputs == {p: {"from": p} for p in ids}
    data = await backend.runs.read_data(driver.run_id, set(ids))
    assert {p: data[p] for p in ids} == {p: {"from": p} for p in ids}


# -- stale and duplicate events ----------------------------------------------------------------------


async def test_run_started_twice_changes_nothing(backend: Backend) -> None:
    driver = await started(backend, diamond())
    await driver.take_tasks(1)

    await assert_nothing_changes(driver, RunStarted(driver.run_id, T0 + 5))


async def test_stale_attempt_events_change_nothing(backend: Backend) -> None:
    driver = await started(backend, diamond(retry_policy=retry(3, 1.0)))
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(driver.run_id, "a", 1, "w1", T0 + 1))
    await driver.deliver(NodeFailed(driver.run_id, "a", 1, "IOError", "flaky", T0 + 2))
    assert await backend.timers.fire_due(T0 + 3.5, 10) is None
    retry_due = await drain(backend.events, 1, consumer="orchestrator")
    await driver.apply_received(retry_due)
    assert await driver.take_tasks(1) == [driver.task("a", 2)]

    rid = driver.run_id
    await assert_nothing_changes(
        driver,
        NodeStarted(rid, "a", 1, "w-old", T0 + 4),
        NodeSucceeded(rid, "a", 1, {"stale": True}, T0 + 4),
        NodeFailed(rid, "a", 1, "IOError", "stale", T0 + 4),
        AttemptTimedOut(rid, "a", 1, T0 + 4),
        RetryDue(rid, "a", 2, T0 + 4),
        NodeSucceeded(rid, "a", 3, {"future": True}, T0 + 4),
        NodeStarted(rid, "b", 1, "w-early", T0 + 4),
        NodeSucceeded(rid, "b", 1, {"early": True}, T0 + 4),
        NodeSucceeded(rid, "no-such-node", 1, {}, T0 + 4),
    )


async def test_events_after_completion_change_nothing(backend: Backend) -> None:
    driver = await started(backend, diamond())
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(driver.run_id, "a", 1, "w1", T0 + 1))
    await succeed(driver, "a", {"first": True}, T0 + 2)
    await driver.take_tasks(2)

    rid = driver.run_id
    await assert_nothing_changes(
        driver,
        NodeSucceeded(rid, "a", 1, {"second": True}, T0 + 3),
        NodeStarted(rid, "a", 1, "w2", T0 + 3),
        NodeFailed(rid, "a", 1, "IOError", "late", T0 + 3),
        AttemptTimedOut(rid, "a", 1, T0 + 3),
    )
    assert (await driver.get()).outputs == {"a": {"first": True}}


async def test_events_of_an_unknown_run_change_nothing(backend: Backend) -> None:
    driver = await started(backend, diamond())
    await driver.take_tasks(1)
    ghost = "no-such-run"

    await assert_nothing_changes(
        driver,
        RunStarted(ghost, T0),
        NodeStarted(ghost, "a", 1, "w", T0),
        NodeSucceeded(ghost, "a", 1, {"x": 1}, T0),
        NodeFailed(ghost, "a", 1, "E", "m", T0),
        RetryDue(ghost, "a", 2, T0),
        CancelRequested(ghost, T0),
    )
    with pytest.raises(NotFound):
        await backend.runs.get(ghost)


# -- retries -----------------------------------------------------------------------------------------


async def test_retryable_failure_schedules_a_timer_that_queues_the_next_attempt(backend: Backend) -> None:
    driver = await started(
        backend, workflow(node("flaky", retry_policy=retry(2, 5.0)), node("after", ["flaky"]))
    )
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(driver.run_id, "flaky", 1, "w1", T0 + 1))
    assert await backend.timers.next_due_at() is None

    commands = await driver.deliver(NodeFailed(driver.run_id, "flaky", 1, "IOError", "boom", T0 + 10))

    assert finishes(commands) == []
    assert await nothing_waiting(backend.tasks, "worker")
    run = await driver.get()
    assert run.status is RunStatus.RUNNING
    flaky = run.node("flaky")
    assert flaky.status is NodeStatus.PENDING
    assert flaky.attempt == 1
    assert flaky.retry_at == pytest.approx(T0 + 15)
    assert flaky.error == ErrorInfo("IOError", "boom")
    assert [(f.attempt, f.started_at, f.finished_at, f.error) for f in flaky.failed_attempts or []] == [
        (1, T0 + 1, T0 + 10, ErrorInfo("IOError", "boom"))
    ]
    assert await backend.timers.next_due_at() == pytest.approx(T0 + 15)

    # Not yet due: nothing moves; fire_due answers when the earliest timer is due.
    assert await backend.timers.fire_due(T0 + 14.9, 10) == pytest.approx(T0 + 15)
    assert await nothing_waiting(backend.events, "orchestrator")
    assert await backend.timers.next_due_at() == pytest.approx(T0 + 15)

    # Due: exactly one RetryDue moves onto the event bus, once.
    assert await backend.timers.fire_due(T0 + 15.1, 10) is None
    assert await backend.timers.fire_due(T0 + 16, 10) is None
    assert await backend.timers.next_due_at() is None
    received = await drain(backend.events, 1, consumer="orchestrator")
    assert len(received) == 1
    due = received[0].message
    assert isinstance(due, RetryDue)
    assert (due.run_id, due.node_id, due.attempt) == (driver.run_id, "flaky", 2)
    assert due.at == pytest.approx(T0 + 15)
    assert await nothing_waiting(backend.events, "orchestrator")

    await driver.apply_received(received)
    assert await driver.take_tasks(1, exactly=True) == [driver.task("flaky", 2)]
    flaky = (await driver.get()).node("flaky")
    assert (flaky.status, flaky.attempt, flaky.retry_at) == (NodeStatus.QUEUED, 2, None)

    # The same RetryDue again (redelivered) queues nothing more.
    await assert_nothing_changes(driver, due)

    await succeed(driver, "flaky", "second time lucky", T0 + 20, attempt=2)
    assert await driver.take_tasks(1) == [driver.task("after")]


async def test_backoff_grows_by_the_multiplier_up_to_the_maximum(backend: Backend) -> None:
    policy = {
        "max_attempts": 4,
        "initial_backoff_seconds": 1.5,
        "backoff_multiplier": 3.0,
        "max_backoff_seconds": 5.0,
    }
    driver = await started(backend, workflow(node("flaky", retry_policy=policy)))
    failed_at = T0 + 0.1
    for attempt, delay in [(1, 1.5), (2, 4.5), (3, 5.0)]:
        await driver.take_tasks(1)
        await driver.deliver(NodeFailed(driver.run_id, "flaky", attempt, "IOError", f"#{attempt}", failed_at))
        flaky = (await driver.get()).node("flaky")
        assert flaky.retry_at == pytest.approx(failed_at + delay, abs=1e-6)
        assert await backend.timers.next_due_at() == pytest.approx(failed_at + delay, abs=1e-6)
        assert await backend.timers.fire_due(failed_at + delay + 0.001, 10) is None
        await driver.apply_received(await drain(backend.events, 1, consumer="orchestrator"))
        failed_at += delay + 0.7

    assert await driver.take_tasks(1) == [driver.task("flaky", 4)]
    commands = await driver.deliver(NodeFailed(driver.run_id, "flaky", 4, "IOError", "#4", failed_at))
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    flaky = (await driver.get()).node("flaky")
    assert [f.attempt for f in flaky.failed_attempts or []] == [1, 2, 3]
    assert flaky.error == ErrorInfo("IOError", "#4")


async def test_exhausted_retries_fail_the_node(backend: Backend) -> None:
    driver = await started(
        backend, workflow(node("flaky", retry_policy=retry(2, 1.0)), node("after", ["flaky"]))
    )
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(driver.run_id, "flaky", 1, "IOError", "one", T0 + 1))
    assert await backend.timers.fire_due(T0 + 2.5, 10) is None
    received = await drain(backend.events, 1, consumer="orchestrator")
    await driver.apply_received(received)
    await driver.take_tasks(1)

    commands = await driver.deliver(NodeFailed(driver.run_id, "flaky", 2, "IOError", "two", T0 + 3))

    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert run.status is RunStatus.FAILED
    assert run.node("flaky").status is NodeStatus.FAILED
    assert run.node("flaky").attempt == 2
    assert run.node("flaky").error == ErrorInfo("IOError", "two")
    assert run.node("after").status is NodeStatus.SKIPPED
    assert await backend.timers.next_due_at() is None
    assert await nothing_waiting(backend.tasks, "worker")


async def test_non_retryable_failure_is_final_despite_a_retry_policy(backend: Backend) -> None:
    driver = await started(backend, workflow(node("strict", retry_policy=retry(5, 1.0))))
    await driver.take_tasks(1)

    commands = await driver.deliver(
        NodeFailed(driver.run_id, "strict", 1, "ValueError", "bad input", T0 + 1, retryable=False)
    )

    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    assert (await driver.get()).node("strict").status is NodeStatus.FAILED
    assert await backend.timers.next_due_at() is None


async def test_a_redispatched_node_forgets_the_previous_worker_like_the_aggregate(backend: Backend) -> None:
    driver = await started(backend, workflow(node("flaky", retry_policy=retry(2, 1.0))))
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(driver.run_id, "flaky", 1, "w1", T0 + 1))
    await driver.deliver(NodeFailed(driver.run_id, "flaky", 1, "IOError", "boom", T0 + 2))
    assert await backend.timers.fire_due(T0 + 3, 10) is None
    await driver.apply_received(await drain(backend.events, 1, consumer="orchestrator"))

    stored = await driver.get()
    assert stored.node("flaky").attempt == 2
    assert mirror_snapshot(stored) == mirror_snapshot(driver.reference)


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(12.5, id="12.5s"),
        pytest.param(30.0, id="30s"),
        pytest.param(None, id="none"),
    ],
)
async def test_an_attempt_timing_out_fails_it_like_the_aggregate(
    backend: Backend, limit: float | None
) -> None:
    extra: dict = {"retry_policy": retry(2, 1.0)}
    if limit is not None:
        extra["timeout_seconds"] = limit
    driver = await started(backend, workflow(node("slow", **extra), node("next", ["slow"])))
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(driver.run_id, "slow", 1, "w1", T0 + 1))

    # The reference aggregate's verdict is compared inside deliver (the error message included).
    commands = await driver.deliver(AttemptTimedOut(driver.run_id, "slow", 1, T0 + 40))

    assert finishes(commands) == []
    slow = (await driver.get()).node("slow")
    assert slow.status is NodeStatus.PENDING
    assert slow.error is not None
    assert slow.error.type == "TimeoutError"
    assert slow.retry_at == pytest.approx(T0 + 41)
    assert await backend.timers.fire_due(T0 + 41, 10) is None
    await driver.apply_received(await drain(backend.events, 1, consumer="orchestrator"))
    assert await driver.take_tasks(1) == [driver.task("slow", 2)]

    commands = await driver.deliver(AttemptTimedOut(driver.run_id, "slow", 2, T0 + 80))

    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert run.node("slow").status is NodeStatus.FAILED
    assert run.node("next").status is NodeStatus.SKIPPED


# -- failure, success, cancellation ------------------------------------------------------------------


async def test_terminal_failure_skips_descendants_and_fails_the_run(backend: Backend) -> None:
    raw = workflow(
        node("a"),
        node("b", ["a"]),
        node("c", ["a"]),
        node("d", ["b", "c"]),
        node("e", ["d"]),
        node("f", ["c"]),
    )
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    await succeed(driver, "a", 1, T0 + 1)
    await driver.take_tasks(2)
    await succeed(driver, "c", 3, T0 + 2)
    await driver.take_tasks(1)  # f
    await succeed(driver, "f", 6, T0 + 3)
    await driver.deliver(NodeStarted(driver.run_id, "b", 1, "w", T0 + 4))

    commands = await driver.deliver(NodeFailed(driver.run_id, "b", 1, "RuntimeError", "kaput", T0 + 5))

    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert run.status is RunStatus.FAILED
    assert run.finished_at == T0 + 5
    b = run.node("b")
    assert (b.status, b.error, b.finished_at) == (
        NodeStatus.FAILED,
        ErrorInfo("RuntimeError", "kaput"),
        T0 + 5,
    )
    for skipped in ("d", "e"):
        state = run.node(skipped)
        assert state.status is NodeStatus.SKIPPED
        assert state.error is not None
        assert state.error.type == UPSTREAM_FAILED
        assert "'b'" in state.error.message
        assert state.attempt == 0
    assert [run.node(n).status for n in ("a", "c", "f")] == [NodeStatus.COMPLETED] * 3
    assert await nothing_waiting(backend.tasks, "worker")

    # Anything later is ignored, and the run is not finished again.
    await assert_nothing_changes(
        driver,
        NodeSucceeded(driver.run_id, "b", 1, "too late", T0 + 6),
        CancelRequested(driver.run_id, T0 + 7),
    )


async def test_failure_with_a_branch_in_flight_finishes_the_run_when_the_branch_ends(
    backend: Backend,
) -> None:
    driver = await started(backend, diamond())
    await driver.take_tasks(1)
    await succeed(driver, "a", 1, T0 + 1)
    await driver.take_tasks(2)

    commands = await driver.deliver(NodeFailed(driver.run_id, "b", 1, "E", "no", T0 + 2))
    assert finishes(commands) == []
    run = await driver.get()
    assert run.status is RunStatus.RUNNING
    assert run.node("d").status is NodeStatus.SKIPPED

    commands = await succeed(driver, "c", 2, T0 + 3)
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    assert await nothing_waiting(backend.tasks, "worker")
    assert (await driver.get()).status is RunStatus.FAILED


async def test_diamond_runs_to_completion_and_finishes_exactly_once(backend: Backend) -> None:
    driver = await started(backend, diamond(), RUN_INPUT)
    rid = driver.run_id

    assert await driver.take_tasks(1) == [driver.task("a")]
    await driver.deliver(NodeStarted(rid, "a", 1, "w1", T0 + 1))
    await succeed(driver, "a", {"a": 1}, T0 + 2)
    assert sorted(await driver.take_tasks(2, exactly=True), key=lambda t: t.node_id) == [
        driver.task("b"),
        driver.task("c"),
    ]
    await driver.deliver(NodeStarted(rid, "b", 1, "w1", T0 + 3), NodeStarted(rid, "c", 1, "w2", T0 + 3))
    await succeed(driver, "c", {"c": 3}, T0 + 4)
    await succeed(driver, "c", {"c": 3}, T0 + 4)
    assert await nothing_waiting(backend.tasks, "worker")
    await succeed(driver, "b", {"b": 2}, T0 + 5)
    assert await driver.take_tasks(1, exactly=True) == [driver.task("d")]
    await driver.deliver(NodeStarted(rid, "d", 1, "w1", T0 + 6))
    last = await succeed(driver, "d", {"d": 4}, T0 + 7)

    assert finishes(last) == [FinishRun(rid, RunStatus.COMPLETED)]
    # Redelivered news after the end: still one finish.
    await succeed(driver, "d", {"d": 4}, T0 + 8)
    await driver.deliver(CancelRequested(rid, T0 + 9))
    assert finishes(driver.commands) == [FinishRun(rid, RunStatus.COMPLETED)]

    run = await driver.get()
    assert run.status is RunStatus.COMPLETED
    assert run.finished_at == T0 + 7
    assert run.unfinished == 0
    assert run.in_flight == 0
    assert [n.status for n in run.nodes] == [NodeStatus.COMPLETED] * 4
    assert run.outputs == {"a": {"a": 1}, "b": {"b": 2}, "c": {"c": 3}, "d": {"d": 4}}
    # A task of a finished run (a late redelivery) must not start.
    with pytest.raises(RunNotActive):
        await backend.runs.read_data(rid, {"b", "c", "workflow"})
    assert await nothing_waiting(backend.tasks, "worker")
    assert await backend.timers.next_due_at() is None


async def test_cancel_of_a_running_run(backend: Backend) -> None:
    driver = await started(backend, diamond(retry_policy=retry(3, 1.0)))
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(driver.run_id, "a", 1, "w1", T0 + 1))

    commands = await driver.deliver(CancelRequested(driver.run_id, T0 + 2))

    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.CANCELLED)]
    run = await driver.get()
    assert run.status is RunStatus.CANCELLED
    assert run.finished_at == T0 + 2
    assert [n.status for n in run.nodes] == [NodeStatus.CANCELLED] * 4
    assert await nothing_waiting(backend.tasks, "worker")

    await assert_nothing_changes(
        driver,
        CancelRequested(driver.run_id, T0 + 3),
        NodeSucceeded(driver.run_id, "a", 1, "late", T0 + 3),
        NodeFailed(driver.run_id, "a", 1, "E", "late", T0 + 3),
        RunStarted(driver.run_id, T0 + 3),
    )
    assert finishes(driver.commands) == [FinishRun(driver.run_id, RunStatus.CANCELLED)]


async def test_cancel_with_a_retry_waiting_ignores_the_timer(backend: Backend) -> None:
    driver = await started(backend, diamond(retry_policy=retry(3, 1.0)))
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(driver.run_id, "a", 1, "IOError", "flaky", T0 + 1))

    commands = await driver.deliver(CancelRequested(driver.run_id, T0 + 1.5))
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.CANCELLED)]
    a = (await driver.get()).node("a")
    assert (a.status, a.retry_at) == (NodeStatus.CANCELLED, None)

    # A timer that fires anyway finds nothing to do.
    assert await backend.timers.fire_due(T0 + 10, 10) is None
    before = snapshot(await driver.get())
    received = await backend.events.receive("orchestrator", 100, 0.1)  # its RetryDue, if it kept it
    assert all(isinstance(d.message, RetryDue) for d in received)
    commands = await driver.apply_received(received)
    assert finishes(commands) == []
    assert snapshot(await driver.get()) == before
    assert await nothing_waiting(backend.tasks, "worker")


async def test_cancel_of_a_pending_run(backend: Backend) -> None:
    run = await add_run(backend, diamond())
    driver = Driver(backend, run)
    run_started = await drain(backend.events, 1, consumer="orchestrator")  # held back for now

    commands = await driver.deliver(CancelRequested(run.run_id, T0 + 1))

    assert finishes(commands) == [FinishRun(run.run_id, RunStatus.CANCELLED)]
    stored = await driver.get()
    assert stored.status is RunStatus.CANCELLED
    assert [n.status for n in stored.nodes] == [NodeStatus.CANCELLED] * 4
    # The RunStarted the add queued, applied after the cancel, starts nothing.
    assert finishes(await driver.apply_received(run_started)) == []
    assert snapshot(await driver.get()) == snapshot(stored)
    assert await nothing_waiting(backend.tasks, "worker")


# -- dead-lettered starts and retries ----------------------------------------------------------------


async def test_a_dead_lettered_start_fails_the_run_like_the_aggregate(backend: Backend) -> None:
    run = await add_run(backend, diamond())
    driver = Driver(backend, run)
    run_started = await drain(backend.events, 1, consumer="orchestrator")  # never applied
    reason = "event RunStarted delivered 5 times; moved to the dead-letter stream d (entry 1-0)"

    commands = await driver.deliver(EventDeadLettered(run.run_id, None, 0, reason, T0 + 1))

    assert finishes(commands) == [FinishRun(run.run_id, RunStatus.FAILED)]
    stored = await driver.get()
    assert (stored.status, stored.finished_at) == (RunStatus.FAILED, T0 + 1)
    assert [(n.status, n.error) for n in stored.nodes] == [
        (NodeStatus.SKIPPED, ErrorInfo(DEAD_LETTERED, reason))
    ] * 4
    [(_, entry)] = await backend.runs.history(run.run_id, 0, 10)
    assert (entry.kind, entry.node_id, entry.error, entry.run_status) == (
        "event_dead_lettered",
        None,
        ErrorInfo(DEAD_LETTERED, reason),
        RunStatus.FAILED,
    )
    # The start itself, applied after all, starts nothing.
    await assert_nothing_changes(driver, *[d.message for d in run_started])
    assert await nothing_waiting(backend.tasks, "worker")


async def test_a_dead_lettered_retry_fails_its_node_like_the_aggregate(backend: Backend) -> None:
    driver = await started(
        backend, workflow(node("flaky", retry_policy=retry(3, 1.0)), node("after", ["flaky"]), node("other"))
    )
    await driver.take_tasks(2)
    await driver.deliver(NodeFailed(driver.run_id, "flaky", 1, "IOError", "one", T0 + 1))
    assert await backend.timers.fire_due(T0 + 2.5, 10) is None
    retry_due = await drain(backend.events, 1, consumer="orchestrator")  # never applied
    reason = "event RetryDue delivered 5 times"

    commands = await driver.deliver(EventDeadLettered(driver.run_id, "flaky", 2, reason, T0 + 3))

    assert finishes(commands) == []
    run = await driver.get()
    flaky = run.node("flaky")
    assert (flaky.status, flaky.attempt, flaky.retry_at) == (NodeStatus.FAILED, 1, None)
    assert flaky.error == ErrorInfo(DEAD_LETTERED, reason)
    assert run.node("after").status is NodeStatus.SKIPPED
    entry = (await backend.runs.history(driver.run_id, 0, 100))[-1][1]
    assert (entry.kind, entry.node_id, entry.attempt, entry.skipped) == (
        "event_dead_lettered",
        "flaky",
        2,
        ("after",),
    )
    await assert_nothing_changes(driver, *[d.message for d in retry_due])
    assert await nothing_waiting(backend.tasks, "worker")
    commands = await driver.deliver(NodeSucceeded(driver.run_id, "other", 1, "done", T0 + 4))
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]


# -- retention (Redis only) --------------------------------------------------------------------------


async def _keys_without_ttl(backend: Backend, run_id: str) -> dict[str, int]:
    pattern = f"{backend.settings.redis_key_prefix}:*run:{run_id}*"
    ttls = {key: await backend.client.ttl(key) async for key in backend.client.scan_iter(match=pattern)}
    return {key: ttl for key, ttl in ttls.items() if ttl < 0 or ttl > backend.settings.run_retention_seconds}


@pytest.mark.contract_skip(memory=NO_EXPIRY)
@pytest.mark.contract_settings(run_retention_seconds=600)
async def test_a_finished_run_expires_after_the_retention(backend: Backend) -> None:
    driver = await started(backend, workflow(node("a"), node("b", ["a"])))
    await driver.take_tasks(1)
    await succeed(driver, "a", {"x": 1}, T0 + 1)
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(driver.run_id, "b", 1, "E", "failed", T0 + 2))

    assert (await driver.get()).status is RunStatus.FAILED
    assert await _keys_without_ttl(backend, driver.run_id) == {}


@pytest.mark.contract_skip(memory=NO_EXPIRY)
@pytest.mark.contract_settings(run_retention_seconds=600)
async def test_a_late_duplicate_success_leaves_no_key_without_expiry(backend: Backend) -> None:
    driver = await started(backend, workflow(node("a")))
    await driver.take_tasks(1)
    await succeed(driver, "a", {"x": 1}, T0 + 1)
    assert (await driver.get()).status is RunStatus.COMPLETED

    await succeed(driver, "a", {"x": 1}, T0 + 2)  # redelivered after the run ended

    assert await _keys_without_ttl(backend, driver.run_id) == {}


@pytest.mark.contract_skip(memory=NO_EXPIRY)
async def test_a_success_for_an_unknown_run_leaves_nothing_behind(backend: Backend) -> None:
    driver = await started(backend, workflow(node("a")))
    await driver.take_tasks(1)

    await driver.deliver(NodeSucceeded("no-such-run", "a", 1, {"x": 1}, T0))

    assert await _keys_without_ttl(backend, "no-such-run") == {}


# -- adding runs ------------------------------------------------------------------------------------


async def test_a_run_of_thousands_of_nodes_is_added_and_started(backend: Backend) -> None:
    """Hashes this large are written in slices (a script's unpack() is bounded)."""
    wide = workflow(*(node(f"n{i}") for i in range(2_500)))
    driver = await started(backend, wide)

    run = await driver.get()
    assert run.status is RunStatus.RUNNING
    assert {n.status for n in run.nodes} == {NodeStatus.QUEUED}
    assert len(await driver.take_tasks(2_500, exactly=True)) == 2_500


@pytest.mark.contract_skip(memory="no script cache to lose", fakeredis="no script cache to lose")
async def test_runs_are_added_and_applied_after_redis_forgot_its_scripts(backend: Backend) -> None:
    first = await started(backend, diamond())
    await backend.client.script_flush()

    second = await started(backend, diamond())  # adds (and applies) reload their scripts

    assert (await second.get()).status is RunStatus.RUNNING
    assert (await first.get()).status is RunStatus.RUNNING


@pytest.mark.contract_skip(memory="no Redis to lose the definition")
async def test_a_run_added_after_redis_lost_its_definition_stores_it_again(backend: Backend) -> None:
    stored = await store_definition(backend, diamond())
    await backend.client.delete(backend.keys.definition(stored.definition_id))

    driver = Driver(backend, await add_run(backend, stored))
    orchestrator = await backend.connect()  # another process: it knows the definition only from Redis
    received = await drain(orchestrator.events, 1, consumer="orchestrator")
    await orchestrator.runs.apply([d.message for d in received])

    assert (await orchestrator.definitions.get(stored.definition_id)).version == 1
    assert (await driver.get()).status is RunStatus.RUNNING
