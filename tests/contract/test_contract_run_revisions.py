"""Contract of ``RunRepository.revision`` and ``snapshot``: a run's revision changes with every
commit of the run and with nothing else, a snapshot carries the revision of the state it holds, and
every process on the store reads the same revisions (what lets API replicas keep answers per
revision, ``services/api/run_answers.py``)."""

from __future__ import annotations

import pytest
from contract_support import (
    NO_EXPIRY,
    ONE_SERVER_STATS,
    T0,
    Backend,
    Driver,
    add_run,
    commands_run,
    diamond,
    store_definition,
)

from domain.errors import NotFound
from domain.events import HeartbeatReceived, NodeStarted, NodeSucceeded, RunStarted
from domain.run import Run


async def assert_current(backend: Backend, run_id: str, revision: str) -> None:
    """``revision`` is the run's, and a snapshot read now holds that revision."""
    assert await backend.runs.revision(run_id) == revision
    assert (await backend.runs.snapshot(run_id, outputs=False)).revision == revision


async def test_every_commit_of_a_run_changes_its_revision_and_reads_do_not(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    rid = driver.run_id
    seen = [await backend.runs.revision(rid)]
    await assert_current(backend, rid, seen[-1])

    await driver.begin()
    seen.append(await backend.runs.revision(rid))
    await driver.take_tasks(1)
    for event in (
        NodeStarted(rid, "a", 1, "w1", T0 + 1),
        HeartbeatReceived(rid, "a", 1, T0 + 2, details={"done": 1}),
        NodeSucceeded(rid, "a", 1, {"x": 1}, T0 + 3),
    ):
        await driver.deliver(event)
        seen.append(await backend.runs.revision(rid))
        await assert_current(backend, rid, seen[-1])

    assert len(set(seen)) == len(seen), f"every commit made a new revision: {seen}"
    await driver.get()
    await backend.runs.snapshot(rid)
    assert await backend.runs.revision(rid) == seen[-1], "reads commit nothing"


async def test_an_event_that_changes_nothing_keeps_the_revision(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    await driver.begin()
    await driver.take_tasks(1)
    before = await backend.runs.revision(driver.run_id)

    await driver.deliver(RunStarted(driver.run_id, T0 + 5), NodeSucceeded(driver.run_id, "a", 7, {}, T0 + 5))

    assert await backend.runs.revision(driver.run_id) == before


async def test_a_snapshot_holds_the_state_of_its_revision(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    pending = await backend.runs.snapshot(driver.run_id)
    assert pending.run.status.value == "PENDING"

    await driver.begin()
    running = await backend.runs.snapshot(driver.run_id)

    assert running.run.status.value == "RUNNING"
    assert running.revision != pending.revision
    assert running.revision == await backend.runs.revision(driver.run_id)


async def test_another_process_reads_the_same_revisions(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    other = await backend.connect()  # another API process: own client, empty caches
    assert await other.runs.revision(driver.run_id) == await backend.runs.revision(driver.run_id)

    await driver.begin()

    revision = await backend.runs.revision(driver.run_id)
    assert await other.runs.revision(driver.run_id) == revision
    assert (await other.runs.snapshot(driver.run_id)).revision == revision


async def test_the_revision_of_an_unknown_run_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.runs.revision("no-such-run")
    with pytest.raises(NotFound):
        await backend.runs.snapshot("no-such-run")


@pytest.mark.contract_skip(memory=NO_EXPIRY)
async def test_a_run_stored_again_under_its_id_has_another_revision(backend: Backend) -> None:
    """An idempotency key used again after its run's retention makes a run of the same id: a
    revision kept from the first must not pass for the second's (both have had no commit)."""
    stored = await store_definition(backend, diamond())
    first = await add_run(backend, stored, run_id="reused")
    before = await backend.runs.revision(first.run_id)
    assert backend.keys is not None
    await backend.client.delete(*backend.keys.run(first.run_id).all())  # as its retention would

    again = Run.create(first.run_id, stored.definition_id, stored.plan, {}, T0 + 3600)
    await backend.runs.add(again)

    assert await backend.runs.revision(first.run_id) != before


@pytest.mark.contract_skip(**ONE_SERVER_STATS)
async def test_reading_a_revision_is_one_hmget(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    await driver.begin()

    assert await commands_run(backend, lambda: backend.runs.revision(driver.run_id)) == {"hmget": 1}
