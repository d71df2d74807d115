"""The in-process half of ``domain.ports.RunChanges``, shared by both adapters: the watches of this
process, by run, and waking those of a run that changed. The memory adapter is told by its run
repository; the Redis adapter by its one pub/sub connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from domain.statuses import RunStatus


class Watch:
    """``domain.ports.RunWatch``: a flag raised by each change, lowered when a reader sees it."""

    __slots__ = ("_flag", "_status")

    def __init__(self) -> None:
        self._flag = asyncio.Event()
        self._status: RunStatus | None = None

    def wake(self, status: RunStatus | None) -> None:
        self._status = status
        self._flag.set()

    def told_status(self) -> RunStatus | None:
        return self._status

    async def changed(self, within: float) -> bool:
        if not self._flag.is_set():
            try:
                await asyncio.wait_for(self._flag.wait(), max(within, 0.0))
            except TimeoutError:
                return False
        self._flag.clear()
        return True


class Watches:
    def __init__(self) -> None:
        self._by_run: dict[str, set[Watch]] = {}
        self._count = 0

    @asynccontextmanager
    async def watch(self, run_id: str) -> AsyncIterator[Watch]:
        watch = Watch()
        self._by_run.setdefault(run_id, set()).add(watch)
        self._count += 1
        try:
            yield watch
        finally:
            self._count -= 1
            watching = self._by_run.get(run_id)
            if watching is not None:
                watching.discard(watch)
                if not watching:
                    del self._by_run[run_id]

    def watch_count(self) -> int:
        return self._count

    def wake(self, changes: Iterable[tuple[str, RunStatus | None]]) -> None:
        """Wake every watch of these runs, each with the status its run changed to (None: unknown)."""
        by_run = self._by_run
        for run_id, status in changes:
            for watch in by_run.get(run_id, ()):
                watch.wake(status)

    def wake_all(self) -> None:
        """Wake every watch: word may have been lost, let each reader look again."""
        for watching in self._by_run.values():
            for watch in watching:
                watch.wake(None)
