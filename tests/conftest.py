"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_support import RedisServer


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so that teardown knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def engine_pycache(pytestconfig: pytest.Config) -> Path | None:
    """Where the engine processes the tests start keep their bytecode."""
    return cache.mkdir("dag_service_pycache") if (cache := getattr(pytestconfig, "cache", None)) else None


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
