"""Contract of a redrive (``domain.redrive``) on every store: the use case applies
``RedriveRequested`` through ``RunRepository.apply``, and the store must mirror the aggregate (the
``Driver``'s reference run gets the same event), commit every node it changed, move the run back
to RUNNING in the listing, lift the expiry set at its end, and start it once when asked twice."""

from __future__ import annotations

import asyncio

import pytest
from contract_support import (
    NOT_A_REAL_RACE_FAKE,
    NOT_A_REAL_RACE_MEMORY,
    T0,
    Backend,
    Driver,
    add_run,
    node,
    redrive,
    retry,
    service_of,
    workflow,
)

from domain.events import (
    CancelRequested,
    EventDeadLettered,
    NodeFailed,
    NodeSucceeded,
    RetryDue,
    RunTimedOut,
)
from domain.ports import RunQuery
from domain.statuses import NodeStatus, RunStatus
from services.application.errors import RunNotRedrivable, UnknownRedriveNode

CHAIN = workflow(node("a"), node("b", ["a"]), node("c", ["b"]), node("side", ["a"]))


async def failed_run(backend: Backend) -> Driver:
    """a completes, b fails for good: c is skipped, side completes; the run FAILED."""
    driver = Driver(backend, await add_run(backend, CHAIN))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, {"n": 1}, T0 + 1))
    await driver.take_tasks(2)
    await driver.deliver(NodeSucceeded(driver.run_id, "side", 1, "s", T0 + 2))
    await driver.deliver(NodeFailed(driver.run_id, "b", 1, "Boom", "no", T0 + 3))
    assert (await driver.get()).status is RunStatus.FAILED
    return driver


async def test_redrive_after_a_failure_runs_the_failed_and_skipped_nodes_keeping_outputs(
    backend: Backend,
) -> None:
    driver = await failed_run(backend)

    assert await redrive(driver, T0 + 10) == ["b", "c"]

    run = await driver.get()
    assert run.status is RunStatus.RUNNING
    assert run.finished_at is None and run.redriven_at == T0 + 10
    assert run.outputs == {"a": {"n": 1}, "side": "s"}
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["b"]
    assert run.node("b").attempt == 2  # attempts go on counting
    assert run.node("b").failed_attempts[-1].error.type == "Boom"
    assert run.node("c").status is NodeStatus.PENDING and run.node("c").waiting_on == 1
    summaries = await backend.runs.page(RunQuery(status=RunStatus.RUNNING))
    assert [s.run_id for s in summaries.items] == [driver.run_id]
    assert (await backend.runs.page(RunQuery(status=RunStatus.FAILED))).items == []
    if backend.is_redis:
        keys = backend.keys.run(driver.run_id)
        assert [await backend.client.ttl(k) for k in (keys.meta, keys.nodes, keys.out, keys.history)] == [
            -1,
            -1,
            -1,
            -1,
        ], "the retention set when the run ended is lifted while it runs again"

    await driver.deliver(NodeSucceeded(driver.run_id, "b", 2, "b2", T0 + 11))
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "c", 1, "c1", T0 + 12))
    done = await driver.get()
    assert done.status is RunStatus.COMPLETED
    assert done.outputs == {"a": {"n": 1}, "side": "s", "b": "b2", "c": "c1"}
    if backend.is_redis:
        ttl = await backend.client.ttl(backend.keys.run(driver.run_id).meta)
        assert ttl > 0, "a run that ends again expires again"


async def test_repeated_redrive_gives_each_redrive_the_whole_retry_policy(backend: Backend) -> None:
    raw = workflow(node("a", retry_policy=retry(2, 0.5)))
    driver = Driver(backend, await add_run(backend, raw))
    await driver.begin()
    for life, first in enumerate((1, 3)):
        await driver.take_tasks(1)
        await driver.deliver(NodeFailed(driver.run_id, "a", first, "Boom", "x", T0 + 10 * life + 1))
        retry_due = (await driver.get()).node("a").retry_at
        assert retry_due is not None, "the first failure of each life is retried"
        await driver.deliver(RetryDue(driver.run_id, "a", first + 1, retry_due))
        await driver.take_tasks(1)
        await driver.deliver(NodeFailed(driver.run_id, "a", first + 1, "Boom", "x", T0 + 10 * life + 2))
        assert (await driver.get()).status is RunStatus.FAILED
        await redrive(driver, T0 + 10 * life + 5)
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 5, "ok", T0 + 40))
    run = await driver.get()
    assert run.status is RunStatus.COMPLETED
    assert [f.attempt for f in run.node("a").failed_attempts] == [1, 2, 3, 4]


async def test_redrive_after_a_cancel_runs_the_cancelled_nodes(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, CHAIN))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, 1, T0 + 1))
    assert sorted(t.node_id for t in await driver.take_tasks(2)) == ["b", "side"]  # attempts 1
    await driver.deliver(CancelRequested(driver.run_id, T0 + 2))
    assert (await driver.get()).status is RunStatus.CANCELLED

    assert await redrive(driver, T0 + 5) == ["b", "c", "side"]

    tasks = await driver.take_tasks(2, exactly=True)
    assert sorted((t.node_id, t.attempt) for t in tasks) == [("b", 2), ("side", 2)]
    run = await driver.get()
    assert run.node("b").failed_attempts[-1].error.type == "Cancelled"


