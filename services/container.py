"""The composition root: the one place that chooses adapters (from settings) and wires services.

``backend`` ('memory' or 'redis') selects the adapters; entry points set it. Nothing connects at
import or construction time: ``open_backend`` checks the backend when a deployable starts and
``close_backend`` releases it on shutdown. Tests override providers instead of patching.
"""

from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from adapters.memory import (
    InMemoryAttemptLogStore,
    InMemoryAttemptSignals,
    InMemoryConcurrencySlots,
    InMemoryDefinitionRepository,
    InMemoryQueue,
    InMemoryRateLimiter,
    InMemoryRunChanges,
    InMemoryRunRepository,
    InMemoryTimerStore,
    InMemoryWorkerDirectory,
)
from adapters.redis.attempt_logs import RedisAttemptLogStore
from adapters.redis.bus import RedisEventBus, RedisTaskQueue, RedisTimerStore
from adapters.redis.changes import RedisRunChanges
from adapters.redis.connection import check_reachable, create_client
from adapters.redis.definitions import RedisDefinitionRepository
from adapters.redis.keys import KeySpace
from adapters.redis.rate_limits import RedisRateLimiter
from adapters.redis.runs import RedisRunRepository
from adapters.redis.signals import RedisAttemptSignals
from adapters.redis.slots import RedisConcurrencySlots
from adapters.redis.topology import RedisTopology
from adapters.redis.workers import RedisWorkerDirectory
from adapters.system import SystemClock, UuidIds
from domain.messages import Task
from services.application.completions import RunCompletions
from services.application.workflows import WorkflowService
from services.orchestrator import Orchestrator
from services.runtime.metered import AttemptLedger, MeteredResults, MeteredRuns, MeteredTasks
from services.runtime.metrics import WORKER_SLOTS
from services.runtime.metrics_http import MetricsSource
from services.settings import load_settings
from services.worker import Worker, default_registry
from services.worker.builtin import builtin_names
from services.worker.secrets import SecretSource


def task_queue_of(task: Task) -> str:
    return task.queue


# Blocking reads wait at most this long, so the socket timeout must be longer.
MAX_BLOCK_SECONDS = 1.0


