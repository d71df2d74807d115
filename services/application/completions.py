"""Lets in-process callers await the end of a run instead of polling for it."""

from __future__ import annotations

import asyncio

from domain.statuses import RunStatus


class RunCompletions:
    """Futures resolved by the orchestrator of this process when a run ends (``finished``).

    A caller takes its ``waiter`` before it reads the run's status: an end between the two resolves
    the waiter, and an end before both shows in the status read. So nothing is kept for runs nobody
    waits for, and an earlier life of a redriven run is never mistaken for its end."""

    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Future[RunStatus]] = {}

    def finished(self, run_id: str, status: RunStatus) -> None:
        waiter = self._waiters.pop(run_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(status)

    def waiter(self, run_id: str) -> asyncio.Future[RunStatus]:
        """The run's next end, shared by every caller waiting for it (shield it before cancelling)."""
        waiter = self._waiters.get(run_id)
        if waiter is None or waiter.done():
            waiter = self._waiters[run_id] = asyncio.get_running_loop().create_future()
        return waiter
