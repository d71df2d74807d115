"""The event and task streams of every shard, and the retry timers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import Pipeline

from adapters.redis.codec import decode_event, decode_task, encode_event, encode_task
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from adapters.redis.scripts import Script, with_script
from adapters.redis.streams import DeadLetter, RedisStreamQueue, StreamConfig
from domain.events import (
    AttemptTimedOut,
    Event,
    EventDeadLettered,
    NodeFailed,
    NodeSucceeded,
    RetryDue,
    RunStarted,
)
from domain.messages import Task
from domain.run import DEAD_LETTERED

EVENTS_GROUP, TASKS_GROUP = "orchestrators", "workers"
INLINE_OUTPUT_BYTES = 1024


def _config(keys: KeySpace, kind: str, group: str, visibility: float, deliveries: int) -> StreamConfig:
    shards = keys.all_shards()
    streams = tuple(getattr(shard, kind) for shard in shards)
    return StreamConfig(streams, tuple(s.dead for s in shards), group, visibility, deliveries)


class RedisEventBus(RedisStreamQueue[Event]):
    """Events. A success's output travels in its entry when small; a larger one is staged in the
    run's state first and the entry refers to it (ARCHITECTURE.md: large outputs stay out of
    streams)."""

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

    async def _settle(self, dead: DeadLetter[Event]) -> None:
        """An event that no orchestrator could apply is settled by one that ends what it left open,
        so the run still ends: a result fails its attempt for good, a start fails the run, a retry
        fails its node. Stale once applied (the orchestrators died after applying it), that changes
        nothing. The settling events themselves are not settled again, so nothing loops; a node's
        start report needs nothing, and a cancel is left undone (the run ends by itself)."""
        event = dead.message
        what = f"event {type(event).__name__}"
        settled: Event
        match event:
            case NodeSucceeded() | AttemptTimedOut() | NodeFailed() if not _settles(event):
                settled = _dead_lettered(what, dead, event.run_id, event.node_id, event.attempt, self._now())
            case RunStarted():
                settled = EventDeadLettered(event.run_id, None, 0, _reason(what, dead), self._now())
            case RetryDue():
                reason = _reason(what, dead)
                settled = EventDeadLettered(event.run_id, event.node_id, event.attempt, reason, self._now())
            case _:
                return
        await self.send([settled])

    def _add_send(self, pipe: Pipeline, message: Event) -> None:
        if type(message) is not NodeSucceeded:
            super()._add_send(pipe, message)
            return
        text = json.dumps(message.output, separators=(",", ":"))
        fields = encode_event(message)
        if len(text) <= INLINE_OUTPUT_BYTES:
            fields["o"] = text  # small: travels in the entry, no extra write and read
        else:
            staged = self._keys.run(message.run_id).staged
            pipe.hset(staged, f"{message.node_id}\n{message.attempt}", text)
        pipe.xadd(self._config.streams[self._keys.shard_of(message.run_id)], fields)  # type: ignore[arg-type]


class RedisTaskQueue(RedisStreamQueue[Task]):
    """Tasks, written by the transition script; a dead-lettered task fails its node for good."""

    def __init__(
        self,
        client: Redis,
        url: str,
        keys: KeySpace,
        visibility: float,
        deliveries: int,
        events: RedisEventBus,
        now: Callable[[], float],
    ) -> None:
        super().__init__(
            client,
            url,
            _config(keys, "tasks", TASKS_GROUP, visibility, deliveries),
            encode_task,
            decode_task,
            lambda task: keys.shard_of(task.run_id),
            self._fail_node,
        )
        self._events = events
        self._now = now

    async def _fail_node(self, dead: DeadLetter[Task]) -> None:
        task = dead.message
        if task is None:
            return
        await self._events.send(
            [_dead_lettered("task", dead, task.run_id, task.node_id, task.attempt, self._now())]
        )


def _settles(event: Event) -> bool:
    """Whether ``event`` is itself the settlement of a dead letter."""
    return isinstance(event, NodeFailed) and event.error_type == DEAD_LETTERED


def _reason(what: str, dead: DeadLetter[Any]) -> str:
    return f"{what} {dead.reason}; moved to the dead-letter stream {dead.stream} (entry {dead.entry_id})"


def _dead_lettered(
    what: str, dead: DeadLetter[Any], run_id: str, node_id: str, attempt: int, at: float
) -> NodeFailed:
    """The final failure of an attempt whose ``what`` (its task or its result) was dead-lettered."""
    return NodeFailed(run_id, node_id, attempt, DEAD_LETTERED, _reason(what, dead), at, retryable=False)


class RedisTimerStore:
    """``domain.ports.TimerStore``: one sorted set per shard, fired by an atomic script."""

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
                pipe.evalsha(sha, 2, shard.timers, shard.events, repr(now), str(max_count))
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
