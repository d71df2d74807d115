"""``domain.ports.RunChanges`` on Redis pub/sub.

The commit of a run's transition publishes the run's id and the status it leaves the run in
(``change_word``) on its shard's ``changes`` channel, in the same group of writes as the transition
(``RedisTransitions``), so that a reader waiting for the run's end reads nothing for word of a
change that did not end it. Each process that has readers keeps
*one* subscription to every shard's channel, opened at the first watch, and wakes the watches of
the run named (``adapters.run_watches``): a thousand readers waiting cost Redis nothing more than
one. Pub/sub keeps nothing for a subscriber that is away: when the subscription breaks (Redis
restarted), it is opened again with a growing delay, and once it stands again every watch is woken
so that its reader looks again; the readers' own slow re-check covers what falls between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError

from adapters.redis.connection import Redis, describe
from adapters.redis.keys import KeySpace
from adapters.run_watches import Watch, Watches
from domain.statuses import RunStatus

log = logging.getLogger(__name__)

LISTEN_SECONDS = 1.0
"""The longest one read of the subscription waits (no command is sent: it costs Redis nothing)."""
SUBSCRIBE_WAIT_SECONDS = 2.0
"""How long a new watch waits for the subscription to be confirmed; past that it goes on (its
reader's re-check stands in while Redis is away)."""
RECONNECT_FIRST_SECONDS, RECONNECT_MAX_SECONDS = 0.1, 5.0


def change_word(run_id: str, status: RunStatus) -> str:
    """What a commit publishes: ``<run id> <status>``."""
    return f"{run_id} {status.value}"


def read_change_word(word: str) -> tuple[str, RunStatus | None]:
    """(run id, status) of ``change_word``'s text; a bare run id (as published before the status
    was added to it) tells no status."""
    run_id, space, status = word.rpartition(" ")
    if not space:
        return word, None
    try:
        return run_id, RunStatus(status)
    except ValueError:
        return run_id, None


class RedisRunChanges:
    def __init__(self, client: Redis, keys: KeySpace, url: str) -> None:
        self._client = client
        self._url = url
        self._channels = [shard.changes for shard in keys.all_shards()]
        self._watches = Watches()
        self._subscribed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self.subscriptions = 0
        """How many times the subscription was made (1 + the times it came back after a break)."""

    @asynccontextmanager
    async def watch(self, run_id: str) -> AsyncIterator[Watch]:
        self._listen_in_background()
        if not self._subscribed.is_set():
            # Word published before the subscription stands would be lost: wait for it. The watch
            # is set up after: word reaching the listener from then on reaches it, and its reader
            # reads only once it has it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)
        async with self._watches.watch(run_id) as watch:
            yield watch

    def watch_count(self) -> int:
        return self._watches.watch_count()

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def _listen_in_background(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="run-changes")

    async def _listen(self) -> None:
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                await self._listen_once()
            except (RedisError, OSError) as error:
                log.warning(
                    "lost the subscription to run changes at %s (%s); subscribing again in %.1f s",
                    describe(self._url),
                    error,
                    delay,
                )
            if self._subscribed.is_set():
                delay = RECONNECT_FIRST_SECONDS  # it had worked: a new outage starts over
                self._subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen_once(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(*self._channels)
            confirmed = 0
            while True:
                message = await pubsub.get_message(timeout=LISTEN_SECONDS)
                if message is None:
                    continue
                if message["type"] == "message":
                    self._watches.wake((read_change_word(message["data"]),))
                elif message["type"] == "subscribe":
                    confirmed += 1
                    if confirmed == len(self._channels):
                        self.subscriptions += 1
                        self._subscribed.set()
                        # After a break, what was published meanwhile is lost: every reader looks
                        # again, now that Redis answers (not while it is away, to no avail).
                        self._watches.wake_all()
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        self._subscribed.clear()
