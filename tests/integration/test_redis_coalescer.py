"""The coalescer (``adapters.redis.coalescer``) sends at most ``MAX_IN_FLIGHT`` pipelines at once
on a real redis-server: calls made while that many are out wait and leave together in the next, so
a process whose calls come one loop iteration apart while Redis is slow (here: busy running
another connection's script for 0.3 s) does not run out of its pool's connections, and every call
gets its own replies."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from redis_support import RedisServer

from adapters.redis.coalescer import MAX_IN_FLIGHT, Coalescer

CALLS = 4 * MAX_IN_FLIGHT
BUSY_SCRIPT = """
local began = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - began[1]) * 1000000 + (now[2] - began[2]) > 300000
"""
POOL = MAX_IN_FLIGHT + 2  # the bound, and a connection for the sleeper besides


@pytest.fixture
async def client(redis_server: RedisServer) -> aioredis.Redis:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True, max_connections=POOL)
    yield client
    await client.aclose()


async def test_calls_while_redis_is_busy_wait_for_a_pipeline_and_get_their_own_replies(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    key = f"coalescer-{uuid.uuid4().hex}"
    await client.hset(key, mapping={f"f{i}": f"v{i}" for i in range(CALLS)})
    coalescer = Coalescer(client, redis_server.url)
    sent: list[int] = []
    pipeline = client.pipeline

    def counted(*args: object, **kwargs: object) -> object:
        sent.append(1)
        return pipeline(*args, **kwargs)  # type: ignore[arg-type]

    client.pipeline = counted  # type: ignore[method-assign]
    sleeper = aioredis.Redis.from_url(redis_server.url)
    try:
        busy = asyncio.ensure_future(sleeper.eval(BUSY_SCRIPT, 0))
        await asyncio.sleep(0.05)  # the server runs the script: every pipeline now waits for it

        async def call(index: int) -> list[str]:
            return await coalescer.run(lambda pipe: pipe.hget(key, f"f{index}"))

        calls = []
        for index in range(CALLS):
            calls.append(asyncio.ensure_future(call(index)))
            await asyncio.sleep(0)  # one loop iteration apart: each could have had a pipeline of its own
        replies = await asyncio.wait_for(asyncio.gather(*calls), timeout=30)
        await busy
    finally:
        await sleeper.aclose()
    assert replies == [[f"v{index}"] for index in range(CALLS)]
    # The first MAX_IN_FLIGHT calls left one pipeline each; the rest waited and left together.
    assert len(sent) <= MAX_IN_FLIGHT + 2, f"{len(sent)} pipelines for {CALLS} calls"
