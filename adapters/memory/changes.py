"""``domain.ports.RunChanges`` in one process: the run repository tells it which runs it changed."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager

from adapters.run_watches import Watch, Watches
from domain.statuses import RunStatus


class InMemoryRunChanges:
    def __init__(self) -> None:
        self._watches = Watches()

    def watch(self, run_id: str) -> AbstractAsyncContextManager[Watch]:
        return self._watches.watch(run_id)

    def watch_count(self) -> int:
        return self._watches.watch_count()

    def committed(self, changes: Iterable[tuple[str, RunStatus]]) -> None:
        """These runs' transitions were applied (``InMemoryRunRepository.apply``), leaving each
        in this status."""
        self._watches.wake(changes)
