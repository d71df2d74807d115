"""A real redis-server per test or session, on a free port in a temporary folder.

Tests can kill (SIGKILL), pause (SIGSTOP), resume and restart it. Where the binary is missing the
tests skip with a reason, unless REQUIRE_REDIS=1 (CI), where they fail. Starting, waiting and
stopping are ``bench.processes.RedisServer``'s, shared with the benchmarks; this adds only the
tests' policy: the binary is required (or the test skipped), and the append-only file is on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench import processes

REDIS_BINARY = shutil.which("redis-server")


def require_redis_binary() -> str:
    if REDIS_BINARY is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)
    return REDIS_BINARY


class RedisServer(processes.RedisServer):
    """redis-server with AOF on (``appendfsync``: always, everysec, no); ``redis.log`` in ``folder``."""

    def __init__(self, folder: Path, *, appendfsync: str = "everysec") -> None:
        super().__init__(require_redis_binary(), folder, appendfsync=appendfsync)
