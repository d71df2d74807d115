"""Handlers for the distributed benchmark (``bench.redis_mode``).

Workers load this module by name (``WORKER_HANDLER_MODULES=bench.bench_handlers``); the benchmark
process imports it too, so that the ``WorkflowService`` it registers definitions with knows the name.
"""

from __future__ import annotations

from typing import Any

from services.worker import HandlerContext, handler


@handler("noop")
async def noop(ctx: HandlerContext) -> dict[str, Any]:
    """Does nothing: what is measured is the engine's cost per node."""
    return {}
