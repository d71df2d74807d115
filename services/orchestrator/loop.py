"""The orchestrator loop: read events in batches, have the store apply them, acknowledge.

The run repository applies each event atomically together with its consequences (tasks queued,
retry timers stored), so the orchestrator holds no state of its own and any number can run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from domain.events import Event, FinishRun
from domain.ports import Clock, Delivery, EventBus, RunRepository, TimerStore
from domain.statuses import RunStatus

log = logging.getLogger(__name__)

type RunFinishedHook = Callable[[str, RunStatus], None]


class Orchestrator:
    def __init__(
        self,
        *,
        consumer: str,
        runs: RunRepository,
        events: EventBus,
        timers: TimerStore,
        clock: Clock,
        batch_size: int,
        on_run_finished: RunFinishedHook | None = None,
        idle_block_seconds: float = 1.0,
    ) -> None:
        self.consumer = consumer
        self._runs = runs
        self._events = events
        self._timers = timers
        self._clock = clock
        self._batch_size = batch_size
        self._on_run_finished = on_run_finished
        self._idle_block = idle_block_seconds

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._timers.fire_due(self._clock.now(), self._batch_size)
            deliveries = await self._events.receive(
                self.consumer, self._batch_size, await self._block_seconds()
            )
            if deliveries:
                await self.apply(deliveries)

    async def _block_seconds(self) -> float:
        """Wait for events no longer than until the next retry is due."""
        due_at = await self._timers.next_due_at()
        if due_at is None:
            return self._idle_block
        return max(0.0, min(self._idle_block, due_at - self._clock.now()))

    async def apply(self, deliveries: Sequence[Delivery[Event]]) -> None:
        """Apply a batch, then acknowledge it: a crash in between only causes harmless repeats."""
        commands = await self._runs.apply([delivery.message for delivery in deliveries])
        for command in commands:
            if type(command) is FinishRun:
                log.info("run %s finished %s", command.run_id, command.status)
                if self._on_run_finished is not None:
                    self._on_run_finished(command.run_id, command.status)
        await self._events.ack(deliveries)
