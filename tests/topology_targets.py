"""A Redis Cluster or a sentinel-watched primary as the store of the distributed and fault tests.

``distributed_support.Cluster`` runs engine processes on a ``redis_server``: something with a
``url``, a ``client()`` for looking at the state, a ``folder`` for logs and the ``settings`` its
processes need. ``RedisServer`` is one; these make the cluster and sentinel servers of
``redis_support`` another, without the tests knowing which they run on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis_support import RedisClusterServers, RedisSentinelServers


class ClusterTarget:
    def __init__(self, servers: RedisClusterServers) -> None:
        self.servers = servers
        self.folder: Path = servers.folder

    @property
    def url(self) -> str:
        return self.servers.seed_url

    def client(self) -> Any:
        return self.servers.client()

    def settings(self) -> dict[str, str]:
        return {"REDIS_CLUSTER": "true"}


class SentinelTarget:
    def __init__(self, servers: RedisSentinelServers, *, wait_replicas: int = 0) -> None:
        self.servers = servers
        self.folder: Path = servers.folder
        self.wait_replicas = wait_replicas

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:6379/0"  # only its database is read: the sentinels name the master

    def client(self) -> Any:
        return self.servers.master_client()

    def settings(self) -> dict[str, str]:
        sentinels = ",".join(f"{host}:{port}" for host, port in self.servers.sentinels)
        return {
            "REDIS_SENTINELS": sentinels,
            "REDIS_SENTINEL_MASTER": self.servers.master_name,
            "REDIS_WAIT_REPLICAS": str(self.wait_replicas),
        }
