"""Fixtures of the distributed tests: a cluster of real ``dag-service`` processes per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed_support import DAG_SERVICE, Cluster
from redis_support import RedisServer


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so that teardown knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def engine_pycache(pytestconfig: pytest.Config) -> Path | None:
    return pytestconfig.cache.mkdir("dag_service_pycache") if pytestconfig.cache else None


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
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call")
    )
    if failed:
        for each in made:
            print(f"\n##### engine logs (key prefix {each.prefix}, folder {each.workdir})")
            print(each.logs())
