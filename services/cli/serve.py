"""Long-running roles: api, orchestrator and workers, alone or together in one process.

SIGTERM or SIGINT stops a process gracefully: the API stops accepting requests, workers take no
new tasks and finish the attempts they hold, then the backend is closed. A second signal exits at
once (whatever a worker held is reclaimed by another after the visibility timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from services.api import create_app
from services.application.errors import UsageError
from services.container import Container, close_backend, open_backend

log = logging.getLogger(__name__)

DUPLICATE_SIGNAL_WINDOW_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Roles:
    api: bool = False
    orchestrator: bool = False
    workers: int = 0

    def describe(self) -> str:
        names = [name for name, on in (("api", self.api), ("orchestrator", self.orchestrator)) if on]
        if self.workers:
            names.append(f"{self.workers} worker(s)")
        return " + ".join(names)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process's stop event rules every role."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _consumer_name(role: str) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{role}"


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    first_at: list[float] = []

    def on_signal(number: int) -> None:
        if first_at:
            # A wrapper such as `uv run` forwards the same signal: only a later one means "now".
            if loop.time() - first_at[0] > DUPLICATE_SIGNAL_WINDOW_SECONDS:
                log.warning("second signal: exiting now")
                os._exit(128 + number)
            return
        first_at.append(loop.time())
        log.warning("signal %s: stopping gracefully", signal.Signals(number).name)
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, on_signal, number)


async def serve(container: Container, roles: Roles, stop: asyncio.Event | None = None) -> None:
    """Run ``roles`` until ``stop`` (or a signal); raises ``BackendUnavailable`` if Redis is down."""
    stop = stop or asyncio.Event()
    await open_backend(container)
    try:
        _install_signal_handlers(stop)
        loops: list[Coroutine[Any, Any, None]] = []
        if roles.orchestrator:
            orchestrator = container.orchestrator(consumer=_consumer_name("orchestrator"))
            loops.append(orchestrator.run(stop))
        for number in range(1, roles.workers + 1):
            worker = container.worker(worker_id=_consumer_name(f"worker{number}"))
            loops.append(worker.run(stop))
        if roles.api:
            loops.append(_serve_api(container, stop))
        log.warning("started %s on the %s backend", roles.describe(), container.backend())
        await asyncio.gather(*loops)
    finally:
        await close_backend(container)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it comes with uvicorn[standard]; not on Windows): the
    deployables spend much of their time in the event loop and socket I/O."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve_api(container: Container, stop: asyncio.Event) -> None:
    settings = container.settings()

    async def backend_answers() -> None:
        await open_backend(container)  # raises BackendUnavailable when Redis does not answer

    app = create_app(container.workflows, settings, ready=backend_answers)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        lifespan="off",
        access_log=False,  # uvicorn formats every access line even when it is not shown
        proxy_headers=False,  # nothing here reads the client's address
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    with contextlib.suppress(SystemExit):  # uvicorn's way of saying it could not start
        await serving
    if not stop.is_set():
        stopping.cancel()
        stop.set()  # the other roles of this process stop with the API
        raise UsageError(f"the HTTP API could not listen on {settings.api_host}:{settings.api_port}")
