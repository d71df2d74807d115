"""A real redis-server per test or session, on a free port in a temporary folder; a Redis Cluster or
a primary with its replica and sentinels, per module.

Tests can kill (SIGKILL), pause (SIGSTOP), resume and restart them. Where the binaries are missing
the tests skip with a reason, unless REQUIRE_REDIS=1 (CI), where they fail. Starting, waiting and
stopping are ``bench.processes.RedisServer``'s and ``bench.redis_topologies``', shared with the
benchmarks; this adds only the tests' policy: the binaries are required (or the test skipped), and
the append-only file is on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import processes, redis_topologies

REDIS_BINARY = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def _require(path: str | None, name: str) -> str:
    if path is None:
        reason = f"{name} is not installed (apt-get install redis-server)"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)
    return path


def require_redis_binary() -> str:
    return _require(REDIS_BINARY, "redis-server")


def require_redis_cli() -> str:
    """redis-cli (Debian's redis-tools, which redis-server depends on): it creates the clusters."""
    return _require(REDIS_CLI, "redis-cli")


class RedisServer(processes.RedisServer):
    """redis-server with AOF on (``appendfsync``: always, everysec, no); ``redis.log`` in ``folder``."""

    def __init__(self, folder: Path, *, appendfsync: str = "everysec") -> None:
        super().__init__(require_redis_binary(), folder, appendfsync=appendfsync)


class RedisClusterServers(redis_topologies.RedisClusterServers):
    """A Redis Cluster (3 masters, 3 replicas, a node timeout of 1 s unless told otherwise: the
    options of ``bench.redis_topologies.RedisClusterServers``), AOF on (everysec)."""

    def __init__(self, folder: Path, **options: Any) -> None:
        super().__init__(require_redis_binary(), require_redis_cli(), folder, **options)


class RedisSentinelServers(redis_topologies.RedisSentinelServers):
    """A primary, its replica and 3 sentinels (the options of ``bench.redis_topologies.
    RedisSentinelServers``), AOF on (everysec)."""

    def __init__(self, folder: Path, **options: Any) -> None:
        super().__init__(require_redis_binary(), folder, **options)
