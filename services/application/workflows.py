"""Use cases shared by the CLI and the HTTP API: definitions, runs, cancelling, history."""

from __future__ import annotations

from typing import Any

from domain.errors import InvalidInput, NotFound, Problem
from domain.events import CancelRequested
from domain.history import HistoryEntry
from domain.limits import Limits
from domain.paging import Page, check_limit
from domain.ports import (
    Clock,
    DefinitionRepository,
    DefinitionSummary,
    EventBus,
    IdGenerator,
    RunQuery,
    RunRepository,
    RunSummary,
    StoredDefinition,
)
from domain.run import Run
from domain.statuses import RunStatus
from domain.validation import build_plan, typed_input, validate_input
from services.application.errors import RunAlreadyFinished


class WorkflowService:
    def __init__(
        self,
        *,
        definitions: DefinitionRepository,
        runs: RunRepository,
        events: EventBus,
        clock: Clock,
        ids: IdGenerator,
        limits: Limits,
        known_handlers: frozenset[str] | None = None,
    ) -> None:
        self._definitions = definitions
        self._runs = runs
        self._events = events
        self._clock = clock
        self._ids = ids
        self._limits = limits
        self._known_handlers = known_handlers

    # -- definitions -----------------------------------------------------------------------------

    async def register(self, raw: Any) -> StoredDefinition:
        """Validate and store a definition as the next version of its name; raises
        ``InvalidDefinition`` with every problem."""
        plan = build_plan(raw, self._limits, self._known_handlers)
        return await self._definitions.add(StoredDefinition(self._ids.new_id(), plan, self._clock.now()))

    async def get_definition(self, definition_id: str) -> StoredDefinition:
        return await self._definitions.get(definition_id)

    async def definitions(self, name: str | None, cursor: str | None, limit: int) -> Page[DefinitionSummary]:
        return await self._definitions.page(name, cursor, check_limit(limit))

    async def latest_definition(self, name: str) -> str:
        """The id of the newest version registered under ``name``."""
        page = await self._definitions.page(name, None, 1)
        if not page.items:
            raise NotFound("workflow", name)
        return page.items[0].definition_id

    # -- runs ------------------------------------------------------------------------------------

    async def start(self, definition_id: str, run_input: Any) -> Run:
        """Create a run of a stored definition (pinned to that version) and announce it; the
        orchestrator takes it on."""
        checked_input = validate_input(run_input, self._limits)
        definition = await self._definitions.get(definition_id)
        checked_input = typed_input(definition.plan, checked_input)
        now = self._clock.now()
        run = Run.create(self._ids.new_id(), definition_id, definition.plan, checked_input, now)
        await self._runs.add(run)
        return run

    async def get_run(self, run_id: str, *, outputs: bool = True) -> Run:
        return await self._runs.get(run_id, outputs=outputs)

    async def runs(self, query: RunQuery) -> Page[RunSummary]:
        check_limit(query.limit)
        return await self._runs.page(query)

    async def cancel(self, run_id: str) -> RunStatus:
        """Ask for the run to end CANCELLED; returns its status before. Nodes not yet started never
        start; attempts already running finish but their results are ignored. Raises
        ``RunAlreadyFinished`` when it has ended."""
        run = await self._runs.get(run_id, outputs=False)
        if run.status.is_final:
            raise RunAlreadyFinished(run_id, run.status)
        await self._events.send([CancelRequested(run_id, self._clock.now())])
        return run.status

    async def history(self, run_id: str, after: int, limit: int) -> list[tuple[int, HistoryEntry]]:
        if after < 0:
            raise InvalidInput([Problem("$.after", f"must be 0 or more, got {after}")])
        return await self._runs.history(run_id, after, check_limit(limit))
