"""Creating clients, and turning driver errors into adapter errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from adapters.errors import AdapterError, AdapterUnavailable
from adapters.redis.replication import ReplicatedRedis
from adapters.redis.topology import RedisTopology, host_port

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


def create_client(topology: RedisTopology | str, *, read_timeout_seconds: float) -> Redis:
    """A client without silent retries: the engine's loops retry with backoff themselves, and every
    write it makes is safe to repeat (scripts ignore duplicates) — a silent retry would hide outages.

    ``read_timeout_seconds`` must exceed the longest blocking read (XREADGROUP BLOCK). On a cluster
    the client follows MOVED and ASK itself and retries TRYAGAIN (a slot being migrated); on
    sentinels it asks them for the master whenever a connection is made.
    """
    if isinstance(topology, str):
        topology = RedisTopology(topology)
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": read_timeout_seconds,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 0,
        # On in redis-py 8 by default ("auto"), and while on, the pool skips its check that replaces
        # connections a restarted Redis closed: the first call after a restart would fail.
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    if topology.cluster:
        return _cluster_client(topology, common)
    client_class: type[Redis] = (
        ReplicatedRedis.waiting_for(topology.wait_replicas, topology.wait_timeout_ms)
        if topology.wait_replicas
        else aioredis.Redis
    )
    if topology.sentinel:
        return _sentinel_client(topology, client_class, common)
    return client_class.from_url(
        topology.url, retry=Retry(NoBackoff(), 0), connection_class=_HiredisPackingConnection, **common
    )


def _cluster_client(topology: RedisTopology, common: dict[str, Any]) -> Redis:
    # A few quick retries: a node that just failed over or handed a slot over answers after the
    # client has refreshed its map of the slots (a connection error makes it do so).
    client = RedisCluster.from_url(
        topology.url, retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3), **common
    )
    # The cluster client offers the commands of the single one the adapters use; where it cannot
    # (several slots in one call) the adapters ask ``is_cluster``.
    return cast(Redis, client)


def _sentinel_client(topology: RedisTopology, client_class: type[Redis], common: dict[str, Any]) -> Redis:
    parts = aioredis.connection.parse_url(topology.url)
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(topology.sentinels),
        socket_timeout=common["socket_timeout"],
        socket_connect_timeout=common["socket_connect_timeout"],
    )
    # A connection error makes the pool ask the sentinels again, so a failover is followed by the
    # next call the engine's loops repeat.
    return cast(
        Redis,
        sentinels.master_for(
            topology.sentinel_master,
            redis_class=client_class,
            retry=Retry(NoBackoff(), 0),
            password=parts.get("password"),
            username=parts.get("username"),
            db=parts.get("db", 0),
            **common,
        ),
    )


def is_cluster(client: Redis) -> bool:
    """Whether ``client`` talks to a Redis Cluster (one slot per multi-key call)."""
    return isinstance(client, RedisCluster)


def describe(url: str) -> str:
    """host:port of a URL without its password, for messages; a place already described (by
    ``RedisTopology.shown``) is returned as it is."""
    return host_port(url) if "://" in url else url


_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    # A cluster without a master for some slots (until its replica is promoted), a slot being
    # migrated, a master without its replicas, a replica written to (a failover under way), a
    # server loading its data: all pass, so the caller waits and repeats as for a lost connection.
    ClusterDownError,
    TryAgainError,
    MasterDownError,
    ReadOnlyError,
    BusyLoadingError,
)


@contextlib.asynccontextmanager
async def translated_errors(url: str) -> AsyncIterator[None]:
    try:
        yield
    except _UNAVAILABLE as error:
        raise AdapterUnavailable(f"Redis at {describe(url)} is unreachable: {error}") from error
    except RedisError as error:
        raise AdapterError(f"Redis at {describe(url)} failed: {error}") from error


async def check_reachable(client: Redis, url: str) -> None:
    async with translated_errors(url):
        await client.ping()
