"""The engine's client of a Redis Cluster (``adapters.redis.connection.create_client``) on a real
cluster of 3 masters: a blocking stream read goes to the stream's master and nowhere else (redis-py
alone would first ask the seed node for the command's keys, twice, on every read)."""

from __future__ import annotations

from redis_support import RedisClusterServers

from adapters.redis.connection import create_client
from adapters.redis.topology import RedisTopology


def calls_by_master(servers: RedisClusterServers) -> dict[int, dict[str, int]]:
    found = {}
    for master in servers.masters():
        stats = master.client().info("commandstats")
        found[master.port] = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
    return found


async def test_a_stream_read_asks_no_node_for_its_keys(redis_cluster: RedisClusterServers) -> None:
    client = create_client(RedisTopology(redis_cluster.seed_url, cluster=True), read_timeout_seconds=5)
    streams = ["client-test:{s0}:tasks", "client-test:{s1}:tasks"]
    try:
        for stream in streams:
            await client.xgroup_create(stream, "g", id="0", mkstream=True)
            await client.xadd(stream, {"n": "1"})
        for master in redis_cluster.masters():
            master.client().config_resetstat()

        for stream in streams:
            for _ in range(3):
                await client.xreadgroup("g", "c", {stream: ">"}, count=10, block=1)

        calls = calls_by_master(redis_cluster)
        for stream in streams:
            owner = redis_cluster.master_for_key(stream).port
            assert calls[owner].get("xreadgroup", 0) >= 3, calls
        assert not any("command|getkeys" in of_master for of_master in calls.values()), calls
        assert sum(of_master.get("xreadgroup", 0) for of_master in calls.values()) == 6, calls
    finally:
        for stream in streams:
            await client.delete(stream)
        await client.aclose()
