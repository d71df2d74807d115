"""Contract: a run's history, listing runs and definitions (versions, filters, cursor pages)."""

from __future__ import annotations

import dataclasses

import pytest
from contract_support import (
    T0,
    Backend,
    Driver,
    add_run,
    diamond,
    new_id,
    node,
    retry,
    workflow,
)

from domain.errors import InvalidInput, NotFound
from domain.events import CancelRequested, NodeFailed, NodeStarted, NodeSucceeded
from domain.history import EntryKind
from domain.node_state import ErrorInfo
from domain.ports import RunQuery, StoredDefinition
from domain.run import Run
from domain.statuses import RunStatus
from domain.validation import build_plan


async def test_history_tells_what_each_applied_event_did(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond(retry_policy=retry(2, 1.0))))
    rid = driver.run_id
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeStarted(rid, "a", 1, "w1", T0 + 1))
    await driver.deliver(NodeStarted(rid, "a", 1, "w1", T0 + 1))  # repeated: no entry
    await driver.deliver(NodeFailed(rid, "a", 1, "Boom", "it broke", T0 + 2, True, "w1", T0 + 1))

    entries = [entry for _, entry in await backend.runs.history(rid, 0, 100)]

    assert [(e.kind, e.node_id, e.attempt) for e in entries] == [
        (EntryKind.RUN_STARTED, None, None),
        (EntryKind.NODE_STARTED, "a", 1),
        (EntryKind.NODE_FAILED, "a", 1),
    ]
    assert entries[0].dispatched == ("a",)
    assert entries[1].worker_id == "w1"
    assert entries[2].error == ErrorInfo("Boom", "it broke")
    assert entries[2].retry_at == pytest.approx(T0 + 3)
    assert entries[2].run_status is None


async def test_history_pages_resume_after_a_number(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, workflow(node("a"), node("b", ["a"]))))
    rid = driver.run_id
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(rid, "a", 1, {"x": 1}, T0 + 1))
    await driver.take_tasks(1)
    await driver.deliver(NodeFailed(rid, "b", 1, "E", "no", T0 + 2, False))

    first = await backend.runs.history(rid, 0, 2)
    rest = await backend.runs.history(rid, 2, 100)

    assert [number for number, _ in first + rest] == [1, 2, 3]
    assert first[1][1].dispatched == ("b",)
    assert rest[0][1].run_status is RunStatus.FAILED
    assert await backend.runs.history(rid, 3, 100) == []


async def test_history_of_a_cancelled_run_ends_with_the_cancel(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, diamond()))
    await driver.begin()
    await driver.deliver(CancelRequested(driver.run_id, T0 + 1))

    entries = [entry for _, entry in await backend.runs.history(driver.run_id, 0, 100)]

    assert entries[-1].kind is EntryKind.CANCEL_REQUESTED
    assert entries[-1].run_status is RunStatus.CANCELLED


async def test_history_of_an_unknown_run_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.runs.history("no-such-run", 0, 10)


async def _runs(backend: Backend, name: str, count: int) -> list[Run]:
    """``count`` runs of one definition named ``name``, created one second apart."""
    stored = StoredDefinition(new_id("def"), build_plan(workflow(node("a"), name=name)), T0)
    stored = await backend.definitions.add(stored)
    runs = []
    for number in range(count):
        run = Run.create(new_id("run"), stored.definition_id, stored.plan, {}, T0 + number)
        await backend.runs.add(run)
        runs.append(run)
    return runs


async def test_runs_are_listed_newest_first_in_cursor_pages(backend: Backend) -> None:
    name = new_id("wf")
    runs = await _runs(backend, name, 5)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await backend.runs.page(RunQuery(workflow=name, cursor=cursor, limit=2))
        seen += [summary.run_id for summary in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == [run.run_id for run in reversed(runs)]
    assert pages == 3
    first = (await backend.runs.page(RunQuery(workflow=name, limit=1))).items[0]
    assert (first.workflow, first.status, first.created_at) == (name, RunStatus.PENDING, T0 + 4)


async def test_runs_are_filtered_by_status_and_workflow(backend: Backend) -> None:
    name, other = new_id("wf"), new_id("wf")
    runs = await _runs(backend, name, 3)
    await _runs(backend, other, 2)
    await backend.runs.apply([CancelRequested(runs[1].run_id, T0 + 9)])  # cancelled while PENDING

    cancelled = await backend.runs.page(RunQuery(workflow=name, status=RunStatus.CANCELLED))
    pending = await backend.runs.page(RunQuery(workflow=name, status=RunStatus.PENDING))

    assert [s.run_id for s in cancelled.items] == [runs[1].run_id]
    assert cancelled.items[0].finished_at == T0 + 9
    assert [s.run_id for s in pending.items] == [runs[2].run_id, runs[0].run_id]
    assert cancelled.next_cursor is None and pending.next_cursor is None


async def test_a_cursor_that_is_not_ours_is_refused(backend: Backend) -> None:
    with pytest.raises(InvalidInput, match=r"\$\.cursor"):
        await backend.runs.page(RunQuery(cursor="not-a-cursor!"))


async def test_registering_a_name_again_makes_a_new_version(backend: Backend) -> None:
    name = new_id("wf")
    plan = build_plan(workflow(node("a"), name=name))
    first = await backend.definitions.add(StoredDefinition(new_id("def"), plan, T0))
    second = await backend.definitions.add(StoredDefinition(new_id("def"), plan, T0 + 1))

    assert (first.version, second.version) == (1, 2)
    reader = await backend.connect()
    assert (await reader.definitions.get(first.definition_id)).version == 1
    assert (await reader.definitions.get(second.definition_id)).version == 2


async def test_definitions_are_listed_by_name_newest_first(backend: Backend) -> None:
    name = new_id("wf")
    plan = build_plan(workflow(node("a"), node("b", ["a"]), name=name))
    ids = []
    for number in range(3):
        stored = await backend.definitions.add(StoredDefinition(new_id("def"), plan, T0 + number))
        ids.append(stored.definition_id)
    other = dataclasses.replace(plan, name=new_id("wf"))
    await backend.definitions.add(StoredDefinition(new_id("def"), other, T0 + 5))

    first = await backend.definitions.page(name, None, 2)
    second = await backend.definitions.page(name, first.next_cursor, 2)

    assert [d.definition_id for d in first.items + second.items] == list(reversed(ids))
    assert [d.version for d in first.items + second.items] == [3, 2, 1]
    assert first.items[0].node_count == 2
    assert second.next_cursor is None
    everything = await backend.definitions.page(None, None, 500)
    assert {d.definition_id for d in everything.items} >= {*ids}
