"""The map workload on the embedded backend: 1 producer -> a map over N items -> 1 consumer of the
whole list. Reports items/s and the process's peak RSS (the Redis mode's figures, per process, come
from ``python -m bench.redis_mode --only W6``).

    uv run python -m bench.map_workload [--items 100000] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from dependency_injector import providers

from bench.embedded import current_rss_mib, peak_rss_mib
from bench.workloads import map_definition
from domain.statuses import RunStatus
from services.container import Container
from services.engine import EmbeddedEngine
from services.settings import Settings
from services.worker import HandlerContext, HandlerRegistry


async def make_items(ctx: HandlerContext) -> dict[str, Any]:
    return {"xs": list(range(int(ctx.config["count"])))}


async def noop(ctx: HandlerContext) -> dict[str, Any]:
    return {}


async def consume(ctx: HandlerContext) -> dict[str, Any]:
    """Reads the map's whole list (its input): says how long it was."""
    return {"received": len(ctx.inputs["each"])}


def _container() -> Container:
    registry = HandlerRegistry()
    registry.register("bench_items")(make_items)
    registry.register("noop")(noop)
    registry.register("bench_consume")(consume)
    container = Container()
    container.settings.override(providers.Object(Settings()))
    container.registry.override(providers.Object(registry))
    return container


async def measure(items: int, workers: int) -> dict[str, Any]:
    container = _container()
    service = container.workflows()
    stored = await service.register(map_definition(items))
    async with EmbeddedEngine(container, workers) as engine:
        await asyncio.sleep(0)
        rss_before = current_rss_mib()
        started = time.perf_counter()
        run = await service.start(stored.definition_id, {})
        status = await engine.wait_for(run.run_id)
        seconds = time.perf_counter() - started
    finished = await service.get_run(run.run_id)
    received = finished.outputs.get("consume", {}).get("received")
    if status is not RunStatus.COMPLETED or received != items:
        raise RuntimeError(f"run ended {status}; the consumer received {received} of {items} items")
    return {
        "items": items,
        "seconds": seconds,
        "items_per_second": items / seconds,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.map_workload", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    for _ in range(args.repeat):
        result = asyncio.run(measure(args.items, args.workers))
        result["load"] = os.getloadavg()[0]
        print(json.dumps(result))


if __name__ == "__main__":
    main()
