"""The container stack, started once for the module: podman prepared, stand-ins cached, compose up.

Left out of every run whose -m expression does not name ``containers`` (the quick tier, the fault
tier): ``uv run pytest -m containers -n 0`` runs it alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from compose_stack import API_URL, Stack
from podman_host import PodmanUnavailable, prepare
from standins import ensure_standins

HERE = Path(__file__).parent

# A cold machine installs podman, debootstraps two Debian trees and builds the image from nothing.
BUILD_TIMEOUT_SECONDS = 1200


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "containers" in (config.option.markexpr or ""):
        return
    ours = [item for item in items if HERE in Path(item.path).parents]
    if ours:
        config.hook.pytest_deselected(items=ours)
        left_out = set(map(id, ours))
        items[:] = [item for item in items if id(item) not in left_out]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = time.monotonic()
    try:
        prepare()
    except PodmanUnavailable as reason:
        pytest.skip(f"podman cannot run containers here: {reason}")
    ensure_standins()
    print(f"podman ready, stand-in images ready in {time.monotonic() - started:.0f} s")
    engine = Stack(tmp_path_factory.mktemp("compose"))
    try:
        engine.start(build_timeout=BUILD_TIMEOUT_SECONDS)
        print(f"stack healthy {time.monotonic() - started:.0f} s after the start")
        yield engine
    finally:
        engine.stop()
        print(f"stack removed {time.monotonic() - started:.0f} s after the start")


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=API_URL, timeout=30) as client:
        yield client
