"""Waiting for a run without polling it: readers are woken by the store's word of each change
(``domain.ports.RunChanges``) and re-read the run only then, or every ``recheck_seconds`` in case
word was lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from domain.errors import BackendUnavailable
from domain.ports import RunChanges, RunWatch
from domain.statuses import RunStatus

RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.05, 1.0
"""Between reads of a run that failed because the store was unreachable, during a wait."""
MAX_WAIT_SECONDS = 60.0
"""The longest a status request may wait (``?wait=``): longer holds a connection past the idle
timeouts of common proxies; a client that wants more asks again."""


class _Silent:
    async def changed(self, within: float) -> bool:
        await asyncio.sleep(max(within, 0.0))
        return False

    def told_status(self) -> RunStatus | None:
        return None


class NoWord:
    """``RunChanges`` of a store that gives no word: readers re-read at the re-check only."""

    def watch(self, run_id: str) -> AbstractAsyncContextManager[RunWatch]:
        return self._watch()

    @asynccontextmanager
    async def _watch(self) -> AsyncIterator[RunWatch]:
        yield _Silent()

    def watch_count(self) -> int:
        return 0


async def status_when_final(
    changes: RunChanges,
    run_id: str,
    read: Callable[[], Awaitable[RunStatus]],
    wait_seconds: float,
    recheck_seconds: float,
) -> RunStatus:
    """The run's status read by ``read`` (a small read: ``RunRepository.status``) as soon as it is
    final, or as it is once ``wait_seconds`` passed (at once for 0). The watch begins before the
    first read, so no change slips between them. Word of a change that left the run going costs
    nothing; other word costs one small read, not a read of the whole run."""
    if wait_seconds <= 0:
        return await read()
    deadline = time.monotonic() + wait_seconds
    async with changes.watch(run_id) as watch:
        status = await read()
        while not status.is_final:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            woken = await watch.changed(min(left, recheck_seconds))
            told = watch.told_status() if woken else None
            if told is not None and not told.is_final:
                # Word of a commit that left the run going: nothing to read. Word of an end is
                # read to be sure: it may be older than the watch (a run redriven since).
                status = told
                continue
            status = await _read_again(read, deadline)
    return status


async def _read_again(read: Callable[[], Awaitable[RunStatus]], deadline: float) -> RunStatus:
    """``read()``; while the store is unreachable (it restarted under the wait: the first call on
    each of its old connections fails) it is tried again until the deadline, then the error goes
    to the caller (a 503 for a status request)."""
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return await read()
        except BackendUnavailable:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, RETRY_MAX_SECONDS)
