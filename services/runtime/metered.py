"""Ports wrapped to count what passes through them (``services.runtime.metrics``) and, when traces
are on, to record their spans (``services.runtime.tracing``), so that neither the orchestrator's nor
the worker's loop changes: the composition root hands the wrapped ports to a process that serves
metrics or traces, and the others run exactly as before.

Per batch or per message they do a few dictionary and counter operations (no lock of their own,
no I/O).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any

from domain.events import Command, DispatchNode, Event, FinishRun, NodeFailed, NodeSucceeded, ScheduleRetry
from domain.history import HistoryEntry
from domain.messages import Task
from domain.paging import Page
from domain.ports import Delivery, EventBus, RunQuery, RunRepository, RunSnapshot, RunSummary, TaskQueue
from domain.reasons import TIMEOUT_ERROR
from domain.run import Run
from domain.statuses import RunStatus
from services.runtime import metrics, tracing

type AttemptKey = tuple[str, str, int]


class MeteredRuns:
    """A ``RunRepository`` that counts runs created, and per applied batch its size, its time and
    what it decided (dispatches, retries, runs finished)."""

    def __init__(self, runs: RunRepository) -> None:
        self._runs = runs

    async def add(self, run: Run) -> None:
        await self._runs.add(run)
        metrics.RUNS_STARTED.labels(run.plan.name).inc()
        if tracing.enabled():
            tracing.run_created(run.run_id, run.plan.name, run.definition_id, run.created_at)

    async def get(self, run_id: str, *, outputs: bool = True) -> Run:
        return await self._runs.get(run_id, outputs=outputs)

    async def revision(self, run_id: str) -> str:
        return await self._runs.revision(run_id)

    async def status(self, run_id: str) -> RunStatus:
        return await self._runs.status(run_id)

    async def snapshot(self, run_id: str, *, outputs: bool = True) -> RunSnapshot:
        return await self._runs.snapshot(run_id, outputs=outputs)

    async def apply(
        self, events: Sequence[Event], delivered: Sequence[Delivery[Event]] = ()
    ) -> list[Command]:
        started = time.perf_counter()
        commands = await self._runs.apply(events, delivered)
        metrics.APPLY_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(events))
        dispatched = retries = 0
        for command in commands:
            kind = type(command)
            if kind is DispatchNode:
                dispatched += 1
            elif kind is ScheduleRetry:
                retries += 1
            elif kind is FinishRun:
                status = command.status.value  # type: ignore[union-attr]
                metrics.RUNS_FINISHED.labels(command.workflow, status).inc()  # type: ignore[union-attr]
                if tracing.enabled():
                    tracing.run_finished(command.run_id, status)
        if dispatched:
            metrics.NODES_DISPATCHED.inc(dispatched)
        if retries:
            metrics.RETRIES_SCHEDULED.inc(retries)
        return commands

    async def read_data(self, run_id: str, roots: Collection[str]) -> dict[str, Any]:
        return await self._runs.read_data(run_id, roots)

    async def history(self, run_id: str, after: int, limit: int) -> list[tuple[int, HistoryEntry]]:
        return await self._runs.history(run_id, after, limit)

    async def page(self, query: RunQuery) -> Page[RunSummary]:
        return await self._runs.page(query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runs, name)  # anything else an adapter offers (e.g. close)


class AttemptLedger:
    """The handler of every task the workers of this process hold, by (run, node, attempt): results
    name no handler, and their metrics are by handler. Its size is the slots in use."""

    def __init__(self) -> None:
        self.handlers: dict[AttemptKey, str] = {}
        metrics.WORKER_SLOTS_IN_USE.set_function(lambda: len(self.handlers))


class MeteredTasks:
    """The workers' ``TaskQueue``: notes each task received in the ledger, forgets it once acked."""

    def __init__(self, tasks: TaskQueue, ledger: AttemptLedger) -> None:
        self._tasks = tasks
        self._ledger = ledger
        self._handlers = ledger.handlers

    async def send(self, messages: Sequence[Task]) -> None:
        await self._tasks.send(messages)

    async def receive(self, consumer: str, max_count: int, block_seconds: float) -> list[Delivery[Task]]:
        deliveries = await self._tasks.receive(consumer, max_count, block_seconds)
        handlers = self._handlers
        for delivery in deliveries:
            task = delivery.message
            handlers[(task.run_id, task.node_id, task.attempt)] = task.handler
        return deliveries

    async def ack(self, deliveries: Sequence[Delivery[Task]]) -> None:
        await self._tasks.ack(deliveries)
        handlers = self._handlers
        for delivery in deliveries:
            task = delivery.message
            handlers.pop((task.run_id, task.node_id, task.attempt), None)

    async def extend(self, consumer: str, deliveries: Sequence[Delivery[Task]]) -> None:
        await self._tasks.extend(consumer, deliveries)

    async def maintain(self) -> None:
        await self._tasks.maintain()

    def serving(self, queues: Sequence[str]) -> MeteredTasks:
        return MeteredTasks(self._tasks.serving(queues), self._ledger)

    async def requeue(self, deliveries: Sequence[Delivery[Task]]) -> None:
        await self._tasks.requeue(deliveries)
        for delivery in deliveries:
            task = delivery.message
            self._handlers.pop((task.run_id, task.node_id, task.attempt), None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tasks, name)


class MeteredResults:
    """The workers' ``EventBus``: counts each attempt's result by handler and outcome, with its
    duration (from the worker's start of the attempt to its result)."""

    def __init__(self, events: EventBus, ledger: AttemptLedger) -> None:
        self._events = events
        self._handlers = ledger.handlers

    async def send(self, messages: Sequence[Event]) -> None:
        await self._events.send(messages)
        for message in messages:
            kind = type(message)
            if kind is NodeSucceeded or kind is NodeFailed:
                self._count(message)  # type: ignore[arg-type]

    def _count(self, result: NodeSucceeded | NodeFailed) -> None:
        handler = self._handlers.get((result.run_id, result.node_id, result.attempt), "unknown")
        if type(result) is NodeSucceeded:
            outcome = "succeeded"
        elif result.error_type == TIMEOUT_ERROR:  # type: ignore[union-attr]
            outcome = "timed_out"
            metrics.TIMEOUTS.labels(handler).inc()
        else:
            outcome = "failed"
        metrics.ATTEMPTS.labels(handler, outcome).inc()
        if result.started_at is not None:
            metrics.ATTEMPT_SECONDS.labels(handler, outcome).observe(max(result.at - result.started_at, 0.0))
        if tracing.enabled():
            failed = result if type(result) is NodeFailed else None
            tracing.attempt_finished(
                run_id=result.run_id,
                node_id=result.node_id,
                attempt=result.attempt,
                handler=handler,
                worker_id=result.worker_id,
                outcome=outcome,
                started_at=result.started_at,
                finished_at=result.at,
                error=None if failed is None else f"{failed.error_type}: {failed.message}",
            )

    async def receive(self, consumer: str, max_count: int, block_seconds: float) -> list[Delivery[Event]]:
        return await self._events.receive(consumer, max_count, block_seconds)

    async def ack(self, deliveries: Sequence[Delivery[Event]]) -> None:
        await self._events.ack(deliveries)

    async def extend(self, consumer: str, deliveries: Sequence[Delivery[Event]]) -> None:
        await self._events.extend(consumer, deliveries)

    async def maintain(self) -> None:
        await self._events.maintain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._events, name)
