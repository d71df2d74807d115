"""Merge the Redis calls that concurrent tasks make in the same loop iteration into one pipeline.

A worker finishing 16 attempts at once reports 16 results; sent one by one that is 16 round trips,
coalesced it is one. Nothing waits longer than the current loop iteration, unless ``MAX_IN_FLIGHT``
pipelines are out already (a process far behind, or Redis slow to answer): then the calls wait for
one of them to come back and leave together in the next. Each pipeline holds a connection of the
client's pool until its replies are in; without the bound, a busy API (500 requests waiting on
runs, each loop iteration sending a pipeline) took more connections than the pool has, and a
request failed with "Too many connections".
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from redis.asyncio.client import Pipeline

from adapters.redis.connection import Redis, translated_errors

type AddCommands = Callable[[Pipeline], None]

MAX_IN_FLIGHT = 64
"""Pipelines of one client out at once at most (module docstring). Below the pool's 100 connections
(the pub/sub connection, blocking reads and direct calls take some too), and high enough that it
holds nothing back in normal work: calls held back are *sent* later, not only answered later, so a
low bound would hold every write behind pipelines that wait long for their replies (a write that
waits for a replica, ``REDIS_WAIT_REPLICAS``, while none is there: the fault suite's Sentinel
failover left acknowledgements unsent behind them with a bound of 8)."""


class Coalescer:
    """Adapters sharing a client share its coalescer (``for_client``), so a worker's start report
    and input read, made at the same moment, leave in one pipeline."""

    _by_client: ClassVar[weakref.WeakKeyDictionary[Redis, Coalescer]] = weakref.WeakKeyDictionary()

    @classmethod
    def for_client(cls, client: Redis, url: str) -> Coalescer:
        coalescer = cls._by_client.get(client)
        if coalescer is None:
            coalescer = cls._by_client[client] = cls(client, url)
        return coalescer

    def __init__(self, client: Redis, url: str) -> None:
        self._client = client
        self._url = url
        self._waiting: list[tuple[AddCommands, asyncio.Future[list[Any]]]] = []
        self._flush_due = False
        """A flush of ``_waiting`` is scheduled (``call_soon``) and has not begun."""
        self._in_flight = 0
        """Pipelines sent whose replies are not all in."""

    async def run(self, add: AddCommands) -> list[Any]:
        """Queue ``add``'s commands for the next flush; return their replies."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._waiting.append((add, future))
        if not self._flush_due and self._in_flight < MAX_IN_FLIGHT:
            self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # After the callbacks already queued (they may add commands), then eagerly: no extra turn.
        self._flush_due = True
        loop.call_soon(self._begin_flush, loop)

    def _begin_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_due = False
        if self._waiting:
            self._in_flight += 1
            asyncio.Task(self._flush(), loop=loop, eager_start=True)

    async def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            await self._send(batch)
        finally:
            self._in_flight -= 1
            if self._waiting and not self._flush_due:  # calls that came while the bound was reached
                self._schedule(asyncio.get_running_loop())

    async def _send(self, batch: list[tuple[AddCommands, asyncio.Future[list[Any]]]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        spans = []
        for add, _ in batch:
            start = len(pipe)
            add(pipe)
            spans.append((start, len(pipe)))
        try:
            async with translated_errors(self._url):
                replies = await pipe.execute()
        except Exception as error:  # every caller in the batch gets the same (translated) error
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (start, end), (_, future) in zip(spans, batch, strict=True):
            if not future.done():
                future.set_result(replies[start:end])
