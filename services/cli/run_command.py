"""``dag-service run``: a workflow end to end on the embedded engine, with live progress."""

from __future__ import annotations

import asyncio
from typing import Any

from domain.run import Run
from services.cli.progress import RunProgress
from services.container import Container
from services.engine import EmbeddedEngine

PROGRESS_INTERVAL_SECONDS = 0.1


async def run_workflow(
    container: Container, definition: Any, run_input: Any, workers: int, progress: RunProgress
) -> Run:
    """Validate, start and wait for one run; invalid definitions or input raise before any work.

    The run is read again for progress and at the end: on the Redis backend the object ``start``
    returns is a snapshot, not the stored run."""
    workflows = container.workflows()
    stored = await workflows.register(definition)
    async with EmbeddedEngine(container, workers) as engine:
        run = await workflows.start(stored.definition_id, run_input)
        finished = asyncio.ensure_future(engine.wait_for(run.run_id))
        try:
            with progress:
                while not finished.done():
                    progress.update(await workflows.get_run(run.run_id, outputs=False))
                    await asyncio.wait([finished], timeout=PROGRESS_INTERVAL_SECONDS)
                final = await workflows.get_run(run.run_id)
                progress.update(final)
        finally:
            finished.cancel()  # interrupted (Ctrl-C): the wait ends with the engine, unreported
        finished.result()
        return final
