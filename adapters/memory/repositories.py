"""Definition and run repositories held in dictionaries."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from adapters.memory.queue import InMemoryQueue
from adapters.memory.timers import InMemoryTimerStore
from domain.errors import NotFound
from domain.events import Command, DispatchNode, Event, RetryDue, RunStarted, ScheduleRetry
from domain.messages import Task
from domain.ports import StoredDefinition
from domain.run import Run
from domain.templates import WORKFLOW_NAMESPACE

log = logging.getLogger(__name__)


def _copy_json(value: Any) -> Any:
    """A copy of JSON data (dicts, lists, scalars): much cheaper than ``deepcopy``, which also
    handles shared references and cycles that JSON data cannot have."""
    if type(value) is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy_json(item) for item in value]
    return value


class InMemoryDefinitionRepository:
    """``domain.ports.DefinitionRepository``; definitions are immutable once added."""

    def __init__(self) -> None:
        self._definitions: dict[str, StoredDefinition] = {}

    async def add(self, definition: StoredDefinition) -> None:
        self._definitions[definition.definition_id] = definition

    async def get(self, definition_id: str) -> StoredDefinition:
        try:
            return self._definitions[definition_id]
        except KeyError:
            raise NotFound("workflow definition", definition_id) from None


class InMemoryRunRepository:
    """``domain.ports.RunRepository`` over live ``Run`` aggregates.

    Everything runs on one event loop and ``apply`` does not await between a transition and queueing
    its tasks, so each step is atomic. ``get`` hands out the live object: readers must not mutate it.
    """

    def __init__(
        self, tasks: InMemoryQueue[Task], events: InMemoryQueue[Event], timers: InMemoryTimerStore
    ) -> None:
        self._runs: dict[str, Run] = {}
        self._tasks = tasks
        self._events = events
        self._timers = timers

    async def add(self, run: Run) -> None:
        self._runs[run.run_id] = run
        await self._events.send([RunStarted(run.run_id, run.created_at)])

    async def get(self, run_id: str) -> Run:
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFound("workflow run", run_id) from None

    async def apply(self, events: Sequence[Event]) -> list[Command]:
        produced: list[Command] = []
        tasks: list[Task] = []
        for event in events:
            run = self._runs.get(event.run_id)
            if run is None:
                log.warning("ignoring %s for unknown run %s", type(event).__name__, event.run_id)
                continue
            for command in run.handle(event):
                if type(command) is DispatchNode:
                    handler = run.plan.node(command.node_id).handler
                    tasks.append(
                        Task(run.run_id, run.definition_id, command.node_id, command.attempt, handler)
                    )
                elif type(command) is ScheduleRetry:
                    retry = RetryDue(command.run_id, command.node_id, command.attempt, command.due_at)
                    self._timers.schedule(retry, command.due_at)
                produced.append(command)
        await self._tasks.send(tasks)
        return produced

    async def read_data(self, run_id: str, roots: Collection[str]) -> dict[str, Any]:
        """Copies, as the Redis store gives: a handler changing its inputs must change nothing."""
        run = await self.get(run_id)
        outputs = run.outputs
        data = {root: _copy_json(outputs[root]) for root in roots if root in outputs}
        if WORKFLOW_NAMESPACE in roots:
            data[WORKFLOW_NAMESPACE] = {"input": _copy_json(run.input)}
        return data
