"""The worker's heartbeat reporter: many beats fold into one report per interval, the latest details
win (a beat without details keeps them), beats from a handler's thread count too, and nothing is
reported after the attempt ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from domain.events import Event, HeartbeatReceived
from services.worker.heartbeats import HeartbeatReporter
from services.worker.registry import AttemptCancelledError, HandlerContext

INTERVAL = 0.2


class RecordingBus:
    """An ``EventBus`` that keeps what is sent (only ``send`` is used by the reporter)."""

    def __init__(self) -> None:
        self.sent: list[Event] = []

    async def send(self, messages: Sequence[Event]) -> None:
        self.sent.extend(messages)


class WallClock:
    def now(self) -> float:
        return time.time()


def reporter(bus: RecordingBus) -> HeartbeatReporter:
    return HeartbeatReporter(
        events=bus,  # type: ignore[arg-type]
        clock=WallClock(),
        worker_id="w1",
        interval_seconds=INTERVAL,
        max_details_bytes=100,
    )


def context(beats: HeartbeatReporter, heartbeat_timeout: float | None = None) -> HandlerContext:
    return HandlerContext(
        run_id="r",
        node_id="n",
        attempt=1,
        config={},
        inputs={},
        run_input={},
        idempotency_key="r:n:1",
        started_at=1.0,
        heartbeat_timeout_seconds=heartbeat_timeout,
        heartbeats=beats,
    )


async def until(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def beats_of(bus: RecordingBus) -> list[HeartbeatReceived]:
    assert all(isinstance(event, HeartbeatReceived) for event in bus.sent)
    return bus.sent  # type: ignore[return-value]


async def test_beats_fold_into_one_report_per_interval_with_the_latest_details() -> None:
    bus = RecordingBus()
    beats = reporter(bus)
    beats.start(asyncio.Event())
    ctx = context(beats)
    await ctx.heartbeat({"done": 0})  # the first beat of a quiet attempt goes at once
    await until(lambda: len(bus.sent) == 1)
    for done in range(1, 50):
        await ctx.heartbeat({"done": done})
    await ctx.heartbeat()  # no details: the latest given still win
    await until(lambda: len(bus.sent) == 2)
    await asyncio.sleep(INTERVAL * 1.5)
    first, second = beats_of(bus)
    assert (first.run_id, first.node_id, first.attempt, first.worker_id, first.started_at) == (
        "r",
        "n",
        1,
        "w1",
        1.0,
    )
    assert (first.details, second.details) == ({"done": 0}, {"done": 49})
    assert second.at >= first.at
    beats.end(ctx)
    await ctx.heartbeat({"done": 50})
    await asyncio.sleep(INTERVAL * 1.5)
    assert len(bus.sent) == 2  # nothing after the attempt's end
    await beats.close()


async def test_beats_from_a_handlers_thread_and_a_short_heartbeat_timeout() -> None:
    bus = RecordingBus()
    beats = reporter(bus)
    beats.start(asyncio.Event())
    ctx = context(beats, heartbeat_timeout=0.3)  # reports every 0.1 s, a third of it

    def handler() -> None:
        for done in range(30):
            ctx.heartbeat({"done": done})
            time.sleep(0.01)

    began = time.monotonic()
    await asyncio.to_thread(handler)
    await asyncio.sleep(0.15)
    took = time.monotonic() - began
    sent = beats_of(bus)
    assert 2 <= len(sent) <= took / 0.1 + 2, (len(sent), took)
    assert sent[-1].details == {"done": 29}
    await beats.close()


async def test_refused_details_and_a_cancelled_attempt() -> None:
    beats = reporter(RecordingBus())
    beats.start(asyncio.Event())
    ctx = context(beats)
    with pytest.raises(ValueError, match=r"heartbeat details are 110 bytes, over the limit of 100"):
        ctx.heartbeat("x" * 108)
    with pytest.raises(ValueError, match="heartbeat details must be JSON"):
        ctx.heartbeat(object())
    ctx.cancelled.set()
    with pytest.raises(AttemptCancelledError, match="r:n:1 was cancelled"):
        ctx.heartbeat()
    await beats.close()
