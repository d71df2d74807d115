"""Long-running roles: api, orchestrator and workers, alone or together in one process.

SIGTERM or SIGINT stops a process gracefully: the API stops accepting requests, workers take no
new tasks and finish the attempts they hold, then the backend is closed. A second signal exits at
once (whatever a worker held is reclaimed by another after the visibility timeout).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from services.api import create_app
from services.api.app import api_prefix
from services.container import Container, close_backend, meter, open_backend
from services.runtime import tracing
from services.runtime.children import PARENT_PID_VARIABLE, ChildRole, child_environment, stop_when_orphaned
from services.runtime.metrics_http import MetricsSource, metrics_app
from services.runtime.serving import consumer_name, serve_http
from services.runtime.signals import stop_on_signals

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Roles:
    api: bool = False
    orchestrator: bool = False
    workers: int = 0

    def service_name(self) -> str:
        """The process's name in traces: dag-api, dag-orchestrator, dag-worker, or dag-web/dag-up."""
        if self.api and self.orchestrator:
            return "dag-up" if self.workers else "dag-web"
        return "dag-api" if self.api else "dag-orchestrator" if self.orchestrator else "dag-worker"

    def describe(self) -> str:
        names = [name for name, on in (("api", self.api), ("orchestrator", self.orchestrator)) if on]
        if self.workers:
            names.append(f"{self.workers} worker(s)")
        return " + ".join(names)


async def serve(container: Container, roles: Roles, stop: asyncio.Event | None = None) -> None:
    """Run ``roles`` until ``stop`` (or a signal); raises ``BackendUnavailable`` if Redis is down."""
    stop = stop or asyncio.Event()
    settings = container.settings()
    tracing.configure(roles.service_name())
    # Counting costs only where metrics are served (the API, or a process given METRICS_PORT) or
    # traces are on.
    observed = roles.api or settings.metrics_port or tracing.enabled()
    metrics = meter(container, roles.workers) if observed else None
    await open_backend(container)
    try:
        stop_on_signals(stop)
        loops: list[Coroutine[Any, Any, None]] = [stop_when_orphaned(stop)]
        if metrics is not None and settings.metrics_port:
            app = metrics_app(metrics)
            metrics_serving = serve_http(
                app,
                settings.metrics_host,
                settings.metrics_port,
                stop,
                "the metrics",
                grace_seconds=1.0,
                access_log=settings.api_access_log,  # one access logger per process (serve_http)
            )
            loops.append(metrics_serving)
        if roles.orchestrator and _orchestrator_apart(container, roles):
            loops.append(orchestrator_child(settings.shutdown_grace_seconds).run(stop))
        elif roles.orchestrator:
            orchestrator = container.orchestrator(consumer=consumer_name("orchestrator"))
            loops.append(orchestrator.run(stop))
        for number in range(1, roles.workers + 1):
            worker = container.worker(worker_id=consumer_name(f"worker{number}"))
            loops.append(worker.run(stop))
        if roles.api:
            loops.append(_serve_api(container, stop, metrics))
        log.info("%s", describe_process(container, roles))
        await asyncio.gather(*loops)
    finally:
        await close_backend(container)
        tracing.shutdown()


def _orchestrator_apart(container: Container, roles: Roles) -> bool:
    """``web`` on Redis runs its orchestrator in a child process (``WEB_ORCHESTRATOR_PROCESS``): the
    API's work cannot delay transitions. On the memory backend everything shares this process."""
    settings = container.settings()
    return (
        roles.api
        and not roles.workers
        and container.backend() == "redis"
        and settings.web_orchestrator_process
    )


def orchestrator_child(grace_seconds: float) -> ChildRole:
    """The orchestrator of ``web``, as a child: the same settings, no metrics port of its own (the
    API's port serves this process's metrics; the child's would clash with it)."""
    env = child_environment({"METRICS_PORT": None, PARENT_PID_VARIABLE: str(os.getpid())})
    return ChildRole("orchestrator", env, grace_seconds + 5.0)


async def _serve_api(container: Container, stop: asyncio.Event, metrics: MetricsSource | None) -> None:
    settings = container.settings()

    async def backend_answers() -> None:
        await open_backend(container)  # raises BackendUnavailable when Redis does not answer

    limiter = container.rate_limiter() if settings.api_rate_limit_per_second > 0 else None
    app = create_app(container.workflows, settings, ready=backend_answers, metrics=metrics, limiter=limiter)
    grace = settings.shutdown_grace_seconds
    await serve_http(
        app,
        settings.api_host,
        settings.api_port,
        stop,
        grace_seconds=grace,
        access_log=settings.api_access_log,
    )


def describe_process(container: Container, roles: Roles) -> str:
    """The start-up line of a process: its roles, backend, Redis (no password), API, handlers."""
    settings = container.settings()
    apart = " (the orchestrator in a child process)" if _orchestrator_apart(container, roles) else ""
    parts = [f"started {roles.describe()}{apart}", f"backend {container.backend()}"]
    if container.backend() == "redis":
        topology = container.redis_topology()
        plain = not (topology.cluster or topology.sentinel)
        parts.append(f"Redis {settings.redis_location_shown() if plain else container.redis_url()}")
    if roles.api:
        prefix = api_prefix(settings.api_str)
        parts.append(f"API at http://{settings.api_host}:{settings.api_port}{prefix}")
    if roles.workers:
        names = sorted(handler.name for handler in container.registry())
        parts.append(f"queues {', '.join(settings.queues())}")
        parts.append(f"handlers {', '.join(names)}")
        parts.append(f"secrets from {container.secret_source().describe()}")
    return "; ".join(parts)
