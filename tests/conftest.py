"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis_support import RedisServer


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
