"""The Redis a distributed benchmark runs the engine on: one redis-server, or a Redis Cluster of
masters, both without persistence; and what is read from every node of it (the figures of
``INFO``, the readers blocked on streams, which master each shard's hash tag lands on).

Whatever the benchmark reads from Redis itself it reads node by node, on plain clients of each
master: a cluster client would send ``INFO`` or ``CLIENT LIST`` to one node of its choosing (or to
all of them, merged in a way of its own), and the figures must say which node did what.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.processes import LOOPBACK, RedisServer
from bench.redis_topologies import RedisClusterServers, slot_of

CLUSTER_MASTERS = 3


@dataclass(frozen=True)
class ServedNode:
    """One redis-server the engine writes to: ``role`` names it in the tables (``redis``, or
    ``redis@<port>`` for a master of a cluster)."""

    role: str
    port: int
    pid: int | None

    def client(self) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=10, decode_responses=True)


class OneRedis:
    """A single redis-server without persistence (the default)."""

    cluster = False

    def __init__(self, binary: str, folder: Path) -> None:
        self.server = RedisServer(binary, folder, appendfsync=None, die_with_parent=True)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(10.0)

    def nodes(self) -> list[ServedNode]:
        return [ServedNode("redis", self.server.port, self.server.pid)]

    def describe(self) -> str:
        return f"redis-server on port {self.server.port}"


class ClusterOfMasters:
    """A Redis Cluster of ``masters`` masters (and ``replicas`` replicas each: none by default, so
    that the 2 cores measure the same work as on one server; a replica repeats every write) without
    persistence, created by ``redis-cli --cluster create`` (``bench.redis_topologies``).
    ``die_with_parent`` as for ``bench.processes.spawn`` (the benchmarks: yes; tests: no)."""

    cluster = True

    def __init__(
        self,
        binary: str,
        folder: Path,
        masters: int = CLUSTER_MASTERS,
        replicas: int = 0,
        *,
        die_with_parent: bool = True,
    ) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (it creates the cluster)")
        self.servers = RedisClusterServers(
            binary,
            cli,
            folder,
            masters=masters,
            replicas_per_master=replicas,
            appendfsync=None,
            die_with_parent=die_with_parent,
        )
        self.replicas = replicas

    @property
    def url(self) -> str:
        """The seed the engine starts from: any master (``REDIS_URL`` with ``REDIS_CLUSTER=true``)."""
        return self.servers.seed_url

    def start(self) -> None:
        self.servers.start()  # stops what it started if it fails halfway

    def stop(self) -> None:
        self.servers.stop()

    def nodes(self) -> list[ServedNode]:
        """The masters, in port order (replicas serve no command of the engine)."""
        masters = sorted(self.servers.masters(), key=lambda node: node.port)
        return [ServedNode(f"redis@{node.port}", node.port, node.pid) for node in masters]

    def master_port_of(self, key: str) -> int:
        return self.servers.master_for_key(key).port

    def describe(self) -> str:
        ports = ", ".join(str(node.port) for node in self.nodes())
        replicas = f", {self.replicas} replica(s) each" if self.replicas else ", no replicas"
        return f"a Redis Cluster of {len(self.nodes())} masters on ports {ports}{replicas}"


type RedisNodes = OneRedis | ClusterOfMasters


def shard_tags(shards: int) -> list[str]:
    """The hash tag of each shard's keys (``adapters.redis.keys``: ``<prefix>:{sN}:...``): which slot,
    hence which master, holds the shard depends on the tag alone, not on the prefix."""
    return [f"{{s{number}}}" for number in range(shards)]


def shards_by_master(nodes: ClusterOfMasters, shards: int) -> dict[int, list[int]]:
    """Master port -> the shards whose hash tag's slot it serves (every master listed)."""
    placed: dict[int, list[int]] = {node.port: [] for node in nodes.nodes()}
    for number, tag in enumerate(shard_tags(shards)):
        placed[nodes.master_port_of(tag)].append(number)
    return placed


def describe_shards(nodes: ClusterOfMasters, shards: int) -> str:
    """``port: s0 (slot 11097), ...; ...`` for the start-up lines."""
    parts = []
    for port, numbers in shards_by_master(nodes, shards).items():
        shown = ", ".join(f"s{n} (slot {slot_of(tag)})" for n, tag in ((n, f"{{s{n}}}") for n in numbers))
        parts.append(f"{port}: {shown or 'none'}")
    return "; ".join(parts)


# -- what every node says ----------------------------------------------------------------------------


def stream_readers(nodes: list[ServedNode]) -> int:
    """Connections, over every node, whose last command is XREADGROUP: readers waiting on streams."""
    total = 0
    for node in nodes:
        with node.client() as client:
            total += sum(1 for entry in client.client_list() if entry.get("cmd") == "xreadgroup")
    return total


def reset_stats(nodes: list[ServedNode]) -> None:
    """CONFIG RESETSTAT on every node: command statistics and the counters of INFO stats from 0."""
    for node in nodes:
        with node.client() as client:
            client.config_resetstat()


@dataclass(frozen=True)
class NodeCounters:
    """What one node counted since its statistics were reset."""

    role: str
    reads: int
    """``total_reads_processed``: requests read from clients' sockets, about one per round trip."""
    commands: int
    """``total_commands_processed``; the commands of a Lua script are not counted apart."""
    commandstats: dict[str, tuple[int, int]]
    """command -> (calls, microseconds)."""


def counters(nodes: list[ServedNode]) -> list[NodeCounters]:
    found = []
    for node in nodes:
        with node.client() as client:
            stats: dict[str, Any] = client.info("stats")
            commands: dict[str, Any] = client.info("commandstats")
        found.append(
            NodeCounters(
                node.role,
                int(stats["total_reads_processed"]),
                int(stats["total_commands_processed"]),
                {
                    name.removeprefix("cmdstat_"): (int(values["calls"]), int(values["usec"]))
                    for name, values in commands.items()
                },
            )
        )
    return found


def summed_commandstats(found: list[NodeCounters]) -> list[dict[str, Any]]:
    """INFO commandstats summed over the nodes, costliest first."""
    totals: dict[str, list[int]] = {}
    for node in found:
        for command, (calls, usec) in node.commandstats.items():
            total = totals.setdefault(command, [0, 0])
            total[0] += calls
            total[1] += usec
    ordered = sorted(totals.items(), key=lambda item: item[1][1], reverse=True)
    return [
        {"command": command, "calls": calls, "usec": usec, "usec_per_call": usec / calls if calls else 0.0}
        for command, (calls, usec) in ordered
    ]
