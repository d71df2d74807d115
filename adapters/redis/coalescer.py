"""Merge the Redis calls that concurrent tasks make in the same loop iteration into one pipeline.

A worker finishing 16 attempts at once reports 16 results; sent one by one that is 16 round trips,
coalesced it is one. Nothing waits longer than the current loop iteration.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from redis.asyncio.client import Pipeline

from adapters.redis.connection import Redis, translated_errors

type AddCommands = Callable[[Pipeline], None]


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

    async def run(self, add: AddCommands) -> list[Any]:
        """Queue ``add``'s commands for the next flush; return their replies."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if not self._waiting:
            # After the callbacks already queued (they may add commands), then eagerly: no extra turn.
            loop.call_soon(lambda: asyncio.Task(self._flush(), loop=loop, eager_start=True))
        self._waiting.append((add, future))
        return await future

    async def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
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
