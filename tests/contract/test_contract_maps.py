"""Maps (``for_each``) on every backend: the store mirrors the aggregate item by item, keeps the
items that ended, gives a map's output as the list of its items' outputs, and a process that reads
the run afresh mid-map (another orchestrator) finds its items in flight."""

from __future__ import annotations

from contract_support import Backend, Driver, add_run, node, workflow

from domain.events import NodeFailed, NodeStarted, NodeSucceeded, RedriveRequested
from domain.map_spec import MapOutput
from domain.statuses import NodeStatus, RunStatus

BIG = "x" * 3000  # staged apart from its event (over the 1 KiB the event carries)


def map_workflow() -> dict:
    return workflow(
        node("src"),
        node(
            "each",
            ["src"],
            {"item": "{{ item }}"},
            for_each="{{ src.xs }}",
            max_concurrency=2,
            tolerated_failures=1,
        ),
        node("after", ["each"]),
    )


async def started(backend: Backend) -> Driver:
    driver = Driver(backend, await add_run(backend, map_workflow()))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "src", 1, {"xs": ["a", "b", "c"]}, 2.0))
    return driver


async def test_a_map_runs_its_items_within_its_cap_and_completes_with_their_outputs(backend: Backend) -> None:
    driver = await started(backend)
    tasks = await driver.take_tasks(2, exactly=True)
    assert [t.node_id for t in tasks] == ["each#0", "each#1"]
    await driver.deliver(NodeStarted(driver.run_id, "each#1", 1, "w1", 3.0))
    await driver.deliver(NodeFailed(driver.run_id, "each#1", 1, "ValueError", "b broke", 4.0, False))
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["each#2"]
    await driver.deliver(NodeSucceeded(driver.run_id, "each#2", 1, {"big": BIG}, 5.0))
    await driver.deliver(NodeSucceeded(driver.run_id, "each#0", 1, "A", 6.0))
    run = await driver.get()
    assert run.node("each").status is NodeStatus.COMPLETED
    assert run.outputs["each"] == MapOutput(3)
    assert [t.node_id for t in await driver.take_tasks(1, exactly=True)] == ["after"]
    data = await backend.runs.read_data(driver.run_id, ["each"])
    failed = {"error": {"type": "ValueError", "message": "b broke"}}
    assert data["each"] == ["A", failed, {"big": BIG}]
    records = await backend.runs.item_records(driver.run_id, "each", 0, 3)
    assert {item: record.status for item, record in records.items()} == {
        0: NodeStatus.COMPLETED,
        1: NodeStatus.FAILED,
        2: NodeStatus.COMPLETED,
    }
    assert records[1].worker_id == "w1" and records[1].error is not None
    assert await backend.runs.item_outputs(driver.run_id, "each", 1, 3) == [failed, {"big": BIG}]


async def test_another_process_reading_the_run_mid_map_finds_its_items_in_flight(backend: Backend) -> None:
    driver = await started(backend)
    await driver.take_tasks(2)
    await driver.deliver(NodeStarted(driver.run_id, "each#0", 1, "w1", 3.0))
    other = await backend.connect()
    run = await other.runs.get(driver.run_id)
    items = run.node("each").items
    assert items is not None and items.total == 3 and items.next_item == 2
    assert {i: s.status for i, s in items.live.items()} == {0: NodeStatus.RUNNING, 1: NodeStatus.QUEUED}
    # The other process decides the rest on what the store gave it (applied without the bus:
    # the first process holds the shard's events).
    run_id = driver.run_id
    for at, (key, output) in enumerate([("each#0", "A"), ("each#1", "B"), ("each#2", "C"), ("after", None)]):
        await other.runs.apply([NodeSucceeded(run_id, key, 1, output, 4.0 + at)])
    assert (await other.runs.get(run_id)).status is RunStatus.COMPLETED
    assert (await other.runs.item_outputs(run_id, "each", 0, 3)) == ["A", "B", "C"]


async def test_a_redrive_runs_again_only_the_items_that_failed_keeping_the_others(backend: Backend) -> None:
    raw = workflow(node("src"), node("each", ["src"], {"item": "{{ item }}"}, for_each="{{ src.xs }}"))
    driver = Driver(backend, await add_run(backend, raw))
    await driver.begin()
    await driver.take_tasks(1)
    await driver.deliver(NodeSucceeded(driver.run_id, "src", 1, {"xs": ["a", "b", "c"]}, 2.0))
    await driver.take_tasks(3)
    await driver.deliver(NodeSucceeded(driver.run_id, "each#0", 1, "A", 3.0))
    await driver.deliver(NodeFailed(driver.run_id, "each#1", 1, "ValueError", "b broke", 4.0, False))
    assert (await driver.get()).status is RunStatus.FAILED  # item 2 cancelled with the map
    await driver.deliver(RedriveRequested(driver.run_id, 5.0))
    again = [task.node_id for task in await driver.take_tasks(2, exactly=True)]
    assert sorted(again) == ["each#1", "each#2"]
    fresh = await (await backend.connect()).runs.get(driver.run_id)  # what another process reads
    items = fresh.node("each").items
    assert items is not None and items.succeeded == 1 and set(items.live) == {1, 2}
    attempt = (await driver.get()).node("each").items.live[1].attempt  # type: ignore[union-attr]
    await driver.deliver(NodeSucceeded(driver.run_id, "each#1", attempt, "B", 6.0))
    await driver.deliver(NodeSucceeded(driver.run_id, "each#2", attempt, "C", 7.0))
    assert (await driver.get()).status is RunStatus.COMPLETED
    assert await backend.runs.item_outputs(driver.run_id, "each", 0, 3) == ["A", "B", "C"]
