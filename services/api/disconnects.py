"""A waiting request ends when its client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from starlette.types import Receive

log = logging.getLogger(__name__)


async def unless_client_leaves[T](receive: Receive, work: Coroutine[Any, Any, T]) -> T | None:
    """``work``'s result, or None when the client disconnects first (``work`` is then cancelled): a
    request waiting for a run must not hold its watch for a client that has gone. Only for a
    request whose body has been read (or that has none): this reads the rest of what it receives."""
    waiting = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait((waiting, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (gone, waiting):
            if not task.done():
                task.cancel()
    if not waiting.done() or waiting.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            await waiting  # its watch is released before the request ends
        log.debug("client left while its request waited")
        return None
    return waiting.result()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
