"""Contract of ``RunRepository.status``: the run's status alone, as ``get`` would give it, read in
one small call whatever the size of the run (what a reader waiting for a run's end reads on each
word of a change, ``services/application/waiting.py``)."""

from __future__ import annotations

import pytest
from contract_support import ONE_SERVER_STATS, T0, Backend, Driver, add_run, commands_run, diamond

from domain.errors import NotFound
from domain.events import NodeFailed, NodeStarted, NodeSucceeded
from domain.statuses import RunStatus


async def assert_status(backend: Backend, run_id: str, expected: RunStatus) -> None:
    assert await backend.runs.status(run_id) is expected
    assert (await backend.runs.get(run_id, outputs=False)).status is expected


async def test_the_status_follows_the_run_to_its_end(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    rid = driver.run_id
    await assert_status(backend, rid, RunStatus.PENDING)

    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(rid, "a", 1, "w1", T0 + 1))
    await assert_status(backend, rid, RunStatus.RUNNING)

    await driver.deliver(NodeFailed(rid, "a", 1, "Boom", "no retry", T0 + 2, retryable=False))
    await assert_status(backend, rid, RunStatus.FAILED)


async def test_another_process_reads_the_same_status(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "a", 1, {}, T0 + 1))
    other = await backend.connect()

    assert await other.runs.status(driver.run_id) is await backend.runs.status(driver.run_id)


async def test_the_status_of_an_unknown_run_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.runs.status("no-such-run")


@pytest.mark.contract_skip(**ONE_SERVER_STATS)
async def test_reading_the_status_is_one_hget(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    await driver.begin()

    assert await commands_run(backend, lambda: backend.runs.status(driver.run_id)) == {"hget": 1}
