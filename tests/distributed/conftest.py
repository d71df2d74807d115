"""Fixtures of the distributed tests: a cluster of real ``dag-service`` processes per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from distributed_support import Cluster, print_logs, setup_or_call_failed
from redis_support import RedisServer

from bench.processes import DAG_SERVICE


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    fresh_redis: Callable[..., RedisServer],
    tmp_path: Path,
    engine_pycache: Path | None,
) -> Iterator[Callable[..., Cluster]]:
    """``cluster(**settings)``: a redis-server of the test's own plus the processes the test starts
    on it; every process is stopped (SIGTERM, then SIGKILL) at the end, and on failure their logs
    are printed."""
    assert DAG_SERVICE.exists(), f"console script not installed at {DAG_SERVICE}"
    made: list[Cluster] = []

    def make(**settings: str) -> Cluster:
        made.append(Cluster(fresh_redis(), tmp_path / f"cluster-{len(made)}", engine_pycache, dict(settings)))
        return made[-1]

    yield make
    for each in made:
        each.stop_all()
    if setup_or_call_failed(request):
        print_logs(made)
