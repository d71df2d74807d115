"""Running workflows in process on the real container and ``EmbeddedEngine``, with providers overridden."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import definitions
from definitions import node_with as node  # noqa: F401  (the integration tests' builder, re-exported)
from dependency_injector import providers

from domain.run import Run
from services.application.run_view import run_view
from services.cli.report import run_document
from services.container import Container
from services.engine import EmbeddedEngine
from services.settings import Settings
from services.worker.builtin import register_builtins
from services.worker.registry import HandlerRegistry

RUN_DEADLINE_SECONDS = 15.0


def fresh_registry(*, builtins: bool = False) -> HandlerRegistry:
    registry = HandlerRegistry()
    return register_builtins(registry) if builtins else registry


def make_container(registry: HandlerRegistry, **settings: Any) -> Container:
    """A container of its own (fresh memory adapters) with this registry and these settings."""
    container = Container()
    container.registry.override(providers.Object(registry))
    container.settings.override(providers.Object(Settings(**settings)))
    return container


workflow = partial(definitions.workflow, name="integration")


async def run_workflow(
    container: Container,
    definition: dict[str, Any],
    run_input: dict[str, Any] | None = None,
    *,
    workers: int = 1,
    deadline: float = RUN_DEADLINE_SECONDS,
) -> Run:
    """Register, start and wait for one run on a fresh engine; the run is final when this returns."""
    workflows = container.workflows()
    stored = await workflows.register(definition)
    async with EmbeddedEngine(container, workers) as engine:
        run = await workflows.start(stored.definition_id, run_input or {})
        async with asyncio.timeout(deadline):
            status = await engine.wait_for(run.run_id)
    assert status is run.status
    assert status.is_final
    return await workflows.get_run(run.run_id)


def view(run: Run) -> dict[str, Any]:
    return run_document(run_view(run))
