"""Heartbeats from handlers: ``ctx.heartbeat(details)`` says the attempt is alive, with its progress.

The worker reports at most one ``HeartbeatReceived`` per attempt per interval
(``HEARTBEAT_INTERVAL_SECONDS``, or a third of the node's ``heartbeat_timeout_seconds`` when that
is shorter, so that a report lands well within the timeout): the first beat of a quiet attempt goes
at once, the beats that follow within the interval are folded into one report at its end, carrying
the latest time and the latest details given (a beat without details does not erase them).

A call costs a size check of its details and a few attribute writes; only the first call of an
interval schedules the report (thread-safe, from a sync handler's thread too). An attempt that
never beats costs nothing: its state is made at its first beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from domain.events import Event, HeartbeatReceived
from domain.ports import Clock, EventBus
from services.runtime.resilience import Stopped, retrying

if TYPE_CHECKING:
    from services.worker.registry import HandlerContext

log = logging.getLogger(__name__)

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class HeartbeatDetailsRefused(ValueError):
    """The details given to ``ctx.heartbeat`` are not JSON or over the size limit."""


@dataclasses.dataclass(slots=True)
class _AttemptBeats:
    """The heartbeat state of one attempt (made at its first beat; it names the attempt rather than
    holding its context, which holds it: no reference cycle for the collector)."""

    key: tuple[str, str, int]
    """(run id, node id, attempt)."""
    started_at: float | None
    interval: float
    at: float = 0.0
    """The time of the latest beat."""
    details: str | None = None
    """The latest details given since the last report (encoded: a snapshot the handler cannot
    change afterwards)."""
    scheduled: bool = False
    last_sent: float = float("-inf")
    """The loop's time of the last report."""
    handle: asyncio.TimerHandle | None = None
    ended: bool = False


class HeartbeatReporter:
    def __init__(
        self,
        *,
        events: EventBus,
        clock: Clock,
        worker_id: str,
        interval_seconds: float,
        max_details_bytes: int,
        redact: Callable[[str], str] = str,
    ) -> None:
        self._redact = redact
        """Hides the values of secrets in the details (their JSON text)."""
        self._events = events
        self._clock = clock
        self._worker_id = worker_id
        self._interval = interval_seconds
        self._max_bytes = max_details_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._outbox: dict[tuple[str, str, int], HeartbeatReceived] = {}
        self._sender: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    def start(self, stop: asyncio.Event) -> None:
        """Called on the worker's loop before any attempt runs."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop = stop

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    def interval_for(self, heartbeat_timeout_seconds: float | None) -> float:
        if heartbeat_timeout_seconds is None:
            return self._interval
        return min(self._interval, heartbeat_timeout_seconds / 3)

    def beat(self, context: HandlerContext, details: Any) -> None:
        """``ctx.heartbeat``: from the loop (async handler) or a handler's thread."""
        encoded = None if details is None else self._checked(details)
        state = context.beats
        if state is None:
            interval = self.interval_for(context.heartbeat_timeout_seconds)
            key = (context.run_id, context.node_id, context.attempt)
            state = context.beats = _AttemptBeats(key, context.started_at, interval)
        state.at = self._clock.now()
        if encoded is not None:
            state.details = encoded
        if state.scheduled or state.ended or self._loop is None:
            return
        state.scheduled = True
        if threading.get_ident() == self._loop_thread:
            self._schedule(state)
        else:
            self._loop.call_soon_threadsafe(self._schedule, state)

    def end(self, context: HandlerContext) -> None:
        """The attempt ended: no report of it is sent any more (its result says more)."""
        state = context.beats
        if state is not None:
            state.ended = True
            if state.handle is not None:
                state.handle.cancel()

    def _checked(self, details: Any) -> str:
        try:
            encoded = _encode(details)
        except (TypeError, ValueError) as error:
            raise HeartbeatDetailsRefused(f"heartbeat details must be JSON: {error}") from None
        size = len(encoded.encode())
        if size > self._max_bytes:
            raise HeartbeatDetailsRefused(
                f"heartbeat details are {size} bytes, over the limit of {self._max_bytes} "
                "(MAX_HEARTBEAT_DETAILS_BYTES)"
            )
        return self._redact(encoded)

    def _schedule(self, state: _AttemptBeats) -> None:
        assert self._loop is not None
        if state.ended:
            return
        wait = state.last_sent + state.interval - self._loop.time()
        if wait <= 0:
            self._report(state)
        else:
            state.handle = self._loop.call_later(wait, self._report, state)

    def _report(self, state: _AttemptBeats) -> None:
        assert self._loop is not None
        state.scheduled = False
        state.handle = None
        if state.ended:
            return
        state.last_sent = self._loop.time()
        details, state.details = state.details, None
        key = state.key
        run_id, node_id, attempt = key
        beat = HeartbeatReceived(
            run_id,
            node_id,
            attempt,
            state.at,
            self._worker_id,
            state.started_at,
            None if details is None else json.loads(details),
        )
        unsent = self._outbox.get(key)
        if unsent is not None and beat.details is None:  # still waiting for the backend: merged
            beat = dataclasses.replace(beat, details=unsent.details)
        self._outbox[key] = beat
        if self._sender is None or self._sender.done():
            self._sender = self._loop.create_task(self._send())

    async def _send(self) -> None:
        """Send what is waiting, in one call per batch; retried while the backend is down (the
        reports of an attempt that wait are folded into one)."""
        while self._outbox:
            batch: list[Event] = list(self._outbox.values())
            self._outbox.clear()
            try:
                await retrying(partial(self._events.send, batch), "reporting heartbeats", self._stop)
            except Stopped:
                return  # stopping: the attempts' results (or their redelivery) say the rest
