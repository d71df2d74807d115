"""A fan-in node starts exactly once, even when two orchestrators apply its parents' results at once.

Two ``RunRepository`` instances on two separate Redis connections (two orchestrator replicas) apply
the successes of 50 parents concurrently, interleaved and with duplicates; the child's task must be
queued exactly once. Repeated on 20 runs.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from contract_support import (
    NOT_A_REAL_RACE_FAKE,
    NOT_A_REAL_RACE_MEMORY,
    T0,
    Backend,
    Driver,
    add_run,
    drain,
    finishes,
    node,
    nothing_waiting,
    store_definition,
    workflow,
)

from adapters.redis.codec import decode_task
from domain.events import Command, Event, FinishRun, NodeSucceeded
from domain.ports import RunRepository
from domain.statuses import NodeStatus, RunStatus

PARENTS = 50
REPETITIONS = 20
PARENT_IDS = [f"p{i:02d}" for i in range(PARENTS)]


async def queued_nodes(backend: Backend, run_id: str) -> Counter[str]:
    """How many tasks the run's shard task stream holds for each node of ``run_id``."""
    entries = await backend.client.xrange(backend.stream("tasks", run_id))
    tasks = [decode_task(fields) for _, fields in entries]
    return Counter(task.node_id for task in tasks if task.run_id == run_id)


async def apply_in_small_batches(
    runs: RunRepository, events: list[Event], rng: random.Random
) -> list[Command]:
    commands: list[Command] = []
    position = 0
    while position < len(events):
        size = rng.randint(1, 4)
        commands += await runs.apply(events[position : position + size])
        position += size
    return commands


@pytest.mark.contract_skip(memory=NOT_A_REAL_RACE_MEMORY, fakeredis=NOT_A_REAL_RACE_FAKE)
async def test_two_orchestrators_applying_fifty_parents_at_once_queue_the_child_once(
    backend: Backend,
) -> None:
    replica = await backend.connect()
    assert replica.client is not backend.client
    stored = await store_definition(
        backend, workflow(*(node(p) for p in PARENT_IDS), node("join", PARENT_IDS))
    )

    for repetition in range(REPETITIONS):
        rng = random.Random(repetition)
        driver = Driver(backend, await add_run(backend, stored), mirror=False)
        await driver.begin()

        # Workers report every parent's success (the bus stages the outputs); the orchestrators
        # receive them and both apply all of them at once, in different orders, with duplicates.
        successes = [NodeSucceeded(driver.run_id, p, 1, {"parent": p}, T0 + 1) for p in PARENT_IDS]
        await backend.events.send(successes)
        received = await drain(backend.events, PARENTS, consumer="orchestrator", max_count=PARENTS)
        await backend.events.ack(received)
        events = [d.message for d in received]
        first = events + rng.sample(events, 10)
        second = events + rng.sample(events, 10)
        rng.shuffle(first)
        rng.shuffle(second)

        commands = await asyncio.gather(
            apply_in_small_batches(backend.runs, first, rng),
            apply_in_small_batches(replica.runs, second, rng),
        )

        assert finishes(commands[0] + commands[1]) == []
        assert await queued_nodes(backend, driver.run_id) == Counter(
            {**dict.fromkeys(PARENT_IDS, 1), "join": 1}
        ), f"repetition {repetition}"
        run = await driver.get()
        join = run.node("join")
        assert (join.status, join.attempt, join.waiting_on) == (NodeStatus.QUEUED, 1, 0)
        assert all(run.node(p).status is NodeStatus.COMPLETED for p in PARENT_IDS)
        assert run.outputs == {p: {"parent": p} for p in PARENT_IDS}

        last = await driver.deliver(NodeSucceeded(driver.run_id, "join", 1, "joined", T0 + 2))
        assert finishes(last) == [FinishRun(driver.run_id, RunStatus.COMPLETED)]

    # Through the port: every task of every run arrives once, and nothing else.
    tasks = await drain(backend.tasks, REPETITIONS * (PARENTS + 1), consumer="worker", max_count=500)
    assert len(tasks) == REPETITIONS * (PARENTS + 1)
    assert sum(1 for d in tasks if d.message.node_id == "join") == REPETITIONS
    assert await nothing_waiting(backend.tasks, "worker")
