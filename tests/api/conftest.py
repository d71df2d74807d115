"""Fixtures: the API over a real embedded engine (memory backend), orchestrator and two workers running
on the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_support import client_for, make_settings

from services.api import create_app
from services.container import Container
from services.engine import EmbeddedEngine


@pytest.fixture
async def container() -> AsyncIterator[Container]:
    container = Container()
    container.backend.override("memory")
    async with EmbeddedEngine(container, workers=2):
        yield container


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(container.workflows, make_settings())) as client:
        yield client
