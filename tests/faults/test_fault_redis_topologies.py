"""Redis fails over under the engine: a Redis Cluster master SIGKILLed mid-run (its replica takes
its slots), a busy shard's slot migrated live to another master, and a sentinel-watched primary
SIGKILLed mid-run (its replica promoted).

What the README allows after a failover, and nothing else: replication is asynchronous, so a
promoted replica may lack the last writes its master acknowledged. Without REDIS_WAIT_REPLICAS
a run whose start was answered may be gone (it is then not stored at all), and a handler may run
again for an attempt whose result was lost (the ledger shows the repeat); every run that is stored
ends, every attempt is dispatched once, every invariant holds. With REDIS_WAIT_REPLICAS=1 no
answered start is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from distributed_support import node, workflow
from fault_support import FaultCluster, end_fault_clusters, fault_node, measure
from invariants import check_invariants
from redis_support import RedisClusterServers, RedisSentinelServers
from topology_targets import ClusterTarget, SentinelTarget

from bench.redis_topologies import slot_of

RUNS = 24
BRANCHES = [f"branch_{number}" for number in range(6)]
DEFINITION = workflow(
    "fan_out_through_a_failover",
    [
        node("input", "input"),
        *(fault_node(branch, ["input"], sleep=0.3) for branch in BRANCHES),
        fault_node("join", BRANCHES, sleep=0.1),
    ],
)


@pytest.fixture
def on_store(
    request: pytest.FixtureRequest, tmp_path: Path, engine_pycache: Path | None
) -> Iterator[Callable[..., FaultCluster]]:
    """``on_store(target, **settings)``: a ``FaultCluster`` on a cluster or sentinel target."""
    made: list[FaultCluster] = []

    def make(target: ClusterTarget | SentinelTarget, **settings: str) -> FaultCluster:
        workdir = tmp_path / f"faults-{len(made)}"
        made.append(FaultCluster(target, workdir, engine_pycache, dict(settings)))  # type: ignore[arg-type]
        return made[-1]

    yield make
    end_fault_clusters(request, made)


async def start_runs(engine: FaultCluster) -> list[str]:
    async with engine.client() as client:
        return [await engine.start_run(client, DEFINITION, {"n": n}) for n in range(RUNS)]


async def wait_some_progress(engine: FaultCluster, run_ids: list[str]) -> None:
    """Until a few branches have completed: the failover falls among running handlers."""

    def progressed() -> bool:
        done = sum(entry.event == "end" for entry in engine.ledger.entries())
        return done >= len(run_ids) // 2

    await engine.wait_until(progressed, 30, "some branches ended", poll=0.05)


def accepted_and_stored(engine: FaultCluster, run_ids: list[str]) -> tuple[list[str], list[str]]:
    """(stored, gone): the runs Redis still holds, and those a failover lost."""
    statuses = engine.run_status(run_ids)
    return [r for r in run_ids if statuses[r] is not None], [r for r in run_ids if statuses[r] is None]


@pytest.mark.timeout(150)
async def test_a_cluster_master_killed_mid_run_its_replica_takes_over(
    on_store: Callable[..., FaultCluster], redis_cluster: RedisClusterServers
) -> None:
    engine = on_store(ClusterTarget(redis_cluster), VISIBILITY_TIMEOUT_SECONDS="3")
    await engine.start_many(("api",), ("orchestrator",), ("orchestrator",), ("worker",), ("worker",))
    run_ids = await start_runs(engine)
    await wait_some_progress(engine, run_ids)
    # The master of the busiest shard's slot: shard 0 holds runs (and its streams and timers).
    victim = redis_cluster.master_for_key(engine.keys.shard(0).events)
    killed_at = time.monotonic()
    redis_cluster.kill(victim)
    took_over = await asyncio.to_thread(redis_cluster.wait_failover, victim, 30.0)
    measure("Redis Cluster master SIGKILL -> its replica promoted", time.monotonic() - killed_at)
    try:
        stored, gone = accepted_and_stored(engine, run_ids)
        await engine.wait_final(stored, within=90)
        figures = check_invariants(engine, stored, expected=dict.fromkeys(stored, "COMPLETED"))
        assert took_over.port != victim.port
        assert figures.runs == len(stored) and len(stored) + len(gone) == RUNS
        engine.check_all_alive()
    finally:
        await asyncio.to_thread(redis_cluster.restart, victim)


@pytest.mark.timeout(150)
async def test_a_busy_shards_slot_migrates_live_and_nothing_is_lost(
    on_store: Callable[..., FaultCluster], redis_cluster: RedisClusterServers
) -> None:
    engine = on_store(ClusterTarget(redis_cluster), VISIBILITY_TIMEOUT_SECONDS="3")
    await engine.start_many(("api",), ("orchestrator",), ("worker",), ("worker",))
    shard = engine.keys.shard(1)
    slot = slot_of(shard.events)
    source = redis_cluster.master_of_slot(slot)
    target = next(master for master in redis_cluster.masters() if master.port != source.port)
    run_ids = await start_runs(engine)
    await wait_some_progress(engine, run_ids)

    migration = redis_cluster.begin_slot_migration(slot, target)
    for _ in range(10_000):  # a batch at a time, the engine busy between batches
        if not await asyncio.to_thread(migration.move_batch):
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(migration.finish)

    await engine.wait_final(run_ids, within=90)
    check_invariants(engine, run_ids, expected=dict.fromkeys(run_ids, "COMPLETED"))
    assert redis_cluster.master_of_slot(slot).port == target.port
    assert migration.moved > 0  # the shard's keys (runs, streams) did move
    engine.check_all_alive()


@pytest.mark.timeout(150)
async def test_a_sentinel_primary_killed_mid_run_no_answered_run_is_lost(
    on_store: Callable[..., FaultCluster], redis_sentinel: RedisSentinelServers
) -> None:
    """With REDIS_WAIT_REPLICAS=1 each write waits for the replica: after the failover the new
    primary has every answered start. It has no replica of its own until the old primary is back
    (the sentinels make it one), and until then writes wait and fail: the engine rides that out."""
    engine = on_store(SentinelTarget(redis_sentinel, wait_replicas=1), VISIBILITY_TIMEOUT_SECONDS="3")
    await engine.start_many(("api",), ("orchestrator",), ("worker",), ("worker",))
    run_ids = await start_runs(engine)
    await wait_some_progress(engine, run_ids)

    killed_at = time.monotonic()
    killed = redis_sentinel.kill_primary()
    promoted = await asyncio.to_thread(redis_sentinel.wait_failover, 30.0)
    measure("Sentinel primary SIGKILL -> its replica promoted", time.monotonic() - killed_at)
    killed.start()  # comes back; the sentinels make it the new primary's replica

    await engine.wait_final(run_ids, within=100)
    check_invariants(engine, run_ids, expected=dict.fromkeys(run_ids, "COMPLETED"))
    assert promoted.port != killed.port
    engine.check_all_alive()
