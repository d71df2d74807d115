"""Redis killed (SIGKILL) and restarted while a reader waits for a run: the process's one pub/sub
subscription (``RedisRunChanges``) comes back by itself and the reader is still woken by word.

The reader's re-check is ten minutes: only word can end its wait within the test's time, so the
wait ending proves the subscription was made again (word published before the restart is not
enough: the run is still going when Redis comes back).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from dependency_injector import providers
from redis_support import RedisServer

from adapters.redis.changes import RedisRunChanges
from domain.statuses import RunStatus
from services.application.waiting import status_when_final
from services.container import Container, close_backend, open_backend
from services.engine import EmbeddedEngine
from services.settings import Settings

RECHECK = 600.0
WITHIN = 60.0


def slow_chain() -> dict[str, Any]:
    """Three nodes of 1 s: the run goes on for seconds after Redis is back."""
    return {
        "name": "slow-chain",
        "dag": {
            "nodes": [
                {"id": "a", "handler": "call_external_service", "config": {"delay_seconds": 1}},
                {
                    "id": "b",
                    "handler": "call_external_service",
                    "dependencies": ["a"],
                    "config": {"delay_seconds": 1},
                },
                {
                    "id": "c",
                    "handler": "call_external_service",
                    "dependencies": ["b"],
                    "config": {"delay_seconds": 1},
                },
            ]
        },
    }


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WITHIN
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {WITHIN:g} s"
        await asyncio.sleep(0.02)


async def test_a_waiting_reader_is_still_woken_after_redis_restarts(
    fresh_redis: Callable[..., RedisServer],
) -> None:
    server = fresh_redis(appendfsync="always")
    container = Container()
    container.backend.override("redis")
    settings = Settings(
        redis_url=server.url, redis_key_prefix=f"rc-{uuid.uuid4().hex[:8]}", run_wait_recheck_seconds=RECHECK
    )
    container.settings.override(providers.Object(settings))
    await open_backend(container)
    try:
        async with EmbeddedEngine(container, workers=1):
            service = container.workflows()
            changes = container.run_changes()
            assert isinstance(changes, RedisRunChanges)
            stored = await service.register(slow_chain())
            run = await service.start(stored.definition_id, {})
            reads = 0

            async def read() -> RunStatus:  # what WorkflowService.wait_for_run reads; counts the reads
                nonlocal reads
                found = await container.runs().status(run.run_id)
                reads += 1
                return found

            waiter = asyncio.ensure_future(status_when_final(changes, run.run_id, read, WITHIN, RECHECK))
            await until(lambda: reads >= 1 and changes.watch_count() == 1, "the reader waits")
            assert changes.subscriptions == 1

            await asyncio.to_thread(server.restart)
            await until(lambda: changes.subscriptions == 2 and changes.subscribed, "subscribed again")
            assert not waiter.done()  # the run goes on: its end is still to be heard

            final = await asyncio.wait_for(waiter, WITHIN)
            assert final is RunStatus.COMPLETED
            assert changes.watch_count() == 0
    finally:
        await close_backend(container)
