"""Creating clients, and turning driver errors into adapter errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from adapters.errors import AdapterError, AdapterUnavailable

type Redis = aioredis.Redis


class _HiredisPackingConnection(aioredis.Connection):
    """redis-py's asyncio connection packs commands in Python, joining a growing buffer once per
    argument; profiles of the engine showed it as the largest single cost. hiredis packs in C."""

    def pack_command(self, *args: Any) -> list[bytes]:
        command = args[0]
        if command == "EVALSHA":
            # The engine's scripts take only str (and the key count, an int), which hiredis packs as
            # they are: no per-argument check for the thousands of arguments of a commit.
            return [hiredis.pack_command(args)]
        if isinstance(command, str) and " " in command:  # e.g. "XGROUP CREATE": separate words
            args = (*command.split(), *args[1:])
        encode = self.encoder.encode
        return [hiredis.pack_command(tuple(a if type(a) in _NATIVE else encode(a) for a in args))]  # type: ignore[no-untyped-call]


_NATIVE = frozenset({str, bytes, int})


def create_client(url: str, *, read_timeout_seconds: float) -> Redis:
    """A client without silent retries: the engine's loops retry with backoff themselves, and every
    write it makes is safe to repeat (scripts ignore duplicates) — a silent retry would hide outages.

    ``read_timeout_seconds`` must exceed the longest blocking read (XREADGROUP BLOCK).
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=read_timeout_seconds,
        socket_connect_timeout=5.0,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        connection_class=_HiredisPackingConnection,
        # On in redis-py 8 by default ("auto"), and while on, the pool skips its check that replaces
        # connections a restarted Redis closed: the first call after a restart would fail.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


def describe(url: str) -> str:
    """host:port/db of a URL without its password, for messages."""
    pool_kwargs = aioredis.connection.parse_url(url)
    return f"{pool_kwargs.get('host', 'localhost')}:{pool_kwargs.get('port', 6379)}"


@contextlib.asynccontextmanager
async def translated_errors(url: str) -> AsyncIterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise AdapterUnavailable(f"Redis at {describe(url)} is unreachable: {error}") from error
    except RedisError as error:
        raise AdapterError(f"Redis at {describe(url)} failed: {error}") from error


async def check_reachable(client: Redis, url: str) -> None:
    async with translated_errors(url):
        await client.ping()
