"""Contract of ``MessageQueue`` for both queues: the task queue and the event bus.

At-least-once delivery to a group of consumers: a received message stays pending until acknowledged;
on Redis, a pending message whose consumer went quiet is reclaimed by another after the visibility
timeout (unless its consumer keeps extending it), is dead-lettered after ``max_deliveries``, and
housekeeping never drops what is pending or not yet delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import pytest
from contract_support import (
    FAKEREDIS_NO_BLOCK,
    NO_STREAMS,
    NO_WIRE_FORMAT,
    ONE_PROCESS,
    T0,
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

from adapters.redis.codec import decode_event, decode_task, encode_event, encode_task
from adapters.redis.keys import EVENTS_GROUP, TASKS_GROUP
from adapters.redis.streams import RedisStreamQueue, StreamConfig
from domain.events import (
    AttemptTimedOut,
    CancelRequested,
    EventDeadLettered,
    FinishRun,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RedriveRequested,
    RetryDue,
    RunStarted,
)
from domain.messages import Task
from domain.ports import MessageQueue
from domain.reasons import DEAD_LETTERED
from domain.statuses import NodeStatus, RunStatus

VISIBILITY = 0.2
PAST_VISIBILITY = VISIBILITY + 0.1
SHORT_VISIBILITY = pytest.mark.contract_settings(visibility_timeout_seconds=VISIBILITY)

pytestmark = pytest.mark.parametrize("kind", ["tasks", "events"])


def messages(kind: str, run_id: str, count: int) -> list[Any]:
    """``count`` distinct messages of one run (so, on Redis, of one shard and one stream)."""
    if kind == "tasks":
        return [Task(run_id, "def-q", f"n{i}", 1 + i % 3, f"handler.{i}") for i in range(count)]
    makers = [
        lambda i: RunStarted(run_id, T0 + i),
        lambda i: NodeStarted(run_id, f"n{i}", 1, f"worker-{i}", T0 + i),
        lambda i: NodeSucceeded(run_id, f"n{i}", 2, None, T0 + i),
        lambda i: NodeFailed(run_id, f"n{i}", 1, "KeyError", f"line one\nline two ü {i}", T0 + i, i % 2 == 0),
        lambda i: AttemptTimedOut(run_id, f"n{i}", 3, T0 + i + 0.125),
        lambda i: RetryDue(run_id, f"n{i}", 2, T0 + i),
        lambda i: CancelRequested(run_id, T0 + i),
        lambda i: RedriveRequested(run_id, T0 + i, (f"n{i}",)),
        lambda i: EventDeadLettered(run_id, None, 0, f"start {i} dead", T0 + i),
        lambda i: EventDeadLettered(run_id, f"n{i}", 2, f"retry {i} dead", T0 + i),
    ]
    return [makers[i % len(makers)](i) for i in range(count)]


def encode(kind: str, message: Any) -> dict[str, str]:
    return encode_task(message) if kind == "tasks" else encode_event(message)


def group(kind: str) -> str:
    return {"tasks": TASKS_GROUP, "events": EVENTS_GROUP}[kind]


async def pending_count(backend: Backend, kind: str, run_id: str) -> int:
    summary = await backend.client.xpending(backend.stream(kind, run_id), group(kind))
    return int(summary["pending"])


# -- sending and receiving ---------------------------------------------------------------------------


async def test_send_then_receive_returns_the_messages_in_order(backend: Backend, kind: str) -> None:
    queue = backend.queue(kind)
    sent = messages(kind, new_id("run"), 9)

    await queue.send(sent)
    received = await drain(queue, len(sent))

    assert [d.message for d in received] == sent
    assert len({d.receipt for d in received}) == len(sent)
    assert await nothing_waiting(queue)


async def test_messages_of_many_runs_keep_their_order_per_run(backend: Backend, kind: str) -> None:
    queue = backend.queue(kind)
    per_run = {run_id: messages(kind, run_id, 3) for run_id in run_ids_in_distinct_shards(4)}
    interleaved = [batch[i] for i in range(3) for batch in per_run.values()]

    await queue.send(interleaved[:5])
    await queue.send(interleaved[5:])
    received = [d.message for d in await drain(queue, len(interleaved))]

    assert Counter(map(repr, received)) == Counter(map(repr, interleaved))
    for run_id, sent in per_run.items():
        assert [m for m in received if m.run_id == run_id] == sent


async def test_receive_returns_at_most_max_count_of_one_stream(backend: Backend, kind: str) -> None:
    queue = backend.queue(kind)
    sent = messages(kind, new_id("run"), 5)
    await queue.send(sent)

    batches = [await queue.receive("c", 2, 0.1) for _ in range(3)]

    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [d.message for batch in batches for d in batch] == sent


async def test_receive_returns_at_most_max_count_across_shards(backend: Backend, kind: str) -> None:
    queue = backend.queue(kind)
    sent = []
    for run_id in run_ids_in_distinct_shards(4):
        sent += messages(kind, run_id, 1)
    await queue.send(sent)

    batches = [await queue.receive("c", 1, 0.1) for _ in range(4)]

    assert [len(batch) for batch in batches] == [1, 1, 1, 1]
    received = [d.message for batch in batches for d in batch]
    assert Counter(map(repr, received)) == Counter(map(repr, sent))
    assert await nothing_waiting(queue, "c")


@pytest.mark.contract_skip(fakeredis=FAKEREDIS_NO_BLOCK)
async def test_receive_with_nothing_waiting_returns_empty_after_about_block_seconds(
    backend: Backend, kind: str
) -> None:
    queue = backend.queue(kind)
    await queue.receive("c", 10, 0.01)  # first call sets up (consumer groups), not measured

    started = time.monotonic()
    received = await queue.receive("c", 10, 0.3)
    elapsed = time.monotonic() - started

    assert received == []
    # Redis times blocked reads out on its 100 ms server tick: allow for it, but stay bounded.
    assert 0.25 <= elapsed <= 0.3 + 0.5, elapsed


@pytest.mark.contract_skip(fakeredis=FAKEREDIS_NO_BLOCK)
async def test_a_blocked_receive_returns_as_soon_as_a_message_arrives(backend: Backend, kind: str) -> None:
    queue = backend.queue(kind)
    await queue.receive("c", 10, 0.01)
    sent = messages(kind, new_id("run"), 1)

    started = time.monotonic()
    waiting = asyncio.create_task(queue.receive("c", 10, 3.0))
    await asyncio.sleep(0.1)
    await queue.send(sent)
    received = await waiting

    assert [d.message for d in received] == sent
    assert time.monotonic() - started < 1.5


# -- pending and acknowledged ------------------------------------------------------------------------


async def test_unacked_messages_are_not_received_again_immediately(backend: Backend, kind: str) -> None:
    other = await backend.connect()
    sent = messages(kind, new_id("run"), 3)
    await backend.queue(kind).send(sent)

    received = await drain(backend.queue(kind), 3, consumer="a")

    assert [d.message for d in received] == sent
    assert await nothing_waiting(backend.queue(kind), "a")
    assert await nothing_waiting(backend.queue(kind), "b")
    assert await nothing_waiting(other.queue(kind), "b")


@SHORT_VISIBILITY
async def test_acked_messages_never_come_back(backend: Backend, kind: str) -> None:
    other = await backend.connect()
    run_id = new_id("run")
    sent = messages(kind, run_id, 3)
    await backend.queue(kind).send(sent)
    received = await drain(backend.queue(kind), 3, consumer="a")

    await backend.queue(kind).ack(received)
    await backend.queue(kind).ack(received[:1])  # acknowledging twice is harmless
    await backend.queue(kind).extend("a", received)  # a late heartbeat brings nothing back

    await asyncio.sleep(PAST_VISIBILITY)
    assert await nothing_waiting(other.queue(kind), "b")
    assert await nothing_waiting(backend.queue(kind), "a")
    if backend.is_redis:
        assert await pending_count(backend, kind, run_id) == 0


# -- reclaiming, heartbeats, dead letters (Redis) ----------------------------------------------------


@pytest.mark.contract_skip(memory=ONE_PROCESS)
@SHORT_VISIBILITY
async def test_an_unacked_message_is_reclaimed_by_another_consumer_after_the_visibility_timeout(
    backend: Backend, kind: str
) -> None:
    first, second = backend.queue(kind), (await backend.connect()).queue(kind)
    sent = messages(kind, new_id("run"), 1)
    await first.send(sent)
    before_delivery = time.monotonic()
    [taken] = await drain(first, 1, consumer="a")

    empty = await nothing_waiting(second, "b")
    # Not before the timeout: judged only when the check ended within it (a loaded machine can
    # take longer than the 0.2 s between the delivery and the check's end).
    assert empty or time.monotonic() - before_delivery >= VISIBILITY
    await asyncio.sleep(PAST_VISIBILITY)
    reclaimed = await drain(second, 1, consumer="b")

    assert [d.message for d in reclaimed] == sent
    await second.ack(reclaimed)
    await asyncio.sleep(PAST_VISIBILITY)
    assert await nothing_waiting(first, "a")
    assert await nothing_waiting(second, "b")
    await first.ack([taken])  # the first consumer's late ack is harmless


@pytest.mark.contract_skip(memory=ONE_PROCESS)
@SHORT_VISIBILITY
async def test_extend_keeps_others_from_reclaiming_while_the_consumer_works(
    backend: Backend, kind: str
) -> None:
    worker, other = backend.queue(kind), (await backend.connect()).queue(kind)
    sent = messages(kind, new_id("run"), 1)
    await worker.send(sent)
    taken = await drain(worker, 1, consumer="a")

    last_extend = time.monotonic()

    async def heartbeat() -> None:
        nonlocal last_extend
        while True:
            await asyncio.sleep(VISIBILITY / 4)
            last_extend = time.monotonic()
            await worker.extend("a", taken)

    beating = asyncio.create_task(heartbeat())
    try:
        deadline = time.monotonic() + 2.5 * VISIBILITY
        while time.monotonic() < deadline:
            assert await other.receive("b", 10, 0.02) == [], "reclaimed while its consumer kept extending it"
            await asyncio.sleep(0.03)
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating

    reclaimed = await drain(other, 1, consumer="b", within=3.0)
    assert [d.message for d in reclaimed] == sent
    # Not before a full visibility timeout after the last heartbeat (the server resets the idle time
    # when it runs the extend, after it was sent).
    assert time.monotonic() - last_extend >= VISIBILITY - 0.01


@pytest.mark.contract_skip(memory=ONE_PROCESS)
@pytest.mark.contract_settings(visibility_timeout_seconds=VISIBILITY, max_deliveries=2)
async def test_a_message_delivered_max_deliveries_times_is_dead_lettered(backend: Backend, kind: str) -> None:
    driver = Driver(backend, await add_run(backend, workflow(node("a"), node("b", ["a"]))))
    await driver.begin()
    poison: Any = driver.task("a")
    if kind == "events":
        poison = NodeStarted(driver.run_id, "a", 1, "w", T0 + 1)
        await backend.events.send([poison])
    queues = [backend.queue(kind)] + [(await backend.connect()).queue(kind) for _ in range(2)]
    stream, dead = backend.stream(kind, driver.run_id), backend.dead_stream(driver.run_id)

    assert [d.message for d in await drain(queues[0], 1, consumer="a")] == [poison]  # delivery 1
    await asyncio.sleep(PAST_VISIBILITY)
    assert [d.message for d in await drain(queues[1], 1, consumer="b")] == [poison]  # delivery 2
    await asyncio.sleep(PAST_VISIBILITY)
    assert await queues[2].receive("c", 10, 0.05) == []  # exhausted: dead-lettered, not delivered

    [(_, record)] = await backend.client.xrange(dead)
    assert {k: record[k] for k in encode(kind, poison)} == encode(kind, poison)
    assert record["dead.source"] == stream
    assert "2 times" in record["dead.reason"]
    assert await pending_count(backend, kind, driver.run_id) == 0
    await asyncio.sleep(PAST_VISIBILITY)
    assert await nothing_waiting(queues[0], "a")
    if kind == "events":
        return

    # A dead-lettered task fails its node for good, through the event bus.
    received = await drain(backend.events, 1, consumer="orchestrator")
    [failure] = [d.message for d in received]
    assert isinstance(failure, NodeFailed)
    assert (failure.run_id, failure.node_id, failure.attempt) == (driver.run_id, "a", 1)
    assert (failure.error_type, failure.retryable) == (DEAD_LETTERED, False)
    assert dead in failure.message
    assert abs(failure.at - time.time()) < 60

    commands = await driver.apply_received(received)
    assert commands[-1:] == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert run.node("a").status is NodeStatus.FAILED
    assert run.node("a").error is not None
    assert run.node("a").error.type == DEAD_LETTERED
    assert run.node("b").status is NodeStatus.SKIPPED


@pytest.mark.contract_skip(memory=ONE_PROCESS)
@pytest.mark.contract_settings(visibility_timeout_seconds=VISIBILITY, max_deliveries=5)
async def test_a_message_reclaimed_before_comes_back_alone_and_marked_suspect(
    backend: Backend, kind: str
) -> None:
    if kind == "events" and backend.is_redis:
        pytest.skip(
            "events are shared out by shard leases, so five consumers cannot take turns on one shard "
            "within a lease; a worker pool's tasks can (events' leases: test_contract_leases.py)"
        )
    run_id = new_id("run")
    first, second, third = messages(kind, run_id, 3)
    await backend.queue(kind).send([first, second])
    fresh = [(await backend.connect()).queue(kind) for _ in range(5)]
    assert {d.message for d in await drain(fresh[0], 2, consumer="a")} == {first, second}
    await asyncio.sleep(PAST_VISIBILITY)
    taken_back = await drain(fresh[1], 2, consumer="b")  # a went quiet once: not suspect yet
    assert {d.message for d in taken_back} == {first, second}
    assert not any(d.suspect for d in taken_back)
    await backend.queue(kind).send([third])
    assert [d.message for d in await drain(fresh[2], 1, consumer="c")] == [third]
    await asyncio.sleep(PAST_VISIBILITY)

    # b went quiet too. What is reclaimed for the first time goes first, in a batch as before...
    [once] = await fresh[3].receive("d", 10, 0.05)
    assert (once.message, once.suspect) == (third, False)
    # ...then each suspect alone, whatever the room asked for, one per receive.
    alone = [await fresh[4].receive("e", 10, 0.05) for _ in range(2)]
    assert [len(batch) for batch in alone] == [1, 1]
    assert {batch[0].message for batch in alone} == {first, second}
    assert all(batch[0].suspect for batch in alone)


@pytest.mark.contract_skip(memory=ONE_PROCESS)
@pytest.mark.contract_settings(visibility_timeout_seconds=VISIBILITY, max_deliveries=1)
async def test_consumers_reclaiming_together_dead_letter_an_exhausted_message_once(
    backend: Backend, kind: str
) -> None:
    run_id = new_id("run")
    sent = messages(kind, run_id, 1)
    await backend.queue(kind).send(sent)
    assert [d.message for d in await drain(backend.queue(kind), 1, consumer="a")] == sent
    await asyncio.sleep(PAST_VISIBILITY)
    queues = [(await backend.connect()).queue(kind) for _ in range(4)]

    # All of them see the entry pending and exhausted at the same moment.
    answers = await asyncio.gather(*(q.receive(f"c{i}", 10, 0.05) for i, q in enumerate(queues)))

    delivered = [d.message for answer in answers for d in answer]
    assert not [message for message in delivered if message in sent]
    dead = await backend.client.xrange(backend.dead_stream(run_id))
    assert len(dead) == 1, dead
    # What settles the dead letter (a task's or a run start's failure) is sent once too.
    later = await backend.events.receive("settlements", 10, 0.05)
    settlements = delivered + [d.message for d in later if d.message.run_id == run_id]
    assert len(settlements) == 1, settlements
    await backend.events.ack([*later, *(d for answer in answers for d in answer)])
    assert await pending_count(backend, kind, run_id) == 0


@pytest.mark.contract_skip(memory=NO_WIRE_FORMAT)
async def test_a_malformed_entry_is_dead_lettered_without_breaking_receive(
    backend: Backend, kind: str
) -> None:
    queue = backend.queue(kind)
    run_id = new_id("run")
    stream, dead = backend.stream(kind, run_id), backend.dead_stream(run_id)
    await queue.receive("c", 10, 0.01)  # the consumer group exists; what follows arrives later
    junk = [
        {"junk": "1"},
        {"r": run_id, "k": "ok", "n": "x", "a": "not a number", "t": "1", "d": "d", "h": "h"},
    ]
    junk_ids = [await backend.client.xadd(stream, fields) for fields in junk]
    sent = messages(kind, run_id, 2)
    await queue.send(sent)

    received = await drain(queue, 2)

    assert [d.message for d in received] == sent
    await queue.ack(received)
    records = await backend.client.xrange(dead)
    assert [entry_id_and_fields[1]["dead.id"] for entry_id_and_fields in records] == junk_ids
    for (_, record), fields in zip(records, junk, strict=True):
        assert {k: record[k] for k in fields} == fields
        assert record["dead.source"] == stream
        assert record["dead.reason"]
    assert await pending_count(backend, kind, run_id) == 0
    assert await nothing_waiting(backend.events, "orchestrator")  # nothing to fail: no task was read


# -- housekeeping ------------------------------------------------------------------------------------


async def test_maintain_keeps_every_undelivered_message(backend: Backend, kind: str) -> None:
    queue = backend.queue(kind)
    sent = messages(kind, new_id("run"), 5)
    await queue.send(sent)
    first = await queue.receive("a", 2, 0.1)
    await queue.ack(first)

    await queue.maintain()
    await (await backend.connect()).queue(kind).maintain()

    rest = await drain(queue, 3, consumer="b")
    assert [d.message for d in first + rest] == sent


def own_queue(backend: Backend, kind: str, prune_idle_seconds: float) -> MessageQueue[Any]:
    """A ``RedisStreamQueue`` on the backend's streams and group, with housekeeping settings of ours."""
    assert backend.keys is not None
    shards = backend.keys.all_shards()
    config = StreamConfig(
        streams=tuple(getattr(shard, kind) for shard in shards),
        dead_letters=tuple(shard.dead for shard in shards),
        group=group(kind),
        visibility_timeout_seconds=VISIBILITY,
        max_deliveries=5,
        prune_idle_consumers_seconds=prune_idle_seconds,
    )
    encode, decode = (encode_task, decode_task) if kind == "tasks" else (encode_event, decode_event)
    keys = backend.keys
    return RedisStreamQueue(
        backend.client,
        backend.settings.redis_location(),
        config,
        encode,
        decode,
        lambda message: keys.shard_of(message.run_id),
    )


