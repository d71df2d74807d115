"""The container stack, started once for the module: podman prepared, stand-ins cached, compose up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from compose_stack import API_URL, Stack
from podman_host import PodmanUnavailable, prepare
from standins import ensure_standins

# A cold machine installs podman, debootstraps two Debian trees and builds the image from nothing.
BUILD_TIMEOUT_SECONDS = 1200


@pytest.fixture(scope="session")
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
