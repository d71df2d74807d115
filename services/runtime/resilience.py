"""Riding out backend outages: retry with capped exponential backoff, log once per outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from domain.errors import BackendError

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 0.05
MAX_DELAY_SECONDS = 2.0


async def retrying[T](operation: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``operation`` until it succeeds; backend errors are waited out, anything else raises.

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
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
            continue
        if failing:
            log.warning("%s works again", what)
        return result


async def repeat_until(stop: asyncio.Event, step: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``step`` again and again until ``stop`` is set, riding out backend outages."""
    while not stop.is_set():
        await retrying(step, what)
