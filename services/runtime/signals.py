"""A graceful stop on SIGTERM or SIGINT: the first signal sets the process's stop event; another
one, later than ``DUPLICATE_SIGNAL_WINDOW_SECONDS`` after it, exits at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

log = logging.getLogger(__name__)

DUPLICATE_SIGNAL_WINDOW_SECONDS = 1.0


def stop_on_signals(stop: asyncio.Event) -> None:
    """Install the handlers on the running loop."""
    loop = asyncio.get_running_loop()

    first_at: list[float] = []

    def on_signal(number: int) -> None:
        if first_at:
            # A wrapper such as `uv run` forwards the same signal: only a later one means "now".
            if loop.time() - first_at[0] > DUPLICATE_SIGNAL_WINDOW_SECONDS:
                log.warning("second signal: exiting now")
                os._exit(128 + number)
            return
        first_at.append(loop.time())
        log.warning("signal %s: stopping gracefully", signal.Signals(number).name)
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, on_signal, number)
