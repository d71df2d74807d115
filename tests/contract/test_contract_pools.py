"""Contract of worker pools on every backend: tasks are routed by their queue (a consumer receives
only from the queues it serves), a requeued task goes to another consumer, the commit of a
transition sends a node's task to its node's queue, and the worker directory holds what live
workers announced until they withdraw or their announcement lapses."""

from __future__ import annotations

import asyncio
import time

import pytest
from contract_support import (
    NO_STREAMS,
    Backend,
    Driver,
    add_run,
    drain,
    new_id,
    node,
    nothing_waiting,
    run_ids_in_distinct_shards,
    workflow,
)

from domain.messages import DEFAULT_QUEUE, Task
from domain.ports import WorkerAnnouncement


def tasks_on(queue: str, run_id: str, count: int) -> list[Task]:
    return [Task(run_id, "def-p", f"{queue}-n{i}", 1, "h", queue) for i in range(count)]


async def test_a_consumer_receives_only_the_tasks_of_the_queues_it_serves(backend: Backend) -> None:
    run_ids = run_ids_in_distinct_shards(2)
    sent = {
        queue: [task for run_id in run_ids for task in tasks_on(queue, run_id, 2)]
        for queue in (DEFAULT_QUEUE, "gpu", "io")
    }
    await backend.tasks.send([task for batch in sent.values() for task in batch])

    gpu = backend.tasks.serving(["gpu"])
    default_and_io = backend.tasks.serving([DEFAULT_QUEUE, "io"])
    got_gpu = [d.message for d in await drain(gpu, 4, consumer="gpu-worker")]
    got_both = [d.message for d in await drain(default_and_io, 8, consumer="mixed-worker")]

    assert sorted(got_gpu, key=repr) == sorted(sent["gpu"], key=repr)
    assert sorted(got_both, key=repr) == sorted(sent[DEFAULT_QUEUE] + sent["io"], key=repr)
    assert all(task.queue == "gpu" for task in got_gpu)
    assert await nothing_waiting(gpu, "gpu-worker")
    assert await nothing_waiting(default_and_io, "mixed-worker")


async def test_a_task_sent_before_its_queue_has_a_consumer_waits_for_one(backend: Backend) -> None:
    run_id = new_id("run")
    waiting = tasks_on("later", run_id, 3)
    await backend.tasks.send(waiting)
    assert await nothing_waiting(backend.tasks, "default-worker"), "the default queue has none of them"

    late = backend.tasks.serving(["later"])  # its first consumer appears only now
    received = await drain(late, 3, consumer="late-worker")

    assert [d.message for d in received] == waiting


@pytest.mark.contract_skip(memory=NO_STREAMS)
async def test_on_redis_each_queue_of_a_shard_has_its_own_stream(backend: Backend) -> None:
    assert backend.keys is not None
    run_id = new_id("run")
    await backend.tasks.send(tasks_on("gpu", run_id, 2) + tasks_on(DEFAULT_QUEUE, run_id, 1))
    shard = backend.keys.shard_for_run(run_id)

    assert shard.tasks_of(DEFAULT_QUEUE) == shard.tasks, "the default queue keeps the stream it had"
    assert await backend.client.xlen(shard.tasks_of("gpu")) == 2
    assert await backend.client.xlen(shard.tasks) == 1


async def test_a_requeued_task_goes_to_another_consumer_and_is_no_longer_pending(
    backend: Backend,
) -> None:
    run_id = new_id("run")
    [task] = tasks_on(DEFAULT_QUEUE, run_id, 1)
    await backend.tasks.send([task])
    first = await drain(backend.tasks, 1, consumer="lacks-the-handler")

    await backend.tasks.requeue(first)
    again = await drain(backend.tasks, 1, consumer="has-the-handler")

    assert [d.message for d in again] == [task]
    assert again[0].receipt != first[0].receipt
    await backend.tasks.ack(again)
    assert await nothing_waiting(backend.tasks, "lacks-the-handler")
    if backend.is_redis:
        assert backend.keys is not None
        stream = backend.keys.shard_for_run(run_id).tasks
        summary = await backend.client.xpending(stream, "workers")
        assert summary["pending"] == 0, "the first delivery was acknowledged with the requeue"


async def test_a_transition_sends_a_node_s_task_to_the_node_s_queue(backend: Backend) -> None:
    definition = workflow(node("cpu"), node("gpu", queue="gpu"), node("after", ["gpu"], queue="gpu"))
    run = await add_run(backend, definition)
    driver = Driver(backend, run)
    await driver.begin()

    gpu = backend.tasks.serving(["gpu"])
    [on_default] = [d.message for d in await drain(backend.tasks, 1, consumer="cpu-worker")]
    [on_gpu] = [d.message for d in await drain(gpu, 1, consumer="gpu-worker")]

    assert (on_default.node_id, on_default.queue) == ("cpu", DEFAULT_QUEUE)
    assert (on_gpu.node_id, on_gpu.queue, on_gpu.handler) == ("gpu", "gpu", "h-gpu")
    assert await nothing_waiting(backend.tasks, "cpu-worker")
    assert await nothing_waiting(gpu, "gpu-worker")


# -- the worker directory ----------------------------------------------------------------------------


async def test_the_directory_lists_live_workers_until_they_withdraw(backend: Backend) -> None:
    cpu = WorkerAnnouncement("w-cpu", frozenset({DEFAULT_QUEUE}), frozenset({"input", "fetch"}))
    gpu = WorkerAnnouncement("w-gpu", frozenset({"gpu", DEFAULT_QUEUE}), frozenset({"train"}))
    assert await backend.workers.live() == []

    await backend.workers.announce(cpu, 30.0)
    await backend.workers.announce(gpu, 30.0)
    await backend.workers.announce(gpu, 30.0)  # a heartbeat: the same worker, once
    assert await backend.workers.live() == [cpu, gpu]

    await backend.workers.withdraw("w-cpu")
    assert await backend.workers.live() == [gpu]


async def test_a_worker_that_stops_announcing_drops_out_by_itself(backend: Backend) -> None:
    quiet = WorkerAnnouncement("w-quiet", frozenset({"q"}), frozenset({"h"}))
    steady = WorkerAnnouncement("w-steady", frozenset({"q"}), frozenset({"h"}))
    await backend.workers.announce(quiet, 0.3)
    await backend.workers.announce(steady, 30.0)
    assert await backend.workers.live() == [quiet, steady]

    deadline = time.monotonic() + 5.0
    while await backend.workers.live() != [steady]:
        assert time.monotonic() < deadline, "a lapsed announcement is still listed"
        await asyncio.sleep(0.05)
    if backend.is_redis:
        assert backend.keys is not None
        members = await backend.client.smembers(backend.keys.workers)
        assert members == {"w-steady"}, "the reader drops the ids of lapsed workers"
