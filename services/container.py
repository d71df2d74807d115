"""The composition root: the one place that chooses adapters (from settings) and wires services.

Nothing here connects at import time; providers build objects when a deployable starts. Tests
override providers (``container.registry.override(...)``) instead of patching.
"""

from __future__ import annotations

from dependency_injector import containers, providers

from adapters.memory import (
    InMemoryDefinitionRepository,
    InMemoryQueue,
    InMemoryRunRepository,
    InMemoryTimerStore,
)
from adapters.system import SystemClock, UuidIds
from services.orchestrator import Orchestrator
from services.settings import Settings
from services.shared.completions import RunCompletions
from services.shared.workflows import WorkflowService
from services.worker import Worker, default_registry


class Container(containers.DeclarativeContainer):
    """``backend`` ('memory' or 'redis') picks the adapters; entry points set it from settings."""

    backend = providers.Object("memory")
    settings = providers.Singleton(Settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIds)
    completions = providers.Singleton(RunCompletions)
    registry = providers.Object(default_registry)

    definitions = providers.Selector(backend, memory=providers.Singleton(InMemoryDefinitionRepository))
    tasks = providers.Selector(backend, memory=providers.Singleton(InMemoryQueue))
    events = providers.Selector(backend, memory=providers.Singleton(InMemoryQueue))
    timers = providers.Selector(backend, memory=providers.Singleton(InMemoryTimerStore, events))
    runs = providers.Selector(
        backend, memory=providers.Singleton(InMemoryRunRepository, tasks, events, timers)
    )

    workflows = providers.Factory(
        WorkflowService,
        definitions=definitions,
        runs=runs,
        clock=clock,
        ids=ids,
        limits=settings.provided.limits.call(),
        known_handlers=registry.provided.names.call(),
    )
    orchestrator = providers.Factory(
        Orchestrator,
        runs=runs,
        events=events,
        timers=timers,
        clock=clock,
        batch_size=settings.provided.orchestrator_batch_size,
        on_run_finished=completions.provided.finished,
    )
    worker = providers.Factory(
        Worker,
        registry=registry,
        definitions=definitions,
        runs=runs,
        tasks=tasks,
        events=events,
        clock=clock,
        concurrency=settings.provided.worker_concurrency,
        max_output_bytes=settings.provided.max_output_bytes,
    )
