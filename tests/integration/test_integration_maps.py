"""Maps run by the embedded engine with real concurrency: the cap on items in flight holds (a
counting handler never sees more), items are retried one by one, and the consumer gets the list."""

from __future__ import annotations

import asyncio
from typing import Any

from engine_support import fresh_registry, make_container, node, workflow

from domain.statuses import NodeStatus, RunStatus
from services.engine import EmbeddedEngine
from services.worker.registry import HandlerContext

ITEMS = 40
CAP = 3


async def test_max_concurrency_is_never_exceeded_and_items_are_retried_alone() -> None:
    in_flight, most, attempts = 0, 0, {}
    registry = fresh_registry()

    @registry.register("make")
    async def make(ctx: HandlerContext) -> dict[str, Any]:
        return {"xs": [{"n": n} for n in range(ITEMS)]}

    @registry.register("counted")
    async def counted(ctx: HandlerContext) -> int:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.002)
            attempts[ctx.config["n"]] = ctx.attempt
            if ctx.config["n"] % 10 == 7 and ctx.attempt == 1:
                raise RuntimeError(f"item {ctx.config['n']} fails once")
            return int(ctx.config["n"]) * int(ctx.config["index"] == ctx.config["n"])
        finally:
            in_flight -= 1

    @registry.register("total")
    def total(ctx: HandlerContext) -> int:
        return sum(ctx.inputs["each"])

    retry = {"max_attempts": 2, "initial_backoff_seconds": 0.01}
    config = {"n": "{{ item.n }}", "index": "{{ index }}"}
    definition = workflow(
        node("src", "make"),
        node(
            "each",
            "counted",
            ["src"],
            for_each="{{ src.xs }}",
            max_concurrency=CAP,
            retry_policy=retry,
            config=config,
        ),
        node("sum", "total", ["each"]),
    )
    # Many more worker slots than the cap: only the map can hold the items back.
    container = make_container(registry, worker_concurrency=32)
    workflows = container.workflows()
    stored = await workflows.register(definition)
    async with EmbeddedEngine(container, workers=4) as engine:
        run = await workflows.start(stored.definition_id, {})
        async with asyncio.timeout(30):
            assert await engine.wait_for(run.run_id) is RunStatus.COMPLETED
    finished = await workflows.get_run(run.run_id)
    assert most == CAP  # reached, never exceeded
    assert finished.outputs["sum"] == sum(range(ITEMS))
    assert {n for n, attempt in attempts.items() if attempt == 2} == {n for n in range(ITEMS) if n % 10 == 7}
    items = finished.node("each").items
    assert items is not None and (items.succeeded, items.failed, len(items.live)) == (ITEMS, 0, 0)
    assert finished.node("each").status is NodeStatus.COMPLETED


async def test_a_condition_on_the_item_skips_the_items_it_is_false_for() -> None:
    ran: list[int] = []
    registry = fresh_registry()

    @registry.register("make")
    async def make(ctx: HandlerContext) -> dict[str, Any]:
        return {"xs": [{"n": n, "keep": n % 3 != 0} for n in range(9)]}

    @registry.register("square")
    async def square(ctx: HandlerContext) -> int:
        ran.append(ctx.config["n"])
        return int(ctx.config["n"]) ** 2

    @registry.register("collect")
    def collect(ctx: HandlerContext) -> list[Any]:
        return list(ctx.inputs["each"])

    definition = workflow(
        node("src", "make"),
        node(
            "each",
            "square",
            ["src"],
            for_each="{{ src.xs }}",
            when="{{ item.keep }}",
            config={"n": "{{ item.n }}"},
        ),
        node("out", "collect", ["each"]),
    )
    container = make_container(registry)
    workflows = container.workflows()
    stored = await workflows.register(definition)
    async with EmbeddedEngine(container, workers=2) as engine:
        run = await workflows.start(stored.definition_id, {})
        async with asyncio.timeout(30):
            assert await engine.wait_for(run.run_id) is RunStatus.COMPLETED
    finished = await workflows.get_run(run.run_id)
    assert sorted(ran) == [1, 2, 4, 5, 7, 8]  # the handler never ran for a skipped item
    assert finished.outputs["out"] == [None, 1, 4, None, 16, 25, None, 49, 64]
