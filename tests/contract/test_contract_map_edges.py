"""The edges of a map (``for_each``) on every backend: a list of one item, an empty list, a value
that is no list, and items failing beyond the tolerance. The ``Driver`` checks after each event
that the store mirrors the aggregate (state and history); these tests check what the map did."""

from __future__ import annotations

from typing import Any

import pytest
from contract_support import Backend, Driver, add_run, node, nothing_waiting, workflow

from domain.events import CancelAttempts, NodeFailed, NodeStarted, NodeSucceeded
from domain.map_spec import MapOutput
from domain.statuses import NodeStatus, RunStatus

BIG = "x" * 3000  # staged apart from its event (over the 1 KiB the event carries)


def map_workflow(**map_fields: Any) -> dict[str, Any]:
    return workflow(
        node("src"),
        node("each", ["src"], {"item": "{{ item }}"}, for_each="{{ src.xs }}", **map_fields),
        node("after", ["each"]),
    )


async def listed(backend: Backend, xs: Any, pad: str = "", **map_fields: Any) -> Driver:
    """A run of ``map_workflow`` whose ``src`` has completed with ``{"xs": xs}`` (and ``pad``)."""
    driver = Driver(backend, await add_run(backend, map_workflow(**map_fields)))
    await driver.begin()
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["src"]
    await driver.deliver(NodeSucceeded(driver.run_id, "src", 1, {"xs": xs, "pad": pad}, 2.0))
    return driver


async def test_a_map_over_one_item_runs_it_once_and_outputs_a_list_of_one(backend: Backend) -> None:
    driver = await listed(backend, ["only"], max_concurrency=5)
    [task] = await driver.take_tasks(1, exactly=True)
    assert (task.node_id, task.attempt) == ("each#0", 1)
    assert (await driver.get()).node("each").status is NodeStatus.RUNNING

    await driver.deliver(NodeStarted(driver.run_id, "each#0", 1, "w1", 3.0))
    await driver.deliver(NodeSucceeded(driver.run_id, "each#0", 1, {"got": "only"}, 4.0))

    run = await driver.get()
    assert run.node("each").status is NodeStatus.COMPLETED
    assert run.outputs["each"] == MapOutput(1)
    assert (await backend.runs.read_data(driver.run_id, ["each"]))["each"] == [{"got": "only"}]
    records = await backend.runs.item_records(driver.run_id, "each", 0, 1)
    assert [(i, r.status, r.attempt, r.worker_id) for i, r in records.items()] == [
        (0, NodeStatus.COMPLETED, 1, "w1")
    ]
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["after"]
    await driver.deliver(NodeSucceeded(driver.run_id, "after", 1, None, 5.0))
    assert (await driver.get()).status is RunStatus.COMPLETED


async def test_a_map_over_one_item_that_fails_fails_without_a_tolerance(backend: Backend) -> None:
    driver = await listed(backend, ["only"])
    await driver.take_tasks(1, exactly=True)

    await driver.deliver(NodeFailed(driver.run_id, "each#0", 1, "ValueError", "no", 3.0, False))

    run = await driver.get()
    each = run.node("each")
    assert each.status is NodeStatus.FAILED and each.error is not None
    assert each.error.type == "ItemsFailed"
    assert each.error.message.startswith("1 of 1 items failed, more than the 0 tolerated; item 0 failed")
    assert run.node("after").status is NodeStatus.SKIPPED
    assert run.status is RunStatus.FAILED
    assert await nothing_waiting(backend.tasks, "worker")


@pytest.mark.parametrize("pad", ["", BIG], ids=["inline", "staged"])
async def test_a_map_over_an_empty_list_completes_at_once_with_an_empty_list(
    backend: Backend, pad: str
) -> None:
    """The map completes in the step that records its source's output: both outputs are kept (a
    store that wrote only one output per event lost the source's)."""
    driver = await listed(backend, [], pad, max_concurrency=3, tolerated_failures=1)

    # No item is dispatched: the next task is the map's dependent.
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["after"]
    run = await driver.get()
    each = run.node("each")
    assert each.status is NodeStatus.COMPLETED
    assert each.items is not None and each.items.total == 0 and each.items.live == {}
    assert run.outputs["each"] == MapOutput(0)
    data = await backend.runs.read_data(driver.run_id, ["src", "each"])
    assert (data["src"], data["each"]) == ({"xs": [], "pad": pad}, [])
    assert await backend.runs.item_records(driver.run_id, "each", 0, 10) == {}
    if backend.is_redis:
        staged = backend.keys.run(driver.run_id).staged
        assert await backend.client.hlen(staged) == 0, "no staged output is left behind"
    await driver.deliver(NodeSucceeded(driver.run_id, "after", 1, "done", 3.0))
    assert (await driver.get()).status is RunStatus.COMPLETED


