"""Reads of the same thing at the same moment share one read (a "single flight").

Both layers cache what changes rarely (a definition by id, the live queues for a second); when
the cache has nothing, every caller that comes before the first read is back would read too. In
the API that is a burst: 500 status answers found the live queues a second old at once and each
read them on a Redis connection of its own, and the pool ran out (a 503 to some of their users).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial


class SharedReads[K, V]:
    """Per key, the read under way; a caller that finds one awaits it instead of reading."""

    def __init__(self) -> None:
        self._under_way: dict[K, asyncio.Future[V]] = {}

    async def read(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """``load()``'s value, from the read under way for ``key`` if there is one. Its error
        reaches every caller that awaited it; the next caller reads again. A caller cancelled (its
        client left) does not cancel the read the others await."""
        under_way = self._under_way.get(key)
        if under_way is None:
            under_way = self._under_way[key] = asyncio.ensure_future(load())
            under_way.add_done_callback(partial(self._done, key))
        return await asyncio.shield(under_way)

    def _done(self, key: K, read: asyncio.Future[V]) -> None:
        del self._under_way[key]
        if not read.cancelled():
            read.exception()  # seen: its callers may all have gone (they got it otherwise)
