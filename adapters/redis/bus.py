"""The event and task streams of every shard, and the retry timers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.client import Pipeline

from adapters.redis.codec import decode_event, decode_task, encode_event, encode_task, staged_field
from adapters.redis.codec.messages import encode_compact
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import EVENTS_GROUP, TASKS_GROUP, KeySpace
from adapters.redis.leases import ShardLeases
from adapters.redis.scripts import Script, add_call, with_script
from adapters.redis.streams import DeadLetter, RedisStreamQueue, StreamConfig, entry_of
from domain.dead_letters import settle_dead_event, settle_dead_task
from domain.errors import BackendError
from domain.events import Event, NodeSucceeded
from domain.messages import DEFAULT_QUEUE, Task
from domain.ports import Delivery

log = logging.getLogger(__name__)

INLINE_OUTPUT_BYTES = 1024


def _config(keys: KeySpace, kind: str, group: str, visibility: float, deliveries: int) -> StreamConfig:
    shards = keys.all_shards()
    streams = tuple(getattr(shard, kind) for shard in shards)
    return StreamConfig(streams, tuple(s.dead for s in shards), group, visibility, deliveries, kind=kind)


class RedisEventBus(RedisStreamQueue[Event]):
    """Events. A success's output travels in its entry when small; a larger one is staged in the
    run's state first and the entry refers to it (ARCHITECTURE.md: large outputs stay out of
    streams). Orchestrators share the shards out through ``leases``: each reads (and reclaims from)
    the event streams of the shards it holds."""

    def __init__(
        self,
        client: Redis,
        url: str,
        keys: KeySpace,
        visibility: float,
        deliveries: int,
        now: Callable[[], float],
    ) -> None:
        super().__init__(
            client,
            url,
            _config(keys, "events", EVENTS_GROUP, visibility, deliveries),
            encode_event,
            decode_event,
            lambda event: keys.shard_of(event.run_id),
            self._settle,
        )
        self._keys = keys
        self._now = now
        self.leases = ShardLeases(client, url, keys, visibility)

    async def _streams_to_read(self, consumer: str) -> list[str]:
        if await self.leases.renew(consumer):
            # Shards just taken: what their last holder left pending has been idle since it
            # stopped renewing (a lease lasts a visibility timeout), so reclaim it now.
            self._next_reclaim = 0.0
        return [self._config.streams[shard] for shard in self.leases.held]

    def _longest_block(self) -> float:
        return max(self.leases.seconds_to_renewal(), 0.01)

    async def close(self) -> None:
        """Give the leases back (a graceful stop): the other orchestrators take the shards at once.
        Without Redis they lapse by themselves."""
        await super().close()
        try:
            await self.leases.release()
        except BackendError as error:
            log.warning("leases not given back (they lapse by themselves): %s", error)

    async def _settle(self, dead: DeadLetter[Event]) -> None:
        """An event no orchestrator could apply is settled by the one the domain names, so its run
        still ends (``domain.dead_letters``)."""
        if dead.message is None:
            return  # not an event: nothing of a run to settle
        settled = settle_dead_event(dead.message, _reason(dead), self._now())
        if settled is not None:
            await self.send([settled])

    def _add_send(self, pipe: Pipeline, message: Event) -> None:
        if type(message) is not NodeSucceeded:
            super()._add_send(pipe, message)
            return
        text = encode_compact(message.output)
        fields = encode_event(message)
        if len(text) <= INLINE_OUTPUT_BYTES:
            fields["o"] = text  # small: travels in the entry, no extra write and read
        else:
            staged = self._keys.run(message.run_id).staged
            pipe.hset(staged, staged_field(message.node_id, message.attempt), text)
        pipe.xadd(self._config.streams[self._keys.shard_of(message.run_id)], fields)  # type: ignore[arg-type]


def _task_config(keys: KeySpace, queues: Sequence[str], visibility: float, deliveries: int) -> StreamConfig:
    """One stream per (shard, queue): stream ``shard * len(queues) + q`` is queue ``q`` of ``shard``."""
    shards = keys.all_shards()
    streams = tuple(shard.tasks_of(queue) for shard in shards for queue in queues)
    dead = tuple(shard.dead for shard in shards for _ in queues)
    return StreamConfig(streams, dead, TASKS_GROUP, visibility, deliveries, kind="tasks")


class RedisTaskQueue(RedisStreamQueue[Task]):
    """Tasks, written by the commit of the transition that dispatched them, to the stream of their
    shard and queue (``ShardKeys.tasks_of``); a dead-lettered task fails its attempt for good.

    ``queues``: the queues this consumer receives from (a worker's ``--queues``); a task is sent to
    its own queue's stream whatever they are."""

    def __init__(
        self,
        client: Redis,
        url: str,
        keys: KeySpace,
        visibility: float,
        deliveries: int,
        events: RedisEventBus,
        now: Callable[[], float],
        queues: Sequence[str] = (DEFAULT_QUEUE,),
    ) -> None:
        self.queues = tuple(dict.fromkeys(queues))
        super().__init__(
            client,
            url,
            _task_config(keys, self.queues, visibility, deliveries),
            encode_task,
            decode_task,
            lambda task: keys.shard_of(task.run_id),
            self._fail_node,
        )
        self._keys = keys
        self._visibility = visibility
        self._deliveries = deliveries
        self._events = events
        self._now = now
        self._serving: list[RedisTaskQueue] = []

    def serving(self, queues: Sequence[str]) -> RedisTaskQueue:
        """The same streams, received from for ``queues`` only (a worker of those pools); closed
        with this one."""
        queue = RedisTaskQueue(
            self._client,
            self._url,
            self._keys,
            self._visibility,
            self._deliveries,
            self._events,
            self._now,
            queues,
        )
        self._serving.append(queue)
        return queue

    async def close(self) -> None:
        for queue in self._serving:
            await queue.close()
        await super().close()

    def _add_send(self, pipe: Pipeline, message: Task) -> None:
        pipe.xadd(self._keys.shard_for_run(message.run_id).tasks_of(message.queue), encode_task(message))  # type: ignore[arg-type]

    async def requeue(self, deliveries: Sequence[Delivery[Task]]) -> None:
        """Each task added again at the end of its stream and its entry acknowledged, in one
        transaction per stream (same shard, same hash tag): another consumer of the group gets it,
        and a crash cannot lose it or keep both."""
        if not deliveries:
            return
        by_stream: dict[str, list[Delivery[Task]]] = {}
        for delivery in deliveries:
            by_stream.setdefault(self._config.streams[entry_of(delivery.receipt)[0]], []).append(delivery)
        async with translated_errors(self._url):
            for stream, held in by_stream.items():
                pipe = self._client.pipeline(transaction=True)
                for delivery in held:
                    pipe.xadd(stream, encode_task(delivery.message))  # type: ignore[arg-type]
                    pipe.xack(stream, TASKS_GROUP, entry_of(delivery.receipt)[1])
                await pipe.execute()

    async def _fail_node(self, dead: DeadLetter[Task]) -> None:
        if dead.message is not None:
            await self._events.send([settle_dead_task(dead.message, _reason(dead), self._now())])


def _reason(dead: DeadLetter[Any]) -> str:
    return f"{dead.reason}; moved to the dead-letter stream {dead.stream} (entry {dead.entry_id})"


class RedisTimerStore:
    """``domain.ports.TimerStore``: one sorted set per shard (members written by the commit of the
    transition that set them), fired onto the event stream by an atomic script."""

    def __init__(self, client: Redis, url: str, keys: KeySpace) -> None:
        self._client = client
        self._url = url
        self._shards = keys.all_shards()
        self._fire = Script("fire_timers")

    async def fire_due(self, now: float, max_count: int) -> float | None:
        """One round trip for every shard; each shard moves at most ``max_count`` timers."""

        async def fire(sha: str) -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for shard in self._shards:
                add_call(pipe, sha, (shard.timers, shard.events), (repr(now), str(max_count)))
            return list(await pipe.execute())

        async with translated_errors(self._url):
            replies = await with_script(self._client, self._fire, fire)
        due = [float(next_due) for _, next_due in replies if next_due]
        return min(due) if due else None

    async def next_due_at(self) -> float | None:
        async with translated_errors(self._url):
            pipe = self._client.pipeline(transaction=False)
            for shard in self._shards:
                pipe.zrange(shard.timers, 0, 0, withscores=True)
            results = await pipe.execute()
        due = [entries[0][1] for entries in results if entries]
        return min(due) if due else None
