"""Fixtures shared by every test folder, and the two tiers of the suite.

**Tiers.** ``uv run pytest`` is the quick tier: everything but the fault suite (``tests/faults``,
marked ``faults``: real processes killed, paused and restarted, timing-sensitive, about 2.5
minutes alone), run in parallel by pytest-xdist (``-n auto`` in pyproject). The fault tier runs
when asked for: ``uv run pytest -m faults -n 0`` (``.ci/run`` does, after the quick tier), when
only its files are given (``uv run pytest tests/faults -n 0``), or with any ``-m`` expression.

**Parallel runs.** ``-n auto`` starts one worker more than the machine has CPUs
(``pytest_xdist_auto_num_workers``): much of the suite waits on processes it started and on Redis,
so on 2 cores 3 workers finish the quick tier in 3:42-3:59 where 2 took 4:04-4:10. Each xdist worker
is its own pytest session: its own session redis-server on a
free port, its own temporary folders. Tests are handed out one at a time, except that a test using a
module-scoped fixture (a server, a cluster) goes to the ``xdist_group`` of its file, so that fixture
starts once, and the tests reading the session's batch of CLI commands (the ``cli`` fixture of
``tests/e2e/conftest.py``) form one group, so that batch starts once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_support import RedisClusterServers, RedisSentinelServers, RedisServer

FAULT_TIER = Path(__file__).parent / "faults"
SHARED_SCOPES = frozenset({"module", "package", "class"})


def _xdist_group(item: pytest.Item) -> str | None:
    """The group a test must share a worker with (see the module's docstring), or None."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    if "cli" in info.names_closure:
        return "e2e_cli_batch"
    scopes = {fixture.scope for fixtures in info.name2fixturedefs.values() for fixture in fixtures}
    if scopes & SHARED_SCOPES:
        path = Path(item.path)
        return str(path.relative_to(path.parents[1]))
    return None


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: the CPUs this process may use, plus one (the module's docstring)."""
    return (os.process_cpu_count() or 1) + 1  # the CPUs it may use (affinity), on every platform


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the fault tier (tests/faults); not in the quick run")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    faults: list[pytest.Item] = []
    for item in items:
        group = _xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        if FAULT_TIER in Path(item.path).parents:
            item.add_marker(pytest.mark.faults)
            faults.append(item)
    if faults and len(faults) < len(items) and not config.option.markexpr:
        config.hook.pytest_deselected(items=faults)
        left_out = set(map(id, faults))
        items[:] = [item for item in items if id(item) not in left_out]


def _quick_tier(config: pytest.Config) -> bool:
    """Whether this run left the fault tier out: it was asked for a folder holding it, with more
    than it (the rule above, read from the arguments: xdist's controller collects nothing)."""
    if config.option.markexpr:
        return False
    named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    in_faults = [path == FAULT_TIER or FAULT_TIER in path.parents for path in named]
    covers_faults = [path in FAULT_TIER.parents for path in named]
    return not named or (any(covers_faults) and not all(in_faults))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _quick_tier(config) and not hasattr(config, "workerinput"):
        terminalreporter.write_line(
            "quick tier: the fault tier (tests/faults) was left out; run it with "
            "`uv run pytest -m faults -n 0` (bash .ci/run runs both)"
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so that teardown knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def engine_pycache(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the engine processes the tests start keep their bytecode (see ``bench.processes.
    environment_without_settings``): pytest's cache, kept from one session to the next; without it
    (``-p no:cacheprovider`` leaves ``pytestconfig`` without a ``cache`` attribute) a folder of this
    session, so that only the first process compiles what it imports."""
    cache = getattr(pytestconfig, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("dag_service_pycache"))
    return tmp_path_factory.mktemp("dag_service_pycache")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests isolate themselves with a key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis-session")).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start a redis-server of the test's own (to kill, pause or restart); all stop at the end."""
    started: list[RedisServer] = []

    def start(**options: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A Redis Cluster of 3 masters and 3 replicas for the module, healthy when handed out; a test
    that kills a node restarts it (``restart``) or leaves the rest of its module a smaller cluster.
    Tests sharing it isolate themselves with key prefixes (or ``flushall()``)."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelServers]:
    """A primary, its replica and 3 sentinels (quorum 2, down after 1 s) for the module, ready when
    handed out (the replica in sync, every sentinel aware of it and of the others)."""
    servers = RedisSentinelServers(tmp_path_factory.mktemp("redis-sentinel")).start()
    yield servers
    servers.stop()
