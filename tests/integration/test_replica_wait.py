"""``REDIS_WAIT_REPLICAS`` on a real primary and replica: the engine's writes, single or pipelined,
wait for the replica (WAIT on the connection that wrote), reads do not, and a write the replica
does not acknowledge in time fails as an unavailable Redis, naming the setting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_support import require_redis_binary

from adapters.errors import AdapterUnavailable
from adapters.redis.connection import Redis, create_client, translated_errors
from adapters.redis.topology import RedisTopology
from bench.processes import free_ports
from bench.redis_topologies import ReplicatedRedisServer, poll, replica_online

PATIENT_MS = 10_000
"""A wait that a live replica meets, however loaded the machine."""
SHORT_MS = 300
"""A wait that a paused replica cannot meet."""


@pytest.fixture(scope="module")
def primary_and_replica(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ReplicatedRedisServer, ...]]:
    binary = require_redis_binary()
    folder = tmp_path_factory.mktemp("replicated")
    primary_port, replica_port = free_ports(2)
    primary = ReplicatedRedisServer(binary, folder / "primary", port=primary_port, appendfsync=None)
    replica = ReplicatedRedisServer(
        binary, folder / "replica", port=replica_port, replica_of=primary_port, appendfsync=None
    )
    try:
        primary.start()
        replica.start()
        poll("the replica online", lambda: replica_online(primary_port), 30)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def waits_answered(primary: ReplicatedRedisServer) -> int:
    stats = primary.client().info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


def waiting_client(primary: ReplicatedRedisServer, timeout_ms: int) -> Redis:
    topology = RedisTopology(primary.url, wait_replicas=1, wait_timeout_ms=timeout_ms)
    return create_client(topology, read_timeout_seconds=5)


async def test_writes_wait_for_the_replica_and_reads_do_not(
    primary_and_replica: tuple[ReplicatedRedisServer, ...],
) -> None:
    primary, replica = primary_and_replica
    client = waiting_client(primary, PATIENT_MS)
    try:
        before = waits_answered(primary)
        await client.set("wait:single", "1")
        pipe = client.pipeline(transaction=False)
        pipe.hset("wait:hash", "f", "v")
        pipe.xadd("wait:stream", {"k": "v"})
        await pipe.execute()
        assert waits_answered(primary) == before + 2  # one per write call, one per pipeline

        reads = client.pipeline(transaction=False)
        reads.get("wait:single")
        reads.hgetall("wait:hash")
        assert await reads.execute() == ["1", {"f": "v"}]
        assert await client.get("wait:single") == "1"
        assert waits_answered(primary) == before + 2
        assert replica.client().get("wait:single") == "1"  # it was there when the write returned
    finally:
        await client.aclose()


async def test_a_write_the_replica_does_not_acknowledge_fails_as_unavailable(
    primary_and_replica: tuple[ReplicatedRedisServer, ...],
) -> None:
    primary, replica = primary_and_replica
    client = waiting_client(primary, SHORT_MS)
    replica.pause()
    try:
        with pytest.raises(AdapterUnavailable) as refused:
            async with translated_errors("primary"):
                await client.set("wait:while-paused", "1")
        assert "0 of the 1 replicas REDIS_WAIT_REPLICAS asks for" in str(refused.value)
        assert f"within {SHORT_MS} ms" in str(refused.value)
        assert await client.get("wait:while-paused") == "1"  # on the primary, not acknowledged
    finally:
        replica.resume()
        await client.aclose()
