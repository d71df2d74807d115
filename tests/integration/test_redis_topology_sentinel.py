"""The primary, replica and sentinels the sentinel-mode tests run on, proven on their real servers:
ready when handed out, and a SIGKILLed primary replaced by its replica, which redis-py's
``Sentinel.master_for`` finds and writes to."""

from __future__ import annotations

from redis_support import RedisSentinelServers

from bench.redis_topologies import call, role


def test_the_sentinels_watch_the_primary_and_its_replica(redis_sentinel: RedisSentinelServers) -> None:
    primary = redis_sentinel.primary
    [replica] = redis_sentinel.replicas()

    assert role(primary.port) == "master"
    assert role(replica.port) == "slave"
    assert len(redis_sentinel.sentinels) == 3
    for host, port in redis_sentinel.sentinels:
        assert host == "127.0.0.1"
        address = call(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", redis_sentinel.master_name)
        assert address == ["127.0.0.1", str(primary.port)]


def test_a_sigkilled_primary_is_replaced_by_its_replica_and_writes_resume(
    redis_sentinel: RedisSentinelServers,
) -> None:
    # master_client() is redis.sentinel.Sentinel(sentinels).master_for(master_name).
    client = redis_sentinel.master_client()
    client.set("sentinel:before", "kept")
    assert client.wait(1, 5000) == 1
    [replica] = redis_sentinel.replicas()

    old = redis_sentinel.kill_primary()
    promoted = redis_sentinel.wait_failover()

    assert promoted is replica
    assert not old.running()
    assert redis_sentinel.primary is promoted
    assert role(promoted.port) == "master"
    fresh = redis_sentinel.master_client()
    assert fresh.set("sentinel:after", "written")
    assert fresh.get("sentinel:before") == "kept"
    # The client made before the kill finds the new primary through the sentinels by itself.
    assert client.get("sentinel:after") == "written"
    assert call(promoted.port, "GET", "sentinel:after") == "written"
    client.close()
    fresh.close()
