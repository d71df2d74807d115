"""A definition this process has not seen yet is read once for every caller that asks for it at
that moment (``domain.shared_reads``), through the coalescer: a burst of run starts on an API
replica that did not register it asked Redis once per start, each on a connection of its own (and
compiled it once per start); with a small pool that ran out ("Too many connections")."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis_support import RedisServer

from adapters.redis.definitions import RedisDefinitionRepository
from adapters.redis.keys import KeySpace
from domain.errors import NotFound
from domain.ports import StoredDefinition
from domain.validation import build_plan
from tests.definitions import diamond

CALLERS = 200
POOL = 4


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True, max_connections=POOL)
    yield client
    await client.aclose()


@pytest.fixture
def keys() -> KeySpace:
    return KeySpace(f"definition-reads-{uuid.uuid4().hex[:10]}", 4)


async def test_a_burst_of_reads_of_an_unseen_definition_reads_and_compiles_it_once(
    client: aioredis.Redis, keys: KeySpace, redis_server: RedisServer
) -> None:
    stored = StoredDefinition(f"def-{uuid.uuid4().hex[:12]}", build_plan(diamond()), 1.0)
    await RedisDefinitionRepository(client, keys, redis_server.url).add(stored)  # another replica
    replica = RedisDefinitionRepository(client, keys, redis_server.url)
    got = await asyncio.wait_for(
        asyncio.gather(*(replica.get(stored.definition_id) for _ in range(CALLERS))), timeout=30
    )
    assert got[0].definition_id == stored.definition_id
    assert [node.id for node in got[0].plan.nodes] == ["a", "b", "c", "d"]
    assert all(each is got[0] for each in got), "one read, one compiled definition for every caller"
    assert await replica.get(stored.definition_id) is got[0]  # cached since


async def test_a_missing_definition_is_not_found_by_every_caller_and_read_again_later(
    client: aioredis.Redis, keys: KeySpace, redis_server: RedisServer
) -> None:
    replica = RedisDefinitionRepository(client, keys, redis_server.url)
    missing = f"def-{uuid.uuid4().hex[:12]}"
    outcomes = await asyncio.gather(*(replica.get(missing) for _ in range(CALLERS)), return_exceptions=True)
    assert all(isinstance(outcome, NotFound) for outcome in outcomes)
    stored = StoredDefinition(missing, build_plan(diamond()), 1.0)
    await RedisDefinitionRepository(client, keys, redis_server.url).add(stored)
    assert (await replica.get(missing)).definition_id == missing  # the failure was not kept
