"""The ``backend`` fixture: every contract test runs once per backend (memory, fakeredis, redis).

Markers (all keyword arguments are backend names):

- ``@pytest.mark.contract_settings(**settings)``: settings of the test's backend (e.g. a short
  ``visibility_timeout_seconds``);
- ``@pytest.mark.contract_skip(memory="reason")``: skip the test on those backends;
- ``@pytest.mark.contract_xfail(redis="BUG: ...")``: a known adapter bug, ``xfail(strict=True)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis_support import RedisClusterServers

pytest.register_assert_rewrite("contract_support")

from contract_support import BACKENDS, Backend, BackendFactory  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "contract_settings(**settings): settings of the contract test's backend"
    )
    config.addinivalue_line(
        "markers", "contract_skip(**reasons): skip a contract test on the backends named as keywords"
    )
    config.addinivalue_line(
        "markers", "contract_xfail(**reasons): strict xfail of a contract test on the backends named"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "backend_name" not in callspec.params:
            continue
        name = callspec.params["backend_name"]
        for marker in item.iter_markers("contract_skip"):
            if name in marker.kwargs:
                item.add_marker(pytest.mark.skip(reason=f"{name}: {marker.kwargs[name]}"))
        for marker in item.iter_markers("contract_xfail"):
            if name in marker.kwargs:
                item.add_marker(pytest.mark.xfail(strict=True, reason=marker.kwargs[name]))


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_url(backend_name: str, request: pytest.FixtureRequest) -> str | None:
    """The session's real redis-server (or Redis Cluster), started only when a test runs on the
    ``redis`` (``redis-cluster``) backend."""
    if backend_name == "redis-cluster":
        return str(request.getfixturevalue("session_redis_cluster").seed_url)
    if backend_name != "redis":
        return None
    return str(request.getfixturevalue("redis_server").url)


@pytest.fixture(scope="session")
def session_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One Redis Cluster for the session's contract tests; they isolate themselves by key prefix."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster-session")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def backend_factory(backend_name: str, redis_url: str | None) -> AsyncIterator[BackendFactory]:
    factory = BackendFactory(backend_name, redis_url)
    yield factory
    await factory.close()


@pytest.fixture
async def backend(backend_factory: BackendFactory, request: pytest.FixtureRequest) -> Backend:
    overrides: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("contract_settings"))):
        overrides.update(marker.kwargs)
    return await backend_factory.build(backend_factory.settings(**overrides))
