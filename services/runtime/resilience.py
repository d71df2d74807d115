"""Riding out backend outages: retry with capped exponential backoff, log once per outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from domain.errors import BackendError

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 0.05
MAX_DELAY_SECONDS = 2.0


class Stopped(Exception):
    """The process's stop event was set while an operation was waiting out an outage."""


async def retrying[T](
    operation: Callable[[], Awaitable[T]], what: str, stop: asyncio.Event | None = None
) -> T:
    """Run ``operation`` until it succeeds; backend errors are waited out, anything else raises.

    With ``stop``: once it is set, a failing operation is not tried again (``Stopped``), so a
    process asked to stop during an outage does not wait for the backend to come back.
    Only for operations that are safe to repeat (every write this engine makes is).
    """
    delay = FIRST_DELAY_SECONDS
    failing = False
    while True:
        try:
            result = await operation()
        except BackendError as error:
            if not failing:
                log.warning("%s failed, retrying until the backend answers: %s", what, error)
                failing = True
            if stop is None:
                await asyncio.sleep(delay)
            elif await _stopped_within(stop, delay):
                raise Stopped(f"{what}: stopped while the backend did not answer") from error
            delay = min(delay * 2, MAX_DELAY_SECONDS)
            continue
        if failing:
            log.warning("%s works again", what)
        return result


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


async def repeat_until(stop: asyncio.Event, step: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``step`` again and again until ``stop`` is set, riding out backend outages (but not past
    ``stop``: a process that holds nothing exits at once even while the backend is down)."""
    while not stop.is_set():
        try:
            await retrying(step, what, stop)
        except Stopped:
            log.warning("%s: stopping without the backend", what)
            return
