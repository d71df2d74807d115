"""A client that leaves an event stream early is not an error; a waiting request ends when its
client leaves.

FastAPI's Server-Sent Events response feeds the stream through anyio memory streams; when the
client goes away while an event is being handed over, the hand-over fails with
``anyio.BrokenResourceError`` (in a task group's exception group) after the response has begun.
Nothing is wrong then: the client left. This middleware, innermost, ends such a request quietly
(a DEBUG line); any other error, or one before the response began, goes on as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_CLIENT_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError)


def _only_client_gone(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return all(_only_client_gone(inner) for inner in error.exceptions)
    return isinstance(error, _CLIENT_GONE)


class ClientDisconnects:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch_start)
        except BaseException as error:
            if not (started and _only_client_gone(error)):
                raise
            log.debug("client left %s %s before its response ended", scope.get("method"), scope.get("path"))


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
