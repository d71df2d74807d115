"""How the engine reaches Redis: one server, a Redis Cluster, or a master found through sentinels."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class RedisTopology:
    url: str
    """The server (single), any node of the cluster (its seed), or, with sentinels, where the
    password and database of the master are read from (its host is not used)."""
    cluster: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = "mymaster"
    wait_replicas: int = 0
    """Writes wait (WAIT) until this many replicas have them; 0: not at all."""
    wait_timeout_ms: int = 1000

    @property
    def sentinel(self) -> bool:
        return bool(self.sentinels)

    def shown(self) -> str:
        """Where Redis is, for messages: no password."""
        if self.sentinel:
            listed = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"the master {self.sentinel_master!r} of the sentinels {listed}"
        return ("the cluster seeded by " if self.cluster else "") + host_port(self.url)


def host_port(url: str) -> str:
    """host:port of a Redis URL, without its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
