"""The orchestrator loop: read events in batches, apply each to its run, carry out the commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from domain.errors import NotFound
from domain.events import DispatchNode, Event, FinishRun, RetryDue, ScheduleRetry
from domain.messages import Task
from domain.ports import Clock, Delivery, EventBus, RunRepository, TaskQueue, TimerStore
from domain.run import Run
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
        tasks: TaskQueue,
        timers: TimerStore,
        clock: Clock,
        batch_size: int,
        on_run_finished: RunFinishedHook | None = None,
        idle_block_seconds: float = 1.0,
    ) -> None:
        self.consumer = consumer
        self._runs = runs
        self._events = events
        self._tasks = tasks
        self._timers = timers
        self._clock = clock
        self._batch_size = batch_size
        self._on_run_finished = on_run_finished
        self._idle_block = idle_block_seconds

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._fire_due_timers()
            deliveries = await self._events.receive(
                self.consumer, self._batch_size, await self._block_seconds()
            )
            if deliveries:
                await self.apply(deliveries)

    async def _block_seconds(self) -> float:
        due_at = await self._timers.next_due_at()
        if due_at is None:
            return self._idle_block
        return max(0.0, min(self._idle_block, due_at - self._clock.now()))

    async def _fire_due_timers(self) -> None:
        due: Sequence[RetryDue] = await self._timers.pop_due(self._clock.now(), self._batch_size)
        if due:
            await self._events.send(due)

    async def apply(self, deliveries: Sequence[Delivery[Event]]) -> None:
        """Apply a batch, save the runs it touched, then dispatch and acknowledge."""
        touched: dict[str, Run] = {}
        tasks: list[Task] = []
        for delivery in deliveries:
            event = delivery.message
            run = touched.get(event.run_id) or await self._load(event.run_id)
            if run is None:
                continue
            touched[run.run_id] = run
            for command in run.handle(event):
                await self._carry_out(run, command, tasks)
        for run in touched.values():
            await self._runs.save(run)
        await self._tasks.send(tasks)
        await self._events.ack(deliveries)

    async def _load(self, run_id: str) -> Run | None:
        try:
            return await self._runs.get(run_id)
        except NotFound:
            log.warning("dropping an event for unknown run %s", run_id)
            return None

    async def _carry_out(self, run: Run, command: object, tasks: list[Task]) -> None:
        if type(command) is DispatchNode:
            handler = run.plan.node(command.node_id).handler
            tasks.append(Task(run.run_id, run.definition_id, command.node_id, command.attempt, handler))
        elif type(command) is ScheduleRetry:
            retry = RetryDue(command.run_id, command.node_id, command.attempt, command.due_at)
            await self._timers.schedule(retry, command.due_at)
        elif type(command) is FinishRun:
            log.info("run %s finished %s", command.run_id, command.status)
            if self._on_run_finished is not None:
                self._on_run_finished(command.run_id, command.status)
