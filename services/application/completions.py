"""Lets in-process callers await the end of a run instead of polling for it."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from domain.statuses import RunStatus

# Runs that ended before anyone waited: kept for a late waiter, the oldest dropped first, so a
# long-lived process (`dag-service up`) does not keep every run it ever finished.
RECENT_RUNS_KEPT = 10_000


class RunCompletions:
    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[RunStatus]] = {}
        self._recent: OrderedDict[str, RunStatus] = OrderedDict()

    def finished(self, run_id: str, status: RunStatus) -> None:
        waiter = self._waiters.pop(run_id, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(status)
            return
        self._recent[run_id] = status
        if len(self._recent) > RECENT_RUNS_KEPT:
            self._recent.popitem(last=False)

    async def wait(self, run_id: str) -> RunStatus:
        status = self._recent.get(run_id)
        if status is not None:
            return status
        waiter = self._waiters.get(run_id)
        if waiter is None:
            waiter = self._waiters[run_id] = asyncio.get_running_loop().create_future()
        return await asyncio.shield(waiter)
