"""Cancellation of running attempts: the worker asks its ``AttemptSignals`` which of the attempts it
holds were told to stop, and stops them.

An async handler's task is cancelled; a sync handler sees ``ctx.cancelled`` set (a
``threading.Event`` it polls). A handler that has not ended ``grace_seconds`` later is abandoned:
its slot is freed, and whatever it returns later is dropped (the run ended: its result would be
stale anyway).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable
from functools import partial
from typing import Any

from domain.ports import AttemptRef, AttemptSignals
from services.runtime.resilience import retrying

log = logging.getLogger(__name__)


class AttemptCancelled(Exception):
    """The attempt was cancelled (its run ended without it): no result is reported."""


class CancelWatch:
    def __init__(self, signals: AttemptSignals | None, poll_seconds: float, grace_seconds: float) -> None:
        self._signals = signals
        self._poll = poll_seconds
        self._grace = grace_seconds
        self._live: dict[AttemptRef, asyncio.Event] = {}

    async def watch(self) -> None:
        """Forever: every ``poll_seconds``, ask which attempts held were cancelled."""
        signals = self._signals
        if signals is None:
            return
        while True:
            await asyncio.sleep(self._poll)
            if not self._live:
                continue
            asked = partial(signals.cancelled, list(self._live))
            for attempt in await retrying(asked, "asking for cancels"):
                told = self._live.get(attempt)
                if told is not None:
                    told.set()

    async def run(
        self, attempt: AttemptRef, call: Awaitable[object], flag: threading.Event, in_thread: bool
    ) -> object:
        """Await the handler ``call``; raises ``AttemptCancelled`` when the attempt is cancelled
        (``flag``: the context's event, set for the handler to see; ``in_thread``: ``call`` is a
        sync handler's thread, which only ``flag`` can stop: cancelling its future would free the
        slot while the thread runs on)."""
        if asyncio.iscoroutine(call):
            # Eager: a handler that never waits (most quick ones) is done here, and costs no
            # watching at all.
            loop = asyncio.get_running_loop()
            handler: asyncio.Future[Any] = asyncio.Task(call, loop=loop, eager_start=True)
            if handler.done():
                return handler.result()
        else:
            handler = asyncio.ensure_future(call)
        told = self._live[attempt] = asyncio.Event()
        waiting = asyncio.ensure_future(told.wait())
        try:
            await asyncio.wait({handler, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if handler.done():
                return handler.result()
            started = asyncio.get_running_loop().time()
            flag.set()
            if not in_thread:
                handler.cancel()  # an async handler stops at its next await
            await asyncio.wait({handler}, timeout=self._grace)
            took = asyncio.get_running_loop().time() - started
            if handler.done():
                log.info("attempt %s cancelled; its handler stopped in %.3fs", attempt, took)
                raise AttemptCancelled("cancelled")
            handler.add_done_callback(_drop_late_result)
            log.warning("attempt %s cancelled; its handler ignored it for %.1fs: abandoned", attempt, took)
            raise AttemptCancelled("abandoned")
        finally:
            self._live.pop(attempt, None)
            waiting.cancel()
            if not handler.done():  # the attempt's own deadline (or the worker stopping)
                flag.set()
                if not in_thread:
                    handler.cancel()


def _drop_late_result(handler: asyncio.Future[object]) -> None:
    if not handler.cancelled() and handler.exception() is not None:
        log.info("an abandoned handler ended late with %r (ignored)", handler.exception())
