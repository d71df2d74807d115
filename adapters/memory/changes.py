"""``domain.ports.RunChanges`` in one process: the run repository tells it which runs it changed."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager

from adapters.run_watches import Watch, Watches


class InMemoryRunChanges:
    def __init__(self) -> None:
        self._watches = Watches()

    def watch(self, run_id: str) -> AbstractAsyncContextManager[Watch]:
        return self._watches.watch(run_id)

    def watch_count(self) -> int:
        return self._watches.watch_count()

    def committed(self, run_ids: Iterable[str]) -> None:
        """These runs' transitions were applied (``InMemoryRunRepository.apply``)."""
        self._watches.wake(run_ids)