class Container(containers.DeclarativeContainer):
    backend = providers.Object("memory")
    settings = providers.Singleton(load_settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIds)
    completions = providers.Singleton(RunCompletions)
    registry = providers.Object(default_registry)

    redis_topology = providers.Singleton(
        RedisTopology,
        url=settings.provided.redis_location.call(),
        cluster=settings.provided.redis_cluster,
        sentinels=settings.provided.sentinel_addresses.call(),
        sentinel_master=settings.provided.redis_sentinel_master,
        wait_replicas=settings.provided.redis_wait_replicas,
        wait_timeout_ms=settings.provided.redis_wait_timeout_ms,
    )
    redis_url = redis_topology.provided.shown.call()
    """Where Redis is, for messages (no password)."""
    redis_client = providers.Singleton(
        create_client, redis_topology, read_timeout_seconds=MAX_BLOCK_SECONDS + 9
    )
    key_space = providers.Singleton(
        KeySpace,
        settings.provided.redis_key_prefix,
        settings.provided.redis_shards,
        settings.provided.redis_cluster,
    )
    _visibility = settings.provided.visibility_timeout_seconds
    _deliveries = settings.provided.max_deliveries

    definitions = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryDefinitionRepository),
        redis=providers.Singleton(RedisDefinitionRepository, redis_client, key_space, redis_url),
    )
    events = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryQueue, "memory:events"),
        redis=providers.Singleton(
            RedisEventBus, redis_client, redis_url, key_space, _visibility, _deliveries, clock.provided.now
        ),
    )
    tasks = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryQueue, "memory:tasks", task_queue_of),
        redis=providers.Singleton(
            RedisTaskQueue,
            redis_client,
            redis_url,
            key_space,
            _visibility,
            _deliveries,
            events,
            clock.provided.now,
            settings.provided.queues.call(),
        ),
    )
    timers = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryTimerStore, events),
        redis=providers.Singleton(RedisTimerStore, redis_client, redis_url, key_space),
    )
    run_changes = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryRunChanges),
        redis=providers.Singleton(RedisRunChanges, redis_client, key_space, redis_url),
    )
    runs = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryRunRepository, tasks, events, timers, run_changes),
        redis=providers.Singleton(
            RedisRunRepository,
            redis_client,
            key_space,
            definitions,
            redis_url,
            settings.provided.run_retention_seconds,
        ),
    )

    attempt_logs = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryAttemptLogStore),
        redis=providers.Singleton(
            RedisAttemptLogStore, redis_client, key_space, redis_url, settings.provided.run_retention_seconds
        ),
    )
    signals = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryAttemptSignals),
        redis=providers.Singleton(
            RedisAttemptSignals, redis_client, key_space, redis_url, settings.provided.run_retention_seconds
        ),
    )

    workers_directory = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryWorkerDirectory, clock.provided.now),
        redis=providers.Singleton(RedisWorkerDirectory, redis_client, key_space, redis_url),
    )

    slots = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryConcurrencySlots),
        redis=providers.Singleton(RedisConcurrencySlots, redis_client, key_space, redis_url),
    )

    _rate = settings.provided.api_rate_limit_per_second
    rate_limiter = providers.Selector(
        backend,
        memory=providers.Singleton(InMemoryRateLimiter, _rate, settings.provided.rate_burst.call()),
        redis=providers.Singleton(
            RedisRateLimiter, redis_client, key_space, redis_url, _rate, settings.provided.rate_burst.call()
        ),
    )

    # Stateless: one per container, not one per HTTP request.
    workflows = providers.Singleton(
        WorkflowService,
        definitions=definitions,
        runs=runs,
        events=events,
        clock=clock,
        ids=ids,
        attempt_logs=attempt_logs,
        changes=run_changes,
        recheck_seconds=settings.provided.run_wait_recheck_seconds,
        limits=settings.provided.limits.call(),
        default_attempt_timeout_seconds=settings.provided.default_attempt_timeout_seconds,
        known_handlers=registry.provided.names.call(),
        workers=workers_directory,
        builtin_handlers=providers.Singleton(builtin_names),
        # In memory every worker runs in this process, with this registry: it is the whole truth.
        handlers_complete=providers.Selector(
            backend, memory=providers.Object(True), redis=providers.Object(False)
        ),
    )
    orchestrator = providers.Factory(
        Orchestrator,
        runs=runs,
        events=events,
        timers=timers,
        signals=signals,
        clock=clock,
        batch_size=settings.provided.orchestrator_batch_size,
        on_run_finished=completions.provided.finished,
    )
    secret_source = providers.Singleton(
        SecretSource.from_environment,
        settings.provided.secrets_env_prefix,
        settings.provided.secrets_dir,
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
        visibility_timeout_seconds=_visibility,
        attempt_logs=attempt_logs,
        signals=signals,
        cancel_poll_seconds=settings.provided.cancel_poll_seconds,
        cancel_grace_seconds=settings.provided.cancel_grace_seconds,
        shutdown_grace_seconds=settings.provided.shutdown_grace_seconds,
        heartbeat_interval_seconds=settings.provided.heartbeat_interval_seconds,
        max_heartbeat_details_bytes=settings.provided.max_heartbeat_details_bytes,
        secrets=secret_source,
        queues=settings.provided.queues.call(),
        directory=workers_directory,
        slots=slots,
        concurrency_limits=settings.provided.concurrency_limits,
        concurrency_poll_seconds=settings.provided.concurrency_poll_seconds,
    )


async def open_backend(container: Container) -> None:
    """Check that the backend answers; raises ``BackendUnavailable`` naming host and port if not."""
    if container.backend() == "redis":
        await check_reachable(container.redis_client(), container.redis_url())


async def close_backend(container: Container) -> None:
    if container.backend() == "redis":
        await container.run_changes().close()
        await container.events().close()  # an orchestrator gives its shards back
        await container.tasks().close()
        await container.redis_client().aclose()


def meter(container: Container, workers: int) -> MetricsSource:
    """Hand the use cases, the orchestrator and the workers ports that count what passes through
    them (``services.runtime.metered``); call before any of them is made. Returns what a scrape
    reads (the registry, with the streams' statistics)."""
    runs = providers.Singleton(MeteredRuns, container.runs)
    _inject(container.workflows, providers.Singleton, runs=runs)
    _inject(container.orchestrator, providers.Factory, runs=runs)
    ledger = providers.Singleton(AttemptLedger)
    _inject(
        container.worker,
        providers.Factory,
        tasks=providers.Singleton(MeteredTasks, container.tasks, ledger),
        events=providers.Singleton(MeteredResults, container.events, ledger),
    )
    WORKER_SLOTS.set(workers * container.settings().worker_concurrency)
    return MetricsSource([container.events(), container.tasks()])


def _inject(provider: Any, kind: Any, **replaced: Any) -> None:
    """Override ``provider`` with one of the same ``kind`` and class whose keyword arguments are
    ``replaced`` (``add_kwargs`` on a container's copy of a provider does not reach its calls)."""
    provider.override(kind(provider.cls, *provider.args, **{**provider.kwargs, **replaced}))
