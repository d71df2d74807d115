"""The embedded engine: one orchestrator and N workers as tasks on the current event loop.

Used by ``dag-service run``, the tests and the benchmarks. All of them share the container's
adapters, so with the memory backend a whole run stays inside this process.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from domain.statuses import RunStatus
from services.container import Container


class EngineStopped(RuntimeError):
    """An orchestrator or worker loop ended while a caller was waiting for a run."""


class EmbeddedEngine:
    def __init__(self, container: Container, workers: int = 1) -> None:
        self.container = container
        self._worker_count = workers
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> EmbeddedEngine:
        orchestrator = self.container.orchestrator(consumer="orchestrator-1")
        self._loops.append(asyncio.create_task(orchestrator.run(self._stop)))
        for number in range(1, self._worker_count + 1):
            worker = self.container.worker(worker_id=f"worker-{number}")
            self._loops.append(asyncio.create_task(worker.run(self._stop)))
        return self

    async def wait_for(self, run_id: str) -> RunStatus:
        """Wait for the run to end (at once when it has: its status now, a redriven run's included);
        if an engine loop dies first, raise its error. ``NotFound`` for a run that is not stored."""
        # The waiter first, then the status: an end between the two resolves the waiter.
        waiter = self.container.completions().waiter(run_id)
        status = await self.container.workflows().run_status(run_id)
        if status.is_final:
            return status
        finished: asyncio.Future[RunStatus] = asyncio.shield(waiter)
        watched: list[asyncio.Future[Any]] = [finished, *self._loops]
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not finished.done():
                finished.cancel()
        if finished.done() and not finished.cancelled():
            return finished.result()
        crashed = next((loop for loop in self._loops if loop.done()), None)
        if crashed is None or crashed.cancelled():  # the engine itself was stopped meanwhile
            raise EngineStopped("the engine stopped before the run ended")
        raise EngineStopped(f"an engine loop stopped: {crashed.exception()!r}")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Idle loops sit in a blocking receive; cancelling ends them at once. Anything still in
        # flight belongs to runs this process is abandoning, which the memory backend cannot keep.
        self._stop.set()
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops.clear()
