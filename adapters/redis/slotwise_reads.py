"""Blocking reads of several streams where one call may read only one slot (Redis Cluster).

On one server a consumer blocks on every stream it reads in one XREADGROUP. A cluster refuses a
call whose keys lie in different slots (CROSSSLOT), even on one node, and each shard's streams
have their own hash tag. So each stream gets its own blocking read on its own connection, and a
receive returns as soon as any of them has entries. A read that is still waiting when the receive
returns is kept, not cancelled (cancelling would drop its connection, and entries it was being
handed would stay pending until reclaimed): the next receive takes up where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

type Reply = list[tuple[str, list[Any]]]
type ReadOne = Callable[[str, int, int], Coroutine[Any, Any, Reply]]


class SlotwiseReads:
    def __init__(self, read_one: ReadOne) -> None:
        """``read_one(stream, count, block_ms)``: one XREADGROUP of one stream."""
        self._read_one = read_one
        self._waiting: dict[str, asyncio.Task[Reply]] = {}

    async def read(self, streams: list[str], count: int, block_ms: int) -> Reply:
        """What the reads of ``streams`` bring within ``block_ms``, as XREADGROUP replies. A read
        kept from before may have begun for a stream no longer asked for: its entries are returned
        too (they were handed to this consumer and must be handled or reclaimed)."""
        for stream in streams:
            if stream not in self._waiting:
                self._waiting[stream] = asyncio.create_task(self._read_one(stream, count, block_ms))
        await asyncio.wait(
            self._waiting.values(), timeout=block_ms / 1000, return_when=asyncio.FIRST_COMPLETED
        )
        reply: Reply = []
        failure: BaseException | None = None
        for stream, task in list(self._waiting.items()):
            if not task.done():
                continue
            del self._waiting[stream]
            error = task.exception()
            if error is not None:
                failure = error
                continue
            reply += task.result() or []
        if failure is not None and not reply:
            raise failure
        return reply

    async def close(self) -> None:
        waiting, self._waiting = list(self._waiting.values()), {}
        for task in waiting:
            task.cancel()
        for task in waiting:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
