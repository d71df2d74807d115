"""The built-in ``sleep`` handler: waits ``config.seconds``; a cancelled attempt ends at once."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from services.worker.registry import HandlerContext, NonRetryableError

MAX_SLEEP_SECONDS = 7 * 24 * 3600.0


class SleepConfigError(NonRetryableError):
    """``config.seconds`` is missing or not a number of seconds."""


async def sleep_handler(ctx: HandlerContext) -> dict[str, Any]:
    """Async, so a cancel of the attempt cancels its task and the sleep ends at once (the worker's
    cancel watch, ``services.worker.cancels``), as does the node's ``timeout_seconds``."""
    seconds = ctx.config.get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_SLEEP_SECONDS
    ):
        raise SleepConfigError(
            f"config.seconds must be a number from 0 to {MAX_SLEEP_SECONDS:g}, got {seconds!r}"
        )
    await asyncio.sleep(seconds)
    return {"slept_seconds": seconds}
