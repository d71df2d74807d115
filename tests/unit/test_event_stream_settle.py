"""An event stream gathers word of changes that left the run going (``event_stream.settle``) and
reads at once on word that may tell an end, on the in-process watch both backends use."""

from __future__ import annotations

import asyncio
import time

from adapters.run_watches import Watch
from domain.statuses import RunStatus
from services.api.event_stream import settle

LONG = 30.0
"""A settle window no test waits out: returning before it proves word ended the wait."""
PROMPTLY = 5.0


async def test_word_of_a_run_going_on_is_gathered_until_the_window_passes() -> None:
    watch = Watch()
    watch.wake(RunStatus.RUNNING)
    began = time.monotonic()
    await settle(watch, 0.2)
    assert time.monotonic() - began >= 0.2


async def test_word_of_an_end_during_the_window_is_read_at_once() -> None:
    watch = Watch()
    watch.wake(RunStatus.RUNNING)
    waiting = asyncio.create_task(settle(watch, LONG))
    for status in (RunStatus.RUNNING, RunStatus.RUNNING):  # more steps of the run: still gathered
        watch.wake(status)
        await asyncio.sleep(0.01)
        assert not waiting.done()
    watch.wake(RunStatus.COMPLETED)
    await asyncio.wait_for(waiting, PROMPTLY)


async def test_word_that_may_tell_an_end_is_not_held_at_all() -> None:
    for told in (RunStatus.FAILED, RunStatus.CANCELLED, None):
        watch = Watch()
        watch.wake(told)
        await asyncio.wait_for(settle(watch, LONG), PROMPTLY)