@pytest.mark.parametrize(
    ("value", "named"),
    [({"a": 1}, "object"), ("abc", "string"), (7, "number"), (None, "null"), (True, "boolean")],
    ids=["object", "string", "number", "null", "boolean"],
)
async def test_a_map_over_a_value_that_is_no_list_fails_naming_its_type(
    backend: Backend, value: Any, named: str
) -> None:
    driver = await listed(backend, value, tolerated_failures="100%")

    run = await driver.get()
    each = run.node("each")
    assert each.status is NodeStatus.FAILED and each.error is not None
    assert (each.error.type, each.error.message) == (
        "ForEachError",
        f"for_each '{{{{ src.xs }}}}' must be a list, got {named}",
    )
    assert each.items is None
    assert run.node("after").status is NodeStatus.SKIPPED
    assert run.status is RunStatus.FAILED
    assert await nothing_waiting(backend.tasks, "worker"), "no item and no dependent is dispatched"


async def test_a_map_whose_source_has_no_such_key_fails_saying_it_cannot_be_read(backend: Backend) -> None:
    driver = Driver(backend, await add_run(backend, map_workflow()))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "src", 1, {"ys": [1]}, 2.0))

    each = (await driver.get()).node("each")
    assert each.status is NodeStatus.FAILED and each.error is not None
    assert each.error.type == "ForEachError"
    assert each.error.message.startswith("for_each '{{ src.xs }}' cannot be read: ")
    assert await nothing_waiting(backend.tasks, "worker")


@pytest.mark.parametrize("tolerated", [1, "25%"], ids=["count", "percent"])
async def test_items_failing_beyond_the_tolerance_fail_the_map_at_once_cancelling_the_rest(
    backend: Backend, tolerated: int | str
) -> None:
    """Four items, three at once, one failure tolerated (1, or 25% of 4): the second failure fails
    the node at once, the item in flight is cancelled, the fourth is never dispatched."""
    driver = await listed(backend, ["a", "b", "c", "d"], max_concurrency=3, tolerated_failures=tolerated)
    tasks = await driver.take_tasks(3, exactly=True)
    assert [t.node_id for t in tasks] == ["each#0", "each#1", "each#2"]
    await driver.deliver(NodeStarted(driver.run_id, "each#2", 1, "w2", 3.0))

    await driver.deliver(NodeFailed(driver.run_id, "each#0", 1, "ValueError", "a broke", 4.0, False))
    run = await driver.get()
    assert run.node("each").status is NodeStatus.RUNNING, "one failure is tolerated"
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["each#3"]  # its place

    driver.commands.clear()
    await driver.deliver(NodeFailed(driver.run_id, "each#1", 1, "ValueError", "b broke", 5.0, False))

    run = await driver.get()
    each = run.node("each")
    assert each.status is NodeStatus.FAILED and each.error is not None
    assert each.error.type == "ItemsFailed"
    assert each.error.message == (
        f"2 of 4 items failed, more than the {tolerated} tolerated; item 1 failed with ValueError: b broke"
    )
    assert each.items is not None and each.items.live == {}
    assert run.node("after").status is NodeStatus.SKIPPED
    assert run.status is RunStatus.FAILED
    cancels = [c for c in driver.commands if isinstance(c, CancelAttempts)]
    assert [sorted(c.attempts) for c in cancels] == [[("each#2", 1), ("each#3", 1)]]
    records = await backend.runs.item_records(driver.run_id, "each", 0, 4)
    assert {i: r.status for i, r in records.items()} == {
        0: NodeStatus.FAILED,
        1: NodeStatus.FAILED,
        2: NodeStatus.CANCELLED,
        3: NodeStatus.CANCELLED,
    }
    assert await nothing_waiting(backend.tasks, "worker")

    # The cancelled item's late result changes nothing (the Driver checks the history too).
    history = await backend.runs.history(driver.run_id, 0, 1000)
    await driver.deliver(NodeSucceeded(driver.run_id, "each#2", 1, "C", 6.0))
    assert await backend.runs.history(driver.run_id, 0, 1000) == history
    late = await driver.get()
    assert late.node("each").status is NodeStatus.FAILED and late.status is RunStatus.FAILED
    assert (await backend.runs.item_records(driver.run_id, "each", 2, 3))[2].status is NodeStatus.CANCELLED
