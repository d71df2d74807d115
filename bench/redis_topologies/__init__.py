"""Redis Cluster and Redis Sentinel made of real redis-server processes on free loopback ports, for
the tests (the ``redis_cluster`` and ``redis_sentinel`` fixtures of ``tests/conftest.py``) and the
benchmarks of the engine's cluster and sentinel modes.

- ``RedisClusterServers`` (``cluster.py``): masters with replicas (3 and 3 by default), created by
  ``redis-cli --cluster create``; a master can be SIGKILLed and its failover awaited, a killed node
  restarted (it rejoins as a replica), and a slot migrated live, in one call or step by step
  (``SlotMigration``) so that a test can move a busy slot while the engine runs.
- ``RedisSentinelServers`` (``sentinel.py``): a primary, its replica and 3 sentinels; the primary can
  be SIGKILLed and the sentinels' failover awaited.

Every process is a ``bench.processes.RedisServer`` (its own process group, its log in its folder),
and a topology stops all of its processes on every exit path, a start that fails halfway included.
Every wait polls a condition with a deadline and, on timeout, says which condition did not hold.
The node timeouts are short (about a second) so that failovers take seconds, not tens of them.
"""

from bench.redis_topologies.cluster import (
    CLUSTER_SLOTS,
    ClusterNode,
    NodeView,
    RedisClusterServers,
    SlotMigration,
    slot_of,
)
from bench.redis_topologies.sentinel import RedisSentinelServers, SentinelServer
from bench.redis_topologies.servers import NotYet, ReplicatedRedisServer, call, poll, replica_online, role

__all__ = [
    "CLUSTER_SLOTS",
    "ClusterNode",
    "NodeView",
    "NotYet",
    "RedisClusterServers",
    "RedisSentinelServers",
    "ReplicatedRedisServer",
    "SentinelServer",
    "SlotMigration",
    "call",
    "poll",
    "replica_online",
    "role",
    "slot_of",
]
