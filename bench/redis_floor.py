"""The machine's floor for a hop: one unpipelined XADD + XREADGROUP + XACK cycle on a redis-server,
through the client the engine uses (``redis.asyncio`` with hiredis), one command at a time.

A chain hop needs at least two such cycles (the parent's result to the orchestrator, the child's task
to a worker); issue 17 judges W1's hop against one cycle measured by the benchmark in the same run.
"""

from __future__ import annotations

import secrets
import time

import redis.asyncio

from bench.stats import distribution_ms

GROUP = "floor"


async def floor_cycle_ms(port: int, cycles: int = 2_000, warmup: int = 200) -> dict[str, float | int]:
    """Distribution (ms) of ``cycles`` cycles after ``warmup`` unmeasured ones, on a stream of its own
    (deleted afterwards)."""
    client = redis.asyncio.Redis(port=port)
    stream = f"bench-floor-{secrets.token_hex(4)}"
    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        seconds = []
        for number in range(warmup + cycles):
            began = time.perf_counter()
            entry_id = await client.xadd(stream, {"n": number})
            await client.xreadgroup(
                GROUP, "c", {stream: ">"}, count=1
            )  # gives that entry: the stream was empty
            await client.xack(stream, GROUP, entry_id)
            if number >= warmup:
                seconds.append(time.perf_counter() - began)
        await client.delete(stream)
    finally:
        await client.aclose()
    found = distribution_ms(seconds)
    assert found is not None
    return found
