"""Definition and run repositories held in dictionaries."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from adapters.memory.changes import InMemoryRunChanges
from adapters.memory.queue import InMemoryQueue
from adapters.memory.timers import InMemoryTimerStore
from domain.errors import DefinitionAlreadyExists, NotFound, RunAlreadyExists
from domain.events import Command, Event
from domain.history import HistoryEntry
from domain.json_values import copy_json
from domain.map_spec import MapOutput, item_key
from domain.map_state import ItemRun
from domain.messages import Task
from domain.outbox import Timer, outbox
from domain.outcome import Outcome
from domain.paging import Page, Position, decode_cursor, encode_cursor
from domain.ports import (
    DefinitionSummary,
    Delivery,
    RunQuery,
    RunSnapshot,
    RunSummary,
    StoredDefinition,
    run_revision,
)
from domain.run import Run, ensure_runnable
from domain.statuses import RunStatus
from domain.templates import WORKFLOW_NAMESPACE

log = logging.getLogger(__name__)


class InMemoryDefinitionRepository:
    """``domain.ports.DefinitionRepository``; definitions are immutable once added."""

    def __init__(self) -> None:
        self._definitions: dict[str, StoredDefinition] = {}
        self._versions: dict[str, int] = {}

    async def add(self, definition: StoredDefinition) -> StoredDefinition:
        if definition.definition_id in self._definitions:
            raise DefinitionAlreadyExists(definition.definition_id)
        version = self._versions[definition.name] = self._versions.get(definition.name, 0) + 1
        stored = dataclasses.replace(definition, version=version)
        self._definitions[definition.definition_id] = stored
        return stored

    async def get(self, definition_id: str) -> StoredDefinition:
        try:
            return self._definitions[definition_id]
        except KeyError:
            raise NotFound("workflow definition", definition_id) from None

    async def page(self, name: str | None, cursor: str | None, limit: int) -> Page[DefinitionSummary]:
        summaries = (d.summary() for d in self._definitions.values() if name is None or d.name == name)
        return page_of(summaries, lambda d: Position(d.created_at, d.definition_id), cursor, limit)


def page_of[T](
    items: Iterable[T], position_of: Callable[[T], Position], cursor: str | None, limit: int
) -> Page[T]:
    """One page of ``items``, newest first, after ``cursor``."""
    start = decode_cursor(cursor)
    ordered = sorted(items, key=lambda item: _sort_key(position_of(item)), reverse=True)
    if start is not None:
        ordered = [item for item in ordered if start.is_after(*_sort_key(position_of(item)))]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page(page, encode_cursor(position_of(page[-1])) if more else None)


def _sort_key(position: Position) -> tuple[float, str]:
    return (position.created_at, position.key)


class InMemoryRunRepository:
    """``domain.ports.RunRepository`` over live ``Run`` aggregates.

    Everything runs on one event loop and ``apply`` does not await between a transition and queueing
    its tasks, so each step is atomic. ``get`` hands out the live object: readers must not mutate it.
    """

    def __init__(
        self,
        tasks: InMemoryQueue[Task],
        events: InMemoryQueue[Event],
        timers: InMemoryTimerStore,
        changes: InMemoryRunChanges | None = None,
    ) -> None:
        self._changes = changes
        self._runs: dict[str, Run] = {}
        self._history: dict[str, list[HistoryEntry]] = {}
        self._item_records: dict[str, dict[str, ItemRun]] = {}
        self._item_outputs: dict[str, dict[str, Any]] = {}
        self._tasks = tasks
        self._events = events
        self._timers = timers

    async def add(self, run: Run) -> None:
        if run.run_id in self._runs:
            raise RunAlreadyExists(run.run_id)
        self._runs[run.run_id] = run
        self._history[run.run_id] = []
        await self._events.send([run.start_event()])

    async def get(self, run_id: str, *, outputs: bool = True) -> Run:
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFound("workflow run", run_id) from None

    async def revision(self, run_id: str) -> str:
        """Every transition applied appends one history entry: their count numbers the commits."""
        run = await self.get(run_id)
        return run_revision(len(self._history[run_id]), run.created_at)

    async def status(self, run_id: str) -> RunStatus:
        return (await self.get(run_id)).status

    async def snapshot(self, run_id: str, *, outputs: bool = True) -> RunSnapshot:
        """The live run, as ``get``: its revision holds until the caller next awaits."""
        run = await self.get(run_id)
        return RunSnapshot(run, run_revision(len(self._history[run_id]), run.created_at))

    async def apply(
        self, events: Sequence[Event], delivered: Sequence[Delivery[Event]] = ()
    ) -> list[Command]:
        produced: list[Command] = []
        tasks: list[Task] = []
        timers: list[Timer] = []
        changed: dict[str, RunStatus] = {}
        for event in events:
            run = self._runs.get(event.run_id)
            if run is None:
                log.warning("ignoring %s for unknown run %s", type(event).__name__, event.run_id)
                continue
            outcome = run.apply(event)
            if outcome is None:
                continue
            self._history[run.run_id].append(outcome.entry)
            if outcome.items_ended is not None or outcome.recorded_item is not None:
                self._keep_items(run, outcome)
            outbox(run, outcome.commands, tasks, timers)
            produced.extend(outcome.commands)
            changed[run.run_id] = run.status
        for timer in timers:
            self._timers.schedule(timer)
        await self._tasks.send(tasks)
        await self._events.ack(delivered)
        if self._changes is not None:
            self._changes.committed(changed.items())
        return produced

    def _keep_items(self, run: Run, outcome: Outcome) -> None:
        """Items that ended leave the run's state: their records and outputs are kept here."""
        specs = run.plan.nodes
        records = self._item_records.setdefault(run.run_id, {})
        for index, item, state in outcome.items_ended or ():
            records[item_key(specs[index].id, item)] = state
        if outcome.recorded_item is not None:
            key, output = outcome.recorded_item
            self._item_outputs.setdefault(run.run_id, {})[key] = output

    async def item_records(self, run_id: str, node_id: str, start: int, stop: int) -> dict[int, ItemRun]:
        records = self._item_records.get(run_id, {})
        found = ((item, records.get(item_key(node_id, item))) for item in range(start, stop))
        return {item: record for item, record in found if record is not None}

    async def item_outputs(self, run_id: str, node_id: str, start: int, stop: int) -> list[Any]:
        outputs = self._item_outputs.get(run_id, {})
        return [copy_json(outputs.get(item_key(node_id, item))) for item in range(start, stop)]

    async def read_data(self, run_id: str, roots: Collection[str]) -> dict[str, Any]:
        """Copies, as the Redis store gives: a handler changing its inputs must change nothing."""
        run = await self.get(run_id)
        ensure_runnable(run_id, run.status)
        outputs = run.outputs
        data = {root: copy_json(outputs[root]) for root in roots if root in outputs}
        for root, value in data.items():
            if isinstance(value, MapOutput):
                data[root] = await self.item_outputs(run_id, root, 0, value.count)
        if WORKFLOW_NAMESPACE in roots:
            data[WORKFLOW_NAMESPACE] = {"input": copy_json(run.input)}
        return data

    async def history(self, run_id: str, after: int, limit: int) -> list[tuple[int, HistoryEntry]]:
        try:
            entries = self._history[run_id]
        except KeyError:
            raise NotFound("workflow run", run_id) from None
        start = max(after, 0)
        return list(enumerate(entries[start : start + limit], start=start + 1))

    async def page(self, query: RunQuery) -> Page[RunSummary]:
        chosen = (
            run
            for run in self._runs.values()
            if (query.status is None or run.status is query.status)
            and (query.workflow is None or run.plan.name == query.workflow)
        )
        summaries = (RunSummary.of(run) for run in chosen)
        return page_of(summaries, lambda r: Position(r.created_at, r.run_id), query.cursor, query.limit)
