"""Use cases shared by the CLI and (later) the HTTP API: register a definition, start a run."""

from __future__ import annotations

from typing import Any

from domain.limits import Limits
from domain.ports import (
    Clock,
    DefinitionRepository,
    IdGenerator,
    RunRepository,
    StoredDefinition,
)
from domain.run import Run
from domain.validation import build_plan, validate_input


class WorkflowService:
    def __init__(
        self,
        *,
        definitions: DefinitionRepository,
        runs: RunRepository,
        clock: Clock,
        ids: IdGenerator,
        limits: Limits,
        known_handlers: frozenset[str] | None = None,
    ) -> None:
        self._definitions = definitions
        self._runs = runs
        self._clock = clock
        self._ids = ids
        self._limits = limits
        self._known_handlers = known_handlers

    async def register(self, raw: Any) -> StoredDefinition:
        """Validate and store a definition; raises ``InvalidDefinition`` with every problem."""
        plan = build_plan(raw, self._limits, self._known_handlers)
        stored = StoredDefinition(self._ids.new_id(), plan, self._clock.now())
        await self._definitions.add(stored)
        return stored

    async def start(self, definition_id: str, run_input: Any) -> Run:
        """Create a run of a stored definition and announce it; the orchestrator takes it on."""
        checked_input = validate_input(run_input, self._limits)
        definition = await self._definitions.get(definition_id)
        now = self._clock.now()
        run = Run.create(self._ids.new_id(), definition_id, definition.plan, checked_input, now)
        await self._runs.add(run)
        return run

    async def get_run(self, run_id: str) -> Run:
        return await self._runs.get(run_id)
