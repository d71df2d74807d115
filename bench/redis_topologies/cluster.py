"""A Redis Cluster of real redis-server processes: created by ``redis-cli --cluster create``, read
from CLUSTER NODES, a master SIGKILLed and its failover awaited, a killed node restarted, a slot
migrated live (``SlotMigration``: in one call or step by step)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import redis.cluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from bench.processes import LOOPBACK, ProcessFailed, free_ports, run_captured, stop_together
from bench.redis_topologies.servers import (
    STOP_GRACE_SECONDS,
    NotYet,
    ReplicatedRedisServer,
    call,
    info_fields,
    poll,
    replication_info,
    role,
)

CLUSTER_SLOTS = REDIS_CLUSTER_HASH_SLOTS


def slot_of(key: str | bytes) -> int:
    """The cluster slot of ``key`` (its hash tag's, if it has one)."""
    return key_slot(key.encode() if isinstance(key, str) else key)


@dataclass(frozen=True)
class NodeView:
    """One line of CLUSTER NODES: a node as the node that answered sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slot_ranges: tuple[range, ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def suspect(self) -> bool:
        """Failed, suspected of failing, not reachable or not yet part of the cluster."""
        return bool(self.flags & {"fail", "fail?", "noaddr", "handshake"})

    def owns(self, slot: int) -> bool:
        return any(slot in slots for slots in self.slot_ranges)

    @property
    def slot_count(self) -> int:
        return sum(len(slots) for slots in self.slot_ranges)


def parse_cluster_nodes(text: str) -> list[NodeView]:
    """CLUSTER NODES: ``<id> <ip:port@bus-port[,hostname]> <flags> <master-id or -> <ping-sent>
    <pong-received> <config-epoch> <link-state> <slot or first-last>...``; a slot being migrated
    (``[slot->-id]``, ``[slot-<-id]``) is not an owned one and is left out."""
    views = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_id, address, flags, master = fields[:4]
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        slots = []
        for item in fields[8:]:
            if item.startswith("["):
                continue
            first, _, last = item.partition("-")
            slots.append(range(int(first), int(last or first) + 1))
        views.append(
            NodeView(
                node_id, port, frozenset(flags.split(",")), None if master == "-" else master, tuple(slots)
            )
        )
    return views


def owner_of(views: list[NodeView], slot: int) -> str | None:
    """The id of the master that owns ``slot`` in ``views``, None if none does."""
    return next((view.node_id for view in views if view.is_master and view.owns(slot)), None)


class ClusterNode(ReplicatedRedisServer):
    """A redis-server with cluster mode on: ``nodes.conf`` (its identity and its view of the cluster)
    in its folder, its cluster bus on ``bus_port`` (given: the default, port + 10000, may be past
    65535 for a port of the ephemeral range)."""

    def __init__(
        self,
        binary: str,
        folder: Path,
        *,
        port: int,
        bus_port: int,
        node_timeout_ms: int,
        appendfsync: str | None,
        die_with_parent: bool,
    ) -> None:
        super().__init__(binary, folder, port=port, appendfsync=appendfsync, die_with_parent=die_with_parent)
        self.bus_port = bus_port
        self.node_timeout_ms = node_timeout_ms
        self.node_id = ""
        """Its cluster id (CLUSTER MYID), known once started; kept across restarts by nodes.conf."""

    def __repr__(self) -> str:
        return f"ClusterNode(port={self.port}, id={self.node_id[:8]})"

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [
            *super().command(),
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-node-timeout", str(self.node_timeout_ms), "--cluster-port", str(self.bus_port)),
            # A replica always stands for election, however long it was cut off from its master: with a
            # node timeout of a second, a loaded machine would otherwise leave a slot range unserved.
            *("--cluster-replica-validity-factor", "0"),
        ]

    def start(self) -> Self:
        super().start()
        self.node_id = str(call(self.port, "CLUSTER", "MYID"))
        return self

    def cluster_info(self) -> dict[str, str]:
        return info_fields(call(self.port, "CLUSTER", "INFO"))

    def cluster_nodes(self) -> list[NodeView]:
        return parse_cluster_nodes(call(self.port, "CLUSTER", "NODES"))


class RedisClusterServers:
    """A Redis Cluster of ``masters`` masters with ``replicas_per_master`` replicas each, every node a
    redis-server in a folder of its own under ``folder``.

    Who is master of what is read from the cluster itself (CLUSTER NODES), never assumed: after a
    failover or a migration the roles and slots are wherever the cluster put them.
    """

    def __init__(
        self,
        binary: str,
        cli: str,
        folder: Path,
        *,
        masters: int = 3,
        replicas_per_master: int = 1,
        node_timeout_ms: int = 1000,
        appendfsync: str | None = "everysec",
        die_with_parent: bool = False,
    ) -> None:
        self.cli = cli
        self.folder = folder
        self.replicas_per_master = replicas_per_master
        count = masters * (1 + replicas_per_master)
        ports = free_ports(2 * count)
        self.nodes = [
            ClusterNode(
                binary,
                folder / f"node-{index}",
                port=ports[index],
                bus_port=ports[count + index],
                node_timeout_ms=node_timeout_ms,
                appendfsync=appendfsync,
                die_with_parent=die_with_parent,
            )
            for index in range(count)
        ]
        self._slots_of_killed: dict[str, tuple[range, ...]] = {}

    # -- starting and stopping

    def start(self, timeout: float = 60.0) -> Self:
        """Start every node, create the cluster, and wait until it is healthy (``wait_healthy``)."""
        try:
            for node in self.nodes:
                node.start()
            self._create(timeout)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self, timeout: float) -> None:
        command = [
            self.cli,
            *("--cluster", "create", *(node.address for node in self.nodes)),
            *("--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"),
        ]
        result = run_captured(command, timeout=timeout)
        if result.returncode != 0 or f"All {CLUSTER_SLOTS} slots covered" not in result.stdout:
            raise ProcessFailed(
                f"{' '.join(command)} failed (exit code {result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def stop(self) -> None:
        """SIGTERM to every node (they stop in parallel), SIGKILL to those still running after a grace
        period; safe to call at any point, again included."""
        stop_together(
            (node.process.popen for node in self.nodes if node.process is not None), STOP_GRACE_SECONDS
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reading the cluster

    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.running()]

    def node(self, node_id: str) -> ClusterNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def view(self, of: ClusterNode | None = None) -> list[NodeView]:
        """CLUSTER NODES as ``of`` (by default the first running node) sees the cluster."""
        node = of if of is not None else self.running()[0]
        return node.cluster_nodes()

    def masters(self) -> list[ClusterNode]:
        """The running nodes that the cluster sees as masters."""
        return self._running_with(lambda view: view.is_master)

    def replicas(self) -> list[ClusterNode]:
        """The running nodes that the cluster sees as replicas."""
        return self._running_with(lambda view: not view.is_master)

    def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        return self._running_with(lambda view: view.master_id == master.node_id)

    def _running_with(self, wanted: Callable[[NodeView], bool]) -> list[ClusterNode]:
        ids = {view.node_id for view in self.view() if wanted(view)}
        return [node for node in self.running() if node.node_id in ids]

    def master_of_slot(self, slot: int) -> ClusterNode:
        """The master that owns ``slot`` as the cluster sees it (before a failover is detected, a
        killed one)."""
        owner = owner_of(self.view(), slot)
        if owner is None:
            raise LookupError(f"slot {slot} has no master")
        return self.node(owner)

    def master_for_key(self, key: str | bytes) -> ClusterNode:
        return self.master_of_slot(slot_of(key))

    @property
    def seed_url(self) -> str:
        """``redis://127.0.0.1:<port>`` of a running master: where a cluster client starts."""
        return f"redis://{self.masters()[0].address}"

    def client(self, **options: Any) -> redis.cluster.RedisCluster:
        """redis-py's (sync) cluster client from ``seed_url``, decoding responses unless told otherwise."""
        options.setdefault("decode_responses", True)
        return redis.cluster.RedisCluster.from_url(self.seed_url, **options)

    def flushall(self) -> None:
        """Empty every master (their replicas follow): a module's tests sharing one cluster."""
        for master in self.masters():
            call(master.port, "FLUSHALL")

    # -- waiting

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every running node says ``cluster_state:ok`` with every slot served, all of them
        agree on who is master of which slots and who replicates whom, every slot is owned by a running
        master, and every running replica's link to its master is up (its initial sync done)."""
        poll("cluster healthy", self._healthy, timeout)

    def _healthy(self) -> None:
        running = self.running()
        running_ids = {node.node_id for node in running}
        agreed: set[tuple[Any, ...]] = set()
        for node in running:
            info = node.cluster_info()
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(CLUSTER_SLOTS):
                raise NotYet(f"node {node.port}: {info}")
            views = [view for view in node.cluster_nodes() if view.node_id in running_ids]
            if any(view.suspect for view in views) or len(views) != len(running):
                raise NotYet(f"node {node.port} does not see every running node as healthy: {views}")
            agreed.add(tuple(sorted((v.node_id, v.is_master, v.master_id, v.slot_ranges) for v in views)))
        if len(agreed) != 1:
            raise NotYet(f"the nodes disagree on the cluster: {agreed}")
        [layout] = agreed
        owned = sum(len(slots) for _, is_master, _, ranges in layout if is_master for slots in ranges)
        if owned != CLUSTER_SLOTS:
            raise NotYet(f"not every slot is owned by a running master: {layout}")
        for node_id, is_master, master_id, _ in layout:
            if is_master:
                continue
            link = replication_info(self.node(node_id).port)
            if master_id not in running_ids or link.get("master_link_status") != "up":
                raise NotYet(f"replica {self.node(node_id)} not in sync with its master: {link}")

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL ``node`` (remembering the slots it served, for ``wait_failover``)."""
        slots = next((view.slot_ranges for view in self.view() if view.node_id == node.node_id), ())
        if slots:
            self._slots_of_killed[node.node_id] = slots
        node.kill()

    def wait_failover(self, old_master: ClusterNode, timeout: float = 30.0) -> ClusterNode:
        """Until one of ``old_master``'s replicas is promoted: every running node says
        ``cluster_state:ok`` and that the replica owns every slot ``old_master`` served, and it answers
        ROLE master. Returns the promoted node."""
        slots = self._slots_of_killed.get(old_master.node_id) or next(
            view.slot_ranges for view in self.view() if view.node_id == old_master.node_id
        )
        probes = [slot for slots_range in slots for slot in (slots_range[0], slots_range[-1])]

        def promoted() -> ClusterNode:
            owners: set[str | None] = set()
            for node in self.running():
                info = node.cluster_info()
                if info.get("cluster_state") != "ok":
                    raise NotYet(f"node {node.port}: cluster_state {info.get('cluster_state')}")
                views = node.cluster_nodes()
                owners |= {owner_of(views, slot) for slot in probes}
            if len(owners) != 1:
                raise NotYet(f"the running nodes disagree on who serves the slots of {old_master}: {owners}")
            [new] = owners
            if new is None or new == old_master.node_id:
                raise NotYet(f"the slots of {old_master} are still served by {new}")
            promoted_node = self.node(new)
            if not promoted_node.running() or role(promoted_node.port) != "master":
                raise NotYet(f"{promoted_node} does not answer as a master")
            return promoted_node

        return poll(f"failover of {old_master}", promoted, timeout)

    def restart(self, node: ClusterNode, timeout: float = 30.0) -> None:
        """Start a killed node again on its port and folder (a master that was failed over rejoins as a
        replica of its successor) and wait until the cluster is healthy."""
        node.start()
        self.wait_healthy(timeout)

    def wait_slot_owner(self, slot: int, master: ClusterNode, timeout: float = 30.0) -> None:
        """Until every running node sees ``master`` as the owner of ``slot``."""

        def everywhere() -> None:
            for node in self.running():
                owner = owner_of(node.cluster_nodes(), slot)
                if owner != master.node_id:
                    raise NotYet(f"node {node.port} sees slot {slot} at {owner}")

        poll(f"slot {slot} owned by {master} on every node", everywhere, timeout)

    # -- moving slots

    def begin_slot_migration(
        self, slot: int, to_master: ClusterNode, *, batch_size: int = 100
    ) -> SlotMigration:
        """Start a live migration of ``slot`` to ``to_master`` (IMPORTING and MIGRATING set): from
        here on, a client is sent to the target with ASK for a key the source no longer has, and a
        command on several keys some of which moved gets TRYAGAIN. Move the keys and hand the slot
        over with the returned ``SlotMigration``."""
        return SlotMigration(self, slot, self.master_of_slot(slot), to_master, batch_size).begin()

    def migrate_slot(self, slot: int, to_master: ClusterNode, *, batch_size: int = 100) -> int:
        """Migrate ``slot`` with its keys to ``to_master`` in one go; returns how many keys moved."""
        migration = self.begin_slot_migration(slot, to_master, batch_size=batch_size)
        migration.finish()
        return migration.moved


class SlotMigration:
    """A live slot migration, the way ``redis-cli --cluster reshard`` does it, one step at a time:
    ``begin`` (the target IMPORTING, the source MIGRATING), ``move_batch`` (up to ``batch_size`` keys
    with one MIGRATE ... KEYS), ``finish`` (what is left moved, then CLUSTER SETSLOT NODE on the
    target, the source and every other master, and every node seeing the new owner)."""

    def __init__(
        self,
        cluster: RedisClusterServers,
        slot: int,
        source: ClusterNode,
        target: ClusterNode,
        batch_size: int,
        migrate_timeout_ms: int = 5000,
    ) -> None:
        if source is target:
            raise ValueError(f"slot {slot} is already on {target}")
        self.cluster = cluster
        self.slot = slot
        self.source = source
        self.target = target
        self.batch_size = batch_size
        self.migrate_timeout_ms = migrate_timeout_ms
        self.moved = 0

    def begin(self) -> Self:
        call(self.target.port, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source.node_id)
        call(self.source.port, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target.node_id)
        return self

    def keys_left(self) -> int:
        """Keys of the slot still on the source."""
        return int(call(self.source.port, "CLUSTER", "COUNTKEYSINSLOT", self.slot))

    def move_batch(self) -> int:
        """Move up to ``batch_size`` keys to the target; returns how many (0: none left)."""
        keys = call(self.source.port, "CLUSTER", "GETKEYSINSLOT", self.slot, self.batch_size)
        if keys:
            call(
                self.source.port,
                "MIGRATE",
                LOOPBACK,
                self.target.port,
                "",
                0,
                self.migrate_timeout_ms,
                "KEYS",
                *keys,
            )
        self.moved += len(keys)
        return len(keys)

    def finish(self, timeout: float = 30.0) -> None:
        # No key of the slot can appear on the source meanwhile: a MIGRATING source sends the writes
        # of keys it does not have to the target (ASK).
        while self.move_batch():
            pass
        others = [master for master in self.cluster.masters() if master not in (self.source, self.target)]
        for node in (self.target, self.source, *others):
            call(node.port, "CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        self.cluster.wait_slot_owner(self.slot, self.target, timeout)
