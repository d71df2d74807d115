"""Definition and run repositories held in dictionaries."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from domain.errors import NotFound
from domain.ports import StoredDefinition
from domain.run import Run
from domain.templates import WORKFLOW_NAMESPACE


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
    """``domain.ports.RunRepository`` handing out the live ``Run`` objects.

    Everything runs on one event loop, so a transition applied between two awaits is atomic and
    ``save`` has nothing left to do.
    """

    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}

    async def add(self, run: Run) -> None:
        self._runs[run.run_id] = run

    async def get(self, run_id: str) -> Run:
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFound("workflow run", run_id) from None

    async def save(self, run: Run) -> None:
        self._runs[run.run_id] = run

    async def read_data(self, run_id: str, roots: Collection[str]) -> dict[str, Any]:
        run = await self.get(run_id)
        outputs = run.outputs
        data = {root: outputs[root] for root in roots if root in outputs}
        if WORKFLOW_NAMESPACE in roots:
            data[WORKFLOW_NAMESPACE] = {"input": run.input}
        return data
