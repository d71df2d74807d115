"""Fixtures of the fault suite: a cluster of real ``dag-service`` processes per test, on a
redis-server of the test's own (AOF on), with the ``fault`` handler and its ledger.

The suite reuses the distributed tests' harness (``tests/distributed/distributed_support.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "distributed"))

from fault_support import FaultCluster, end_fault_clusters, report_lines
from redis_support import RedisServer

from bench.processes import DAG_SERVICE


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = report_lines()
    if lines:
        terminalreporter.section("fault suite figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def faults(
    request: pytest.FixtureRequest,
    fresh_redis: Callable[..., RedisServer],
    tmp_path: Path,
    engine_pycache: Path | None,
) -> Iterator[Callable[..., FaultCluster]]:
    """``faults(appendfsync=..., audit=..., **settings)``: a redis-server of the test's own plus the
    processes the test starts on it; every process is stopped (paused ones resumed first) at the
    end, and on failure their logs and Redis's are printed."""
    assert DAG_SERVICE.exists(), f"console script not installed at {DAG_SERVICE}"
    made: list[FaultCluster] = []

    def make(*, appendfsync: str = "always", audit: bool = True, **settings: str) -> FaultCluster:
        workdir = tmp_path / f"faults-{len(made)}"
        server = fresh_redis(appendfsync=appendfsync)
        made.append(FaultCluster(server, workdir, engine_pycache, dict(settings), audit=audit))
        return made[-1]

    yield make
    end_fault_clusters(request, made)