@pytest.mark.contract_skip(memory=NO_STREAMS)
@SHORT_VISIBILITY
async def test_maintain_trims_acknowledged_entries_only_and_prunes_idle_consumers_holding_nothing(
    backend: Backend, kind: str
) -> None:
    queue = backend.queue(kind)
    run_id = new_id("run")
    stream = backend.stream(kind, run_id)
    sent = messages(kind, run_id, 6)
    await queue.send(sent)
    entry_ids = [entry_id for entry_id, _ in await backend.client.xrange(stream)]
    assert len(entry_ids) == 6

    # Blocking receives return as soon as entries come: the long wait only matters on a loaded machine.
    by_a = await queue.receive("holder", 3, 2.0)  # entries 1-3
    await queue.ack(by_a[:2])  # entry 3 stays pending
    by_b = await queue.receive("idler", 1, 2.0)  # entry 4
    await queue.ack(by_b)  # entries 5 and 6 are never delivered
    assert [d.message for d in by_a + by_b] == sent[:4]

    await queue.maintain()

    # Entries 1 and 2 (acknowledged, below the oldest pending one) are gone; nothing else is.
    assert await backend.client.xlen(stream) == 4
    assert [entry_id for entry_id, _ in await backend.client.xrange(stream)] == entry_ids[2:]

    # Consumers: with a short idle limit, the one holding nothing goes, the one holding entry 3 stays.
    consumers = {c["name"] for c in await backend.client.xinfo_consumers(stream, group(kind))}
    assert {"holder", "idler"} <= consumers
    await asyncio.sleep(0.2)
    await own_queue(backend, kind, prune_idle_seconds=0.15).maintain()
    consumers = {c["name"]: c["pending"] for c in await backend.client.xinfo_consumers(stream, group(kind))}
    assert "idler" not in consumers
    assert consumers["holder"] == 1
    assert await backend.client.xlen(stream) == 4

    # The pending entry is still reclaimable and the undelivered ones still deliverable.
    await asyncio.sleep(0.1)  # entry 3 has now been idle longer than the visibility timeout
    later = await backend.connect()
    rest = await drain(later.queue(kind), 3, consumer="newcomer")
    assert Counter(repr(d.message) for d in rest) == Counter(map(repr, [sent[2], sent[4], sent[5]]))
    await later.queue(kind).ack(rest)
    await queue.maintain()
    assert await backend.client.xlen(stream) <= 1
    assert await pending_count(backend, kind, run_id) == 0
