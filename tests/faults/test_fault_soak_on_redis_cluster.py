"""The soak (``test_fault_soak``), unchanged, on a Redis Cluster of 3 masters and 3 replicas: runs
of mixed shapes at a steady pace while a chaos loop SIGKILLs workers and orchestrators; every
invariant holds over every run. Run by hand (it keeps ``bash .ci/run`` under its time):
``CLUSTER_SOAK=1 uv run pytest tests/faults/test_fault_soak_on_redis_cluster.py -n 0``, with
``SOAK_RUNS=500`` for the long one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fault_support import FaultCluster, end_fault_clusters
from redis_support import RedisClusterServers
from test_fault_soak import test_soak_under_chaos_loses_nothing_and_duplicates_nothing
from topology_targets import ClusterTarget

__all__ = ["test_soak_under_chaos_loses_nothing_and_duplicates_nothing"]

pytestmark = pytest.mark.skipif(
    os.environ.get("CLUSTER_SOAK") != "1", reason="the soak on a cluster runs by hand: CLUSTER_SOAK=1"
)


@pytest.fixture
def faults(
    request: pytest.FixtureRequest,
    redis_cluster: RedisClusterServers,
    tmp_path: Path,
    engine_pycache: Path | None,
) -> Iterator[Callable[..., FaultCluster]]:
    """As the fault tier's ``faults``, on the module's Redis Cluster (persistence is the cluster's:
    ``appendfsync`` does not apply)."""
    made: list[FaultCluster] = []

    def make(*, audit: bool = True, **settings: str) -> FaultCluster:
        workdir = tmp_path / f"faults-{len(made)}"
        target = ClusterTarget(redis_cluster)
        made.append(FaultCluster(target, workdir, engine_pycache, dict(settings), audit=audit))  # type: ignore[arg-type]
        return made[-1]

    yield make
    end_fault_clusters(request, made)
