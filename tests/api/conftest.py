"""Fixtures: the API over a real embedded engine, orchestrator and two workers running on the test's
event loop, on the memory backend and on the test session's own redis-server (every test runs on both)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from api_support import client_for, make_settings
from dependency_injector import providers
from redis_support import RedisServer

from services.api import create_app
from services.container import Container, close_backend, open_backend
from services.engine import EmbeddedEngine
from services.settings import Settings


@pytest.fixture(params=["memory", "redis"])
async def container(request: pytest.FixtureRequest) -> AsyncIterator[Container]:
    container = Container()
    container.backend.override(request.param)
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        settings = Settings(redis_url=server.url, redis_key_prefix=f"api-{uuid.uuid4().hex[:10]}")
        container.settings.override(providers.Object(settings))
    await open_backend(container)
    try:
        async with EmbeddedEngine(container, workers=2):
            yield container
    finally:
        await close_backend(container)


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(container.workflows, make_settings())) as client:
        yield client
