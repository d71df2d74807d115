"""Handlers for the distributed benchmarks (``bench.redis_mode``, ``bench.api_load``).

Workers load this module by name (``WORKER_HANDLER_MODULES=bench.bench_handlers``), and so does the
API of ``bench.api_load`` (it checks handler names when a definition is registered); the benchmark
process of ``bench.redis_mode`` imports it too, so that the ``WorkflowService`` it registers
definitions with knows the name.
"""

from __future__ import annotations

from typing import Any

from services.worker import HandlerContext, handler


@handler("noop")
async def noop(ctx: HandlerContext) -> dict[str, Any]:
    """Does nothing: what is measured is the engine's cost per node."""
    return {}


@handler("noop_service")
async def noop_service(ctx: HandlerContext) -> dict[str, Any]:
    """The simulated services without their delay (``bench.api_load``): the fields that templates
    of the seed's scenarios read (``fetched_content``, ``response``) hold the rendered config."""
    return {"status_code": 200, "fetched_content": ctx.config, "response": ctx.config}


@handler("bench_items")
async def bench_items(ctx: HandlerContext) -> dict[str, Any]:
    """The map workload's producer (W6): a list of ``config.count`` numbers."""
    return {"xs": list(range(int(ctx.config["count"])))}


@handler("bench_consume")
async def bench_consume(ctx: HandlerContext) -> dict[str, Any]:
    """The map workload's consumer: reads the map's whole list, says how long it was."""
    return {"received": len(ctx.inputs["each"])}
