"""Lets in-process callers await the end of a run instead of polling for it."""

from __future__ import annotations

import asyncio

from domain.statuses import RunStatus


class RunCompletions:
    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[RunStatus]] = {}

    def _future(self, run_id: str) -> asyncio.Future[RunStatus]:
        future = self._waiters.get(run_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiters[run_id] = future
        return future

    def finished(self, run_id: str, status: RunStatus) -> None:
        future = self._future(run_id)
        if not future.done():
            future.set_result(status)

    async def wait(self, run_id: str) -> RunStatus:
        return await asyncio.shield(self._future(run_id))

    def forget(self, run_id: str) -> None:
        self._waiters.pop(run_id, None)
