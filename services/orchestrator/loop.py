"""The orchestrator loop: read events in batches, have the store apply them, acknowledge.

The run repository applies each event atomically together with its consequences (tasks queued,
retry timers stored), so the orchestrator holds no state of its own and any number can run. A
second loop moves due retry timers onto the event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from functools import partial

from domain.events import (
    CancelAttempts,
    Event,
    FinishRun,
    ScheduleDeadline,
    ScheduleRetry,
    ScheduleRunDeadline,
)
from domain.ports import AttemptSignals, Clock, Delivery, EventBus, RunRepository, TimerStore
from domain.statuses import RunStatus
from services.runtime.faults import crash_point
from services.runtime.logs import run_context
from services.runtime.resilience import repeat_until, retrying

log = logging.getLogger(__name__)

type RunFinishedHook = Callable[[str, RunStatus], None]

MAINTENANCE_INTERVAL_SECONDS = 30.0
TIMER_IDLE_SECONDS = 2.0
"""The longest the timer loop sleeps without a timer it knows of: it is woken at once when this
orchestrator schedules one, so this bounds only how late it sees a timer another orchestrator set."""
_SCHEDULES = (ScheduleRetry, ScheduleDeadline, ScheduleRunDeadline)


class Orchestrator:
    def __init__(
        self,
        *,
        consumer: str,
        runs: RunRepository,
        events: EventBus,
        timers: TimerStore,
        clock: Clock,
        signals: AttemptSignals | None = None,
        batch_size: int,
        on_run_finished: RunFinishedHook | None = None,
        idle_block_seconds: float = 1.0,
    ) -> None:
        self.consumer = consumer
        self._runs = runs
        self._events = events
        self._timers = timers
        self._signals = signals
        self._clock = clock
        self._batch_size = batch_size
        self._on_run_finished = on_run_finished
        self._idle_block = idle_block_seconds
        self._timer_scheduled = asyncio.Event()
        self._next_timer_check = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        helpers = [
            asyncio.create_task(repeat_until(stop, self._fire_timers, "firing retry timers")),
            asyncio.create_task(self._maintain()),
        ]
        try:
            await repeat_until(stop, self._step, f"orchestrator {self.consumer}")
        finally:
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await helper

    async def _step(self) -> None:
        deliveries = await self._events.receive(self.consumer, self._batch_size, self._idle_block)
        if deliveries:
            await self.apply(deliveries)

    async def _fire_timers(self) -> None:
        # Sleep until the earliest timer known, at most TIMER_IDLE_SECONDS (timers another
        # orchestrator sets); ``apply`` wakes this loop when it schedules an earlier one.
        self._timer_scheduled.clear()
        self._next_timer_check = float("inf")  # one scheduled while this reads may be missed by it
        due_at = await self._timers.fire_due(self._clock.now(), self._batch_size)
        wait = TIMER_IDLE_SECONDS if due_at is None else due_at - self._clock.now()
        wait = min(max(wait, 0.0), TIMER_IDLE_SECONDS)
        self._next_timer_check = self._clock.now() + wait
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._timer_scheduled.wait()

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_SECONDS)
            await retrying(self._events.maintain, "event stream housekeeping")

    async def apply(self, deliveries: Sequence[Delivery[Event]]) -> None:
        """Apply a batch; the store acknowledges each event in the same step as its effect, so a
        crash leaves what was not applied pending (another orchestrator takes it over)."""
        crash_point("orchestrator.after_receive_before_apply")
        commands = await self._runs.apply([delivery.message for delivery in deliveries], deliveries)
        for command in commands:
            if isinstance(command, _SCHEDULES) and command.due_at < self._next_timer_check:
                self._timer_scheduled.set()
            elif type(command) is FinishRun:
                with run_context(command.run_id):
                    log.info("run %s finished %s", command.run_id, command.status)
                if self._on_run_finished is not None:
                    self._on_run_finished(command.run_id, command.status)
            elif type(command) is CancelAttempts and self._signals is not None:
                # After the commit: the run has ended either way, and the attempts' late results
                # are stale. Told so the workers stop them now rather than at their deadline.
                await retrying(partial(self._signals.cancel, command.run_id, command.attempts), "cancelling")
