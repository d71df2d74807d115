"""Writes that wait for replicas (``REDIS_WAIT_REPLICAS``): WAIT after each write, on the connection
that made it (WAIT counts only that connection's writes), before the caller goes on.

Replication is asynchronous: a replica promoted by a failover may lack the last writes its master
acknowledged. With this, a run start is answered, and a stream entry acknowledged, only once that
many replicas hold the writes before it. It does not make Redis strongly consistent: a write that
times out waiting is still on the master (the caller sees an error and repeats it, which every
write of the engine allows), and a failover can still pick a replica that lags.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

READ_ONLY = frozenset(
    {
        "GET", "MGET", "EXISTS", "HGET", "HMGET", "HGETALL", "HEXISTS", "HLEN", "LRANGE", "LLEN",
        "SMEMBERS", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZCARD", "ZCOUNT", "ZSCORE",
        "XRANGE", "XREVRANGE", "XLEN", "XPENDING", "XINFO", "XINFO GROUPS", "PING", "INFO", "TTL",
        "PTTL", "SCRIPT LOAD", "CLIENT LIST", "ROLE",
    }
)  # fmt: skip
"""Commands after which nothing needs to wait (everything else may write)."""


class ReplicationShortfall(RedisConnectionError):
    """Fewer replicas than asked have a write by the end of the wait (a connection error to the
    engine: its loops retry, and the API answers 503)."""


class _Waiting:
    """What WAIT needs: how many replicas, how long."""

    def __init__(self, replicas: int, timeout_ms: int) -> None:
        self.replicas = replicas
        self.timeout_ms = timeout_ms

    async def wait(self, connection: Any) -> None:
        await connection.send_command("WAIT", self.replicas, self.timeout_ms)
        acknowledged = int(await connection.read_response())
        if acknowledged < self.replicas:
            raise ReplicationShortfall(
                f"a write reached {acknowledged} of the {self.replicas} replicas REDIS_WAIT_REPLICAS "
                f"asks for within {self.timeout_ms} ms (REDIS_WAIT_TIMEOUT_MS)"
            )


def _writes(names: Any) -> bool:
    return any(str(name).upper() not in READ_ONLY for name in names)


class ReplicatedPipeline(Pipeline):
    waiting: _Waiting

    async def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        response = await super()._execute_pipeline(connection, commands, raise_on_error)
        if _writes(args[0] for args, _ in commands):
            await self.waiting.wait(connection)
        return response

    async def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        response = await super()._execute_transaction(connection, commands, raise_on_error)
        if _writes(args[0] for args, _ in commands):
            await self.waiting.wait(connection)
        return response


class ReplicatedRedis(aioredis.Redis):
    """A client whose writes, single or pipelined, wait for ``waiting.replicas`` replicas."""

    waiting = _Waiting(0, 1000)

    @classmethod
    def waiting_for(cls, replicas: int, timeout_ms: int) -> type[ReplicatedRedis]:
        """A subclass bound to these numbers (a client class is what ``Sentinel.master_for`` takes)."""
        return type("ReplicatedRedis", (cls,), {"waiting": _Waiting(replicas, timeout_ms)})

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = ReplicatedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.waiting = self.waiting
        return pipe

    async def _send_command_parse_response(
        self, conn: Any, command_name: Any, *args: Any, **options: Any
    ) -> Any:
        response = await super()._send_command_parse_response(conn, command_name, *args, **options)  # type: ignore[no-untyped-call]
        if _writes((command_name,)):
            await self.waiting.wait(conn)
        return response