async def test_redrive_from_runs_completed_descendants_again_and_drops_their_outputs(
    backend: Backend,
) -> None:
    driver = await failed_run(backend)

    assert await redrive(driver, T0 + 10, "a") == ["a", "b", "c", "side"]

    run = await backend.runs.get(driver.run_id)
    assert run.outputs == {}
    assert [(t.node_id, t.attempt) for t in await driver.take_tasks(1, exactly=True)] == [("a", 2)]


async def test_redrive_is_refused_for_a_completed_run_and_an_unknown_node(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, workflow(node("a"))))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, 1, T0 + 1))
    service = service_of(backend, T0 + 5)
    with pytest.raises(RunNotRedrivable, match="has completed"):
        await service.redrive(driver.run_id)
    with pytest.raises(UnknownRedriveNode) as refused:
        await service.redrive(driver.run_id, ["a", "nope"])
    assert [(p.path, p.message) for p in refused.value.problems] == [
        ("$.from[1]", "the workflow 'contract' has no node 'nope'")
    ]


@pytest.mark.contract_skip(memory=NOT_A_REAL_RACE_MEMORY, fakeredis=NOT_A_REAL_RACE_FAKE)
async def test_two_redrives_at_once_from_two_processes_start_the_run_once(backend: Backend) -> None:
    driver = await failed_run(backend)
    other = await backend.connect()
    services = [service_of(backend, T0 + 10), service_of(other, T0 + 10)]

    answers = await asyncio.gather(*(s.redrive(driver.run_id) for s in services), return_exceptions=True)

    assert sorted(type(a).__name__ for a in answers) == ["RunNotRedrivable", "list"]
    [refusal] = [a for a in answers if isinstance(a, Exception)]
    assert "RUNNING" in str(refusal)
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["b"]
    history = await backend.runs.history(driver.run_id, 0, 100)
    assert [e.kind.value for _, e in history].count("redrive_requested") == 1


async def test_two_redrives_at_once_in_one_process_start_the_run_once(backend: Backend) -> None:
    driver = await failed_run(backend)
    service = service_of(backend, T0 + 10)

    answers = await asyncio.gather(
        *(service.redrive(driver.run_id) for _ in range(2)), return_exceptions=True
    )

    assert sorted(type(a).__name__ for a in answers) == ["RunNotRedrivable", "list"]
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["b"]
    assert (await driver.get()).node("b").attempt == 2


async def test_an_old_run_deadline_does_not_time_a_redriven_run_out(backend: Backend) -> None:
    raw = {**workflow(node("a")), "timeout_seconds": 10}
    driver = Driver(backend, await add_run(backend, raw))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(driver.run_id, "a", 1, "Boom", "x", T0 + 1))
    await redrive(driver, T0 + 5)

    await driver.deliver(RunTimedOut(driver.run_id, T0 + 10))  # the first life's deadline
    assert (await driver.get()).status is RunStatus.RUNNING
    await driver.deliver(RunTimedOut(driver.run_id, T0 + 15))  # the redrive's
    run = await driver.get()
    assert run.status is RunStatus.FAILED and run.error.type == "RunTimedOut"


async def test_a_staged_output_run_again_by_from_is_replaced(backend: Backend) -> None:
    big = {"pad": "x" * 5000}
    driver = Driver(backend, await add_run(backend, workflow(node("a"), node("b", ["a"]))))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, big, T0 + 1))
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(driver.run_id, "b", 1, "Boom", "x", T0 + 2, retryable=False))

    await redrive(driver, T0 + 5, "a")
    await driver.take_tasks(1)
    bigger = {"pad": "y" * 6000}
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 2, bigger, T0 + 6))

    assert (await backend.runs.read_data(driver.run_id, {"a"}))["a"] == bigger
    if backend.is_redis:
        staged = backend.keys.run(driver.run_id).staged
        assert await backend.client.hlen(staged) == 0, "no staged output is left behind"


async def test_a_dead_lettered_retry_after_a_redrive_fails_the_run_again(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, workflow(node("a", retry_policy=retry(2, 1.0)))))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(driver.run_id, "a", 1, "Boom", "x", T0 + 1, retryable=False))
    await redrive(driver, T0 + 5)
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(driver.run_id, "a", 2, "Boom", "x", T0 + 6))
    assert (await driver.get()).node("a").retry_at is not None  # the policy counts from the redrive

    await driver.deliver(EventDeadLettered(driver.run_id, "a", 3, "retry dead-lettered", T0 + 7))

    run = await driver.get()
    assert run.status is RunStatus.FAILED and run.node("a").error.type == "DeadLettered"
    await redrive(driver, T0 + 10)  # and it can be redriven again
    assert [(t.node_id, t.attempt) for t in await driver.take_tasks(1, exactly=True)] == [("a", 3)]
