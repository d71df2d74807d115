"""Contract of the Redis event bus's shard leases: orchestrators share the shards out, each reads the
events of the shards it holds, and the shards of one that stops renewing are taken over with what it
left pending. (The memory backend has one orchestrator: nothing to share.)"""

from __future__ import annotations

import asyncio
import time

import pytest
from contract_support import (
    ONE_PROCESS,
    SHARDS,
    Backend,
    drain,
    new_id,
    nothing_waiting,
    run_ids_in_distinct_shards,
)

from adapters.redis.bus import RedisEventBus
from domain.events import CancelRequested, Event

VISIBILITY = 0.6
pytestmark = [
    pytest.mark.contract_skip(memory=ONE_PROCESS),
    pytest.mark.contract_settings(visibility_timeout_seconds=VISIBILITY),
]


def leases_of(backend: Backend) -> list[int]:
    bus = backend.events
    assert isinstance(bus, RedisEventBus)
    return bus.leases.held


def one_event_per_shard() -> list[Event]:
    return [CancelRequested(run_id, 1.0) for run_id in run_ids_in_distinct_shards(SHARDS)]


async def receive_until(backend: Backend, consumer: str, count: int, within: float) -> list[Event]:
    received: list[Event] = []
    deadline = time.monotonic() + within
    while len(received) < count and time.monotonic() < deadline:
        deliveries = await backend.events.receive(consumer, 100, 0.05)
        await backend.events.ack(deliveries)
        received += [d.message for d in deliveries]
    return received


async def test_a_lone_orchestrator_holds_every_shard_and_reads_them_all(backend: Backend) -> None:
    sent = one_event_per_shard()
    await backend.events.send(sent)

    received = await drain(backend.events, len(sent), consumer="o1")

    assert {d.message for d in received} == set(sent)
    assert leases_of(backend) == list(range(SHARDS))


async def test_a_second_orchestrator_gets_its_fair_share_and_each_reads_only_its_shards(
    backend: Backend,
) -> None:
    second = await backend.connect()
    assert await nothing_waiting(backend.events, "o1")  # o1 takes every shard
    assert leases_of(backend) == list(range(SHARDS))

    # o2 joins; at its next renewal o1 gives back what is over its share, and o2 takes it.
    deadline = time.monotonic() + 10 * VISIBILITY
    while len(leases_of(second)) < SHARDS // 2:
        assert time.monotonic() < deadline, (leases_of(backend), leases_of(second))
        await asyncio.gather(backend.events.receive("o1", 10, 0.05), second.events.receive("o2", 10, 0.05))
    assert sorted(leases_of(backend) + leases_of(second)) == list(range(SHARDS))

    sent = one_event_per_shard()
    await backend.events.send(sent)
    first_got, second_got = await asyncio.gather(
        receive_until(backend, "o1", SHARDS // 2, 5.0), receive_until(second, "o2", SHARDS // 2, 5.0)
    )
    keys = backend.keys
    assert keys is not None
    assert {keys.shard_of(e.run_id) for e in first_got} == set(leases_of(backend))
    assert {keys.shard_of(e.run_id) for e in second_got} == set(leases_of(second))


async def test_the_shards_of_an_orchestrator_that_stops_are_taken_over_with_what_it_held(
    backend: Backend,
) -> None:
    run_id = new_id("run")
    event = CancelRequested(run_id, 1.0)
    await backend.events.send([event])
    held = await drain(backend.events, 1, consumer="doomed")  # received, never acknowledged
    assert [d.message for d in held] == [event]
    # "doomed" renews no more (it died). Another orchestrator takes the shards once the leases lapse
    # and, at once, what "doomed" held (idle since its last renewal, a lease ago).
    survivor = await backend.connect()
    began = time.monotonic()
    taken = await receive_until(survivor, "survivor", 1, 10 * VISIBILITY)
    assert taken == [event]
    assert time.monotonic() - began < 3 * VISIBILITY + 1.5
    assert leases_of(survivor) == list(range(SHARDS))


async def test_a_graceful_stop_gives_the_shards_back_at_once(backend: Backend) -> None:
    assert await nothing_waiting(backend.events, "leaving")
    bus = backend.events
    assert isinstance(bus, RedisEventBus)
    await bus.close()
    assert leases_of(backend) == []

    other = await backend.connect(visibility_timeout_seconds=60.0)  # a lapse would take a minute
    assert await nothing_waiting(other.events, "staying")
    assert leases_of(other) == list(range(SHARDS))
