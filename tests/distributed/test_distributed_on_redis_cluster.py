"""The single server's distributed tests, unchanged, on a Redis Cluster (3 masters, 3 replicas;
``REDIS_CLUSTER=true``): the seed's scenarios with 2 orchestrators and 2 workers, every node
dispatched exactly once, and the fan-in race, the child dispatched once per run with two
orchestrators applying its parents' results at once.

The tests are the single server's own (imported): only the ``cluster`` fixture differs, making
the engine's processes on the module's Redis Cluster, each test under a key prefix of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from distributed_support import Cluster, print_logs, setup_or_call_failed
from redis_support import RedisClusterServers
from test_distributed_fan_in import test_fan_in_child_dispatched_exactly_once_per_run
from test_distributed_scenarios import test_seed_scenarios_run_exactly_once_across_replicas
from topology_targets import ClusterTarget

__all__ = [
    "test_fan_in_child_dispatched_exactly_once_per_run",
    "test_seed_scenarios_run_exactly_once_across_replicas",
]


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    redis_cluster: RedisClusterServers,
    tmp_path: Path,
    engine_pycache: Path | None,
) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(**settings: str) -> Cluster:
        target = ClusterTarget(redis_cluster)
        made.append(Cluster(target, tmp_path / f"cluster-{len(made)}", engine_pycache, dict(settings)))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for each in made:
        each.stop_all()
    if setup_or_call_failed(request):
        print_logs(made)
