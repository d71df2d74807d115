"""The Redis Cluster the cluster-mode tests run on, proven on its real servers: it comes up whole,
takes writes through redis-py's cluster client, fails a SIGKILLed master over to its replica, and
moves a slot with its keys live. Tests share the module's cluster; each uses keys of its own."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from redis_support import RedisClusterServers

from bench.processes import ProcessFailed
from bench.redis_topologies import CLUSTER_SLOTS, ClusterNode, call, slot_of
from bench.redis_topologies.cluster import owner_of, parse_cluster_nodes


def keys_on(cluster: RedisClusterServers, master: ClusterNode, prefix: str, count: int) -> list[str]:
    """``count`` keys, each with a hash tag of its own, that ``master`` serves."""
    [served] = [view for view in cluster.view() if view.node_id == master.node_id]
    candidates = (f"{{{prefix}{index}}}:key" for index in itertools.count())
    return list(itertools.islice((key for key in candidates if served.owns(slot_of(key))), count))


def keys_in_slot(node: ClusterNode, slot: int) -> int:
    return int(call(node.port, "CLUSTER", "COUNTKEYSINSLOT", slot))


def replicated(master: ClusterNode) -> None:
    """Until the master's replica has acknowledged every write so far (WAIT)."""
    assert call(master.port, "WAIT", 1, 5000) >= 1


def test_the_cluster_comes_up_with_three_masters_each_with_a_replica(
    redis_cluster: RedisClusterServers,
) -> None:
    masters, replicas = redis_cluster.masters(), redis_cluster.replicas()

    assert len(masters) == 3
    assert len(replicas) == 3
    assert [len(redis_cluster.replicas_of(master)) for master in masters] == [1, 1, 1]
    for node in redis_cluster.nodes:
        info = node.cluster_info()
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == str(CLUSTER_SLOTS)
        assert info["cluster_known_nodes"] == "6"
    owned = sum(view.slot_count for view in redis_cluster.view() if view.is_master)
    assert owned == CLUSTER_SLOTS
    assert redis_cluster.seed_url in {f"redis://127.0.0.1:{master.port}" for master in masters}


def test_a_write_through_the_cluster_client_lands_on_the_master_of_its_slot(
    redis_cluster: RedisClusterServers,
) -> None:
    client = redis_cluster.client()
    keys = [f"{{write-{index}}}:value" for index in range(20)]
    for key in keys:
        client.set(key, key.upper())

    for key in keys:
        master = redis_cluster.master_for_key(key)
        assert call(master.port, "CLUSTER", "KEYSLOT", key) == slot_of(key)
        assert call(master.port, "GET", key) == key.upper()
    assert len({redis_cluster.master_for_key(key) for key in keys}) == 3, "the keys span every master"
    client.close()


def test_a_slot_migrated_live_takes_its_keys_and_clients_follow_it(
    redis_cluster: RedisClusterServers,
) -> None:
    client = redis_cluster.client()
    keys = [f"{{migrated}}:{index}" for index in range(250)]
    for key in keys:
        client.set(key, key)
    slot = slot_of(keys[0])
    source = redis_cluster.master_of_slot(slot)
    target = next(master for master in redis_cluster.masters() if master is not source)

    migration = redis_cluster.begin_slot_migration(slot, target, batch_size=100)
    assert migration.move_batch() == 100
    # Mid-migration: the keys moved are read from the target (the source answers ASK), the others
    # from the source, and a key created now goes to the target.
    assert migration.keys_left() == 150
    assert keys_in_slot(target, slot) == 100
    assert [client.get(key) for key in keys] == keys
    client.set("{migrated}:new", "new")
    assert keys_in_slot(target, slot) == 101
    migration.finish()

    assert migration.moved == 250
    assert redis_cluster.master_of_slot(slot) is target
    assert keys_in_slot(source, slot) == 0
    assert keys_in_slot(target, slot) == 251
    # The client still maps the slot to the source: MOVED sends it to the target.
    assert client.mget(keys[:3]) == keys[:3]
    assert client.get("{migrated}:new") == "new"
    client.close()

    back = redis_cluster.migrate_slot(slot, source)
    assert back == 251
    assert redis_cluster.master_of_slot(slot) is source


def test_a_sigkilled_master_is_replaced_by_its_replica_and_its_keys_stay_readable(
    redis_cluster: RedisClusterServers,
) -> None:
    client = redis_cluster.client()
    master = redis_cluster.masters()[0]
    [replica] = redis_cluster.replicas_of(master)
    keys = keys_on(redis_cluster, master, "failover", 10)
    for key in keys:
        client.set(key, key)
    replicated(master)

    redis_cluster.kill(master)
    promoted = redis_cluster.wait_failover(master)

    assert promoted is replica
    assert not master.running()
    assert all(redis_cluster.master_for_key(key) is promoted for key in keys)
    # The client made before the kill finds the new master by itself.
    assert [client.get(key) for key in keys] == keys
    client.close()

    redis_cluster.restart(master)

    assert master in redis_cluster.replicas_of(promoted)
    assert len(redis_cluster.masters()) == 3
    assert len(redis_cluster.replicas()) == 3


def test_a_start_that_fails_halfway_leaves_no_process(tmp_path: Path) -> None:
    cluster = RedisClusterServers(tmp_path)
    cluster.cli = "/bin/false"  # every node starts, then creating the cluster fails

    with pytest.raises(ProcessFailed, match="exit code 1"):
        cluster.start()

    assert all(node.process is not None for node in cluster.nodes)
    assert not any(node.running() for node in cluster.nodes)


def test_cluster_nodes_lines_are_read_with_slots_in_migration_left_out() -> None:
    text = (
        "07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n"
        "e7d1 127.0.0.1:30001@40001,host myself,master - 0 0 1 connected 0-5460 7000 [5461->-67ed]\n"
        "67ed 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238315229 2 disconnected\n"
    )

    replica, master, failed = parse_cluster_nodes(text)

    assert (replica.node_id, replica.port, replica.is_master, replica.master_id) == (
        "07c3",
        30004,
        False,
        "e7d1",
    )
    assert master.is_master and not master.suspect
    assert master.slot_ranges == (range(5461), range(7000, 7001))
    assert master.slot_count == 5462 and master.owns(7000) and not master.owns(5461)
    assert failed.suspect and failed.slot_count == 0
    assert owner_of([replica, master, failed], 7000) == "e7d1"
    assert owner_of([replica, master, failed], 5461) is None
