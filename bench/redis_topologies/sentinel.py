"""A primary, its replica and sentinels, all real redis-server processes: the primary SIGKILLed and
the sentinels' failover awaited."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import redis
import redis.sentinel

from bench.processes import LOOPBACK, RedisServer, free_ports, stop_together
from bench.redis_topologies.servers import (
    ADMIN_TIMEOUT_SECONDS,
    STOP_GRACE_SECONDS,
    NotYet,
    ReplicatedRedisServer,
    call,
    poll,
    replication_info,
    role,
)


class SentinelServer(RedisServer):
    """``redis-server --sentinel`` on a ``sentinel.conf`` of its own (written at the first start;
    the sentinel rewrites it with what it learns), monitoring ``master_name`` at ``primary_port``."""

    def __init__(
        self,
        binary: str,
        folder: Path,
        *,
        port: int,
        master_name: str,
        primary_port: int,
        quorum: int,
        down_after_ms: int,
        failover_timeout_ms: int,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(binary, folder, appendfsync=None, die_with_parent=die_with_parent, port=port)
        self.config_path = folder / "sentinel.conf"
        self.config = "\n".join(
            [
                f"port {port}",
                f"bind {LOOPBACK}",
                "protected-mode no",
                f"dir {folder}",
                'logfile ""',
                f"sentinel monitor {master_name} {LOOPBACK} {primary_port} {quorum}",
                f"sentinel down-after-milliseconds {master_name} {down_after_ms}",
                f"sentinel failover-timeout {master_name} {failover_timeout_ms}",
                f"sentinel parallel-syncs {master_name} 1",
                "",
            ]
        )

    def command(self) -> list[str]:
        return [self.binary, str(self.config_path), "--sentinel"]

    def start(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self.config_path.write_text(self.config, encoding="utf-8")
        return super().start()

    def sentinel(self, *args: str) -> Any:
        return call(self.port, "SENTINEL", *args)


def _records(reply: Any) -> list[dict[str, str]]:
    """SENTINEL REPLICAS / SENTINELS: a list of flat ``[name, value, ...]`` lists (RESP2) or maps."""
    return [
        dict(record) if isinstance(record, dict) else dict(zip(record[::2], record[1::2], strict=True))
        for record in reply
    ]


class RedisSentinelServers:
    """A primary, one replica of it and ``sentinels`` sentinels (quorum ``quorum``) monitoring it as
    ``master_name``, each in a folder of its own under ``folder``."""

    def __init__(
        self,
        binary: str,
        folder: Path,
        *,
        master_name: str = "dagtest",
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        appendfsync: str | None = "everysec",
        die_with_parent: bool = False,
    ) -> None:
        self.folder = folder
        self.master_name = master_name
        primary_port, replica_port, *sentinel_ports = free_ports(2 + sentinels)
        self.servers = [
            ReplicatedRedisServer(
                binary,
                folder / "primary",
                port=primary_port,
                appendfsync=appendfsync,
                die_with_parent=die_with_parent,
            ),
            ReplicatedRedisServer(
                binary,
                folder / "replica",
                port=replica_port,
                replica_of=primary_port,
                appendfsync=appendfsync,
                die_with_parent=die_with_parent,
            ),
        ]
        """The data servers: the first started as the primary, the second as its replica."""
        self.sentinel_servers = [
            SentinelServer(
                binary,
                folder / f"sentinel-{index}",
                port=port,
                master_name=master_name,
                primary_port=primary_port,
                quorum=quorum,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                die_with_parent=die_with_parent,
            )
            for index, port in enumerate(sentinel_ports)
        ]
        self._killed: ReplicatedRedisServer | None = None

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every sentinel: what ``redis.sentinel.Sentinel`` takes."""
        return [(LOOPBACK, sentinel.port) for sentinel in self.sentinel_servers]

    def start(self, timeout: float = 60.0) -> Self:
        """Start the primary, the replica and the sentinels, and wait until they are ready
        (``wait_ready``)."""
        try:
            for server in [*self.servers, *self.sentinel_servers]:
                server.start()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """The sentinels first (so that stopping the primary starts no failover), then the data
        servers; safe to call at any point, again included."""
        for group in (self.sentinel_servers, self.servers):
            stop_together(
                (server.process.popen for server in group if server.process is not None), STOP_GRACE_SECONDS
            )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _server_on(self, port: int) -> ReplicatedRedisServer:
        return next(server for server in self.servers if server.port == port)

    def _master_port(self, sentinel: SentinelServer) -> int:
        _host, port = sentinel.sentinel("GET-MASTER-ADDR-BY-NAME", self.master_name)
        return int(port)

    @property
    def primary(self) -> ReplicatedRedisServer:
        """The data server the sentinels name as the master (the first running sentinel asked)."""
        sentinel = next(sentinel for sentinel in self.sentinel_servers if sentinel.running())
        return self._server_on(self._master_port(sentinel))

    def replicas(self) -> list[ReplicatedRedisServer]:
        """The running data servers other than the primary."""
        primary = self.primary
        return [server for server in self.servers if server is not primary and server.running()]

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every running replica's link to the primary is up, and every running sentinel names
        the primary, sees those replicas healthy and knows every other sentinel (a failover needs
        both: a replica to promote and a quorum)."""
        poll(f"sentinels of {self.master_name} ready", self._ready, timeout)

    def _ready(self) -> None:
        primary = self.primary
        replicas = {server.port for server in self.servers if server is not primary and server.running()}
        for port in replicas:
            link = replication_info(port)
            if link.get("master_port") != str(primary.port) or link.get("master_link_status") != "up":
                raise NotYet(f"replica {port} not in sync with {primary.port}: {link}")
        for sentinel in self.sentinel_servers:
            if not sentinel.running():
                continue
            if self._master_port(sentinel) != primary.port:
                raise NotYet(f"sentinel {sentinel.port} names another master")
            seen = {
                int(record["port"])
                for record in _records(sentinel.sentinel("REPLICAS", self.master_name))
                if record["flags"] == "slave" and record.get("master-link-status") == "ok"
            }
            if not replicas <= seen:
                raise NotYet(f"sentinel {sentinel.port} sees the replicas {seen}, not {replicas}")
            others = _records(sentinel.sentinel("SENTINELS", self.master_name))
            if len(others) != len(self.sentinel_servers) - 1 or any(o["flags"] != "sentinel" for o in others):
                raise NotYet(f"sentinel {sentinel.port} knows the sentinels {others}")

    def kill_primary(self) -> ReplicatedRedisServer:
        """SIGKILL the current primary; returns it. ``start()`` starts it again, and the sentinels turn
        it into a replica of its successor, though not at once (measured: 21 s, most of it the
        sentinels' own waits); ``wait_ready(60)`` waits for that."""
        primary = self.primary
        primary.kill()
        self._killed = primary
        return primary

    def wait_failover(self, timeout: float = 30.0) -> ReplicatedRedisServer:
        """Until every running sentinel names the same new master (not the primary last killed) and it
        answers ROLE master. Returns it."""
        old = self._killed

        def promoted() -> ReplicatedRedisServer:
            ports = {self._master_port(s) for s in self.sentinel_servers if s.running()}
            if len(ports) != 1:
                raise NotYet(f"the sentinels name different masters: {ports}")
            [port] = ports
            if old is not None and port == old.port:
                raise NotYet(f"the sentinels still name the killed primary ({port})")
            server = self._server_on(port)
            if not server.running() or role(port) != "master":
                raise NotYet(f"port {port} does not answer as a master")
            return server

        return poll(f"failover of {self.master_name}", promoted, timeout)

    def master_client(self, **options: Any) -> redis.Redis:
        """A client of the current master found through the sentinels (``Sentinel.master_for``): it
        finds the new one after a failover."""
        options.setdefault("decode_responses", True)
        sentinel = redis.sentinel.Sentinel(self.sentinels, socket_timeout=ADMIN_TIMEOUT_SECONDS)  # type: ignore[no-untyped-call]
        client: redis.Redis = sentinel.master_for(self.master_name, **options)  # type: ignore[no-untyped-call]
        return client
