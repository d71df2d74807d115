"""What the distributed benchmark reads from a Redis Cluster, node by node (``bench.redis_nodes``),
proven on a real cluster of 3 masters: which master serves each shard of the engine's key space,
per-master command counters, and readers blocked on streams of different masters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis_support import require_redis_binary, require_redis_cli

from adapters.redis.keys import KeySpace
from bench.redis_nodes import (
    ClusterOfMasters,
    counters,
    reset_stats,
    shards_by_master,
    stream_readers,
    summed_commandstats,
)
from bench.redis_topologies import call


@pytest.fixture(scope="module")
def masters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterOfMasters]:
    folder = tmp_path_factory.mktemp("bench-cluster")
    # Not tied to the test process by PR_SET_PDEATHSIG: code between fork and exec is unsafe once
    # a process has threads (``bench.processes.spawn``).
    require_redis_cli()  # skipped without the binaries, failed under REQUIRE_REDIS=1
    nodes = ClusterOfMasters(require_redis_binary(), folder, die_with_parent=False)
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()
    assert not nodes.servers.running()


def owner_by_server(masters: ClusterOfMasters, key: str) -> int:
    """The port of the master serving ``key``, from the slot a server computes for it."""
    slot = int(call(masters.nodes()[0].port, "CLUSTER", "KEYSLOT", key))
    return masters.servers.master_of_slot(slot).port


def test_each_shard_of_the_engine_is_placed_on_the_master_serving_its_keys(masters: ClusterOfMasters) -> None:
    keys = KeySpace("bench-prefix", 12, cluster=True)

    placed = shards_by_master(masters, 12)

    assert sorted(placed) == sorted(node.port for node in masters.nodes())
    assert sorted(number for numbers in placed.values() for number in numbers) == list(range(12))
    for port, numbers in placed.items():
        for number in numbers:
            shard = keys.shard(number)
            for key in (shard.tasks, shard.events, shard.lease, shard.run_prefix + "a-run"):
                assert owner_by_server(masters, key) == port, key


def test_a_command_counts_on_the_master_that_ran_it_and_in_the_sum(masters: ClusterOfMasters) -> None:
    nodes = masters.nodes()
    key = "counted:{s3}:value"
    owner = owner_by_server(masters, key)
    client = masters.servers.client()
    reset_stats(nodes)
    for value in range(5):
        client.set(key, value)
    client.close()

    found = {node.role: node for node in counters(nodes)}

    for node in nodes:
        calls = found[node.role].commandstats.get("set", (0, 0))[0]
        assert calls == (5 if node.port == owner else 0), node.role
    assert found[f"redis@{owner}"].commands >= 5
    summed = {row["command"]: row["calls"] for row in summed_commandstats(list(found.values()))}
    assert summed["set"] == 5


def test_readers_blocked_on_streams_of_different_masters_are_all_counted(masters: ClusterOfMasters) -> None:
    nodes = masters.nodes()
    streams = ["blocked:{s0}:tasks", "blocked:{s2}:tasks"]
    assert len({owner_by_server(masters, stream) for stream in streams}) == 2, "two masters"
    cluster = masters.servers.client()
    for stream in streams:
        cluster.xgroup_create(stream, "readers", id="$", mkstream=True)
    before = stream_readers(nodes)

    def read(stream: str) -> None:
        port = owner_by_server(masters, stream)
        with redis.Redis(port=port, socket_timeout=30, decode_responses=True) as client:
            client.xreadgroup("readers", "bench", {stream: ">"}, count=1, block=20_000)

    readers = [threading.Thread(target=read, args=(stream,)) for stream in streams]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 10
        while stream_readers(nodes) < before + 2:
            assert time.monotonic() < deadline, f"{stream_readers(nodes)} readers blocked, not {before + 2}"
            time.sleep(0.05)
    finally:
        for stream in streams:
            cluster.xadd(stream, {"wake": "1"})  # ends the blocked reads
        for reader in readers:
            reader.join(10)
        cluster.close()
    assert not any(reader.is_alive() for reader in readers)
