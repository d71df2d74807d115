"""A suspect task (one whose earlier workers went quiet holding it) runs alone on its worker.

On Redis the queue marks such a task when it reclaims it the second time; here a queue fake marks
the tasks of chosen nodes the same way, so the worker's side is checked on its own: it lets what it
runs finish first, runs the suspect with nothing beside it, and takes nothing new until it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from dependency_injector import providers
from engine_support import fresh_registry, make_container, node, run_workflow, view, workflow

from adapters.memory.queue import InMemoryQueue
from domain.messages import DEFAULT_QUEUE, Task
from domain.ports import Delivery
from services.worker.registry import HandlerContext


class SuspectingQueue(InMemoryQueue[Task]):
    """Hands a task of a suspect node over alone and marked, as the Redis queue does; the rest of
    the batch goes back to the front of the queue, not received."""

    def __init__(self, suspect_nodes: set[str]) -> None:
        super().__init__()
        self._suspect_nodes = suspect_nodes
        self.handed_over = asyncio.Event()

    async def receive(self, consumer: str, max_count: int, block_seconds: float) -> list[Delivery[Task]]:
        batch = await super().receive(consumer, max_count, block_seconds)
        suspects = [d for d in batch if d.message.node_id in self._suspect_nodes]
        if not suspects:
            return batch
        others = [d for d in batch if d is not suspects[0]]
        await self.ack(others)
        await self.send_first([d.message for d in others])
        self.handed_over.set()
        return [replace(suspects[0], suspect=True)]

    async def send_first(self, messages: Sequence[Task]) -> None:
        self._ready[DEFAULT_QUEUE].extendleft(reversed(messages))


async def test_a_suspect_task_waits_for_the_running_ones_and_runs_alone() -> None:
    spans: dict[str, list[float]] = {}
    queue = SuspectingQueue({"suspect"})

    async def timed(ctx: HandlerContext) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        spans[ctx.node_id] = [loop.time()]
        if ctx.config.get("until_suspect_handed_over"):
            await queue.handed_over.wait()
        await asyncio.sleep(ctx.config.get("seconds", 0))
        spans[ctx.node_id].append(loop.time())
        return {}

    registry = fresh_registry()
    registry.register("timed")(timed)
    container = make_container(registry, worker_concurrency=8)
    container.tasks.override(providers.Object(queue))
    # "slow" runs until "gate" has finished and made "suspect" and "sibling" ready together, and
    # the worker has received the suspect; then it takes a little longer.
    definition = workflow(
        node("slow", "timed", config={"until_suspect_handed_over": True, "seconds": 0.1}),
        node("gate", "timed"),
        node("suspect", "timed", ["gate"], config={"seconds": 0.2}),
        node("sibling", "timed", ["gate"]),
    )

    run = view(await run_workflow(container, definition))

    assert run["status"] == "COMPLETED", run
    assert spans["suspect"][0] >= spans["slow"][1]  # it arrived while "slow" ran, started after
    assert spans["sibling"][0] >= spans["suspect"][1]  # nothing new started beside it
