"""``CONCURRENCY_LIMITS`` in a real worker: the setting's limit of a key wins over its nodes'
``concurrency_limit``, in either direction; keys it does not name keep their nodes' limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from engine_support import fresh_registry, make_container, node, run_workflow, workflow

from domain.statuses import RunStatus
from services.worker.registry import HandlerContext

WIDTH = 6
"""Attempts of one key ready at once (the worker has room for all of them)."""


def counting_registry(most: list[int]) -> Any:
    """``held``: runs for a moment, counting how many of its attempts run at once (``most[0]``)."""
    registry = fresh_registry()
    running = 0

    @registry.register("held")
    async def held(ctx: HandlerContext) -> dict[str, Any]:
        nonlocal running
        running += 1
        most[0] = max(most[0], running)
        try:
            await asyncio.sleep(0.05)
        finally:
            running -= 1
        return {}

    return registry


def wide(key: str, limit: int) -> dict[str, Any]:
    keys = {"concurrency_key": key, "concurrency_limit": limit}
    return workflow(*(node(f"n{i}", "held", **keys) for i in range(WIDTH)))


@pytest.mark.parametrize(
    ("node_limit", "setting", "expected"),
    [(4, {"tenant-a": 1}, 1), (1, {"tenant-a": 3}, 3), (2, {"tenant-b": 5}, 2)],
    ids=["setting-lowers", "setting-raises", "other-key"],
)
async def test_the_setting_sets_a_keys_limit(node_limit: int, setting: dict[str, int], expected: int) -> None:
    most = [0]
    container = make_container(
        counting_registry(most),
        worker_concurrency=WIDTH,
        concurrency_limits=setting,
        concurrency_poll_seconds=0.01,
    )
    run = await run_workflow(container, wide("tenant-a", node_limit))
    assert run.status is RunStatus.COMPLETED
    assert most[0] == expected  # reached (6 ready at once), never exceeded
