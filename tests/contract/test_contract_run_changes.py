"""Contract of ``RunChanges``: word of each committed transition reaches the watches of the run.

The transitions are the store's own (``RunRepository.apply``), so the test shows the whole path: on
Redis the commit script publishes, the one subscription of the process hears it and wakes the
watches; in memory the repository tells the watches itself. The re-check of the waiting use case is
set far above every wait here: whatever returns early was woken by word, not by a timer.
"""

from __future__ import annotations

import asyncio
import time

from contract_support import T0, Backend, Driver, add_run, node, workflow

from adapters.system import UuidIds
from domain.events import NodeStarted, NodeSucceeded
from domain.limits import Limits
from domain.statuses import RunStatus
from services.application.waiting import status_when_final
from services.application.workflows import WorkflowService

WORD_WITHIN = 5.0
"""Word must come well within this (it takes milliseconds); the re-check is far longer still."""
RECHECK = 600.0
WAITERS = 1_000


class FixedClock:
    def now(self) -> float:
        return T0


def service_of(backend: Backend) -> WorkflowService:
    return WorkflowService(
        definitions=backend.definitions,
        runs=backend.runs,
        events=backend.events,
        clock=FixedClock(),
        ids=UuidIds(),
        limits=Limits(),
        changes=backend.changes,
        recheck_seconds=RECHECK,
    )


async def one_node_run(backend: Backend) -> Driver:
    return Driver(backend, await add_run(backend, workflow(node("a"))))


async def until(condition: object, within: float = WORD_WITHIN) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.005)


async def test_a_watch_hears_each_committed_transition_of_its_run(backend: Backend) -> None:
    driver = await one_node_run(backend)
    async with backend.changes.watch(driver.run_id) as watch:
        assert await watch.changed(0) is False  # nothing happened yet
        await driver.begin()
        assert await watch.changed(WORD_WITHIN) is True
        assert await watch.changed(0) is False  # the word was taken
        await driver.deliver(NodeStarted(driver.run_id, "a", 1, "w1", T0 + 1))
        await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, {"ok": True}, T0 + 2))
        assert await watch.changed(WORD_WITHIN) is True  # two changes, one wake: the reader reads once


async def test_a_watch_does_not_hear_other_runs(backend: Backend) -> None:
    mine = await one_node_run(backend)
    await mine.begin()
    other = await one_node_run(backend)
    async with backend.changes.watch(mine.run_id) as watch, backend.changes.watch(other.run_id) as theirs:
        await other.begin()
        assert await theirs.changed(WORD_WITHIN) is True
        # Word comes in the order of the commits, on one subscription: had mine been woken, it would be now.
        assert await watch.changed(0) is False


async def test_leaving_a_watch_forgets_it_also_when_its_reader_is_cancelled(backend: Backend) -> None:
    driver = await one_node_run(backend)
    before = backend.changes.watch_count()
    async with backend.changes.watch(driver.run_id):
        assert backend.changes.watch_count() == before + 1

    async def reader() -> None:
        async with backend.changes.watch(driver.run_id) as watch:
            await watch.changed(RECHECK)

    task = asyncio.ensure_future(reader())
    await until(lambda: backend.changes.watch_count() == before + 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert backend.changes.watch_count() == before


async def test_a_thousand_waiters_all_return_when_the_run_ends(backend: Backend) -> None:
    driver = await one_node_run(backend)
    await driver.begin()
    await driver.deliver(NodeStarted(driver.run_id, "a", 1, "w1", T0 + 1))
    service = service_of(backend)
    waiters = [asyncio.ensure_future(service.wait_for_run(driver.run_id, 60)) for _ in range(WAITERS)]
    await until(lambda: backend.changes.watch_count() == WAITERS, within=30)
    assert not any(waiter.done() for waiter in waiters)  # RUNNING: every one of them waits
    ended_at = time.monotonic()
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, {"ok": True}, T0 + 2))
    statuses = await asyncio.wait_for(asyncio.gather(*waiters), timeout=30)
    assert time.monotonic() - ended_at < 30 < RECHECK  # woken, not re-checked
    assert set(statuses) == {RunStatus.COMPLETED}
    assert backend.changes.watch_count() == 0


async def test_a_wait_of_zero_or_one_that_runs_out_gives_the_run_as_it_is(backend: Backend) -> None:
    driver = await one_node_run(backend)
    await driver.begin()
    service = service_of(backend)
    assert await service.wait_for_run(driver.run_id, 0) is RunStatus.RUNNING
    started = time.monotonic()
    assert await service.wait_for_run(driver.run_id, 0.2) is RunStatus.RUNNING
    assert time.monotonic() - started >= 0.2
    assert backend.changes.watch_count() == 0


async def test_word_tells_the_status_each_commit_left_the_run_in(backend: Backend) -> None:
    driver = await one_node_run(backend)
    async with backend.changes.watch(driver.run_id) as watch:
        assert watch.told_status() is None  # no word yet: a reader reads the run
        await driver.begin()
        assert await watch.changed(WORD_WITHIN) is True
        assert watch.told_status() is RunStatus.RUNNING
        await driver.deliver(NodeStarted(driver.run_id, "a", 1, "w1", T0 + 1))
        assert await watch.changed(WORD_WITHIN) is True
        assert watch.told_status() is RunStatus.RUNNING
        await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, {"ok": True}, T0 + 2))
        assert await watch.changed(WORD_WITHIN) is True
        assert watch.told_status() is RunStatus.COMPLETED


async def test_a_waiter_reads_the_status_only_when_it_begins_and_for_word_of_the_end(
    backend: Backend,
) -> None:
    """Word of each change tells the status the change left the run in: the waiter reads the run's
    status when it begins, not for word of the changes that left it RUNNING, and once more for the
    word that it ended (that word may be older than the watch: the run may have been redriven)."""
    driver = await two_node_run(backend)
    await driver.begin()
    reads: list[RunStatus] = []

    async def read() -> RunStatus:
        reads.append(status := await backend.runs.status(driver.run_id))
        return status

    waiter = asyncio.ensure_future(status_when_final(backend.changes, driver.run_id, read, 60, RECHECK))
    await until(lambda: reads)
    for name, at in (("a", T0 + 1), ("b", T0 + 3)):
        await driver.deliver(NodeStarted(driver.run_id, name, 1, "w1", at))
        await driver.deliver(NodeSucceeded(driver.run_id, name, 1, {"ok": True}, at + 1))
    assert await asyncio.wait_for(waiter, WORD_WITHIN) is RunStatus.COMPLETED
    assert reads == [RunStatus.RUNNING, RunStatus.COMPLETED]  # the re-check, far off, made none


async def two_node_run(backend: Backend) -> Driver:
    return Driver(backend, await add_run(backend, workflow(node("a"), node("b", ["a"]))))
